"""``history_columns`` answers what ``history`` answers, as arrays (the report path reads these)."""

from __future__ import annotations

import numpy as np

from meterhub.model.readings import Quality, Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage import HistoryColumns, Storage

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
KEY = SeriesKey("main", "energy_active_import", Phase.TOTAL)


def test_raw_and_minute_columns_match_the_points(storage_backend: Storage) -> None:
    # every 20 s for 3 min, 10 Wh a step; the reading at 60 s is estimated, the one at 100 s invalid
    readings = [
        Reading(
            T0 + 20 * k,
            "main",
            "energy_active_import",
            Phase.TOTAL,
            10.0 * k,
            quality=Quality.ESTIMATED if k == 3 else Quality.INVALID if k == 5 else Quality.GOOD,
        )
        for k in range(9)
    ]
    storage_backend.write(readings)
    storage_backend.flush()
    raw = storage_backend.history_columns(KEY, T0, T0 + 180)
    assert raw.ts.tolist() == [T0 + 20 * k for k in (0, 1, 2, 3, 4, 6, 7, 8)]  # invalid left out
    assert raw.last.tolist() == [0.0, 10.0, 20.0, 30.0, 40.0, 60.0, 70.0, 80.0]
    assert raw.quality.tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    assert raw.last_ts.tolist() == raw.ts.tolist() and raw.count.tolist() == [1] * 8
    minute = storage_backend.history_columns(KEY, T0, T0 + 180, "1min")
    points = storage_backend.history(KEY, T0, T0 + 180, "1min")
    assert minute.ts.tolist() == [p.ts for p in points] == [T0, T0 + 60, T0 + 120]
    assert minute.last.tolist() == [p.last for p in points] == [20.0, 40.0, 80.0]
    assert minute.last_ts.tolist() == [T0 + 40, T0 + 80, T0 + 160]  # when each last value was read
    assert minute.count.tolist() == [3, 2, 3]
    assert minute.quality.tolist() == [p.quality for p in points] == [0, 1, 0]


def test_unknown_series_gives_empty_columns(storage_backend: Storage) -> None:
    for res in ("raw", "1min", "1d"):
        cols = storage_backend.history_columns(SeriesKey("nope", "voltage", Phase.L1), T0, T0 + 60, res)
        assert isinstance(cols, HistoryColumns) and len(cols) == 0 and cols.ts.dtype == np.float64
