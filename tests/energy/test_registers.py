"""Register guard: wrap, reset, replacement, outage, glitches — values checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterhub.energy.registers import GuardEvent, MeterChange, RegisterGuard, continuous, wrap_modulus
from meterhub.model.readings import Quality, SeriesKey
from meterhub.model.topology import Phase

KEY = SeriesKey("main", "energy_active_import", Phase.TOTAL)


def feed(guard: RegisterGuard, samples: list[tuple[float, float]]) -> list[float | None]:
    out = []
    for t, r in samples:
        res = guard.update(KEY, t, r)
        out.append(None if res is None else res.value)
    return out


def test_register_guard_counts_increases_exactly() -> None:
    g = RegisterGuard()
    assert feed(g, [(0, 1000.0), (60, 1100.0), (120, 1250.5)]) == [1000.0, 1100.0, 1250.5]


def test_counter_wrap_at_display_rollover_adds_the_remainder() -> None:
    # a 6-digit display in Wh rolls over at 1 000 000: 999 900 → 150 is 100 + 150 = 250 Wh
    g = RegisterGuard()
    vals = feed(g, [(0, 999_900.0), (60, 150.0), (120, 400.0)])
    assert vals == [999_900.0, 1_000_150.0, 1_000_400.0]


def test_counter_wrap_of_a_uint32_register_in_0_01_wh() -> None:
    m = 2.0**32 * 0.01  # 42 949 672.96 Wh
    assert wrap_modulus(m - 5.0, 3.0) == pytest.approx(m)
    g = RegisterGuard()
    vals = feed(g, [(0, m - 5.0), (60, 3.0)])
    assert vals[1] == pytest.approx(m - 5.0 + 8.0)


def test_reset_counts_the_new_counter_from_zero_never_negative() -> None:
    g = RegisterGuard()
    vals = feed(g, [(0, 5000.0), (900, 5200.0), (1800, 40.0), (2700, 140.0)])
    assert vals == [5000.0, 5200.0, 5240.0, 5340.0]
    assert np.all(np.diff(vals) >= 0)  # type: ignore[arg-type]


def test_announced_meter_change_is_exact() -> None:
    # old meter read 5200 at 09:45 and 5230 when removed at 10:00; the new meter started at 12.0
    g = RegisterGuard(changes={KEY: [MeterChange(ts=1800.0, old_final=5230.0, new_initial=12.0)]})
    vals = feed(g, [(900, 5200.0), (2700, 62.0)])
    assert vals == [5200.0, 5200.0 + 30.0 + 50.0]


def test_announced_change_to_a_meter_reading_more_is_no_spike() -> None:
    g = RegisterGuard(changes={KEY: [MeterChange(ts=1800.0, old_final=5230.0, new_initial=80_000.0)]})
    vals = feed(g, [(900, 5200.0), (2700, 80_050.0), (3600, 80_100.0)])
    assert vals == [5200.0, 5280.0, 5330.0]


def test_outage_gap_is_filled_from_the_counter_and_flagged_estimated() -> None:
    g = RegisterGuard(gap=900)
    g.update(KEY, 0, 100.0)
    res = g.update(KEY, 4 * 3600, 4100.0)  # away for 4 h, 4 kWh on the counter meanwhile
    assert res is not None
    assert res.value == 4100.0 and res.delta == 4000.0
    assert res.quality is Quality.ESTIMATED and res.event is GuardEvent.GAP


def test_nan_negative_and_backdated_readings_are_rejected() -> None:
    g = RegisterGuard()
    samples = [(0, 10.0), (60, math.nan), (120, -5.0), (180, 11.0), (150, 12.0)]
    assert feed(g, samples) == [10.0, None, None, 11.0, None]


def test_decoding_glitch_is_rejected_and_a_lasting_jump_rebases() -> None:
    g = RegisterGuard(max_power=100_000.0, confirm=3)
    # 1e9 Wh in a minute is 6e10 W: a glitch; the meter then reads normally again
    assert feed(g, [(0, 1000.0), (60, 1e9), (120, 1010.0)]) == [1000.0, None, 1010.0]
    # a replaced meter with a large reading: three consistent readings rebase without a spike
    vals = feed(g, [(180, 5e8), (240, 5e8 + 10), (300, 5e8 + 20)])
    assert vals == [None, None, 1010.0 + 20.0]


def test_unannounced_replacement_by_a_meter_that_starts_elsewhere_is_no_spike() -> None:
    g = RegisterGuard()
    # 4 kW for 15 min, then a new meter reading 12 345 Wh: continue at the last rate, flagged
    g.update(KEY, 0, 5000.0)
    g.update(KEY, 900, 6000.0)
    res = g.update(KEY, 1800, 2_345.0)  # below the old reading: 2 345 Wh in 15 min would be 9.4 kW
    assert res is not None and res.event is GuardEvent.REBASE and res.quality is Quality.ESTIMATED
    assert res.value == 7000.0  # + 1 kWh: 4 kW for 15 min
    res = g.update(KEY, 2700, 3_345.0)
    assert res is not None and res.value == 8000.0 and res.quality is Quality.GOOD


def test_restart_without_raw_baseline_continues_the_register() -> None:
    g = RegisterGuard()
    g.restore({KEY: 7000.0})
    res = g.update(KEY, 100.0, 7050.0)
    assert res is not None and res.value == 7050.0
    g2 = RegisterGuard()
    g2.restore({KEY: 9000.0}, raw={KEY: 200.0})  # register had a reset in its past
    res2 = g2.update(KEY, 100.0, 260.0)
    assert res2 is not None and res2.value == 9060.0


def test_continuous_series_matches_the_stateful_guard() -> None:
    ts = np.arange(6) * 900.0
    raw = np.array([999_000.0, 999_800.0, 300.0, 600.0, 20.0, 80.0])  # wrap, then a reset
    t, v, est = continuous(ts, raw)
    assert v.tolist() == [999_000.0, 999_800.0, 1_000_300.0, 1_000_600.0, 1_000_620.0, 1_000_680.0]
    assert not est.any()
    t2, v2, est2 = continuous(np.array([0.0, 60.0, 7200.0]), np.array([1.0, 2.0, 50.0]), gap=900)
    assert v2.tolist() == [1.0, 2.0, 50.0] and est2.tolist() == [False, False, True]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.001, max_value=1e6),
            st.one_of(st.floats(min_value=-10, max_value=1e12), st.just(math.nan), st.just(math.inf)),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_guarded_register_never_goes_backwards(steps: list[tuple[float, float]]) -> None:
    g = RegisterGuard()
    t, values = 0.0, []
    for dt, raw in steps:
        t += dt
        res = g.update(KEY, t, raw)
        if res is not None:
            assert math.isfinite(res.value) and res.delta >= 0
            values.append(res.value)
    assert values == sorted(values)
    ts = np.cumsum([dt for dt, _ in steps])
    _, v, _ = continuous(ts, np.array([r for _, r in steps]))
    assert np.all(np.diff(v) >= 0) and np.all(np.isfinite(v))
