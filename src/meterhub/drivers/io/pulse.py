"""S0 pulse inputs: debounced edge counting, device-counter wrap-around, meter index and rate.

An S0 output (IEC 62053-31, DIN 43864) closes a dry contact once per ``weight`` of metered
quantity. Two ways reach meterhub:

* **edges** — contact transitions with timestamps (a local input): :class:`EdgeCounter` applies the
  contact type (NO/NC) and the debounce. Seed 001 ("Pulse inputs"): a pulse registers only if it lasts
  at least 100 ms; shorter closures are contact bounce. We apply the same minimum to the gap between
  pulses, so a bounce inside a pulse does not split it.
* **a device counter** — a 16/32-bit register of a pulse concentrator or DIO-4/2 that counts by itself
  (its own NO/NC setting applies there): :func:`counter_delta` unwraps its roll-over at ``2**bits``.

:class:`PulseMeter` turns accepted pulses into the catalogue quantities of the point: ``pulse_count``,
the meter index (``energy_active_import`` [Wh] for electricity, ``volume_gas`` / ``volume_water`` /
``volume_oil`` [m³]) and the rate (``active_power`` [W] or ``volume_flow`` [m³/h]); :class:`PulseState`
is what must survive a restart. All logic here is pure: time comes in as arguments.

Unwrapping the roll-over is conversion (the register is the low ``bits`` of the true count). Any other
decrease of a device counter — a restarted or replaced device, or a bad read — is *not* judged here:
the total follows the counter down, as the device shows it, and :mod:`meterhub.energy.registers` (the
one owner of register monotonicity) decides whether it is a reset or a glitch to quarantine. A glitch
and its recovery cancel out exactly, so nothing is counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meterhub.drivers.io.config import Contact, Medium, PulsePoint, PulseUnit
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase

__all__ = [
    "INDEX_QUANTITY",
    "RATE_QUANTITY",
    "UNIT_FACTOR",
    "CounterReading",
    "EdgeCounter",
    "PulseMeter",
    "PulseState",
    "counter_delta",
]

#: Catalogue quantity of the meter index, per medium.
INDEX_QUANTITY: dict[Medium, str] = {
    Medium.ELECTRICITY: Q.ENERGY_ACTIVE_IMPORT,
    Medium.GAS: Q.VOLUME_GAS,
    Medium.WATER: Q.VOLUME_WATER,
    Medium.OIL: Q.VOLUME_OIL,
}
#: Catalogue quantity of the rate, per medium.
RATE_QUANTITY: dict[Medium, str] = {
    Medium.ELECTRICITY: Q.ACTIVE_POWER,
    Medium.GAS: Q.VOLUME_FLOW,
    Medium.WATER: Q.VOLUME_FLOW,
    Medium.OIL: Q.VOLUME_FLOW,
}
#: Pulse-weight unit → catalogue unit of the index (Wh for energy, m³ for volumes).
UNIT_FACTOR: dict[PulseUnit, float] = {
    PulseUnit.KWH: 1000.0,
    PulseUnit.WH: 1.0,
    PulseUnit.M3: 1.0,
    PulseUnit.L: 0.001,
}
_SECONDS_PER_HOUR = 3600.0


class EdgeCounter:
    """Count debounced pulses from contact transitions.

    Parameters
    ----------
    contact : NO (closed = pulse) or NC (open = pulse).
    debounce : a pulse, and the gap after it, must last at least this long. [s]

    Feed transitions with :meth:`edge` in time order; call :meth:`settle` with the current time to
    accept a pulse whose contact has stayed active for ``debounce`` without a further edge. Accepted
    pulses are counted in :attr:`count`, their start times (the leading edge) [s] in
    :attr:`pulse_times` (the last two are kept for the rate).
    """

    def __init__(self, *, contact: Contact = Contact.NO, debounce: float = 0.1) -> None:
        if debounce < 0.1:
            raise ValueError(f"debounce {debounce} s is below the S0 minimum pulse duration of 0.1 s")
        self.contact = contact
        self.debounce = debounce
        self.count = 0
        self.pulse_times: list[float] = []
        self._stable = False  # logical state: True = pulse active
        self._pending: tuple[bool, float] | None = None
        self._last_ts: float | None = None

    def _active(self, closed: bool) -> bool:
        return closed if self.contact is Contact.NO else not closed

    def settle(self, now: float) -> int:
        """Accept a pending state that has held ``debounce`` by ``now`` [s]; return pulses added."""
        if self._pending is None:
            return 0
        level, since = self._pending
        if now - since < self.debounce:
            return 0
        self._pending = None
        self._stable = level
        if not level:
            return 0
        self.count += 1
        self.pulse_times = [*self.pulse_times[-1:], since]
        return 1

    def edge(self, ts: float, closed: bool) -> int:
        """Record that the contact became ``closed`` (True) or open at ``ts`` [s]; return pulses added.

        Raises ``ValueError`` if ``ts`` goes back in time.
        """
        if self._last_ts is not None and ts < self._last_ts:
            raise ValueError(f"edge at {ts} s is earlier than the previous edge at {self._last_ts} s")
        self._last_ts = ts
        added = self.settle(ts)
        level = self._active(closed)
        if self._pending is not None and self._pending[0] == level:
            return added  # a repeated level: the state has not changed
        self._pending = None if level == self._stable else (level, ts)
        return added


def counter_delta(previous: int, raw: int, bits: int, *, max_wrap: int | None = None) -> tuple[int, bool]:
    """Pulses counted by a ``bits``-wide device counter between two readings.

    Parameters
    ----------
    previous, raw : the counter register before and now. [pulses]
    bits : counter width (16, 32 or 64). [bit]
    max_wrap : the largest step still taken as a roll-over when the counter went down; default
        1/16 of the range (a roll-over only happens when ``previous`` was near the top). [pulses]

    Returns ``(delta, decreased)``. A counter that went up gives the difference. One that went down
    rolled over from ``2**bits - 1`` to 0 if the modular step is at most ``max_wrap``, and the delta is
    that step; otherwise the counter really went down (device restart, replacement or a bad read): the
    delta is the negative difference ``raw - previous`` and ``decreased`` is True.
    """
    modulus = 1 << bits
    if not 0 <= raw < modulus:
        raise ValueError(f"counter value {raw} does not fit {bits} bits")
    if raw >= previous:
        return raw - previous, False
    step = modulus - previous + raw
    if step <= (modulus // 16 if max_wrap is None else max_wrap):
        return step, False
    return raw - previous, True


@dataclass
class PulseState:
    """What a pulse point must remember across restarts (see :mod:`meterhub.drivers.io.state`)."""

    pulses: int = 0  # pulses since commissioning, as the device counter shows them [pulses]
    last_raw: int | None = None  # the device counter at the last reading [pulses]
    resets: int = 0  # decreases of the device counter seen that were not a roll-over

    def to_dict(self) -> dict[str, Any]:
        return {"pulses": self.pulses, "last_raw": self.last_raw, "resets": self.resets}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PulseState:
        """Read a stored state; ``ValueError`` names the field that is not a whole number.

        The total may be negative: a device counter that went down below its value at commissioning is
        stored as it is (see the module docstring)."""
        values: list[int | None] = []
        for name, default in (("pulses", 0), ("last_raw", None), ("resets", 0)):
            v = data.get(name, default)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise ValueError(f"stored pulse state: {name} = {v!r} is not a whole number")
            values.append(v)
        pulses, last_raw, resets = values
        return cls(pulses or 0, last_raw, resets or 0)


@dataclass(frozen=True)
class CounterReading:
    """Result of one device-counter update."""

    delta: int  # pulses added (negative when the counter went down) [pulses]
    reset: bool  # the device counter went down, not by a roll-over


@dataclass
class PulseMeter:
    """A pulse point: accumulates pulses and reports index, count and rate.

    ``point`` carries weight, unit, medium and contact (:class:`~meterhub.drivers.io.config.PulsePoint`).
    """

    point: PulsePoint
    state: PulseState = field(default_factory=PulseState)
    _edges: EdgeCounter | None = field(default=None, init=False, repr=False)
    _t_last: float | None = field(default=None, init=False)  # time of the last increase [s]
    _t_prev: float | None = field(default=None, init=False)  # time of the increase before [s]
    _n_last: int = field(default=0, init=False)  # pulses in the last increase [pulses]
    _t_first: float | None = field(default=None, init=False)  # first counter sample [s]
    _after_drop: bool = field(default=False, init=False)  # the counter went down at the last change

    # -- inputs -----------------------------------------------------------------------------------
    def edge(self, ts: float, closed: bool) -> int:
        """Feed a contact transition at ``ts`` [s]; return the pulses accepted by it."""
        if self._edges is None:
            self._edges = EdgeCounter(contact=self.point.contact, debounce=self.point.debounce)
        before = self._edges.count
        self._edges.edge(ts, closed)
        return self._accept_edges(before)

    def settle(self, now: float) -> int:
        """Accept a pulse whose contact has been active for the debounce time by ``now`` [s]."""
        if self._edges is None:
            return 0
        before = self._edges.count
        self._edges.settle(now)
        return self._accept_edges(before)

    def _accept_edges(self, before: int) -> int:
        if self._edges is None:
            return 0
        added = self._edges.count - before
        for t in self._edges.pulse_times[-added:] if added else ():
            self.state.pulses += 1
            self._t_prev, self._t_last, self._n_last = self._t_last, t, 1
        return added

    def counter(self, ts: float, raw: int) -> CounterReading:
        """Feed the device's pulse counter register ``raw`` read at ``ts`` [s]."""
        if self._t_first is None:
            self._t_first = ts
        if self.state.last_raw is None:
            self.state.last_raw = raw
            counter_delta(0, raw, self.point.counter_bits)  # range check only
            return CounterReading(0, False)
        delta, reset = counter_delta(self.state.last_raw, raw, self.point.counter_bits)
        self.state.last_raw = raw
        self.state.resets += int(reset)
        self.state.pulses += delta
        if reset:
            self._t_prev = self._t_last = None
            self._after_drop = True
        elif delta > 0:
            if self._after_drop:
                # the step back up after a decrease may be a bad read's recovery, not consumption: it
                # only starts the rate's window
                self._after_drop = False
                self._t_last, self._n_last = ts, 0
            else:
                self._t_prev = self._t_last if self._t_last is not None else self._t_first
                self._t_last, self._n_last = ts, delta
        return CounterReading(delta, reset)

    # -- outputs ----------------------------------------------------------------------------------
    @property
    def index(self) -> float:
        """Meter index in the catalogue unit: [Wh] for electricity, [m³] for volumes."""
        factor = UNIT_FACTOR[self.point.unit]
        return (self.point.initial + self.state.pulses * self.point.weight) * factor

    def rate(self, now: float) -> float | None:
        """Rate at ``now`` [s]: [W] for electricity, [m³/h] for volumes; None until it is known.

        The rate is the quantity of the last increase over the time since the increase before it.
        When no pulse has come for longer than that interval, the rate cannot be higher than one pulse
        over the time since the last pulse, so it decays as ``weight / (now - t_last)``; after
        ``rate_timeout`` it is 0.
        """
        if self._t_last is None or self._t_prev is None:
            return None
        per_pulse = self.point.weight * UNIT_FACTOR[self.point.unit] * _SECONDS_PER_HOUR  # [unit·s/h]
        since = now - self._t_last
        if since >= self.point.rate_timeout:
            return 0.0
        window = self._t_last - self._t_prev
        if window <= 0:
            return None
        rate = self._n_last * per_pulse / window
        if since > window / self._n_last:
            rate = min(rate, per_pulse / since)
        return rate

    def readings(self, ts: float, quality: Quality = Quality.GOOD) -> list[Reading]:
        """The point's readings at ``ts`` [s]: pulse count, index and (once known) rate."""
        medium = self.point.medium
        out = [
            Reading(ts, self.point.id, Q.PULSE_COUNT, Phase.TOTAL, float(self.state.pulses), quality),
            Reading(ts, self.point.id, INDEX_QUANTITY[medium], Phase.TOTAL, self.index, quality),
        ]
        rate = self.rate(ts)
        if rate is not None:
            out.append(Reading(ts, self.point.id, RATE_QUANTITY[medium], Phase.TOTAL, rate, quality))
        return out
