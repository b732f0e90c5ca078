"""The live cache skips INVALID readings (docs/ARCHITECTURE.md, "Invalid readings"): the last usable
value of a series stays, with its time."""

from __future__ import annotations

import math

from meterhub.energy.register_events import amount
from meterhub.live import LiveCache
from meterhub.model.readings import Quality, Reading, SeriesKey
from meterhub.model.topology import Phase


def test_the_live_cache_keeps_the_last_usable_value_when_an_invalid_one_comes() -> None:
    live = LiveCache()
    live.update([Reading(100.0, "grid", "voltage", Phase.L1, 230.0)])
    live.update(
        [
            Reading(101.0, "grid", "voltage", Phase.L1, 3.4e38, Quality.INVALID),
            Reading(101.0, "grid", "current", Phase.L1, math.nan, Quality.INVALID),
            Reading(101.0, "grid", "frequency", Phase.TOTAL, 50.0, Quality.ESTIMATED),
        ]
    )
    kept = live.get(SeriesKey("grid", "voltage", Phase.L1))
    assert kept is not None and (kept.ts, kept.value) == (100.0, 230.0)
    assert live.get(SeriesKey("grid", "current", Phase.L1)) is None
    assert len(live) == 2 and live.updated == 101.0


def test_amounts_read_with_three_digits_and_an_si_prefix() -> None:
    assert amount(60_100.0, "Wh") == "60.1 kWh"
    assert amount(69_000.0, "W") == "69 kW"
    assert amount(1_104_000.0, "W") == "1.1 MW"
    assert amount(5.0, "Wh") == "5 Wh"
    assert amount(2.5e9, "varh") == "2.5 Gvarh"
    assert amount(12.0, "m³") == "12 m³"
