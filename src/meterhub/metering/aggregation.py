"""Time aggregation of window values (IEC 61000-4-30 §4.5).

* Magnitudes (voltage, current, harmonics, THD, unbalance …) aggregate as the square root of the
  arithmetic mean of the squared window values (§4.5.2).
* Powers and frequency aggregate as the duration-weighted mean (for frequency that is cycles over
  duration, §5.1.2); energies as sums.
* Power factors are recomputed from the aggregated powers (λ = P/S, cos φ1 = P1/|P1 + jQ1|), angles
  as the circular mean.
* 150/180-cycle values aggregate 15 consecutive basic windows (§4.5.2); 1-min and 10-min values
  aggregate the windows that *start* in each clock interval (§4.5.3, resynchronised to the clock).

Maxima and minima of the window values are kept for voltage, line voltage and current.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from meterhub.metering.power import Quantities, wrap_degrees
from meterhub.model.quantities import Q

__all__ = ["RULES", "aggregate", "clock_groups", "consecutive_groups"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

_MEAN = {
    Q.ACTIVE_POWER,
    Q.REACTIVE_POWER,
    Q.APPARENT_POWER,
    Q.APPARENT_POWER_ARITHMETIC,
    Q.APPARENT_POWER_VECTOR,
    Q.NONACTIVE_POWER,
    Q.FREQUENCY,
    "_p1",
    "_q1",
}
_ANGLE = {Q.ANGLE_VOLTAGE, Q.ANGLE_CURRENT, Q.ANGLE_VOLTAGE_CURRENT}
_DERIVED = {Q.POWER_FACTOR, Q.DISPLACEMENT_POWER_FACTOR}
_EXTREMES: dict[str, tuple[str, str | None]] = {Q.VOLTAGE: (Q.VOLTAGE_MAX, Q.VOLTAGE_MIN), Q.VOLTAGE_LINE: (Q.VOLTAGE_LINE_MAX, Q.VOLTAGE_LINE_MIN),
             Q.CURRENT: (Q.CURRENT_MAX, None)}  # fmt: skip

#: quantity → "rms" | "mean" | "angle" | "derived"; anything else aggregates as "rms".
RULES: dict[str, str] = {
    **{k: "mean" for k in _MEAN},
    **{k: "angle" for k in _ANGLE},
    **{k: "derived" for k in _DERIVED},
}


def consecutive_groups(n_windows: int, size: int = 15) -> I64:
    """Start index of each complete group of ``size`` consecutive windows (150/180-cycle). [-]"""
    return np.arange(0, n_windows - size + 1, size, dtype=np.int64)


def clock_groups(t: F64, interval: float) -> tuple[I64, F64]:
    """Start index of each run of windows starting in the same clock interval, and its start time.

    t : window start times [s] (Unix time for wall-clock intervals); interval : 60 or 600 [s].
    """
    slot = np.floor(t / interval)
    starts = np.flatnonzero(np.concatenate(([True], slot[1:] != slot[:-1])))
    return starts.astype(np.int64), slot[starts] * interval


def _reduce(x: F64, starts: I64, weights: F64, rule: str) -> F64:
    counts = np.diff(np.append(starts, x.shape[0]))
    if rule == "mean":
        wx = x * (weights if x.ndim == 1 else weights[:, None])
        ws = np.add.reduceat(weights, starts)
        s = np.add.reduceat(wx, starts, axis=0)
        return s / (ws if x.ndim == 1 else ws[:, None])
    if rule == "angle":
        z = np.exp(1j * np.radians(x))
        return wrap_degrees(np.degrees(np.angle(np.add.reduceat(z, starts, axis=0))))
    sq = np.add.reduceat(np.nan_to_num(x) ** 2, starts, axis=0)
    c = counts if x.ndim == 1 else counts[:, None]
    out = np.sqrt(sq / c)
    if x.ndim > 1:
        out[:, np.isnan(x).any(axis=0)] = np.nan
    return out


def aggregate(q: Quantities, duration: F64, starts: I64, stops: int | None = None) -> Quantities:
    """Aggregate per-window quantities into intervals beginning at window index ``starts``.

    q : group → quantity → (W,) or (W, 51) window values
    duration : (W,) window durations [s] (weights of means)
    starts : first window of each interval (increasing); the last interval runs to window ``stops``
        (exclusive) or to the end
    """
    if stops is not None:
        end = int(stops)
        q = {g: {k: v[:end] for k, v in d.items()} for g, d in q.items()}
        duration = duration[:end]
    out: Quantities = {}
    for group, vals in q.items():
        agg: dict[str, F64] = {}
        for k, x in vals.items():
            rule = RULES.get(k, "rms")
            if rule == "derived" or x.shape[0] == 0:
                continue
            if k in ("energy",) or k.startswith("energy_"):
                agg[k] = np.add.reduceat(x, starts, axis=0)
                continue
            agg[k] = _reduce(x, starts, duration, rule)
            if k in _EXTREMES:
                hi, lo = _EXTREMES[k]
                agg[hi] = np.maximum.reduceat(x, starts)
                if lo:
                    agg[lo] = np.minimum.reduceat(x, starts)
        if Q.ACTIVE_POWER in agg and Q.APPARENT_POWER in agg:
            with np.errstate(divide="ignore", invalid="ignore"):
                s = agg[Q.APPARENT_POWER]
                agg[Q.POWER_FACTOR] = np.where(s != 0, agg[Q.ACTIVE_POWER] / np.where(s != 0, s, 1), 0.0)
                if "_p1" in agg:
                    s1 = np.hypot(agg["_p1"], agg["_q1"])
                    agg[Q.DISPLACEMENT_POWER_FACTOR] = np.where(
                        s1 != 0, agg["_p1"] / np.where(s1 != 0, s1, 1), 0.0
                    )
        out[group] = agg
    return out
