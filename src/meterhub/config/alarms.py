"""The ``alarms:`` section of the site file: limit rules, built-in system rules, who may acknowledge.

Seed 001 sets an alarm per meter, phase and quantity with high and low limits, a title, a recovery time
("600 s before the alarm recovers once back to normal") and a reminder time ("3600 s before a reminder if
it continues"); seed 000 adds harmonic and unbalance limits and acknowledging on the display. A rule here
says the same, for any catalogue quantity and any target::

    alarms:
      reader_can_ack: false          # readers may acknowledge too (default: admins only)
      rules:
        - id: compressor-pf
          title: "Air compressor: low power factor"
          message: "{target} PF {value} below {limit} since {time}"
          target: compressor         # a circuit, zone, device, IO point id, or site
          quantity: power_factor
          phase: total               # L1 | L2 | L3 | total | any | all
          condition: low             # high | low | band | rate | state
          low: 0.85
          deadband: 0.02             # hysteresis, in the rule's unit
          on_delay: 10               # [s] the condition must hold this long
          recovery: 60               # [s] back to normal this long before it clears (seed 001)
          reminder: 3600             # [s] a reminder while it continues (seed 001); 0: none
          severity: medium
      system:                        # built-in rules, each with its settings (all on by default)
        device_offline: {on_delay: 30}
        unmetered: {percent: 10, min_power: 1000}

Limits are given in ``unit`` (default: the quantity's catalogue unit; an SI prefix is accepted: ``kW``)
and converted to the catalogue unit once, here. What the schema cannot know — whether a target exists,
whether the quantity has the phase asked for on it — is checked by :func:`alarm_reference_issues`, one
of the site checks, so a wrong id is refused with FILE:LINE like every other reference.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from meterhub.config.notify import NotificationsConfig, notification_reference_issues
from meterhub.config.reader import Loc
from meterhub.config.types import LAX, Identifier, StrictModel
from meterhub.model.quantities import CATALOGUE, Kind, Q, UnknownQuantityError
from meterhub.model.topology import Phase
from meterhub.model.units import accepted_units, unit_factor

__all__ = [
    "BOUNDS",
    "PLACEHOLDERS",
    "SITE_TARGET",
    "AlarmRule",
    "AlarmsConfig",
    "ClockDriftRule",
    "Condition",
    "DeviceOfflineRule",
    "NoValidDataRule",
    "RegisterQuarantineRule",
    "RulePhase",
    "RuleSeverity",
    "SiteOutageRule",
    "SpoolRule",
    "SystemRule",
    "SystemRules",
    "TargetKind",
    "UnmeteredRule",
    "alarm_reference_issues",
    "resolve_target",
]

#: The target that means the whole site (its grid circuits for a measured quantity).
SITE_TARGET = "site"

#: Placeholders a rule's title and message may use.
PLACEHOLDERS = frozenset(
    {"value", "limit", "unit", "target", "phase", "quantity", "time", "rule", "severity"}
)

#: The longest on-delay, recovery or reminder time [s] (one year): longer is a typo.
MAX_TIME = 366 * 86400.0


#: The range a quantity can take [catalogue unit] where physics bounds it: a limit beyond it can never be
#: crossed (power factors: IEEE 1459 §3.1.2.15; magnitudes are not negative).
BOUNDS: dict[str, tuple[float, float]] = {
    Q.POWER_FACTOR: (-1.0, 1.0),
    Q.DISPLACEMENT_POWER_FACTOR: (-1.0, 1.0),
    Q.VOLTAGE: (0.0, math.inf),
    Q.VOLTAGE_LINE: (0.0, math.inf),
    Q.CURRENT: (0.0, math.inf),
    Q.APPARENT_POWER: (0.0, math.inf),
    Q.FREQUENCY: (0.0, math.inf),
    Q.THD_VOLTAGE: (0.0, math.inf),
    Q.THD_CURRENT: (0.0, math.inf),
    Q.DIGITAL_INPUT: (0.0, 1.0),
    Q.RELAY_OUTPUT: (0.0, 1.0),
}


class Condition(StrEnum):
    """When a rule's condition is present."""

    HIGH = "high"  # value > high
    LOW = "low"  # value < low
    BAND = "band"  # outside low … high
    RATE = "rate"  # |change per minute| > rate
    STATE = "state"  # an input (digital input, relay) is in ``state``


class RulePhase(StrEnum):
    """Which series of the quantity a rule watches: one phase, the total, or each phase (``any``: one
    phase suffices; ``all``: every phase must be beyond the limit)."""

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"
    TOTAL = "total"
    ANY = "any"
    ALL = "all"


class RuleSeverity(StrEnum):
    """Severity as the site file writes it (the same values as :class:`meterhub.alarms.model.Severity`,
    which sits above the config layer)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class TargetKind(StrEnum):
    """What a rule's target names (written ``kind:id`` when an id is used twice, e.g. ``zone:office``)."""

    CIRCUIT = "circuit"
    POINT = "point"  # an IO point of the io: section
    DEVICE = "device"  # every circuit and IO point of the device
    ZONE = "zone"  # every circuit of the zone
    SITE = "site"  # the grid circuits


Seconds = Annotated[float, Field(ge=0, le=MAX_TIME)]


def _check_template(text: str) -> str:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise ValueError(f"cannot read the placeholders of {text[:60]!r}: {exc}") from None
    for name in fields:
        base = name.split(":")[0].split("!")[0]
        if base not in PLACEHOLDERS:
            allowed = " ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
            raise ValueError(f"unknown placeholder {{{name}}}; use {allowed}")
    return text


class AlarmRule(StrictModel):
    """One limit rule (see the module docstring). Times in [s]; limits in ``unit``."""

    id: Identifier
    title: str = Field(default="", max_length=200, description="short text; default: the rule id")
    message: str = Field(
        default="{target} {quantity} {phase} = {value} {unit} (limit {limit} {unit})", max_length=2000
    )
    target: str = Field(
        min_length=1, max_length=80, description="circuit, zone, device, IO point id or 'site'"
    )
    quantity: str
    phase: Annotated[RulePhase, LAX] = RulePhase.TOTAL
    condition: Annotated[Condition, LAX]
    high: float | None = None
    low: float | None = None
    rate: float | None = Field(default=None, gt=0, description="largest change per minute [unit/min]")
    state: bool | None = Field(default=None, description="the input state that is the alarm")
    unit: str | None = Field(default=None, description="unit of the limits; default the catalogue unit")
    deadband: float = Field(default=0.0, ge=0, description="hysteresis on the way back [unit]")
    on_delay: Seconds = 0.0
    recovery: Seconds = 0.0
    reminder: Seconds = 0.0
    severity: Annotated[RuleSeverity, LAX] = RuleSeverity.MEDIUM
    enabled: bool = True

    @field_validator("quantity")
    @classmethod
    def _known_quantity(cls, v: str) -> str:
        q = CATALOGUE.get(v)
        if q is None:
            raise ValueError(str(UnknownQuantityError(v)))
        if q.kind is Kind.SPECTRUM:
            raise ValueError(f"{v!r} is a spectrum; a rule watches one value (e.g. thd_voltage)")
        return v

    @field_validator("title", "message")
    @classmethod
    def _template(cls, v: str) -> str:
        return _check_template(v)

    @model_validator(mode="after")
    def _condition_fields(self) -> AlarmRule:
        q = CATALOGUE[self.quantity]
        if self.unit is not None and unit_factor(q.unit, self.unit) is None:
            units = ", ".join(repr(u) for u in accepted_units(q.unit))
            raise ValueError(f"unit {self.unit!r} is not a unit of {self.quantity} (use {units})")
        needs: dict[Condition, tuple[str, ...]] = {
            Condition.HIGH: ("high",),
            Condition.LOW: ("low",),
            Condition.BAND: ("low", "high"),
            Condition.RATE: ("rate",),
            Condition.STATE: ("state",),
        }
        need = needs[self.condition]
        for name in ("high", "low", "rate", "state"):
            given = getattr(self, name) is not None
            if name in need and not given:
                raise ValueError(f"condition {self.condition.value} needs '{name}'")
            if name not in need and given:
                raise ValueError(f"'{name}' is not used by condition {self.condition.value}; remove it")
        if self.condition is Condition.BAND and self.low is not None and self.high is not None:
            if self.low >= self.high:
                raise ValueError(
                    f"low {self.low:g} is not below high {self.high:g}: the band is empty, the rule can never "
                    "fire as meant (it would always be outside)"
                )
        self._can_fire()
        if self.condition is Condition.STATE and q.unit != "":
            raise ValueError(
                f"condition state watches an on/off input (digital_input, relay_output), not {self.quantity}"
            )
        if self.condition is Condition.STATE and self.deadband:
            raise ValueError("an on/off input has no deadband")
        if self.condition is Condition.RATE and q.kind is Kind.CUMULATIVE:
            raise ValueError(f"{self.quantity} is a register; watch its demand or power for a rate instead")
        missing = [p.value for p in self.series_phases if p not in q.phases]
        if missing:
            has = ", ".join(p.value for p in q.phases)
            raise ValueError(f"{self.quantity} has no phase {', '.join(missing)} (it has: {has})")
        return self

    def _can_fire(self) -> None:
        lo, hi = BOUNDS.get(self.quantity, (-math.inf, math.inf))
        f = self.factor  # the unit was checked before
        shown = self.display_unit
        if self.condition in (Condition.LOW, Condition.BAND) and self.low is not None and self.low * f <= lo:
            if self.condition is Condition.LOW or (self.high is not None and self.high * f >= hi):
                raise ValueError(
                    f"low {self.low:g}{shown and ' ' + shown}: {self.quantity} is never below {lo / f:g}; "
                    "the rule can never fire"
                )
        if self.condition is Condition.HIGH and self.high is not None and self.high * f >= hi:
            raise ValueError(
                f"high {self.high:g}{shown and ' ' + shown}: {self.quantity} is never above {hi / f:g}; "
                "the rule can never fire"
            )

    @property
    def series_phases(self) -> tuple[Phase, ...]:
        """The phases of the series the rule watches on each target circuit."""
        if self.phase in (RulePhase.ANY, RulePhase.ALL):
            return (Phase.L1, Phase.L2, Phase.L3)
        return (Phase(self.phase.value),)

    # -- the limits in the catalogue unit -----------------------------------------------------------
    @property
    def factor(self) -> float:
        """Catalogue unit per rule unit [-] (1 when ``unit`` is the catalogue unit or not given)."""
        if self.unit is None:
            return 1.0
        return unit_factor(CATALOGUE[self.quantity].unit, self.unit) or 1.0

    @property
    def display_unit(self) -> str:
        """The unit limits and values are shown in: ``unit``, else the catalogue unit."""
        return self.unit if self.unit is not None else CATALOGUE[self.quantity].unit


class SystemRule(StrictModel):
    """Settings every built-in rule has. Times [s]."""

    enabled: bool = True
    severity: Annotated[RuleSeverity, LAX] = RuleSeverity.HIGH
    on_delay: Seconds = 0.0
    recovery: Seconds = 0.0
    reminder: Seconds = 0.0


class DeviceOfflineRule(SystemRule):
    """``device_offline``: a device did not answer for ``on_delay`` [s]; its circuits' alarms are suppressed
    meanwhile."""

    on_delay: Seconds = 30.0


class SiteOutageRule(SystemRule):
    """``site_outage``: at least ``fraction`` of the devices (and at least ``min_devices``) are offline at
    once — one alarm for the site instead of one per device (those are suppressed)."""

    severity: Annotated[RuleSeverity, LAX] = RuleSeverity.CRITICAL
    fraction: float = Field(default=0.5, gt=0, le=1, description="share of the devices offline [-]")
    min_devices: int = Field(default=3, ge=2, le=100_000)


class NoValidDataRule(SystemRule):
    """``no_valid_data``: a device answers but none of its values was valid for ``after`` [s]."""

    severity: Annotated[RuleSeverity, LAX] = RuleSeverity.MEDIUM
    after: float = Field(default=60.0, gt=0, le=MAX_TIME)


class UnmeteredRule(SystemRule):
    """``unmetered``: the site's consumption (Σ grid − Σ renewable active power) exceeds the sum of the
    consumable circuits by more than ``percent`` of it, while it is above ``min_power`` [W]."""

    severity: Annotated[RuleSeverity, LAX] = RuleSeverity.LOW
    percent: float = Field(default=10.0, gt=0, le=100, description="[%] of the main")
    min_power: float = Field(default=1000.0, ge=0, description="[W]")
    on_delay: Seconds = 300.0


class RegisterQuarantineRule(SystemRule):
    """``register_quarantine``: the register guard quarantined a step of an energy register (a trust issue:
    an outlier, a meter swap not yet confirmed). Clears ``recovery`` [s] after the last one."""

    severity: Annotated[RuleSeverity, LAX] = RuleSeverity.MEDIUM
    recovery: Seconds = 900.0


class SpoolRule(SystemRule):
    """``storage_spool``: the storage spool file (readings waiting for the database) is above ``max_mb``
    [MiB]."""

    max_mb: float = Field(default=100.0, gt=0, le=1_000_000)


class ClockDriftRule(SystemRule):
    """``clock_drift``: readings carry times more than ``max_s`` [s] away from the gateway's clock (a device
    or a peer gateway whose clock drifted)."""

    severity: Annotated[RuleSeverity, LAX] = RuleSeverity.LOW
    max_s: float = Field(default=10.0, gt=0, le=86400)
    on_delay: Seconds = 60.0


class BusNewDeviceRule(SystemRule):
    """``bus_new_device``: an address that is not configured answers on a Modbus bus (found by its
    background scan, ``scan:`` on the bus)."""

    severity: Annotated[RuleSeverity, LAX] = RuleSeverity.LOW


class BusVanishedRule(SystemRule):
    """``bus_vanished``: a configured device on a Modbus bus that answered stopped answering."""

    severity: Annotated[RuleSeverity, LAX] = RuleSeverity.MEDIUM


class BusConflictRule(SystemRule):
    """``bus_conflict``: two devices seem to share an address on a Modbus bus (repeated garbled answers,
    two identities)."""


class SystemRules(StrictModel):
    """``alarms.system``: the built-in rules."""

    device_offline: DeviceOfflineRule = Field(default_factory=DeviceOfflineRule)
    site_outage: SiteOutageRule = Field(default_factory=SiteOutageRule)
    no_valid_data: NoValidDataRule = Field(default_factory=NoValidDataRule)
    unmetered: UnmeteredRule = Field(default_factory=UnmeteredRule)
    register_quarantine: RegisterQuarantineRule = Field(default_factory=RegisterQuarantineRule)
    storage_spool: SpoolRule = Field(default_factory=SpoolRule)
    clock_drift: ClockDriftRule = Field(default_factory=ClockDriftRule)
    bus_new_device: BusNewDeviceRule = Field(default_factory=BusNewDeviceRule)
    bus_vanished: BusVanishedRule = Field(default_factory=BusVanishedRule)
    bus_conflict: BusConflictRule = Field(default_factory=BusConflictRule)


class AlarmsConfig(StrictModel):
    """``alarms:`` — limit rules, system rules and who may acknowledge (issue 11)."""

    reader_can_ack: bool = Field(default=False, description="readers may acknowledge alarms, not only admins")
    rules: list[AlarmRule] = Field(default_factory=list, max_length=100_000)
    system: SystemRules = Field(default_factory=SystemRules)
    notifications: NotificationsConfig | None = Field(
        default=None, description="email and webhooks for alarm events (docs/alarms-notifications.md)"
    )

    @model_validator(mode="before")
    @classmethod
    def _empty(cls, value: Any) -> Any:
        return {} if value is None else value


# -- cross-checks against the site --------------------------------------------------------------------
def resolve_target(
    target: str,
    *,
    circuits: Iterable[str],
    points: Iterable[str],
    devices: Iterable[str],
    zones: Iterable[str],
) -> tuple[TargetKind, str]:
    """What a rule's ``target`` names: ``(kind, id)``. Raise ``ValueError`` naming what is known when the
    id is unknown, or used by several kinds without a ``kind:`` prefix."""
    by_kind = {
        TargetKind.CIRCUIT: set(circuits),
        TargetKind.POINT: set(points),
        TargetKind.DEVICE: set(devices),
        TargetKind.ZONE: set(zones),
    }
    if target == SITE_TARGET:
        return TargetKind.SITE, SITE_TARGET
    kind_text, sep, ident = target.partition(":")
    if sep:
        try:
            kind = TargetKind(kind_text)
        except ValueError:
            kinds = ", ".join(k.value for k in by_kind)
            raise ValueError(f"unknown target kind {kind_text!r}; use {kinds} (e.g. zone:office)") from None
        if kind is TargetKind.SITE:
            return kind, SITE_TARGET
        if ident not in by_kind[kind]:
            known = ", ".join(sorted(by_kind[kind])[:20]) or "none"
            raise ValueError(f"unknown {kind.value} {ident!r}; known: {known}")
        return kind, ident
    found = [k for k, ids in by_kind.items() if target in ids]
    if not found:
        sample = sorted(by_kind[TargetKind.CIRCUIT])[:12]
        raise ValueError(
            f"unknown target {target!r}: not a circuit, IO point, device or zone of this site, nor 'site' "
            f"(circuits: {', '.join(sample) or 'none'}{' …' if len(by_kind[TargetKind.CIRCUIT]) > 12 else ''})"
        )
    if len(found) > 1:
        options = " or ".join(f"{k.value}:{target}" for k in found)
        raise ValueError(f"target {target!r} is a {' and a '.join(k.value for k in found)}; write {options}")
    return found[0], target


def alarm_reference_issues(cfg: Any) -> Iterable[tuple[Loc, str]]:
    """Cross-checks of ``alarms.rules`` against the site (``cfg`` a SiteConfig): unique rule ids, known
    targets, on/off conditions only on IO points and their inputs."""
    alarms = getattr(cfg, "alarms", None)
    if alarms is None:
        return
    points = [p.id for p in cfg.io.points] if getattr(cfg, "io", None) is not None else []
    known = {
        "circuits": [c.id for c in cfg.circuits],
        "points": points,
        "devices": [d.id for d in cfg.devices],
        "zones": sorted({c.zone for c in cfg.circuits if c.zone}),
    }
    seen: dict[str, int] = {}
    for i, rule in enumerate(alarms.rules):
        loc: Loc = ("alarms", "rules", i)
        if rule.id in seen:
            yield (*loc, "id"), f"duplicate rule id {rule.id!r} (also alarms.rules[{seen[rule.id]}])"
        seen.setdefault(rule.id, i)
        try:
            resolve_target(rule.target, **known)
        except ValueError as exc:
            yield (*loc, "target"), str(exc)
    if alarms.notifications is not None:
        yield from notification_reference_issues(alarms.notifications, [r.id for r in alarms.rules])
