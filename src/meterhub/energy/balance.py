"""Site balance per interval from circuit purposes (seed 001 renewable display, seed 003 consumption).

Grid circuits measure import and export at the connection point, renewable circuits measure
generation (:func:`meterhub.energy.virtual.site_balance` has the formulas). Energies come from the
stored registers exactly as in :mod:`meterhub.energy.reports`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np

from meterhub.energy.config import energy_of
from meterhub.energy.reports import EXPORT, IMPORT, _num, _per_interval, _slot_grid, fetch_slots
from meterhub.energy.timeutil import Interval, interval_edges, local_iso
from meterhub.energy.virtual import site_balance
from meterhub.model.readings import SeriesKey
from meterhub.model.topology import Phase, Purpose

__all__ = ["site_balance_report"]


def site_balance_report(
    storage: Any,
    config: Any,
    *,
    start: date,
    end: date,
    interval: Interval | str,
    timezone: str | None = None,
) -> dict[str, Any]:
    """Site balance per interval [Wh] from circuit purposes (see :mod:`meterhub.energy.virtual`).

    Grid circuits give import and export; each renewable circuit's generation is its export register,
    or its import register when it has no export data (an inverter metered as a load).
    """
    interval = Interval(interval)
    energy = energy_of(config)
    tz = timezone or config.site.timezone
    report_edges = interval_edges(start, end, interval, tz)
    grid = np.asarray(report_edges)
    slot_edges = _slot_grid(grid, energy)

    def series(circuit: str, quantity: str) -> np.ndarray:
        slots = fetch_slots(storage, SeriesKey(circuit, quantity, Phase.TOTAL), slot_edges, energy, tz)
        return _per_interval(slots, grid)

    n = len(grid) - 1
    imports, exports, gens = [], [], []
    for c in config.circuits:
        if c.purpose is Purpose.GRID:
            imports.append(series(c.id, IMPORT))
            exports.append(series(c.id, EXPORT))
        elif c.purpose is Purpose.RENEWABLE:
            gen = series(c.id, EXPORT)
            gens.append(gen if np.isfinite(gen).any() else series(c.id, IMPORT))
    bal = site_balance(
        [np.nan_to_num(x) for x in imports],
        [np.nan_to_num(x) for x in exports],
        [np.nan_to_num(x) for x in gens],
        n,
    )
    rows = []
    for k in range(n):
        rows.append(
            {
                "start": local_iso(float(grid[k]), tz),
                "end": local_iso(float(grid[k + 1]), tz),
                "grid_import": _num(bal.grid_import[k]),
                "grid_export": _num(bal.grid_export[k]),
                "generation": _num(bal.generation[k]),
                "consumption": _num(bal.consumption[k]),
                "self_consumption": _num(bal.self_consumption[k]),
            }
        )
    return {"intervals": rows}
