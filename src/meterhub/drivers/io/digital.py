"""Digital inputs: breaker OF/SD status, door, run/fault — NO/NC, debounce, change events.

A dry-contact input (seed 000 §3.4.5 DIO-4/2: "Status Monitoring: monitors circuit breaker OF, SD, or
equipment status"; seed 004: door status, tamper contacts, equipment run/fault) is read as a raw
contact state, closed or open. The configured contact type turns it into the *active* state of the
input's function:

=============  ==================================  ==========  ==========
function       contact that is wired               inactive    active
=============  ==================================  ==========  ==========
breaker-of     OF auxiliary contact (position)     open        closed
breaker-sd     SD trip-indication contact          normal      tripped
door           door / tamper switch                closed      open
run            run feedback                        stopped     running
fault          fault contact                       ok          fault
generic        any                                 off         on
=============  ==================================  ==========  ==========

With ``contact: NO`` a closed contact is the active state; with ``NC`` an open contact is. The
reading ``digital_input`` carries 1 for active and 0 for inactive; every accepted change is also
returned as a :class:`DigitalEvent` with its timestamp (for alarms and the event log).
"""

from __future__ import annotations

from dataclasses import dataclass

from meterhub.drivers.io.config import Contact, DigitalFunction, DigitalPoint
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase

__all__ = ["STATE_LABELS", "DigitalEvent", "DigitalInput", "active_state"]

#: (inactive label, active label) per function, for events and the UI.
STATE_LABELS: dict[DigitalFunction, tuple[str, str]] = {
    DigitalFunction.BREAKER_OF: ("open", "closed"),
    DigitalFunction.BREAKER_SD: ("normal", "tripped"),
    DigitalFunction.DOOR: ("closed", "open"),
    DigitalFunction.RUN: ("stopped", "running"),
    DigitalFunction.FAULT: ("ok", "fault"),
    DigitalFunction.GENERIC: ("off", "on"),
}


def active_state(closed: bool, contact: Contact) -> bool:
    """The logical (active) state of an input whose contact is ``closed``."""
    return closed if contact is Contact.NO else not closed


@dataclass(frozen=True, slots=True)
class DigitalEvent:
    """An accepted change of a digital input.

    ts : when the new state began (the edge, not when the debounce confirmed it). [s]
    point : point id.
    active : the new logical state.
    label : the new state in words, e.g. ``"tripped"``.
    previous : the label of the state before; None for the first state after start.
    """

    ts: float
    point: str
    function: DigitalFunction
    active: bool
    label: str
    previous: str | None

    def __str__(self) -> str:
        before = f"{self.previous} → " if self.previous else ""
        return f"{self.point} ({self.function.value}): {before}{self.label}"


class DigitalInput:
    """State machine of one digital input.

    Feed raw contact states with :meth:`update` (from polling a DIO module's discrete inputs, or from
    edges); a new state is accepted once it has held for ``point.debounce`` [s]. Updates must come in
    time order.

    :attr:`active_time` [s] is the time spent in the accepted active state since commissioning (for a
    ``run`` input: the equipment's running hours, seed 003 hour counter). It never decreases: while a
    change is pending it is counted only up to the change's start, then settled once the debounce
    decides. Time before the first sample after a start is not counted (the state was unknown).
    """

    def __init__(self, point: DigitalPoint, *, active_time: float = 0.0) -> None:
        if not active_time >= 0:
            raise ValueError(f"digital input {point.id}: active time {active_time} s is negative")
        self.point = point
        self.active: bool | None = None  # accepted logical state; None before the first value
        self.since: float | None = None  # when the accepted state began [s]
        self.changes = 0  # accepted changes after the first state (e.g. breaker operations)
        self.active_time = float(active_time)  # [s]
        self._credited: float | None = None  # active_time is counted up to this time [s]
        self._pending: tuple[bool, float] | None = None
        self._last_ts: float | None = None

    def _credit(self, upto: float) -> None:
        if self._credited is None or self.active is None or upto <= self._credited:
            return
        if self.active:
            self.active_time += upto - self._credited
        self._credited = upto

    @property
    def label(self) -> str | None:
        if self.active is None:
            return None
        return STATE_LABELS[self.point.function][int(self.active)]

    def update(self, ts: float, closed: bool) -> DigitalEvent | None:
        """Record the raw contact state at ``ts`` [s]; return the event if the state changed."""
        if self._last_ts is not None and ts < self._last_ts:
            raise ValueError(
                f"digital input {self.point.id}: sample at {ts} s is earlier than the last at {self._last_ts} s"
            )
        self._last_ts = ts
        level = active_state(closed, self.point.contact)
        if level == self.active:
            self._pending = None  # back to the accepted state before the debounce: a bounce
            self._credit(ts)
            return None
        if self._pending is None or self._pending[0] != level:
            self._pending = (level, ts)
        return self._settle(ts)

    def settle(self, now: float) -> DigitalEvent | None:
        """Accept a pending state that has held for the debounce time by ``now`` [s]."""
        return self._settle(now)

    def _settle(self, now: float) -> DigitalEvent | None:
        if self._pending is None:
            self._credit(now)
            return None
        level, since = self._pending
        self._credit(since)
        if self.active is not None and now - since < self.point.debounce:
            return None
        previous = self.label
        self._pending = None
        if self.active is not None:
            self.changes += 1
        else:
            self._credited = since
        self.active, self.since = level, since
        self._credit(now)
        label = STATE_LABELS[self.point.function][int(level)]
        return DigitalEvent(since, self.point.id, self.point.function, level, label, previous)

    def hours_reading(self, ts: float) -> Reading:
        """``operating_hours`` [h]: the time in the active state, at ``ts`` [s]."""
        return Reading(ts, self.point.id, Q.OPERATING_HOURS, Phase.TOTAL, self.active_time / 3600.0)

    def reading(self, ts: float) -> Reading | None:
        """``digital_input`` = 1 (active) / 0 at ``ts`` [s]; None before the first state."""
        if self.active is None:
            return None
        return Reading(ts, self.point.id, Q.DIGITAL_INPUT, Phase.TOTAL, float(self.active), Quality.GOOD)
