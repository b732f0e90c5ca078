"""Demand, maximum demand and capacity-tariff peaks.

Demand is the mean power over a demand interval T (1, 5, 10, 15, 30 or 60 min, seed 002), computed
from the continuous energy register E [Wh]: D = ΔE · 3600 / T [W] (IEC 62053-… "maximum demand
indicator" / DLMS demand register class 5).

* **block**: consecutive intervals aligned to the clock; one value at each interval end.
* **sliding** with m subintervals of T/m: at every subinterval end the mean over the last m
  subintervals (DLMS "number of periods"), so a peak straddling two blocks is not split.
* **thermal**: a first-order lag of power that reaches 90 % of a step in T (the response of a
  thermal demand meter, ANSI C12.1): τ = T / ln 10.
* **predicted** (seed 003 "predictive power"): the demand the running window will end with if the
  present power holds: (E_window + P · t_remaining) · 3600 / T.

Maximum demand is kept per tariff rate with the time the window ended; it is reset manually, by an
API command or at billing. Capacity tariffs (e.g. the Belgian/Flemish capacity tariff) bill the mean
of the monthly maximum 15-min peaks of the last 12 months, each raised to a floor.

Window boundaries are multiples of the subinterval length in UTC, which are also local boundaries for
every zone whose offset is a whole number of quarter hours.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from meterhub.energy.timeutil import local_datetime, month_start

__all__ = [
    "AverageMeter",
    "DemandMeter",
    "DemandValue",
    "MaxDemand",
    "block_demand",
    "capacity_peaks",
    "register_at",
    "rolling_mean_of_peaks",
    "sliding_demand",
    "thermal_demand",
]


def register_at(ts: np.ndarray, value: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Continuous register interpolated linearly at instants ``at`` [unit]; clamped outside the data."""
    return np.interp(np.asarray(at, dtype=np.float64), ts, value)


def block_demand(edges: np.ndarray, energy_at_edges: np.ndarray) -> np.ndarray:
    """Mean power between consecutive edges [W] from register values at the edges [Wh], edges [s]."""
    dt = np.diff(np.asarray(edges, dtype=np.float64))
    return np.diff(np.asarray(energy_at_edges, dtype=np.float64)) * 3600.0 / dt


def sliding_demand(sub_energy: np.ndarray, m: int, interval: float) -> np.ndarray:
    """Sliding-window demand at each subinterval end [W].

    Parameters
    ----------
    sub_energy : energy of consecutive subintervals [Wh].
    m : subintervals per window [-].
    interval : window length T [s].

    Returns the demand of the window ending with each subinterval; NaN until m subintervals exist.
    """
    e = np.asarray(sub_energy, dtype=np.float64)
    out = np.full(e.shape, np.nan)
    if e.size >= m:
        c = np.concatenate([[0.0], np.cumsum(e)])
        out[m - 1 :] = (c[m:] - c[:-m]) * 3600.0 / interval
    return out


def thermal_demand(ts: np.ndarray, power: np.ndarray, interval: float, initial: float = 0.0) -> np.ndarray:
    """Thermal (exponential) demand [W] after each sample of mean power [W] held since the previous
    sample; 90 % response to a step in ``interval`` [s] (τ = T / ln 10)."""
    tau = interval / math.log(10.0)
    ts = np.asarray(ts, dtype=np.float64)
    p = np.asarray(power, dtype=np.float64)
    out = np.empty_like(p)
    d = initial
    prev = ts[0] if ts.size else 0.0
    for i in range(p.size):  # a first-order recursion: each value depends on the previous one
        a = 1.0 - math.exp(-(ts[i] - prev) / tau)
        d += (p[i] - d) * a
        out[i] = d
        prev = ts[i]
    return out


def capacity_peaks(ends: np.ndarray, demand: np.ndarray, tz: str) -> list[tuple[int, int, float, float]]:
    """Monthly maximum demand (capacity tariff): ``[(year, month, peak [W], time [s]), …]``.

    ``ends`` are the end times of 15-min demand intervals [s]; an interval belongs to the local month
    in which it started.
    """
    ends = np.asarray(ends, dtype=np.float64)
    d = np.asarray(demand, dtype=np.float64)
    if ends.size == 0:
        return []
    starts = ends - 900.0
    first = local_datetime(float(starts.min()), tz)
    last = local_datetime(float(starts.max()), tz)
    out: list[tuple[int, int, float, float]] = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        lo, hi = month_start(y, m, tz), month_start(y, m + 1, tz)
        sel = (starts >= lo) & (starts < hi) & np.isfinite(d)
        if sel.any():
            i = int(np.argmax(np.where(sel, d, -np.inf)))
            out.append((y, m, float(d[i]), float(ends[i])))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def rolling_mean_of_peaks(peaks: list[float], window: int = 12, minimum: float = 0.0) -> list[float]:
    """Capacity-tariff demand: mean of the last ``window`` monthly peaks (each at least ``minimum``)
    after each month [W]; fewer months at the start average what exists."""
    raised = [max(p, minimum) for p in peaks]
    out = []
    for i in range(len(raised)):
        part = raised[max(0, i - window + 1) : i + 1]
        out.append(sum(part) / len(part))
    return out


@dataclass(frozen=True, slots=True)
class DemandValue:
    """One closed subinterval: the demand of the window it ends [W] (NaN while fewer than m
    subintervals exist), its end [s], the subinterval's energy [Wh], rate index, estimated flag."""

    end: float
    demand: float
    energy: float
    rate: int
    estimated: bool


@dataclass(slots=True)
class MaxDemand:
    """Maximum demand of one rate since the last reset: value [W] and the window end [s]."""

    value: float = 0.0
    ts: float | None = None

    def offer(self, value: float, ts: float) -> bool:
        if self.ts is None or value > self.value:
            self.value, self.ts = value, ts
            return True
        return False


@dataclass
class DemandMeter:
    """Live demand of one register (incremental; the pipeline feeds it guarded register values).

    interval : window length T [s]; subintervals : m (1 = block); method : block | sliding | thermal.
    gap : a window spanning a silence longer than this is flagged estimated [s].
    """

    interval: float = 900.0
    subintervals: int = 1
    method: str = "block"
    gap: float = 900.0
    last_ts: float | None = None
    last_e: float | None = None
    last_power: float = 0.0
    has_power: bool = False  # a power is known once two readings were seen
    boundary_e: float | None = None  # register at the start of the running subinterval [Wh]
    subs: deque[tuple[float, bool]] = field(default_factory=deque)  # closed subinterval energy, estimated
    thermal: float = 0.0
    maxima: dict[int, MaxDemand] = field(default_factory=dict)

    @property
    def sub_len(self) -> float:
        """Subinterval length [s]."""
        return self.interval / (self.subintervals if self.method == "sliding" else 1)

    def feed(
        self, ts: float, energy: float, rate_at: Callable[[float], int] | None = None
    ) -> list[DemandValue]:
        """Add one register value [Wh] at ``ts`` [s]; return windows that closed since the last call.

        ``rate_at(t) -> int`` gives the tariff rate in force at ``t`` (default: rate 0).
        """
        out: list[DemandValue] = []
        if self.last_ts is None or self.last_e is None:
            self.last_ts, self.last_e = ts, energy
            if ts % self.sub_len == 0:  # a first reading on a boundary opens a complete window
                self.boundary_e = energy
            return out
        if ts <= self.last_ts:
            return out
        dt = ts - self.last_ts
        step_estimated = dt > self.gap
        power = (energy - self.last_e) * 3600.0 / dt
        if self.method == "thermal":
            self.thermal += (power - self.thermal) * (1.0 - math.exp(-dt * math.log(10.0) / self.interval))
        sub = self.sub_len
        b = (math.floor(self.last_ts / sub) + 1) * sub
        while b <= ts:
            e_b = self.last_e + (energy - self.last_e) * (b - self.last_ts) / dt
            if self.boundary_e is not None:
                self.subs.append((e_b - self.boundary_e, step_estimated))
                while len(self.subs) > self.subintervals:
                    self.subs.popleft()
                rate = int(rate_at(b - sub)) if rate_at is not None else 0
                if self.method == "thermal":
                    value = self.thermal
                    est = step_estimated
                elif len(self.subs) == (self.subintervals if self.method == "sliding" else 1):
                    value = sum(e for e, _ in self.subs) * 3600.0 / self.interval
                    est = any(x for _, x in self.subs)
                else:
                    value = math.nan
                    est = True
                out.append(DemandValue(b, value, self.subs[-1][0], rate, est))
                if math.isfinite(value):
                    self.maxima.setdefault(rate, MaxDemand()).offer(value, b)
            self.boundary_e = e_b
            b += sub
        self.last_ts, self.last_e, self.last_power, self.has_power = ts, energy, power, True
        return out

    def predicted(self) -> float | None:
        """Demand the running window will end with if the present power holds [W]."""
        if self.last_ts is None or self.last_e is None or self.boundary_e is None or not self.has_power:
            return None
        if self.method == "thermal":
            return self.thermal
        sub = self.sub_len
        end = (math.floor(self.last_ts / sub) + 1) * sub
        done = list(self.subs)[-(self.subintervals - 1) :] if self.subintervals > 1 else []
        if self.method == "sliding" and len(done) < self.subintervals - 1:
            return None
        e_window = sum(e for e, _ in done) + (self.last_e - self.boundary_e)
        return (e_window * 3600.0 + max(self.last_power, 0.0) * (end - self.last_ts)) / self.interval

    def reset_maxima(self) -> dict[int, MaxDemand]:
        """Clear the maximum demands; return what they were."""
        old, self.maxima = self.maxima, {}
        return old

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_ts": self.last_ts,
            "last_e": self.last_e,
            "last_power": self.last_power,
            "boundary_e": self.boundary_e,
            "subs": [list(s) for s in self.subs],
            "thermal": self.thermal,
            "maxima": {str(k): [v.value, v.ts] for k, v in self.maxima.items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.last_ts = state.get("last_ts")
        self.last_e = state.get("last_e")
        self.last_power = float(state.get("last_power", 0.0))
        self.boundary_e = state.get("boundary_e")
        self.subs = deque((float(e), bool(x)) for e, x in state.get("subs", []))
        self.thermal = float(state.get("thermal", 0.0))
        self.maxima = {int(k): MaxDemand(float(v), t) for k, (v, t) in state.get("maxima", {}).items()}


@dataclass
class AverageMeter:
    """Mean of an instantaneous quantity over clock-aligned windows (seed 003 "max average" current).

    Each sample holds until the next one (sample-and-hold); a window is reported when samples cover
    it completely, spans longer than ``gap`` [s] counting as uncovered. interval : window length [s].
    """

    interval: float = 900.0
    gap: float = 900.0
    last_ts: float | None = None
    last_v: float = 0.0
    acc: float = 0.0  # ∫ value dt in the running window [unit·s]
    covered: float = 0.0  # covered time of the running window [s]
    maximum: MaxDemand = field(default_factory=MaxDemand)

    def feed(self, ts: float, value: float) -> list[tuple[float, float]]:
        """Add a sample [unit] at ``ts`` [s]; return ``(window end [s], mean [unit])`` of closed windows."""
        out: list[tuple[float, float]] = []
        if self.last_ts is None or ts <= self.last_ts:
            if self.last_ts is None:
                self.last_ts, self.last_v = ts, value
            return out
        held = ts - self.last_ts <= self.gap
        t = self.last_ts
        while True:
            end = (math.floor(t / self.interval) + 1) * self.interval
            upto = min(end, ts)
            if held:
                self.acc += self.last_v * (upto - t)
                self.covered += upto - t
            if upto < end:
                break
            if self.covered >= self.interval * (1 - 1e-9):
                mean = self.acc / self.interval
                out.append((end, mean))
                self.maximum.offer(mean, end)
            self.acc = self.covered = 0.0
            t = end
            if t >= ts:
                break
        self.last_ts, self.last_v = ts, value
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_ts": self.last_ts,
            "last_v": self.last_v,
            "acc": self.acc,
            "covered": self.covered,
            "max": [self.maximum.value, self.maximum.ts],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.last_ts = state.get("last_ts")
        self.last_v = float(state.get("last_v", 0.0))
        self.acc = float(state.get("acc", 0.0))
        self.covered = float(state.get("covered", 0.0))
        value, ts = state.get("max", [0.0, None])
        self.maximum = MaxDemand(float(value), ts)
