"""Write a changed configuration back into its site file, keeping what a person wrote.

:func:`write_site_file` round-trips the existing file with ruamel.yaml: comments, key order, flow or block
style, quoting and indentation stay as they were, and only the values that changed are rewritten. Values
the file does not spell out stay out (defaults are not filled in); a new item (a circuit added through the
API) is written with its non-default fields only, in the style of its siblings. Items of a list are matched
by their ``id``.

The new text is validated with the caller's checks and read back before anything is written: if it would
not load, or would not load as exactly the configuration asked for, nothing is written and a
:class:`~meterhub.config.loader.ConfigError` says why. Then the old file is copied to
``<file>.<YYYYmmddTHHMMSS>.bak`` (UTC) and the new one replaces it atomically (written beside it, flushed
to disk, renamed over it), so a crash leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import copy
import io
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from meterhub.config.loader import ConfigError, ConfigIssue, CrossCheck, parse_config
from meterhub.config.schema import SiteConfig

__all__ = ["SiteFileWrite", "backup_path", "render_site_file", "write_site_file"]

#: Text written plainly; anything else is double-quoted (ruamel still quotes what reads as a number).
_SAFE_PLAIN = re.compile(r"^[\w(][\w ./()+@°%-]*(?<! )$")


@dataclass(frozen=True)
class SiteFileWrite:
    """What :func:`write_site_file` did: the configuration as read back, and where the old file went."""

    config: SiteConfig
    path: Path
    backup: Path | None


def _map_indent(text: str) -> int:
    """Indentation of a nested mapping in ``text`` [characters] (2 when the file has none): the step from
    a line ``key:`` (opening a block) to the key on the next line."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for a, b in zip(lines, lines[1:], strict=False):
        opens = a.split(" #", 1)[0].rstrip().endswith(":") and not a.lstrip().startswith("- ")
        inner = len(b) - len(b.lstrip(" "))
        outer = len(a) - len(a.lstrip(" "))
        if opens and inner > outer and not b.lstrip().startswith("- "):
            return inner - outer
    return 2


def _yaml(text: str | None) -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # never re-wrap a person's long flow mappings
    sequence, offset = 4, 2
    mapping = 2
    if text:
        try:
            _, sequence, offset = load_yaml_guess_indent(text)
        except YAMLError:
            pass
        mapping = _map_indent(text)
        if sequence is None or offset is None:
            sequence, offset = mapping + 2, mapping
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    return y


def _is_ratio(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"primary", "secondary"}


def _node(value: Any, *, flow: bool = False) -> Any:
    """Plain dumped data → ruamel nodes: ratios as ``"800/5"``, lists of scalars in flow style, text that
    is not plainly safe (``: a``, ``#x``, brackets, commas) double-quoted."""
    if _is_ratio(value):
        return f"{value['primary']:g}/{value['secondary']:g}"
    if isinstance(value, str) and not _SAFE_PLAIN.match(value):
        # ruamel writes ": a" unquoted inside a flow mapping, which does not read back
        return DoubleQuotedScalarString(value)
    if isinstance(value, dict):
        cm = CommentedMap((k, _node(v)) for k, v in value.items())
        if flow:
            cm.fa.set_flow_style()
        return cm
    if isinstance(value, list):
        seq = CommentedSeq(_node(v) for v in value)
        if not any(isinstance(v, dict | list) for v in value):
            seq.fa.set_flow_style()
        return seq
    return value


def _flow(node: Any) -> bool:
    return isinstance(node, CommentedMap | CommentedSeq) and bool(node.fa.flow_style())


class _Merger:
    """Applies the difference between two dumps of a configuration to the file's ruamel document."""

    def __init__(self, doc: CommentedMap) -> None:
        self.shared = self._shared(doc)

    @staticmethod
    def _shared(doc: Any) -> set[int]:
        # Nodes reached twice are YAML aliases: editing one in place would edit every use.
        seen: set[int] = set()
        shared: set[int] = set()
        stack = [doc]
        while stack:
            node = stack.pop()
            if not isinstance(node, CommentedMap | CommentedSeq):
                continue
            if id(node) in seen:
                shared.add(id(node))
                continue
            seen.add(id(node))
            stack.extend(node.values() if isinstance(node, CommentedMap) else node)
        return shared

    def _own(self, parent: Any, key: Any) -> Any:
        """``parent[key]``, copied first when it is an alias of a node used elsewhere."""
        child = parent[key]
        if id(child) in self.shared:
            child = copy.deepcopy(child)
            if child.anchor.value is not None:
                child.yaml_set_anchor(None)
            parent[key] = child
        return child

    @staticmethod
    def _add(doc: CommentedMap, key: str, value: Any, order: list[str], *, top: bool) -> None:
        """Add ``key`` after the keys that precede it in the schema's field ``order``. At the top level
        new sections go last: a comment above the next section belongs to that section."""
        if top:
            doc[key] = value
            return
        before = set(order[: order.index(key)])
        keys = list(doc)
        position = max((i + 1 for i, k in enumerate(keys) if k in before), default=0)
        doc.insert(position, key, value)

    def mapping(
        self,
        doc: CommentedMap,
        old: dict[str, Any],
        new: dict[str, Any],
        lean: dict[str, Any],
        *,
        top: bool = False,
    ) -> None:
        for key in [k for k in doc if k not in new]:
            del doc[key]  # an entry of a free-keyed mapping (e.g. simulation.loads) was removed
        for key, nv in new.items():
            ov = old.get(key)
            if key in old and nv == ov:
                continue
            if key not in doc:
                if key in lean:  # differs from the default: add it; otherwise absent stays absent
                    self._add(doc, key, _node(lean[key], flow=_flow(doc)), list(new), top=top)
                continue
            if nv is None:
                del doc[key]
                continue
            self.value(doc, key, ov, nv, lean.get(key, nv))

    def value(self, parent: Any, key: Any, ov: Any, nv: Any, lean: Any) -> None:
        current = parent[key]
        if isinstance(current, CommentedMap) and isinstance(ov, dict) and isinstance(nv, dict):
            self.mapping(self._own(parent, key), ov, nv, lean if isinstance(lean, dict) else nv)
        elif isinstance(current, CommentedSeq) and isinstance(ov, list) and isinstance(nv, list):
            self.sequence(parent, key, ov, nv, lean if isinstance(lean, list) else nv)
        else:
            parent[key] = _node(lean if not _is_ratio(nv) else nv, flow=_flow(current))

    def sequence(self, parent: Any, key: Any, old: list[Any], new: list[Any], lean: list[Any]) -> None:
        seq: CommentedSeq = parent[key]
        keyed = all(isinstance(v, dict) and "id" in v for v in (*old, *new)) and len(seq) == len(old)
        if not keyed:
            replacement = _node(lean)
            if isinstance(replacement, CommentedSeq):
                if _flow(seq):
                    replacement.fa.set_flow_style()
                else:
                    replacement.fa.set_block_style()
            parent[key] = replacement
            return
        seq = self._own(parent, key)
        new_ids = [v["id"] for v in new]
        for i in reversed(range(len(old))):
            if old[i]["id"] not in new_ids:
                del seq[i]
                del old[i]
        old_ids = [v["id"] for v in old]
        survivors = [i for i in new_ids if i in old_ids]
        if survivors != old_ids:  # reordered: rebuild in the new order (comments may move)
            by_id = {v["id"]: (node, v) for node, v in zip(seq, old, strict=True)}
            seq.clear()
            old = []
            for item_id in survivors:
                node, ov = by_id[item_id]
                seq.append(node)
                old.append(ov)
        style_flow = any(_flow(n) for n in seq)
        position = {v["id"]: n for n, v in enumerate(old)}
        for nv, lv in zip(new, lean, strict=True):
            if nv["id"] in position:
                k = position[nv["id"]]
                if old[k] != nv:
                    self.value(seq, k, old[k], nv, lv)
            else:
                seq.append(_node(lv, flow=style_flow))


def _lean(config: SiteConfig) -> dict[str, Any]:
    return config.model_dump(mode="json", exclude_defaults=True)


def _full(config: SiteConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


def _fresh(config: SiteConfig) -> str:
    y = _yaml(None)
    buf = io.StringIO()
    y.dump(_node(_lean(config)), buf)
    return buf.getvalue()


def render_site_file(old_text: str | None, new_config: SiteConfig, filename: str = "<site>") -> str:
    """The text of a site file that says ``new_config``, edited from ``old_text`` where there is one.

    ``old_text`` that does not load as a site file is not edited: the result is a fresh file with the
    non-default values of ``new_config``."""
    if old_text is None:
        return _fresh(new_config)
    try:
        old_config = parse_config(old_text, filename)
        y = _yaml(old_text)
        doc = y.load(old_text)
    except (ConfigError, YAMLError):
        return _fresh(new_config)
    if not isinstance(doc, CommentedMap):
        return _fresh(new_config)
    _Merger(doc).mapping(doc, _full(old_config), _full(new_config), _lean(new_config), top=True)
    buf = io.StringIO()
    y.dump(doc, buf)
    return buf.getvalue()


def _difference(a: Any, b: Any, path: str = "") -> str:
    """The first path where two dumps differ (for a message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return _difference(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _difference(x, y, f"{path}[{i}]")
    return path or "(file)"


def backup_path(path: Path, now: datetime) -> Path:
    """``<file>.<YYYYmmddTHHMMSS>.bak`` beside ``path`` (UTC), with ``-2``, ``-3`` … when taken."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    candidate = path.with_name(f"{path.name}.{stamp}.bak")
    n = 2
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.{stamp}-{n}.bak")
        n += 1
    return candidate


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself reaches the disk
    finally:
        os.close(dir_fd)


def write_site_file(
    path: str | Path,
    new_config: SiteConfig,
    *,
    checks: Sequence[CrossCheck] = (),
    now: datetime | None = None,
) -> SiteFileWrite:
    """Write ``new_config`` into the site file at ``path`` (see the module docstring).

    Parameters
    ----------
    path : the site file; created when it does not exist (then without a backup).
    new_config : the configuration the file must say.
    checks : cross-checks the new file must pass, e.g. :data:`meterhub.checks.SITE_CHECKS`.
    now : time of the backup's name (default: the current time).

    Raises :class:`~meterhub.config.loader.ConfigError` (nothing written) when the new file would not load
    with ``checks``, and when the file cannot be read or written.
    """
    p = Path(path)
    try:
        old_text = p.read_text(encoding="utf-8") if p.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [ConfigIssue(str(p), None, (), f"cannot read the site file to update it: {exc}")]
        ) from None
    text = render_site_file(old_text, new_config, str(p))
    validated = parse_config(text, str(p), checks=checks)
    if _full(validated) != _full(new_config):
        where = _difference(_full(validated), _full(new_config))
        raise ConfigError(
            [
                ConfigIssue(
                    str(p),
                    None,
                    (),
                    f"the rewritten file would not read back as asked at {where}; nothing was written",
                )
            ]
        )
    backup = None
    try:
        if old_text is not None:
            backup = backup_path(p, now or datetime.now(UTC))
            shutil.copy2(p, backup)
        _atomic_write(p, text)
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(str(p), None, (), f"cannot write the site file: {exc.strerror}")]
        ) from None
    return SiteFileWrite(validated, p, backup)
