"""Capacity tariff report: monthly maximum 15-min import demand and the rolling 12-month mean.

Capacity tariffs (e.g. the Flemish "capaciteitstarief" since 2023) bill the mean of the monthly
15-minute peaks of the last 12 months, each raised to a floor; see
:func:`meterhub.energy.demand.capacity_peaks` and :func:`~meterhub.energy.demand.rolling_mean_of_peaks`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np

from meterhub.energy.config import energy_of
from meterhub.energy.demand import capacity_peaks, rolling_mean_of_peaks
from meterhub.energy.reports import IMPORT, _members, _num, combine, fetch_slots
from meterhub.energy.timeutil import Interval, interval_edges, local_iso
from meterhub.model.readings import SeriesKey
from meterhub.model.topology import Phase

__all__ = ["capacity_report"]


def capacity_report(storage: Any, config: Any, *, circuit: str, start: date, end: date) -> dict[str, Any]:
    """Capacity tariff: per local month the maximum 15-min import demand [W] with its time, and the
    mean of the last 12 monthly peaks (each at least ``energy.capacity_minimum``) [W]."""
    energy = energy_of(config)
    tz = config.site.timezone
    coef = _members(storage, config, energy, circuit=circuit, zone=None)
    t0 = interval_edges(start, end, Interval.DAY, tz)
    edges = np.arange(t0[0] - t0[0] % 900, t0[-1] + 1, 900.0)
    slots = combine(
        [(c, fetch_slots(storage, SeriesKey(m, IMPORT, Phase.TOTAL), edges, energy, tz)) for m, c in coef],
        edges,
    )
    inside = edges[1:] > t0[0]
    demand = slots.energy[inside] * 4.0  # Wh per 15 min → W
    peaks = capacity_peaks(edges[1:][inside], demand, tz)
    means = rolling_mean_of_peaks([p for _, _, p, _ in peaks], 12, energy.capacity_minimum)
    return {
        "months": [
            {
                "month": f"{y:04d}-{m:02d}",
                "peak": _num(p),
                "time": local_iso(t, tz),
                "rolling_mean": _num(mean),
            }
            for (y, m, p, t), mean in zip(peaks, means, strict=True)
        ]
    }
