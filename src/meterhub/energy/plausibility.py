"""Plausibility: the range every catalogue quantity may take on one circuit, and what was refused.

A reading outside its range is re-marked :attr:`Quality.INVALID` by the energy pipeline: kept for
diagnosis, never integrated, never fed to demand (and so never to alarms or publishers). The bounds:

* every value is finite (NaN and ±inf are "not a number");
* power factors in [−1, 1] (a float32 reading of 1.0000001 is rounding: ``PF_SLACK`` is allowed);
* frequency 40–70 Hz; angles within ±360°; percentages (THD, unbalance) 0–1000 %;
* phase-to-neutral voltages 0 … 2 × nominal (line-to-line 2·√3 × nominal); the nominal voltage is the
  site's, times the circuit's VT ratio when it has one;
* currents 0 … rated current × ``MARGIN`` (the neutral up to 3 ×, for triplen harmonics); powers and
  demands per phase ± nominal voltage × rated current × ``MARGIN``, totals × the circuit's phases;
* energy registers non-negative and below 200 years at the circuit's rated power;
* counters and volumes non-negative; digital states 0 or 1; temperatures −80 … 200 °C.

The rated current of a circuit is its CT's ``rated_current``, else the CT ratio's primary current,
else ``DEFAULT_RATED_CURRENT`` for a direct-connected or built-in sensor (the largest direct-connected
DIN-rail meters are rated 100 A). A reading of a device or point that is not a configured circuit is
bounded by the site's voltage and the configured fallback power only.

:class:`RefusalLog` counts refusals per circuit (or device / point) with the reason, for the device
status: "3 values out of range since 10:02", "all values NaN".
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from meterhub.config.schema import Circuit, CTKind
from meterhub.model.quantities import CATALOGUE, Kind, Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase, Wiring

__all__ = [
    "DEFAULT_RATED_CURRENT",
    "MARGIN",
    "PF_SLACK",
    "Rating",
    "RefusalLog",
    "RefusalReason",
    "RefusalStatus",
    "bounds",
    "check",
    "invalid",
    "rated_current",
    "rating_of",
]

#: Rated current of a direct-connected or built-in sensor without a configured rating [A].
DEFAULT_RATED_CURRENT = 100.0
#: How far above its rating a circuit may read before a value is refused [-] (CTs of class 0.5S are
#: accurate to 120 % of rated current and saturate by about 200 %; a meter's steps are averages).
MARGIN = 2.0
#: Rounding allowed on a power factor's magnitude of 1 [-].
PF_SLACK = 1e-3
#: Energy register ceiling: this many hours at the rated power [h] (200 years).
_REGISTER_HOURS = 200 * 8766.0
_SQRT3 = math.sqrt(3.0)
_PER_CENT = frozenset(q.id for q in CATALOGUE.values() if q.unit == "%")
_POWER_UNITS = frozenset({"W", "var", "VA"})
_ENERGY_UNITS = frozenset({"Wh", "varh", "VAh"})
_LINE_VOLTAGES = frozenset({Q.VOLTAGE_LINE, Q.VOLTAGE_LINE_MAX, Q.VOLTAGE_LINE_MIN})
_POWER_FACTORS = frozenset({Q.POWER_FACTOR, Q.DISPLACEMENT_POWER_FACTOR})
_STATES = frozenset({Q.DIGITAL_INPUT, Q.RELAY_OUTPUT})
_NON_NEGATIVE_UNITS = frozenset({"m³", "h", "kg", "m³/h"})


class RefusalReason(StrEnum):
    """Why a reading was re-marked INVALID."""

    NOT_A_NUMBER = "not a number"
    OUT_OF_RANGE = "out of range"
    QUARANTINED = "quarantined (register outlier)"
    SOURCE = "invalid from the device"


@dataclass(frozen=True, slots=True)
class Rating:
    """What one circuit is built for.

    current : rated primary current per phase [A]; voltage : nominal phase-to-neutral voltage [V];
    phases : phases carrying current [-]; margin : allowed factor above the rating [-].
    """

    current: float
    voltage: float
    phases: int
    margin: float = MARGIN

    @property
    def phase_power(self) -> float:
        """Largest plausible power of one phase [W, var or VA]."""
        return self.voltage * self.current * self.margin

    @property
    def power(self) -> float:
        """Largest plausible power of the circuit, CT primary × nominal voltage × phases × margin
        [W, var or VA]; also the largest rate of its energy registers [Wh/h]."""
        return self.phase_power * self.phases


def rated_current(circuit: Circuit) -> float:
    """Rated primary current of a circuit's current sensor [A] (see the module notes)."""
    ct = circuit.ct
    if ct.rated_current is not None:
        return ct.rated_current
    if ct.kind in (CTKind.BUILT_IN, CTKind.DIRECT) and ct.ratio.primary == 1.0:
        return DEFAULT_RATED_CURRENT
    return ct.ratio.primary


def rating_of(circuit: Circuit, nominal_voltage: float, margin: float = MARGIN) -> Rating:
    """The :class:`Rating` of a configured circuit.

    nominal_voltage : the site's nominal phase-to-neutral voltage [V] (the VT's secondary side when
        the circuit has a VT ratio).
    """
    vt = circuit.vt_ratio.value
    voltage = nominal_voltage * vt if vt > 1.0 else nominal_voltage
    phases = 3 if circuit.wiring is Wiring.P3W3 else len(circuit.supply_phases)
    return Rating(current=rated_current(circuit), voltage=voltage, phases=max(phases, 1), margin=margin)


def bounds(
    quantity: str, phase: Phase | None, rating: Rating | None, *, voltage: float, power: float
) -> tuple[float, float]:
    """Smallest and largest plausible value of a series [unit of the quantity].

    rating : the circuit's rating, or None for a device or point that is no configured circuit.
    voltage : the site's nominal phase-to-neutral voltage [V] (used without a rating).
    power : largest power without a rating [W] (the energy section's ``max_power``).
    """
    inf = math.inf
    q = CATALOGUE.get(quantity)
    if q is None:
        return -inf, inf
    v_nom = rating.voltage if rating is not None else voltage
    total = phase in (None, Phase.TOTAL)
    if q.id in _POWER_FACTORS:
        return -1.0 - PF_SLACK, 1.0 + PF_SLACK
    if q.id == Q.FREQUENCY:
        return 40.0, 70.0
    if q.unit == "°":
        return -360.0, 360.0
    if q.id in _PER_CENT:
        return 0.0, 1000.0
    if q.unit == "V":
        return 0.0, 2.0 * v_nom * (_SQRT3 if q.id in _LINE_VOLTAGES else 1.0)
    if q.unit == "A":
        if rating is None:
            return 0.0, inf
        neutral = phase is Phase.N or q.id == Q.CURRENT_NEUTRAL_CALCULATED
        return 0.0, rating.current * rating.margin * (3.0 if neutral else 1.0)
    if q.unit in _POWER_UNITS:
        if rating is None:
            top = power
        else:
            top = rating.power if total else rating.phase_power
        return (-top if q.signed or q.id == Q.POWER_PREDICTED else 0.0), top
    if q.unit in _ENERGY_UNITS:
        top = (rating.power if rating is not None else power) * _REGISTER_HOURS
        return (-top if q.signed else 0.0), top
    if q.id in _STATES:
        return 0.0, 1.0
    if q.id == Q.TEMPERATURE:
        return -80.0, 200.0
    if q.kind is Kind.CUMULATIVE or q.unit in _NON_NEGATIVE_UNITS:
        return 0.0, inf
    if q.id in (Q.CREST_FACTOR_VOLTAGE, Q.CREST_FACTOR_CURRENT, Q.K_FACTOR, Q.FACTOR_K):
        return 0.0, 1000.0
    return -inf, inf


def check(reading: Reading, rating: Rating | None, *, voltage: float, power: float) -> RefusalReason | None:
    """Why ``reading`` is implausible, or None when it is within :func:`bounds`."""
    value = reading.value
    if not isinstance(value, float | int) or isinstance(value, bool):
        return RefusalReason.NOT_A_NUMBER
    if not math.isfinite(value):
        return RefusalReason.NOT_A_NUMBER
    lo, hi = bounds(reading.quantity, reading.phase, rating, voltage=voltage, power=power)
    if not lo <= value <= hi:
        return RefusalReason.OUT_OF_RANGE
    return None


@dataclass(frozen=True, slots=True)
class RefusalStatus:
    """What the energy pipeline refused from one circuit (or device, or point).

    count : readings refused since ``since`` [-]; last : time of the latest [s]; by_reason : count per
    :class:`RefusalReason`; example : the latest refused series, value and reason, as text;
    all_nan : True when every value of the latest batch of this circuit was not a number (but the
    frequency, when ``nan_but_frequency``);
    device : the device the circuit is on (None when it is no configured circuit);
    examples : the latest refused series, value and reason per reason.
    """

    circuit: str
    device: str | None
    count: int
    since: float
    last: float
    by_reason: Mapping[RefusalReason, int]
    example: str
    all_nan: bool
    examples: Mapping[RefusalReason, str] = field(default_factory=dict)
    nan_but_frequency: bool = False

    def text(self, tz: str = "UTC", *, without: frozenset[RefusalReason] = frozenset()) -> str:
        """One line for people, e.g. ``"3 values out of range since 10:02"``; times in ``tz``.
        ``without`` leaves reasons out (reported elsewhere); "" when nothing is left."""
        zone = ZoneInfo(tz)
        since = datetime.fromtimestamp(self.since, zone).strftime("%H:%M")
        if self.all_nan:
            but = " except the frequency" if self.nan_but_frequency else ""
            return f"all values NaN{but} since {datetime.fromtimestamp(self.last, zone).strftime('%H:%M:%S')}"
        kept = sorted(((r, n) for r, n in self.by_reason.items() if r not in without), key=lambda kv: -kv[1])
        if not kept:
            return ""
        parts = [f"{n} value{'s' if n > 1 else ''} {reason.value}" for reason, n in kept]
        example = self.example
        if without:
            example = self.examples.get(self._latest_reason(without), example)
        return f"{', '.join(parts)} since {since} (last: {example})"

    def _latest_reason(self, without: frozenset[RefusalReason]) -> RefusalReason:
        # the reason of the newest example not left out (examples keep insertion order of updates)
        kept = [r for r in self.examples if r not in without]
        return kept[-1] if kept else next(iter(self.by_reason))


@dataclass(slots=True)
class _Counter:
    device: str | None
    since: float
    last: float = 0.0
    by_reason: dict[RefusalReason, int] = field(default_factory=dict)
    example: str = ""
    all_nan: bool = False
    nan_but_frequency: bool = False
    examples: dict[RefusalReason, str] = field(default_factory=dict)


class RefusalLog:
    """Counts of refused readings per circuit, device or point (the pipeline's memory of them)."""

    def __init__(self) -> None:
        self._counters: dict[str, _Counter] = {}

    def add(self, reading: Reading, reason: RefusalReason, device: str | None) -> None:
        """Count one refused reading."""
        c = self._counters.get(reading.circuit)
        if c is None:
            c = self._counters[reading.circuit] = _Counter(device=device, since=reading.ts)
        c.last = max(c.last, reading.ts)
        c.by_reason[reason] = c.by_reason.get(reason, 0) + 1
        phase = reading.phase.value if reading.phase is not None else "-"
        c.example = f"{reading.quantity} {phase} = {reading.value!r}: {reason.value}"
        c.examples.pop(reason, None)  # re-inserted last: the newest reason is the last key
        c.examples[reason] = c.example

    def batch_done(self, nan_only: Mapping[str, bool], frequency_ok: Collection[str] = ()) -> None:
        """Record, per circuit of the latest batch, whether all its values were not a number (but the
        frequency, for the circuits in ``frequency_ok``)."""
        for circuit, flag in nan_only.items():
            c = self._counters.get(circuit)
            if c is not None:
                c.all_nan = flag
                c.nan_but_frequency = flag and circuit in frequency_ok

    def clear(self, circuit: str | None = None) -> None:
        """Forget the counts (of one circuit, or all)."""
        if circuit is None:
            self._counters.clear()
        else:
            self._counters.pop(circuit, None)

    def status(self) -> dict[str, RefusalStatus]:
        """Circuit (or device / point) id → :class:`RefusalStatus`."""
        return {
            k: RefusalStatus(
                circuit=k,
                device=c.device,
                count=sum(c.by_reason.values()),
                since=c.since,
                last=c.last,
                by_reason=dict(c.by_reason),
                example=c.example,
                all_nan=c.all_nan,
                examples=dict(c.examples),
                nan_but_frequency=c.nan_but_frequency,
            )
            for k, c in self._counters.items()
        }


def invalid(reading: Reading) -> Reading:
    """``reading`` re-marked :attr:`Quality.INVALID`."""
    return Reading(
        reading.ts, reading.circuit, reading.quantity, reading.phase, reading.value, Quality.INVALID
    )
