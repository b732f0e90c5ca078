"""Load profiles (seed 002 appendix 5: "interval and capture object can be configured").

A load profile of a circuit is a table with one row per capture interval (1–60 min, aligned to the
clock) and one column per captured quantity:

* a cumulative register (energy) is captured as its value at the end of the interval (interpolated
  between the samples around it, as a meter's profile captures the register at the period end);
* any other quantity is captured as its mean over the interval (time-weighted over the stored
  samples; the mean of stored rollups where raw values were removed).

Rows are computed from storage on request, so changing the interval or the capture list applies to
past data too.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np

from meterhub.energy.config import ProfileSpec, energy_of
from meterhub.energy.registers import continuous
from meterhub.energy.timeutil import interval_edges, local_iso
from meterhub.model.quantities import CATALOGUE, Kind
from meterhub.model.readings import SeriesKey
from meterhub.model.topology import Phase

__all__ = ["capture_means", "capture_registers", "load_profile", "profile_spec"]


def capture_registers(ts: np.ndarray, values: np.ndarray, ends: np.ndarray, gap: float) -> np.ndarray:
    """Continuous register at each interval end [unit]; NaN outside the data — pure."""
    t, v, _ = continuous(ts, values, gap=gap)
    out = np.full(np.asarray(ends).shape, np.nan)
    if t.size == 0:
        return out
    inside = (ends >= t[0]) & (ends <= t[-1])
    out[inside] = np.interp(ends[inside], t, v)
    return out


def capture_means(ts: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of samples per interval [unit] (each sample weighted equally: samples are periodic);
    NaN for intervals without samples — pure."""
    n = len(edges) - 1
    ts = np.asarray(ts, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    idx = np.searchsorted(edges, ts, side="right") - 1
    ok = (idx >= 0) & (idx < n) & np.isfinite(values)
    sums = np.zeros(n)
    counts = np.zeros(n)
    np.add.at(sums, idx[ok], values[ok])
    np.add.at(counts, idx[ok], 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1.0), np.nan)


def profile_spec(config: Any, circuit: str) -> ProfileSpec:
    """The configured profile of a circuit, or the default (15 min, ±energy, active power)."""
    for spec in energy_of(config).profiles:
        if spec.circuit == circuit:
            return spec
    return ProfileSpec(circuit=circuit)


def load_profile(
    storage: Any,
    config: Any,
    *,
    circuit: str,
    start: date,
    end: date,
    interval: int | None = None,
    quantities: list[str] | None = None,
) -> dict[str, Any]:
    """``{"circuit", "interval", "quantities", "rows": [{"end": local ISO, <quantity>: value}]}``.

    interval [min] and quantities override the configured profile. Values are in catalogue units.
    """
    spec = profile_spec(config, circuit)
    minutes = interval or spec.interval
    names = quantities or spec.quantities
    tz = config.site.timezone
    gap = energy_of(config).gap
    day_edges = interval_edges(start, end, "day", tz)
    edges = np.arange(day_edges[0], day_edges[-1] + 1.0, minutes * 60.0)
    ends = edges[1:]
    columns: dict[str, np.ndarray] = {}
    for name in names:
        q = CATALOGUE.get(name)
        if q is None:
            raise ValueError(f"unknown quantity {name!r} in the load profile")
        phase = Phase.TOTAL if Phase.TOTAL in q.phases else q.phases[0]
        key = SeriesKey(circuit, name, phase)
        if q.kind is Kind.CUMULATIVE:
            pts = storage.history(key, float(edges[0]) - 2 * gap, float(edges[-1]) + 2 * gap, "raw")
            ts = np.array([p.ts for p in pts])
            vals = np.array([p.last for p in pts])
            columns[name] = capture_registers(ts, vals, ends, gap)
        else:
            pts = storage.history(key, float(edges[0]), float(edges[-1]), "raw")
            if not pts and minutes % 15 == 0:
                pts = storage.history(key, float(edges[0]), float(edges[-1]), "15min")
            ts = np.array([p.ts for p in pts])
            vals = np.array([p.mean for p in pts])
            columns[name] = capture_means(ts, vals, edges)
    rows = []
    for k, t in enumerate(ends):
        row: dict[str, Any] = {"end": local_iso(float(t), tz)}
        for name in names:
            v = columns[name][k]
            row[name] = None if not np.isfinite(v) else float(v)
        rows.append(row)
    return {"circuit": circuit, "interval": minutes, "quantities": names, "rows": rows}
