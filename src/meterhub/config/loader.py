"""Load a site file: YAML 1.2 → pydantic, with errors that name file:line, field and what is allowed.

:func:`parse_config` and :func:`load_config` check the schema and the cross-references every site file
must satisfy (ids unique, references known, panels without cycles). Checks that need a subsystem (the
module-bus power budget, IO points against device profiles, the energy section against circuits) are
typed callables the caller passes in as ``checks``; :mod:`meterhub.checks` holds the full set and
``meterhub.checks.load_site`` runs them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from meterhub.config.reader import MAX_BYTES, Loc, ReadError, read_yaml
from meterhub.config.schema import BusKind, SiteConfig
from meterhub.errors import ConfigurationError

__all__ = ["ConfigError", "ConfigIssue", "CrossCheck", "Loc", "load_config", "parse_config"]

#: A cross-reference check run after schema validation: ``check(config)`` yields ``(loc, message)`` for
#: each problem, ``loc`` being the path of the offending value (``("devices", 3, "unit")``).
CrossCheck = Callable[[SiteConfig], Iterable[tuple[Loc, str]]]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a site file."""

    file: str
    line: int | None
    loc: Loc
    message: str

    @property
    def field(self) -> str:
        out = ""
        for part in self.loc:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out or "(file)"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.loc else f"{where}: {self.message}"


class ConfigError(ConfigurationError):
    """A site file that cannot be used. ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


def _line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    # A check may name a value the file does not spell out (a default): walk up to the nearest one it does.
    parts = list(loc)
    while parts:
        if tuple(parts) in lines:
            return lines[tuple(parts)]
        parts.pop()
    return lines.get(())


def _data_loc(loc: Iterable[Any], data: Any, *, missing: bool = False) -> Loc:
    """A pydantic error location as a path into the file's data.

    pydantic inserts tags that are not in the data (``function-after[...]``, the tag of a discriminated
    union such as ``pulse``); they are dropped by walking the data along the location. For a ``missing``
    field the last part is kept although the data lacks it: it is the name of the field."""
    parts = list(loc)
    out: list[str | int] = []
    node = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif missing and last and isinstance(part, str) and isinstance(node, dict):
            out.append(part)
    return tuple(out)


def _message(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see examples/demo-site.yaml)"
    if kind == "missing":
        return "required field is missing"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = str(ctx.get("discriminator", "'kind'")).strip("'")
        tags = ", ".join(sorted(t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")))
        if kind == "union_tag_not_found" or not tags:
            return f"'{field}' is missing" + (f"; use one of {tags}" if tags else "")
        return f"unknown {field} {ctx.get('tag')!r}; use one of {tags}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind in ("int_type", "float_type", "bool_type", "string_type") and "input" in err:
        msg += f", not {_describe(err['input'])}"
    return msg


def _describe(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"text {value!r}" if len(value) <= 40 else f"text {value[:37]!r}…"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def parse_config(
    text: str | bytes, filename: str = "<string>", *, checks: Sequence[CrossCheck] = ()
) -> SiteConfig:
    """Validate a site file's text (or its raw bytes) and run the reference checks and ``checks``;
    raise :class:`ConfigError` on any problem, naming file:line and field."""
    try:
        data, lines = read_yaml(text)
    except ReadError as exc:
        raise ConfigError([ConfigIssue(filename, exc.line, exc.loc, exc.message)]) from None
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue(filename, 1, (), "a site file is a YAML mapping with a 'site' section")]
        )
    try:
        config = SiteConfig.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            loc = _data_loc(err["loc"], data, missing=err["type"] == "missing")
            issues.append(ConfigIssue(filename, _line_of(lines, loc), loc, _message(err)))
        raise ConfigError(issues) from None
    issues = [
        ConfigIssue(filename, _line_of(lines, loc), loc, msg)
        for check in (check_references, *checks)
        for loc, msg in check(config)
    ]
    if issues:
        raise ConfigError(issues)
    return config


def load_config(path: str | Path, *, checks: Sequence[CrossCheck] = ()) -> SiteConfig:
    """Read and validate a site file (see :func:`parse_config`)."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_BYTES:
            raise ConfigError(
                [
                    ConfigIssue(
                        str(p), None, (), f"the file is larger than {MAX_BYTES} bytes; is it a site file?"
                    )
                ]
            )
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(p), None, (), f"cannot read: {exc.strerror}")]) from None
    return parse_config(data, str(p), checks=checks)


def _duplicates(items: list[Any], section: str) -> Iterable[tuple[Loc, str]]:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.id in seen:
            yield (section, i, "id"), f"duplicate id {item.id!r} (also {section}[{seen[item.id]}])"
        seen.setdefault(item.id, i)


def _panel_cycles(cfg: SiteConfig) -> Iterable[tuple[Loc, str]]:
    parent = {p.id: p.parent for p in cfg.panels}
    index = {p.id: i for i, p in enumerate(cfg.panels)}
    reported: set[str] = set()
    for start in parent:
        chain = [start]
        node = parent[start]
        while node is not None and node in parent and node not in chain:
            chain.append(node)
            node = parent[node]
        if node is None or node not in chain:
            continue
        cycle = chain[chain.index(node) :]
        if reported.intersection(cycle):
            continue
        reported.update(cycle)
        first = min(cycle, key=index.__getitem__)
        k = cycle.index(first)
        ordered = [*cycle[k:], *cycle[:k], first]
        yield (
            ("panels", index[first], "parent"),
            f"panel parents form a cycle: {' → '.join(ordered)}; a panel cannot feed itself",
        )


def check_references(cfg: SiteConfig) -> Iterable[tuple[Loc, str]]:
    """Checks every site file gets: unique ids, known panels, buses, devices and circuits, one Modbus unit
    per bus address, panel parents without cycles."""
    for section in ("panels", "buses", "devices", "circuits"):
        yield from _duplicates(getattr(cfg, section), section)
    panels = {p.id for p in cfg.panels}
    buses = {b.id: b for b in cfg.buses}
    devices = {d.id: d for d in cfg.devices}

    def known(kind: str, ids: Iterable[str]) -> str:
        names = sorted(ids)
        return f"; known {kind}: {', '.join(names)}" if names else f"; no {kind} are defined"

    for i, p in enumerate(cfg.panels):
        if p.parent is not None and p.parent not in panels:
            yield ("panels", i, "parent"), f"unknown panel {p.parent!r}" + known("panels", panels)
    yield from _panel_cycles(cfg)
    units: dict[tuple[str, int], str] = {}
    for i, d in enumerate(cfg.devices):
        if d.bus not in buses:
            yield ("devices", i, "bus"), f"unknown bus {d.bus!r}" + known("buses", buses)
        if d.panel is not None and d.panel not in panels:
            yield ("devices", i, "panel"), f"unknown panel {d.panel!r}" + known("panels", panels)
        bus = buses.get(d.bus)
        if bus is not None and bus.kind.value.startswith("modbus"):
            if d.unit is None:
                yield ("devices", i, "unit"), "a Modbus device needs a unit id 1…247"
            elif (d.bus, d.unit) in units:
                yield (
                    ("devices", i, "unit"),
                    f"unit {d.unit} on bus {d.bus!r} is already used by device {units[(d.bus, d.unit)]!r}",
                )
            else:
                units[(d.bus, d.unit)] = d.id
        if bus is not None and bus.kind is BusKind.MODBUS_TCP and d.unit == 0:
            yield ("devices", i, "unit"), "unit 0 is the broadcast address and cannot be polled"
    for i, c in enumerate(cfg.circuits):
        if c.device not in devices:
            yield ("circuits", i, "device"), f"unknown device {c.device!r}" + known("devices", devices)
        if c.voltage_reference is not None and c.voltage_reference not in devices:
            yield (
                ("circuits", i, "voltage_reference"),
                f"unknown device {c.voltage_reference!r}" + known("devices", devices),
            )
        if c.panel is not None and c.panel not in panels:
            yield ("circuits", i, "panel"), f"unknown panel {c.panel!r}" + known("panels", panels)
    if cfg.simulation is not None:
        circuits = {c.id for c in cfg.circuits}
        for name in cfg.simulation.loads:
            if name not in circuits:
                yield (
                    ("simulation", "loads", name),
                    f"no circuit {name!r} to simulate" + known("circuits", circuits),
                )
