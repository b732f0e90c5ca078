"""Read a site file into plain data: YAML 1.2 core schema, strictly, with the line of every value.

The YAML parser is ruamel.yaml's; the data is built here from its events, so that each rule of a site file
is decided in one place and any byte sequence ends in one :class:`ReadError` naming a line, never in a
traceback:

* bytes are UTF-8 (a byte-order mark is allowed); UTF-16/32, Latin-1 and binary files are refused naming
  the line of the first bad byte; control characters are refused naming their line and column;
* scalars follow the YAML 1.2 core schema (§10.3.2): ``yes``/``on`` and ``1000:1`` are text, ``0o17`` and
  ``0x1f`` are integers; ``.inf``, ``.nan`` and numbers that overflow (``1e400``) are refused, and so are
  integers beyond 64 bits (a 5,000-digit integer is not converted at all);
* mapping keys are names (text); a duplicate key is refused naming both lines; ``<<`` merge keys, other
  tags than the core ones, and a second document are refused;
* nesting is limited to :data:`MAX_DEPTH` levels and the data, with aliases expanded, to :data:`MAX_VALUES`
  values; a file to :data:`MAX_BYTES`.

:func:`read_yaml` returns the data and a map from each path (``("circuits", 2, "ct", "ratio")``) to its
1-based line: the key's line for a mapping value, the item's line for a sequence item.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.reader import ReaderError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_VALUES", "Loc", "ReadError", "decode", "read_yaml"]

Loc = tuple[str | int, ...]

#: A site file larger than this is refused [byte]: a site of 1,000 circuits is about 150 KiB, and the
#: pure-Python parser needs seconds per 100 KiB of hostile input.
MAX_BYTES = 512 << 10
#: Deepest nesting of mappings and sequences accepted (a site file needs about 6; the scanner's time
#: grows with depth × size).
MAX_DEPTH = 32
#: Most values (scalars and collections, aliases expanded) accepted in one file.
MAX_VALUES = 200_000
#: Integers are at most 64-bit signed.
_INT_LIMIT = 2**63

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_TRUE = re.compile(r"^(?:true|True|TRUE)$")
_FALSE = re.compile(r"^(?:false|False|FALSE)$")
_INT10 = re.compile(r"^[-+]?[0-9]+$")
_INT8 = re.compile(r"^0o[0-7]+$")
_INT16 = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")
#: Characters YAML 1.2 does not allow in a stream (c-printable, §5.1), plus the C1 controls.
_UNPRINTABLE = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: Control characters refused inside text values (written with escapes in a double-quoted string).
_CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

_CORE = "tag:yaml.org,2002:"
_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)


class ReadError(Exception):
    """A file that is not a readable YAML 1.2 site file; ``line`` is 1-based (None: the whole file)."""

    def __init__(self, line: int | None, message: str, loc: Loc = ()) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.loc = loc


def _line_col(data: bytes | str, pos: int) -> tuple[int, int]:
    nl = b"\n" if isinstance(data, bytes) else "\n"
    line = data.count(nl, 0, pos) + 1  # type: ignore[arg-type]
    col = pos - (data.rfind(nl, 0, pos) + 1) + 1  # type: ignore[arg-type]
    return line, col


def decode(data: bytes) -> str:
    """UTF-8 bytes → text; :class:`ReadError` naming the line of the first byte that is not UTF-8."""
    if len(data) > MAX_BYTES:
        raise ReadError(None, f"the file is {len(data)} bytes; a site file is at most {MAX_BYTES} bytes")
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise ReadError(1, f"the file is {name} text; save it as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        line, col = _line_col(data, nul)
        raise ReadError(
            line, f"NUL byte at column {col}: a binary file, or UTF-16 text; a site file is UTF-8 text"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = _line_col(data, exc.start)
        raise ReadError(
            line,
            f"byte 0x{data[exc.start]:02x} at column {col} is not UTF-8 (Latin-1 or Windows-1252 text?); "
            "save the file as UTF-8",
        ) from None


def _flow_depth_line(text: str) -> int | None:
    """The line where ``[``/``{`` nesting first passes :data:`MAX_DEPTH`, or None.

    The YAML scanner's time grows with the square of flow nesting, so this runs before it. Quoted text and
    comments are skipped roughly (a quote starts a string only after a space or indicator); it only has
    to tell a real file (depth < 10) from a hostile one.
    """
    depth = 0
    line = 1
    quote = ""
    comment = False
    prev = "\n"
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            comment = False
        elif comment:
            pass
        elif quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"" and prev in " \t\n[{,:":
            quote = ch
        elif ch == "#" and prev in " \t\n":
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line
        elif ch in "]}":
            depth = max(0, depth - 1)
        prev = ch
        i += 1
    return None


@dataclass
class _Frame:
    container: dict[str, Any] | list[Any]
    path: Loc
    anchor: str | None
    start: int  # values counted when the collection started
    key: str | None = None
    key_line: int = 0
    key_lines: dict[str, int] = field(default_factory=dict)


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


def _too_long(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:20]}… ({len(text)} characters)"


def _int(text: str, line: int) -> int:
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if len(digits) > 24:  # never convert thousands of digits (Python refuses above 4300 anyway)
        raise ReadError(line, f"integer {_too_long(text)} is out of range (at most 64 bits)")
    if digits.startswith("0o"):
        value = int(digits[2:], 8)
    elif digits.startswith("0x"):
        value = int(digits[2:], 16)
    else:
        value = int(digits, 10)
    value *= sign
    if not -_INT_LIMIT <= value < _INT_LIMIT:
        raise ReadError(line, f"integer {_too_long(text)} is out of range (at most 64 bits)")
    return value


def _float(text: str, line: int) -> float:
    if _INF.match(text) or _NAN.match(text):
        raise ReadError(line, f"{text} is not a finite number")
    value = float(text)
    if not math.isfinite(value):
        raise ReadError(line, f"{_too_long(text)} is not a finite number (too large)")
    return value


def _plain(text: str, line: int) -> Any:
    """A plain (unquoted) scalar by the YAML 1.2 core schema (§10.3.2)."""
    if _NULL.match(text):
        return None
    if _TRUE.match(text):
        return True
    if _FALSE.match(text):
        return False
    if _INT10.match(text) or _INT8.match(text) or _INT16.match(text):
        return _int(text, line)
    if _FLOAT.match(text) or _INF.match(text) or _NAN.match(text):
        return _float(text, line)
    return _text(text, line)


def _text(text: str, line: int) -> str:
    m = _CONTROL_IN_TEXT.search(text)
    if m:
        raise ReadError(line, f"control character U+{ord(m.group()):04X} in text {_too_long(text)!r}")
    return text


def _scalar(ev: ScalarEvent, line: int) -> Any:
    tag = ev.tag
    text = ev.value
    if tag is None or tag == "!":
        return _plain(text, line) if ev.style is None and tag is None else _text(text, line)
    name = tag.removeprefix(_CORE) if tag.startswith(_CORE) else None
    if name == "str":
        return _text(text, line)
    if name == "null" and _NULL.match(text):
        return None
    if name == "bool" and (_TRUE.match(text) or _FALSE.match(text)):
        return bool(_TRUE.match(text))
    if name == "int" and (_INT10.match(text) or _INT8.match(text) or _INT16.match(text)):
        return _int(text, line)
    if name == "float" and (_FLOAT.match(text) or _INF.match(text) or _NAN.match(text)):
        return _float(text, line)
    if name in ("null", "bool", "int", "float"):
        raise ReadError(line, f"{_too_long(text)!r} is not a valid {_tag_name(tag)}")
    raise ReadError(line, f"the tag {_tag_name(tag)} is not supported; write a plain value")


class _Builder:
    """Plain data from parser events, iteratively (no recursion, however deep the input)."""

    def __init__(self) -> None:
        self.stack: list[_Frame] = []
        self.lines: dict[Loc, int] = {(): 1}
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.count = 0
        self.root: Any = None
        self.documents = 0

    def _counted(self, n: int, line: int) -> None:
        self.count += n
        if self.count > MAX_VALUES:
            raise ReadError(line, f"more than {MAX_VALUES} values (with aliases expanded) in one site file")

    def _next_path(self) -> Loc:
        """The path the next value will take (for messages about it)."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.container, list):
            return (*top.path, len(top.container))
        return (*top.path, top.key) if top.key is not None else top.path

    def _place(self, value: Any, line: int, what: str) -> Loc:
        """Put ``value`` into the open collection (or make it the root); return its path."""
        if not self.stack:
            self.root = value
            self.lines[()] = line
            return ()
        top = self.stack[-1]
        if isinstance(top.container, list):
            path: Loc = (*top.path, len(top.container))
            top.container.append(value)
            self.lines[path] = line
            return path
        if top.key is None:
            raise ReadError(line, f"a key must be a plain name, not {what}", top.path)
        path = (*top.path, top.key)
        top.container[top.key] = value
        self.lines[path] = top.key_line
        top.key = None
        return path

    def _key(self, ev: ScalarEvent, line: int) -> None:
        top = self.stack[-1]
        if ev.tag is not None and ev.tag not in ("!", _CORE + "str"):
            raise ReadError(line, f"a key must be a plain name, not a {_tag_name(ev.tag)} value", top.path)
        key = _text(ev.value, line)
        if key == "<<" and ev.style is None:
            raise ReadError(line, "merge keys (<<) are not part of YAML 1.2; write the values out", top.path)
        if key in top.key_lines:
            raise ReadError(
                line,
                f"duplicate key {key!r} (first at line {top.key_lines[key]}); a key may appear once",
                (*top.path, key),
            )
        top.key_lines[key] = line
        top.key = key
        top.key_line = line

    def _start(self, ev: MappingStartEvent | SequenceStartEvent, line: int) -> None:
        mapping = isinstance(ev, MappingStartEvent)
        expected = _CORE + ("map" if mapping else "seq")
        if ev.tag is not None and ev.tag not in ("!", expected):
            raise ReadError(line, f"the tag {_tag_name(ev.tag)} is not supported; write a plain value")
        if len(self.stack) >= MAX_DEPTH:
            raise ReadError(line, f"nesting deeper than {MAX_DEPTH} levels", self._next_path()[:3])
        self._counted(1, line)
        container: dict[str, Any] | list[Any] = {} if mapping else []
        path = self._place(container, line, "a mapping" if mapping else "a list")
        if ev.anchor is not None:
            self.open_anchors.add(ev.anchor)
        self.stack.append(_Frame(container, path, ev.anchor, self.count))

    def _end(self) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = (frame.container, self.count - frame.start + 1)

    def feed(self, ev: Event) -> None:
        line = ev.start_mark.line + 1 if ev.start_mark is not None else 0
        if isinstance(ev, DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise ReadError(line, "a second YAML document; a site file holds one (remove the '---')")
            version = getattr(ev, "version", None)
            if version is not None and tuple(version) != (1, 2):
                raise ReadError(
                    line, f"the file declares YAML {'.'.join(map(str, version))}; site files are YAML 1.2"
                )
        elif isinstance(ev, MappingStartEvent | SequenceStartEvent):
            self._start(ev, line)
        elif isinstance(ev, MappingEndEvent | SequenceEndEvent):
            self._end()
        elif isinstance(ev, ScalarEvent):
            top = self.stack[-1] if self.stack else None
            if top is not None and isinstance(top.container, dict) and top.key is None:
                self._key(ev, line)
                return
            self._counted(1, line)
            try:
                value = _scalar(ev, line)
            except ReadError as exc:
                exc.loc = self._next_path()
                raise
            if ev.anchor is not None:
                self.anchors[ev.anchor] = (value, 1)
            self._place(value, line, "a value")
        elif isinstance(ev, AliasEvent):
            name = ev.anchor
            if name in self.open_anchors:
                raise ReadError(line, f"alias *{name} refers to a collection that contains it")
            if name not in self.anchors:
                raise ReadError(line, f"unknown alias *{name} (define &{name} before using it)")
            value, n = self.anchors[name]
            self._counted(n, line)
            self._place(value, line, "an alias")


def read_yaml(source: bytes | str) -> tuple[Any, dict[Loc, int]]:
    """Site-file data and the line of each path; :class:`ReadError` on anything that is not a readable
    YAML 1.2 document under the rules of this module."""
    text = decode(source) if isinstance(source, bytes) else source
    if len(text) > MAX_BYTES:
        raise ReadError(None, f"the file has {len(text)} characters; a site file is at most {MAX_BYTES}")
    bad = _UNPRINTABLE.search(text)
    if bad:
        line, col = _line_col(text, bad.start())
        what = "NUL character" if bad.group() == "\x00" else f"control character U+{ord(bad.group()):04X}"
        raise ReadError(
            line, f"{what} at column {col}; only tabs, line breaks and printable text are allowed"
        )
    deep = _flow_depth_line(text)
    if deep is not None:
        raise ReadError(deep, f"nesting deeper than {MAX_DEPTH} levels")
    builder = _Builder()
    try:
        for ev in YAML(typ="safe", pure=True).parse(text):
            builder.feed(ev)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at: int | None = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "cannot be read"
        raise ReadError(at, f"YAML syntax: {problem}") from None
    except ReaderError as exc:
        line, col = _line_col(text, min(exc.position, len(text)))
        raise ReadError(line, f"unreadable character at column {col}: {exc.reason}") from None
    except YAMLError as exc:
        raise ReadError(None, f"YAML: {exc}") from None
    return builder.root, builder.lines
