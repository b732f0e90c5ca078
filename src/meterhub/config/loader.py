"""Load a site file: YAML → pydantic, with errors that name file:line, field and what is allowed."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from meterhub.config.schema import SiteConfig

__all__ = ["ConfigError", "ConfigIssue", "CrossCheck", "load_config", "parse_config", "register_check"]

Loc = tuple[str | int, ...]


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
        return f"{where}: {self.field}: {self.message}"


class ConfigError(Exception):
    """A site file that cannot be used. ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


#: Cross-reference checks run after schema validation: ``check(config) -> [(loc, message)]``.
#: Subsystems register theirs (e.g. the bus power budget of seed 000 §7) with :func:`register_check`.
CrossCheck = Callable[[SiteConfig], Iterable[tuple[Loc, str]]]
_CHECKS: list[CrossCheck] = []
#: Modules that register checks; imported before every validation so the result never depends on
#: which subsystems happen to be imported already.
CHECK_MODULES = (
    "meterhub.drivers.modbus.budget",
    "meterhub.drivers.io.config",
    "meterhub.energy.config",
)


def register_check(check: CrossCheck) -> CrossCheck:
    """Add a cross-reference check (usable as a decorator)."""
    _CHECKS.append(check)
    return check


def _line_map(node: yaml.Node, path: Loc, out: dict[Loc, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*path, key)] = key_node.start_mark.line + 1
            _line_map(value_node, (*path, key), out)
            out[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out)


def _line_of(lines: dict[Loc, int], loc: Loc) -> int | None:
    # pydantic may add a tag (e.g. 'function-after[...]') to the loc; walk up until a known path.
    parts = list(loc)
    while parts:
        if tuple(parts) in lines:
            return lines[tuple(parts)]
        parts.pop()
    return lines.get(())


def _clean_loc(loc: Iterable[Any]) -> Loc:
    return tuple(p for p in loc if isinstance(p, int) or not (isinstance(p, str) and "[" in p))


def parse_config(text: str, filename: str = "<string>") -> SiteConfig:
    """Validate YAML text as a site file; raise :class:`ConfigError` on any problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([ConfigIssue(filename, line, (), f"YAML syntax: {exc.problem}")]) from None
    if not isinstance(data, dict) or node is None:
        raise ConfigError(
            [ConfigIssue(filename, 1, (), "a site file is a YAML mapping with a 'site' section")]
        )
    lines: dict[Loc, int] = {}
    _line_map(node, (), lines)
    try:
        config = SiteConfig.model_validate(data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            loc = _clean_loc(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling; see examples/demo-site.yaml)"
            elif err["type"] == "missing":
                msg = "required field is missing"
            issues.append(ConfigIssue(filename, _line_of(lines, loc), loc, msg))
        raise ConfigError(issues) from None
    for name in CHECK_MODULES:
        module = importlib.import_module(name)
        install = getattr(module, "install_checks", None)  # modules the schema imports register lazily
        if install is not None:
            install()
    issues = [
        ConfigIssue(filename, _line_of(lines, loc), loc, msg)
        for check in (_check_references, *_CHECKS)
        for loc, msg in check(config)
    ]
    if issues:
        raise ConfigError(issues)
    return config


def load_config(path: str | Path) -> SiteConfig:
    """Read and validate a site file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(p), None, (), f"cannot read: {exc.strerror}")]) from None
    return parse_config(text, str(p))


def _duplicates(items: list[Any], section: str) -> Iterable[tuple[Loc, str]]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.id in seen:
            yield (section, i, "id"), f"duplicate id {item.id!r}"
        seen.add(item.id)


def _check_references(cfg: SiteConfig) -> Iterable[tuple[Loc, str]]:
    from meterhub.config.schema import BusKind

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
