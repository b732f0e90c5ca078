"""The ``control:`` section of the site file: linkage rules, time programs, interlocks and demand limiting.

Every output change these describe goes through one audited path, :class:`meterhub.alarms.control.ControlService`
(docs/control.md). With the demo's ``fan-relay`` and ``ev-enable`` relays on the DIO module::

    control:
      override: 3600                 # a user's switch holds this long against automatic actions [s]
      outputs:                       # per-output limits (any action: user, rule, program, demand limit)
        - {point: fan-relay, min_on: 60, min_off: 60}
      interlocks:                    # ev-enable may be switched on only while fan-relay is on
        - {point: ev-enable, requires: fan-relay, state: on}
      linkage:
        - {id: fan-on-hot, when: {alarm: plant-room-hot, state: active}, then: {point: fan-relay, action: on}}
        - {id: fan-off-cool, when: {alarm: plant-room-hot, state: cleared}, then: {point: fan-relay, action: off}}
        - {id: trip-horn, when: {alarm: "system:device_offline", state: active}, then: {point: horn, action: pulse}}
        - {id: door-fan, when: {input: door-main, state: on}, then: {point: fan-relay, action: on}}
      programs:
        - id: fan-office-hours
          point: fan-relay
          schedule:                  # local time of the site (site.timezone), DST-correct
            - {days: [mon, tue, wed, thu, fri], from: "07:00", to: "19:00"}
            - {days: [sat], from: "08:00", to: "12:00"}
      demand_limit:
        circuit: grid                # the site's main (default: the one circuit of purpose grid)
        target_kw: 40                # or from_capacity_tariff: true (the month's peak so far)
        margin_kw: 2
        loads:
          - {point: ev-enable, circuit: ev-charger, priority: 1, min_off: 120, min_on: 120, max_off: 1800}

What each part means:

* **linkage** — ``when`` an alarm rule's alarm becomes ``active`` (raised) or ``cleared``, or a digital input
  point turns ``on`` (active) or ``off``, ``then`` drive an output: ``on``/``off`` (latched relay),
  ``pulse`` (a pulse-mode relay, or any relay for ``duration`` [s]) or ``set`` an analog output to
  ``value`` [its engineering unit]. ``alarm`` is the id of a rule of the ``alarms:`` section, or a built-in
  rule ``system:<name>`` (``system:device_offline`` …, the keys of ``alarms.system``).
* **programs** — a weekly schedule per output: inside a window the relay is on (an analog output at
  ``value``), outside it off (``off_value``). Windows are wall-clock times of the site's time zone; a window
  whose ``to`` is not after ``from`` runs over midnight, ``24:00`` is the end of the day. On a DST change
  a wall time that does not exist (spring) takes effect when the clock jumps past it, and one that occurs
  twice (autumn) takes its first occurrence, so every window switches once.
* **outputs** — minimum on and off times of an output [s], respected by every automatic action (a user's
  action is refused inside them unless forced).
* **interlocks** — ``point`` may be switched on (driven) only while ``requires`` is in ``state``.
* **demand_limit** — keeps the site's demand (the energy section's demand interval; the predicted value of
  the running window, :meth:`meterhub.energy.demand.DemandMeter.predicted`) under ``target_kw``, or under
  the month's highest demand so far when ``from_capacity_tariff`` (never below ``floor_kw``), by switching
  ``loads`` off in priority order (1 first) when the prediction crosses target − margin, and on again in
  reverse order when it is safely below, respecting each load's ``min_off``/``min_on``; ``max_off`` is the
  longest a load may stay off (then it is restored whatever the demand). A load's ``point`` is the relay
  that enables it (energised = allowed to run); ``circuit``, when it is metered, tells how much it draws.

The schema validates the shape (errors come back as ``file:line: control.linkage[0].then.action: …``);
:func:`meterhub.config.control_checks.check_control`, one of :data:`meterhub.checks.SITE_CHECKS`, checks the points, circuits and the demand
interval against the rest of the site.
"""

from __future__ import annotations

import re
from datetime import time as dtime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from meterhub.config.types import LAX, Identifier, StrictModel

__all__ = [
    "Action",
    "ControlConfig",
    "DemandLimitConfig",
    "Interlock",
    "LinkageRule",
    "LinkageThen",
    "LinkageWhen",
    "ShedLoad",
    "OutputLimits",
    "Program",
    "ProgramWindow",
    "Trigger",
    "WEEKDAYS",
    "parse_hhmm",
]

#: Day names of a program window, Monday first (ISO 8601 weekday 1…7).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_GROUPS = {"weekdays": WEEKDAYS[:5], "weekend": WEEKDAYS[5:], "daily": WEEKDAYS}
_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


def parse_hhmm(text: str) -> tuple[int, int]:
    """``"07:30"`` → (7, 30); ``"24:00"`` is the end of the day. Raises ValueError naming the text."""
    m = _HHMM.match(text)
    if m is None or (int(m.group(1)) == 24 and m.group(2) != "00"):
        raise ValueError(f'{text!r} is not a time of day HH:MM (00:00 … 24:00), e.g. "07:30"')
    return int(m.group(1)), int(m.group(2))


class Trigger(StrEnum):
    """What a linkage rule waits for."""

    ACTIVE = "active"  # the alarm was raised (ISA-18.2: → unack-active)
    CLEARED = "cleared"  # the alarm returned to normal (after its recovery time)
    ON = "on"  # the digital input became active
    OFF = "off"  # the digital input became inactive


class Action(StrEnum):
    """What a linkage rule does to its output."""

    ON = "on"  # energise a latched relay
    OFF = "off"  # release a latched relay
    PULSE = "pulse"  # energise a relay for ``duration`` (default: the point's pulse_duration), release
    SET = "set"  # drive an analog output to ``value``


class LinkageWhen(StrictModel):
    """The condition of a linkage rule: an alarm rule's state, or a digital input's state."""

    alarm: str | None = Field(
        default=None, min_length=1, max_length=128, description="alarm rule id (system:… for built-in rules)"
    )
    input: Identifier | None = Field(default=None, description="a digital input point of the io section")
    state: Annotated[Trigger, LAX]

    @model_validator(mode="after")
    def _one_source(self) -> LinkageWhen:
        if (self.alarm is None) == (self.input is None):
            raise ValueError("name either 'alarm' (a rule id) or 'input' (a digital input point), not both")
        if self.alarm is not None and self.state not in (Trigger.ACTIVE, Trigger.CLEARED):
            raise ValueError(f"an alarm is 'active' or 'cleared', not {self.state.value!r}")
        if self.input is not None and self.state not in (Trigger.ON, Trigger.OFF):
            raise ValueError(f"an input is 'on' or 'off', not {self.state.value!r}")
        return self


class LinkageThen(StrictModel):
    """The action of a linkage rule on one output point."""

    point: Identifier
    action: Annotated[Action, LAX]
    value: float | None = Field(default=None, description="for 'set': the analog value [its unit]")
    duration: float | None = Field(default=None, gt=0, le=3600, description="for 'pulse': on-time [s]")

    @model_validator(mode="after")
    def _value_for_set(self) -> LinkageThen:
        if self.action is Action.SET and self.value is None:
            raise ValueError("action 'set' needs 'value' (the analog output's value in its unit)")
        if self.action is not Action.SET and self.value is not None:
            raise ValueError(f"'value' belongs to action 'set', not {self.action.value!r}")
        if self.action is not Action.PULSE and self.duration is not None:
            raise ValueError(f"'duration' belongs to action 'pulse', not {self.action.value!r}")
        return self


class LinkageRule(StrictModel):
    """An alarm or input event that drives an output (seed 000 DIO: "an input event or a limit")."""

    id: Identifier
    when: LinkageWhen
    then: LinkageThen
    enabled: bool = True


class ProgramWindow(StrictModel):
    """A weekly window of a time program: on ``days``, from ``from`` to ``to`` (local wall time)."""

    days: list[str] = Field(min_length=1, max_length=7, description="mon…sun, or weekdays/weekend/daily")
    start: str = Field(alias="from", description="HH:MM local time")
    end: str = Field(alias="to", description="HH:MM local time; not after 'from' runs over midnight")

    model_config = StrictModel.model_config | {"populate_by_name": True}

    @field_validator("days", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            return value
        out: list[Any] = []
        for d in value:
            if isinstance(d, str) and d.lower() in _DAY_GROUPS:
                out += [x for x in _DAY_GROUPS[d.lower()] if x not in out]
            else:
                out.append(d.lower() if isinstance(d, str) else d)
        return out

    @field_validator("days")
    @classmethod
    def _known_days(cls, value: list[str]) -> list[str]:
        for d in value:
            if d not in WEEKDAYS:
                raise ValueError(f"unknown day {d!r}; use {', '.join(WEEKDAYS)}, weekdays, weekend or daily")
        return value

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        parse_hhmm(value)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> ProgramWindow:
        if self.start == "24:00":
            raise ValueError("'from' must be before 24:00")
        if self.start == self.end:
            raise ValueError(
                f"the window from {self.start} to {self.end} is empty; a whole day is 00:00 to 24:00"
            )
        return self

    def bounds(self) -> tuple[dtime, tuple[int, int]]:
        """Start as a time of day, end as (hour, minute) — (24, 0) is the end of the day."""
        h, m = parse_hhmm(self.start)
        return dtime(h, m), parse_hhmm(self.end)


class Program(StrictModel):
    """A weekly time program of one output: on (or ``value``) inside its windows, off outside."""

    id: Identifier
    point: Identifier
    schedule: list[ProgramWindow] = Field(min_length=1, max_length=100)
    value: float | None = Field(default=None, description="analog output: the value inside the windows")
    off_value: float | None = Field(default=None, description="analog output: the value outside them")
    enabled: bool = True


class OutputLimits(StrictModel):
    """Minimum on and off times of one output [s] (protect compressors, contactors, the load)."""

    point: Identifier
    min_on: float = Field(
        default=0.0, ge=0, le=86400, description="[s] an output stays on at least this long"
    )
    min_off: float = Field(default=0.0, ge=0, le=86400, description="[s] it stays off at least this long")


class Interlock(StrictModel):
    """``point`` may be switched on only while ``requires`` is in ``state``."""

    point: Identifier
    requires: Identifier
    state: Annotated[Trigger, LAX] = Trigger.OFF

    @field_validator("state")
    @classmethod
    def _on_off(cls, value: Trigger) -> Trigger:
        if value not in (Trigger.ON, Trigger.OFF):
            raise ValueError(f"an interlock requires 'on' or 'off', not {value.value!r}")
        return value

    @model_validator(mode="after")
    def _not_itself(self) -> Interlock:
        if self.point == self.requires:
            raise ValueError(f"point {self.point!r} cannot interlock with itself")
        return self


class ShedLoad(StrictModel):
    """A load the demand limiter may switch off: the relay that enables it, and what it draws."""

    point: Identifier = Field(description="relay that enables the load (energised = allowed to run)")
    circuit: Identifier | None = Field(default=None, description="the circuit that meters the load")
    power_kw: float | None = Field(
        default=None, gt=0, le=1e6, description="what it draws when on, if it has no circuit [kW]"
    )
    priority: int = Field(default=1, ge=1, le=99, description="1 is shed first and restored last")
    min_off: float = Field(default=60.0, ge=0, le=86400, description="[s] off at least this long once shed")
    min_on: float = Field(default=60.0, ge=0, le=86400, description="[s] on at least this long before a shed")
    max_off: float | None = Field(
        default=None, gt=0, le=7 * 86400, description="[s] restored after this long off, whatever the demand"
    )

    @model_validator(mode="after")
    def _max_after_min(self) -> ShedLoad:
        if self.max_off is not None and self.max_off < self.min_off:
            raise ValueError(f"max_off ({self.max_off:g} s) is shorter than min_off ({self.min_off:g} s)")
        return self


class DemandLimitConfig(StrictModel):
    """Keep the site's demand under a target by shedding loads (see the module docstring)."""

    circuit: Identifier | None = Field(
        default=None, description="the site's main; default: the one circuit of purpose grid"
    )
    target_kw: float | None = Field(default=None, gt=0, le=1e7, description="contract limit [kW]")
    from_capacity_tariff: bool = Field(
        default=False, description="target: the highest demand of the month so far (capacity tariff)"
    )
    floor_kw: float = Field(
        default=0.0,
        ge=0,
        le=1e7,
        description="with from_capacity_tariff: the target is never below this [kW]",
    )
    interval: int | None = Field(
        default=None, description="demand interval [min]; must be the energy section's (the default)"
    )
    margin_kw: float = Field(
        default=1.0, ge=0, le=1e6, description="shed when predicted > target − margin [kW]"
    )
    restore_margin_kw: float | None = Field(
        default=None,
        ge=0,
        le=1e6,
        description="restore when the prediction with the load back is below target − this [kW]; default: margin",
    )
    settle: float = Field(
        default=5.0, ge=0, le=600, description="[s] after a switch, wait this long for the meters to see it"
    )
    loads: list[ShedLoad] = Field(min_length=1, max_length=64)
    enabled: bool = True

    @model_validator(mode="after")
    def _one_target(self) -> DemandLimitConfig:
        if self.target_kw is None and not self.from_capacity_tariff:
            raise ValueError("give 'target_kw' (a contract limit) or 'from_capacity_tariff: true'")
        if self.target_kw is not None and self.from_capacity_tariff:
            raise ValueError("give 'target_kw' or 'from_capacity_tariff: true', not both (use floor_kw)")
        if self.from_capacity_tariff and self.floor_kw <= 0:
            raise ValueError(
                "from_capacity_tariff needs 'floor_kw' > 0: at the start of a month the peak so far is 0 "
                "and every load would be shed"
            )
        return self

    @property
    def restore_kw(self) -> float:
        """How far below the target the prediction (with the load back on) must be to restore [kW]."""
        return self.restore_margin_kw if self.restore_margin_kw is not None else self.margin_kw


class ControlConfig(StrictModel):
    """The ``control:`` section of a site file."""

    override: float = Field(
        default=3600.0,
        ge=0,
        le=7 * 86400,
        description="a user's switch holds this long against automation [s]",
    )
    outputs: list[OutputLimits] = Field(default_factory=list, max_length=256)
    interlocks: list[Interlock] = Field(default_factory=list, max_length=256)
    linkage: list[LinkageRule] = Field(default_factory=list, max_length=1000)
    programs: list[Program] = Field(default_factory=list, max_length=256)
    demand_limit: DemandLimitConfig | None = None

    def limits_of(self, point: str) -> OutputLimits:
        """The minimum on/off times of ``point`` (zero when none are configured)."""
        return next((o for o in self.outputs if o.point == point), OutputLimits(point=point))
