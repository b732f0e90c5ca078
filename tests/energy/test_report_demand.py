"""Maximum demand in reports follows the configured demand method; thermal demand checked by hand.

A thermal demand meter (ANSI C12.1) is a first-order lag that shows 90 % of a load step after one
demand interval T: after n whole intervals of a step P it reads P · (1 − 0.1ⁿ), and a load that drops
to 0 decays by a factor 10 per interval. After half an interval it reads P · (1 − 10^(−1/2)).
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from meterhub.energy.config import energy_of
from meterhub.energy.demand import DemandMeter
from meterhub.energy.reports import Slots, build_intervals, energy_report
from meterhub.energy.tariffs import Co2Factor, TariffSchedule
from meterhub.energy.timeutil import Interval

from .conftest import site
from .test_reports import imported, utc

DAY = date(2026, 6, 2)
T0 = utc("2026-06-01T22:00:00")  # local (Europe/Berlin, CEST) 2026-06-02 00:00
TEN = T0 + 10 * 3600  # local 10:00


def step_load(minutes: int, watts: float = 4000.0) -> list[tuple[float, float]]:
    """Register samples every 5 min over the local day: ``watts`` from 10:00 for ``minutes``, else 0."""
    samples, e = [], 0.0
    for k in range(24 * 12 + 1):
        t = T0 + 300 * k
        samples.append((t, e))
        if TEN <= t < TEN + 60 * minutes:
            e += watts * 300 / 3600
    return samples


def test_thermal_max_demand_is_the_lagged_response_not_the_block_mean(
    storage_spec: Any, tmp_path: Path
) -> None:
    storage = storage_spec.open(timezone="Europe/Berlin")
    imported(storage, tmp_path, step_load(30))  # 4 kW from 10:00 to 10:30: 2000 Wh
    kw = dict(start=DAY, end=date(2026, 6, 3), interval="day", circuit="main")
    block = energy_report(storage, site("  demand: {interval: 15, method: block}"), **kw)["intervals"][0]
    thermal = energy_report(storage, site("  demand: {interval: 15, method: thermal}"), **kw)["intervals"][0]
    assert block["energy_active_import"] == thermal["energy_active_import"] == 2000.0
    # block: both quarter hours hold 4 kW; the first keeps the time
    assert (block["max_demand"], block["max_demand_time"]) == (4000.0, "2026-06-02T10:15:00+02:00")
    # thermal: 10:15 → 4000·0.9 = 3600 W; 10:30 → 4000·(1 − 0.01) = 3960 W; 10:45 → 396 W
    assert thermal["max_demand"] == 3960.0
    assert thermal["max_demand_time"] == "2026-06-02T10:30:00+02:00"


def test_thermal_response_to_a_step_shorter_than_the_interval() -> None:
    """T = 30 min, 4 kW for one quarter hour: the lag reaches 4000 · (1 − 1/√10) = 2735.09 W at the
    step's end; block demand averages it to 2000 W over the half hour."""
    edges = TEN - 3 * 1800 + 900.0 * np.arange(4 * 4 + 1)  # 3 T of look-back, then 10:00–11:00
    energy = np.where(edges[:-1] == TEN, 1000.0, 0.0)  # 1000 Wh in 10:00–10:15 = 4 kW
    imp = Slots(edges, energy, np.zeros(len(energy), dtype=bool))
    exp = Slots(edges, np.zeros(len(energy)), np.zeros(len(energy), dtype=bool))
    report_edges = np.array([TEN, TEN + 3600.0])

    def row(method: str) -> dict[str, Any]:
        cfg = energy_of(site(f"  demand: {{interval: 30, method: {method}}}"))
        return build_intervals(
            report_edges,
            imp,
            exp,
            schedule=TariffSchedule(cfg.tariffs, "Europe/Berlin"),
            co2=Co2Factor(0.0),
            energy=cfg,
            tz="Europe/Berlin",
            interval=Interval.HOUR,
        )[0]

    thermal, block = row("thermal"), row("block")
    assert math.isclose(thermal["max_demand"], 4000.0 * (1 - 10**-0.5), rel_tol=1e-9)
    assert round(thermal["max_demand"], 2) == 2735.09
    assert thermal["max_demand_time"] == "2026-06-02T10:15:00+02:00"
    assert (block["max_demand"], block["max_demand_time"]) == (2000.0, "2026-06-02T10:30:00+02:00")


def test_thermal_report_agrees_with_the_live_thermal_meter() -> None:
    """The live meter fed the same 5-min register samples keeps the same maximum and time."""
    meter = DemandMeter(interval=900.0, method="thermal")
    for t, e in step_load(30):
        meter.feed(t, e)
    md = meter.maxima[0]
    assert md.ts == TEN + 1800
    assert math.isclose(md.value, 3960.0, rel_tol=1e-12)
