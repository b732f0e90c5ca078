"""Capacity tariff over 13 months: monthly maximum 15-min peak and the rolling 12-month mean."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from meterhub.energy.capacity import capacity_report
from meterhub.energy.demand import capacity_peaks, rolling_mean_of_peaks
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase

from .conftest import site

BERLIN = ZoneInfo("Europe/Berlin")


def local(y: int, m: int, d: int, h: int = 0, minute: int = 0) -> float:
    return datetime(y, m, d, h, minute, tzinfo=BERLIN).timestamp()


def months13() -> list[tuple[int, int]]:
    return [(2026 + (i // 12), i % 12 + 1) for i in range(13)]


def test_rolling_mean_of_peaks_with_a_floor() -> None:
    peaks = [1000.0 + 500.0 * m for m in range(1, 14)]  # 1500 … 7500 W
    means = rolling_mean_of_peaks(peaks, 12, minimum=2500.0)
    assert means[0] == 2500.0
    assert means[11] == pytest.approx((3 * 2500 + sum(range(3000, 7001, 500))) / 12)  # 4375
    assert means[12] == pytest.approx((2 * 2500 + sum(range(3000, 7501, 500))) / 12)  # 4791.67


def test_capacity_peaks_follow_local_months() -> None:
    # a 15-min window starting 2026-01-31 23:45 local belongs to January, the next to February
    ends = np.array([local(2026, 2, 1, 0, 0), local(2026, 2, 1, 0, 15)])
    peaks = capacity_peaks(ends, np.array([5000.0, 4000.0]), "Europe/Berlin")
    assert [(y, m, p) for y, m, p, _ in peaks] == [(2026, 1, 5000.0), (2026, 2, 4000.0)]


def test_capacity_report_over_13_months(storage_backend: Any) -> None:
    # 1 kW base load read hourly; in month m one hour (day 10, 18:00–19:00 local) at 1000 + 500·m W
    peak_hours = {local(y, m, 10, 18): 1000.0 + 500.0 * (i + 1) for i, (y, m) in enumerate(months13())}
    t, t_end = local(2026, 1, 1), local(2027, 2, 1)
    e = 0.0
    batch = []
    while t <= t_end:
        batch.append(Reading(t, "main", "energy_active_import", Phase.TOTAL, e))
        e += peak_hours.get(t, 1000.0)
        t += 3600.0
    storage_backend.write(batch)
    storage_backend.flush()
    cfg = site("  capacity_minimum: 2500")
    rep = capacity_report(storage_backend, cfg, circuit="main", start=date(2026, 1, 1), end=date(2027, 2, 1))
    months = rep["months"]
    assert [m["month"] for m in months] == [f"{y:04d}-{m:02d}" for y, m in months13()]
    assert [m["peak"] for m in months] == [1000.0 + 500.0 * i for i in range(1, 14)]
    assert months[0]["time"] == "2026-01-10T18:15:00+01:00"
    assert months[6]["time"] == "2026-07-10T18:15:00+02:00"
    assert months[11]["rolling_mean"] == pytest.approx(4375.0)
    assert months[12]["rolling_mean"] == pytest.approx(57500.0 / 12)


def test_capacity_report_unknown_circuit_names_the_known_ones(storage_backend: Any, tmp_path: Path) -> None:
    from meterhub.energy.reports import ReportError

    with pytest.raises(ReportError, match="unknown circuit 'boiler'; known circuits: light, main, pv"):
        capacity_report(
            storage_backend, site(), circuit="boiler", start=date(2026, 1, 1), end=date(2026, 2, 1)
        )
