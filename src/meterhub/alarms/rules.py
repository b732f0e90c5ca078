"""Alarm definitions: the site file's rules expanded to one alarm per watched target, and the built-in
system rules' alarms.

A rule names a target (a circuit, zone, device, IO point or the site) and a phase (``L1`` … ``total``,
``any``, ``all``); :func:`expand_rules` turns it into :class:`AlarmDef` instances, one per circuit or point
(a zone rule on five circuits is five alarms, each with its own state), each watching one series
(``any``/``all``: three, one per phase). Each watched series is a :class:`Slot`: the series key, the
condition code and the limits in the catalogue unit, which the engine packs into arrays per quantity.

Alarm ids are ``<rule>/<circuit or point>[/<phase>]`` (the phase only when it is not ``total``);
system alarms are ``system:<name>/<device, circuit or site>``. They are stable across restarts, so a
persisted state finds its alarm again.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from meterhub.alarms.model import Severity
from meterhub.config.alarms import (
    SITE_TARGET,
    AlarmRule,
    AlarmsConfig,
    Condition,
    RulePhase,
    SystemRule,
    TargetKind,
    resolve_target,
)
from meterhub.config.schema import SiteConfig
from meterhub.model.quantities import CATALOGUE
from meterhub.model.topology import Phase, Purpose

__all__ = [
    "AlarmDef",
    "Code",
    "Mode",
    "Slot",
    "SystemKind",
    "expand_rules",
    "system_alarms",
]


class Code(enum.IntEnum):
    """How a slot's value is compared (packed into the engine's condition-code array)."""

    LEVEL = 0  # value > high or value < low (unset limits are ±inf)
    RATE = 1  # |change per minute| > high


class Mode(enum.IntEnum):
    """How an alarm's slots combine into its condition."""

    ANY = 0  # one slot beyond its limit suffices (also: a single slot)
    ALL = 1  # every slot is beyond its limit (phase ``all``)
    EXTERNAL = 2  # the condition is set from outside (system rules)


class SystemKind(enum.StrEnum):
    """The built-in rules (their settings are ``alarms.system.<value>``)."""

    DEVICE_OFFLINE = "device_offline"
    SITE_OUTAGE = "site_outage"
    NO_VALID_DATA = "no_valid_data"
    UNMETERED = "unmetered"
    REGISTER_QUARANTINE = "register_quarantine"
    STORAGE_SPOOL = "storage_spool"
    CLOCK_DRIFT = "clock_drift"
    # bus supervision (drivers/modbus/supervision.py), per Modbus bus
    BUS_NEW_DEVICE = "bus_new_device"
    BUS_VANISHED = "bus_vanished"
    BUS_CONFLICT = "bus_conflict"


_SYSTEM_TEXT: dict[SystemKind, tuple[str, str]] = {
    SystemKind.DEVICE_OFFLINE: ("Device offline: {target}", "device {target} does not answer since {time}"),
    SystemKind.SITE_OUTAGE: (
        "Site-level outage",
        "{value} devices offline at once (limit {limit}) since {time}; their own alarms are suppressed",
    ),
    SystemKind.NO_VALID_DATA: (
        "No valid data: {target}",
        "device {target} answers but sent no valid value for {value} s (limit {limit} s)",
    ),
    SystemKind.UNMETERED: (
        "Unmetered load",
        "{value} % of the main is not metered by any circuit (limit {limit} %) since {time}",
    ),
    SystemKind.REGISTER_QUARANTINE: (
        "Register step quarantined: {target}",
        "an energy register step of {target} was quarantined by the register guard at {time}; "
        "see GET /api/v1/devices",
    ),
    SystemKind.STORAGE_SPOOL: (
        "Storage spool filling",
        "{value} MiB of readings wait for the database in the spool (limit {limit} MiB)",
    ),
    SystemKind.CLOCK_DRIFT: (
        "Clock drift: {target}",
        "readings of {target} are {value} s away from the gateway's clock (limit {limit} s)",
    ),
    SystemKind.BUS_NEW_DEVICE: (
        "bus: new device on {target}",
        "a device that is not configured answers at address {value} of bus {target} (since {time}); "
        "see the devices page",
    ),
    SystemKind.BUS_VANISHED: (
        "bus: device vanished on {target}",
        "the configured device at address {value} of bus {target} answered before and no longer does "
        "(since {time})",
    ),
    SystemKind.BUS_CONFLICT: (
        "bus: address conflict on {target}",
        "two devices seem to answer at address {value} of bus {target} (garbled answers or two identities) "
        "since {time}",
    ),
}


@dataclass(frozen=True, slots=True)
class Slot:
    """One watched series of an alarm, limits in the catalogue unit.

    series : (circuit or point id, quantity id, phase).
    code : :class:`Code`.
    low, high : the limits (``-inf``/``inf`` when unset); for :attr:`Code.RATE` ``high`` is the largest
        change per minute [unit/min].
    deadband : how far back inside the limit the value must come before the condition is gone [unit].
    """

    series: tuple[str, str, Phase | None]
    code: Code
    low: float
    high: float
    deadband: float


@dataclass(frozen=True, slots=True)
class AlarmDef:
    """One alarm the engine keeps a state for.

    alarm_id, rule : see the module docstring. title, message : templates (``{value}`` …).
    target : circuit, point, device id or ``site``. phase : the rule's phase (None for system alarms).
    quantity, unit : what is watched and the unit values are shown in (the rule's ``unit``);
    factor : catalogue unit per shown unit [-]. severity : :class:`Severity`.
    on_delay, recovery, reminder : [s]. device : the device whose outage suppresses it (None: none).
    mode : :class:`Mode`. slots : the watched series (none for system alarms).
    enabled : False for a disabled rule (its alarms are out of service).
    """

    alarm_id: str
    rule: str
    title: str
    message: str
    target: str
    phase: str | None
    quantity: str | None
    unit: str | None
    factor: float
    severity: Severity
    on_delay: float
    recovery: float
    reminder: float
    device: str | None
    mode: Mode
    slots: tuple[Slot, ...] = ()
    enabled: bool = True
    system: SystemKind | None = None


def _targets(rule: AlarmRule, cfg: SiteConfig) -> list[tuple[str, str | None]]:
    """The circuits or points a rule watches, each with the device that carries it."""
    points = list(cfg.io.points) if cfg.io is not None else []
    kind, ident = resolve_target(
        rule.target,
        circuits=(c.id for c in cfg.circuits),
        points=(p.id for p in points),
        devices=(d.id for d in cfg.devices),
        zones=(c.zone for c in cfg.circuits if c.zone),
    )
    if kind is TargetKind.CIRCUIT:
        return [(ident, cfg.circuit(ident).device)]
    if kind is TargetKind.POINT:
        return [(p.id, p.device) for p in points if p.id == ident]
    if kind is TargetKind.DEVICE:
        out: list[tuple[str, str | None]] = [(c.id, c.device) for c in cfg.circuits if c.device == ident]
        return out + [(p.id, p.device) for p in points if p.device == ident]
    if kind is TargetKind.ZONE:
        return [(c.id, c.device) for c in cfg.circuits if c.zone == ident]
    return [(c.id, c.device) for c in cfg.circuits if c.purpose is Purpose.GRID]


def _slots(rule: AlarmRule, circuit: str) -> tuple[Slot, ...]:
    f = rule.factor
    low, high = -math.inf, math.inf
    code = Code.LEVEL
    if rule.condition is Condition.HIGH and rule.high is not None:
        high = rule.high * f
    elif rule.condition is Condition.LOW and rule.low is not None:
        low = rule.low * f
    elif rule.condition is Condition.BAND and rule.low is not None and rule.high is not None:
        low, high = rule.low * f, rule.high * f
    elif rule.condition is Condition.RATE and rule.rate is not None:
        code, high = Code.RATE, rule.rate * f
    elif rule.condition is Condition.STATE:
        # an on/off input reads 1.0 (on) or 0.0 (off): "on" is the alarm above 0.5, "off" below
        if rule.state:
            high = 0.5
        else:
            low = 0.5
    q = CATALOGUE[rule.quantity]
    total_only = q.phases == (Phase.TOTAL,)
    return tuple(
        Slot(
            (circuit, rule.quantity, Phase.TOTAL if total_only else phase), code, low, high, rule.deadband * f
        )
        for phase in rule.series_phases
    )


def expand_rules(cfg: SiteConfig) -> list[AlarmDef]:
    """Every alarm of the site file's ``alarms.rules`` (see the module docstring).

    A rule whose target cannot be resolved (the site check refuses such a file) yields no alarm.
    """
    alarms = cfg.alarms or AlarmsConfig()
    out: list[AlarmDef] = []
    for rule in alarms.rules:
        try:
            targets = _targets(rule, cfg)
        except ValueError:
            continue
        mode = Mode.ALL if rule.phase is RulePhase.ALL else Mode.ANY
        for circuit, device in targets:
            suffix = "" if rule.phase is RulePhase.TOTAL else f"/{rule.phase.value}"
            out.append(
                AlarmDef(
                    alarm_id=f"{rule.id}/{circuit}{suffix}",
                    rule=rule.id,
                    title=rule.title or rule.id,
                    message=rule.message,
                    target=circuit,
                    phase=rule.phase.value,
                    quantity=rule.quantity,
                    unit=rule.display_unit,
                    factor=rule.factor,
                    severity=Severity(rule.severity.value),
                    on_delay=rule.on_delay,
                    recovery=rule.recovery,
                    reminder=rule.reminder,
                    device=device,
                    mode=mode,
                    slots=_slots(rule, circuit),
                    enabled=rule.enabled,
                )
            )
    return out


def _system(kind: SystemKind, target: str, settings: SystemRule, device: str | None, unit: str) -> AlarmDef:
    title, message = _SYSTEM_TEXT[kind]
    return AlarmDef(
        alarm_id=f"system:{kind.value}/{target}",
        rule=f"system:{kind.value}",
        title=title,
        message=message,
        target=target,
        phase=None,
        quantity=None,
        unit=unit,
        factor=1.0,
        severity=Severity(settings.severity.value),
        on_delay=settings.on_delay,
        recovery=settings.recovery,
        reminder=settings.reminder,
        device=device,
        mode=Mode.EXTERNAL,
        enabled=settings.enabled,
        system=kind,
    )


def system_alarms(cfg: SiteConfig) -> list[AlarmDef]:
    """The built-in rules' alarms: per enabled device (offline, no valid data, clock drift), per circuit and
    IO point (quarantined register step), and once for the site (outage, unmetered load, storage spool).

    A device's offline alarm is suppressed by the site-level outage, not by itself (``device`` None)."""
    system = (cfg.alarms or AlarmsConfig()).system
    out: list[AlarmDef] = []
    devices = [d for d in cfg.devices if d.enabled]
    for d in devices:
        out.append(_system(SystemKind.DEVICE_OFFLINE, d.id, system.device_offline, None, ""))
        out.append(_system(SystemKind.NO_VALID_DATA, d.id, system.no_valid_data, d.id, "s"))
        out.append(_system(SystemKind.CLOCK_DRIFT, d.id, system.clock_drift, d.id, "s"))
    points = [(p.id, p.device) for p in cfg.io.points] if cfg.io is not None else []
    for circuit, device in [(c.id, c.device) for c in cfg.circuits] + points:
        out.append(_system(SystemKind.REGISTER_QUARANTINE, circuit, system.register_quarantine, device, ""))
    out.append(_system(SystemKind.SITE_OUTAGE, SITE_TARGET, system.site_outage, None, ""))
    out.append(_system(SystemKind.UNMETERED, SITE_TARGET, system.unmetered, None, "%"))
    out.append(_system(SystemKind.STORAGE_SPOOL, SITE_TARGET, system.storage_spool, None, "MiB"))
    for b in cfg.buses:
        if b.kind.value.startswith("modbus"):  # bus supervision, per Modbus line
            out.append(_system(SystemKind.BUS_NEW_DEVICE, b.id, system.bus_new_device, None, ""))
            out.append(_system(SystemKind.BUS_VANISHED, b.id, system.bus_vanished, None, ""))
            out.append(_system(SystemKind.BUS_CONFLICT, b.id, system.bus_conflict, None, ""))
    return out
