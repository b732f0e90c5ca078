"""Cross-checks of the site file's ``control:`` section (:mod:`meterhub.config.control`) against the rest of
the site: io points of the right kind, alarm rule ids, circuits, the demand interval; and the simulator's
relay-gated loads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meterhub.config.alarms import SystemRules
from meterhub.config.control import Action
from meterhub.config.io import AnalogOutPoint, DigitalPoint, RelayMode, RelayPoint
from meterhub.config.loader import Loc
from meterhub.config.schema import SiteConfig
from meterhub.model.quantities import Q
from meterhub.model.topology import Purpose

__all__ = ["check_control"]


def _dupes(items: Iterable[Any], where: Loc) -> Iterable[tuple[Loc, str]]:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.id in seen:
            yield (*where, i, "id"), f"duplicate id {item.id!r} (also {where[-1]}[{seen[item.id]}])"
        seen.setdefault(item.id, i)


def check_control(config: SiteConfig) -> Iterable[tuple[Loc, str]]:
    """Cross-check the ``control`` section: its points exist in the io section and are of the right kind
    (an output for actions, a digital input for input triggers), actions fit their output, circuits exist,
    and the demand limiter has a main circuit whose import demand the energy section measures at the
    limiter's interval, and linkage names a rule of the ``alarms`` section or a built-in one
    (``system:device_offline`` …)."""
    points = {p.id: p for p in (config.io.points if config.io is not None else [])}
    for cid, sim_load in config.simulation.loads.items() if config.simulation is not None else ():
        if sim_load.enable is not None and not isinstance(points.get(sim_load.enable), RelayPoint):
            relays_ = sorted(k for k, p in points.items() if isinstance(p, RelayPoint))
            yield (
                ("simulation", "loads", cid, "enable"),
                f"{sim_load.enable!r} is not a relay point of the io section; relays: {', '.join(relays_) or 'none'}",
            )
    section = config.control
    if section is None:
        return
    outputs = sorted(k for k, p in points.items() if isinstance(p, RelayPoint | AnalogOutPoint))
    relays = sorted(k for k, p in points.items() if isinstance(p, RelayPoint))
    inputs = sorted(k for k, p in points.items() if isinstance(p, DigitalPoint))
    circuits = {c.id for c in config.circuits}
    virtual = {v.id for v in config.energy.virtual} if config.energy is not None else set()

    def listing(ids: list[str]) -> str:
        return ", ".join(ids) or "none in the io section"

    def output(point: str, loc: Loc, *, relay_only: bool = False) -> Iterable[tuple[Loc, str]]:
        p = points.get(point)
        allowed = relays if relay_only else outputs
        if p is None:
            kind = "relay" if relay_only else "output"
            yield loc, f"unknown {kind} point {point!r}; {kind} points: {listing(allowed)}"
        elif point not in allowed:
            want = "a relay" if relay_only else "a relay or an analog output"
            yield loc, f"point {point!r} is a {p.kind} point, not {want}; those are: {listing(allowed)}"

    yield from _dupes(section.linkage, ("control", "linkage"))
    yield from _dupes(section.programs, ("control", "programs"))
    for i, o in enumerate(section.outputs):
        yield from output(o.point, ("control", "outputs", i, "point"))
    for i, lock in enumerate(section.interlocks):
        where: Loc = ("control", "interlocks", i)
        yield from output(lock.point, (*where, "point"), relay_only=True)
        if lock.requires not in points:
            yield (
                (*where, "requires"),
                f"unknown point {lock.requires!r}; relays and inputs: " + listing(sorted(relays + inputs)),
            )
        elif lock.requires not in relays and lock.requires not in inputs:
            yield (*where, "requires"), f"point {lock.requires!r} is not a relay or a digital input"
    rule_ids = sorted(r.id for r in config.alarms.rules) if config.alarms is not None else []
    system_ids = [f"system:{name}" for name in SystemRules.model_fields]
    for i, rule in enumerate(section.linkage):
        where = ("control", "linkage", i)
        if rule.when.alarm is not None and rule.when.alarm not in rule_ids + system_ids:
            yield (
                (*where, "when", "alarm"),
                f"unknown alarm rule {rule.when.alarm!r}; rules of the alarms section: "
                f"{', '.join(rule_ids) or 'none'}; built-in: {', '.join(system_ids)}",
            )
        if rule.when.input is not None and rule.when.input not in inputs:
            p = points.get(rule.when.input)
            what = "unknown point" if p is None else f"a {p.kind} point, not a digital input"
            yield (
                (*where, "when", "input"),
                f"{rule.when.input!r}: {what}; digital inputs: {listing(inputs)}",
            )
        then, loc = rule.then, (*where, "then", "point")
        p = points.get(then.point)
        issues = list(output(then.point, loc))
        yield from issues
        if issues or p is None:
            continue
        if then.action is Action.SET and not isinstance(p, AnalogOutPoint):
            yield (*where, "then", "action"), f"'set' drives an analog output; {then.point!r} is a relay"
        elif then.action is not Action.SET and isinstance(p, AnalogOutPoint):
            yield (
                (*where, "then", "action"),
                f"{then.point!r} is an analog output: its action is 'set' with a value",
            )
        elif isinstance(p, RelayPoint) and p.mode is RelayMode.PULSE and then.action is not Action.PULSE:
            yield (
                (*where, "then", "action"),
                f"relay {then.point!r} is a pulse-mode output: its action is 'pulse', not {then.action.value!r}",
            )
    for i, prog in enumerate(section.programs):
        where = ("control", "programs", i)
        issues = list(output(prog.point, (*where, "point")))
        yield from issues
        p = points.get(prog.point)
        if issues or p is None:
            continue
        if isinstance(p, AnalogOutPoint) and (prog.value is None or prog.off_value is None):
            yield (*where, "value"), f"{prog.point!r} is an analog output: give 'value' and 'off_value'"
        if isinstance(p, RelayPoint) and (prog.value is not None or prog.off_value is not None):
            yield (*where, "value"), f"{prog.point!r} is a relay: it is on inside the windows, off outside"
        if isinstance(p, RelayPoint) and p.mode is RelayMode.PULSE:
            yield (*where, "point"), f"relay {prog.point!r} is a pulse-mode output; a program latches on/off"
    dl = section.demand_limit
    if dl is None:
        return
    where = ("control", "demand_limit")
    grid = [c.id for c in config.circuits if c.purpose is Purpose.GRID]
    if dl.circuit is None:
        if len(grid) != 1:
            yield (
                (*where, "circuit"),
                f"name the site's main circuit: {len(grid)} circuits have purpose grid ({', '.join(grid)})"
                if grid
                else "name the site's main circuit: no circuit has purpose grid",
            )
    elif dl.circuit not in circuits and dl.circuit not in virtual:
        yield (*where, "circuit"), f"unknown circuit {dl.circuit!r}; circuits: {', '.join(sorted(circuits))}"
    site_interval = config.energy.demand.interval if config.energy is not None else 15
    if dl.interval is not None and dl.interval != site_interval:
        yield (
            (*where, "interval"),
            f"the demand interval is the energy section's ({site_interval} min), not {dl.interval} min: the "
            "limiter acts on the demand the site measures",
        )
    if config.energy is not None and Q.ENERGY_ACTIVE_IMPORT not in config.energy.demand.quantities:
        yield (*where,), "energy.demand.quantities must include energy_active_import (the demand to limit)"
    seen: dict[str, int] = {}
    for i, load in enumerate(dl.loads):
        lloc: Loc = (*where, "loads", i)
        yield from output(load.point, (*lloc, "point"), relay_only=True)
        p = points.get(load.point)
        if isinstance(p, RelayPoint) and p.mode is RelayMode.PULSE:
            yield (
                (*lloc, "point"),
                f"relay {load.point!r} is a pulse-mode output; a load needs a latched relay",
            )
        if load.point in seen:
            yield (*lloc, "point"), f"point {load.point!r} is already load {seen[load.point]}"
        seen.setdefault(load.point, i)
        if load.circuit is not None and load.circuit not in circuits:
            yield (
                (*lloc, "circuit"),
                f"unknown circuit {load.circuit!r}; circuits: {', '.join(sorted(circuits))}",
            )
        if load.circuit is None and load.power_kw is None:
            yield (*lloc,), "give 'circuit' (where the load is metered) or 'power_kw' (what it draws)"
