"""Register guard: wrap, reset, replacement, outage, glitches — values checked by hand.

Confirmation defaults: a candidate new counter must hold for 3 polls spanning ≥ 30 s.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from meterhub.energy.registers import (
    CONFIRM_POLLS,
    CONFIRM_SECONDS,
    GuardEvent,
    GuardResult,
    MeterChange,
    RegisterGuard,
    continuous,
    wrap_modulus,
)
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, SeriesKey
from meterhub.model.topology import Phase

KEY = SeriesKey("main", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL)
#: An SDM630 wired direct: 100 A × 230 V × 3 phases × margin 2 = 138 kW [W].
SDM630_BOUND = 100.0 * 230.0 * 3 * 2.0
T0 = 1_780_308_000.0  # 2026-06-01T10:00:00Z


def feed(guard: RegisterGuard, samples: list[tuple[float, float]]) -> list[float | None]:
    """Register value after each sample (None: not counted)."""
    out: list[float | None] = []
    for t, r in samples:
        res = guard.update(KEY, t, r)
        out.append(res.value if res.accepted else None)
    return out


def test_register_guard_counts_increases_exactly() -> None:
    g = RegisterGuard()
    assert feed(g, [(0, 1000.0), (60, 1100.0), (120, 1200.0), (180, 1300.0)]) == [
        1000.0,
        1100.0,
        1200.0,
        1300.0,
    ]


def test_counter_wrap_is_counted_exactly_once_confirmed() -> None:
    # a 6-digit display in Wh rolls over at 1 000 000: 999 900 → 150 is 100 + 150 = 250 Wh, and the
    # new counter must hold for 3 polls spanning ≥ 30 s before it is believed
    g = RegisterGuard()
    vals = feed(
        g, [(-60, 999_700.0), (0, 999_800.0), (60, 999_900.0), (120, 150.0), (180, 400.0), (240, 650.0)]
    )
    assert vals == [999_700.0, 999_800.0, 999_900.0, None, None, 1_000_650.0]
    res = g.update(KEY, 300, 900.0)
    assert res.value == 1_000_900.0 and res.event is GuardEvent.NORMAL


def test_confirmation_backfills_the_quarantined_readings() -> None:
    g = RegisterGuard()
    feed(g, [(-60, 999_700.0), (0, 999_800.0), (60, 999_900.0), (120, 150.0), (180, 400.0)])
    res = g.update(KEY, 240, 650.0)
    assert res.event is GuardEvent.WRAP and res.quality is Quality.GOOD
    assert res.backfill == ((120.0, 1_000_150.0), (180.0, 1_000_400.0))


def test_counter_wrap_of_a_uint32_register_in_0_01_wh() -> None:
    m = 2.0**32 * 0.01  # 42 949 672.96 Wh
    assert wrap_modulus(m - 5.0, 3.0) == pytest.approx(m)
    g = RegisterGuard()
    vals = feed(g, [(-60, m - 13.0), (0, m - 9.0), (60, m - 5.0), (120, 3.0), (180, 7.0), (240, 11.0)])
    assert vals[-1] == pytest.approx(m - 5.0 + 5.0 + 11.0)


def test_reset_counts_the_new_counter_from_zero_never_negative() -> None:
    g = RegisterGuard(rate_limit=lambda key: 10_000.0)  # a 10 kW circuit
    feed(g, [(-900, 4800.0), (0, 5000.0)])
    vals = feed(g, [(900, 5200.0), (1800, 40.0), (2700, 140.0), (3600, 240.0), (4500, 340.0)])
    # 40 Wh in 15 min is 160 W: the new counter counted it from 0 → 5240, then +100 Wh per poll
    assert vals == [5200.0, None, None, 5440.0, 5540.0]
    st_ = g.status()[KEY]
    assert [e for e, _ in st_.confirmed] == [GuardEvent.RESET]
    assert st_.text() == "reset confirmed at 01:00:00"


def test_a_single_zero_answer_is_quarantined_and_never_counted() -> None:
    # the SDM630: 20 kWh, one all-zero answer, then the real value again
    g = RegisterGuard(rate_limit=lambda key: SDM630_BOUND)
    feed(g, [(T0 - 1, 19_998.75), (T0, 20_000.0)])
    vals = feed(g, [(T0 + 1, 20_001.25), (T0 + 2, 0.0), (T0 + 3, 20_003.75), (T0 + 4, 20_005.0)])
    assert vals == [20_001.25, None, 20_003.75, 20_005.0]
    status = g.status()[KEY]
    assert status.quarantined == 1 and status.text("UTC", now=T0) == "1 outlier quarantined at 10:00:02"


def test_an_implausible_jump_is_quarantined_and_a_lasting_one_rebases() -> None:
    g = RegisterGuard(rate_limit=lambda key: 10_000.0)
    # 1e9 Wh in a minute is 6e10 W, beyond the circuit's 10 kW: never counted
    feed(g, [(-60, 990.0), (0, 1000.0)])
    assert feed(g, [(60, 1010.0), (120, 1e9), (180, 1020.0)]) == [1010.0, None, 1020.0]
    # a replaced meter with a large reading: consistent for 3 polls over ≥ 30 s → rebased, the step
    # across estimated from the recent rate (30 Wh in 240 s = 450 W → 7.5 Wh in 60 s), no spike
    res = [g.update(KEY, t, r) for t, r in ((240, 5e8), (300, 5e8 + 10), (360, 5e8 + 20))]
    assert [r.accepted for r in res] == [False, False, True]
    assert res[-1].event is GuardEvent.REBASE and res[-1].quality is Quality.ESTIMATED
    assert res[-1].value == pytest.approx(1020.0 + 7.5 + 20.0)


def test_a_load_step_is_deferred_one_poll_and_counted_exactly() -> None:
    g = RegisterGuard(rate_limit=lambda key: SDM630_BOUND)
    feed(g, [(-1, 99.0), (0, 100.0), (1, 101.0), (2, 102.0)])  # 3.6 kW
    step = g.update(KEY, 3, 112.0)  # 36 kW: above the envelope, below the rating
    assert not step.accepted and step.event is GuardEvent.DEFERRED
    res = g.update(KEY, 4, 122.0)  # it holds: both polls are counted
    assert res.accepted and res.value == 122.0 and res.backfill == ((3.0, 112.0),)


def test_an_outlier_within_the_rating_is_quarantined_not_integrated() -> None:
    g = RegisterGuard(rate_limit=lambda key: SDM630_BOUND)
    feed(g, [(-1, 99.0), (0, 100.0), (1, 101.0), (2, 102.0)])
    assert not g.update(KEY, 3, 130.0).accepted  # 28 Wh in 1 s = 100 kW: plausible, but not confirmed
    res = g.update(KEY, 4, 104.0)  # the truth: 130 was an outlier
    assert res.value == 104.0 and g.status()[KEY].quarantined == 1


def test_stale_duplicated_frames_are_held_never_counted_twice() -> None:
    g = RegisterGuard(rate_limit=lambda key: SDM630_BOUND)
    feed(g, [(-1, 99.0), (0, 100.0)])
    vals = feed(g, [(1, 101.0), (2, 102.0), (3, 101.0), (4, 104.0), (5, 105.0)])
    assert vals == [101.0, 102.0, 102.0, 104.0, 105.0]
    assert g.status()[KEY].held == 1


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
    feed(g, [(-60, 99.0), (0, 100.0), (60, 101.0)])
    res = g.update(KEY, 4 * 3600, 4100.0)  # away for 4 h, 4 kWh on the counter meanwhile
    assert res.value == 4100.0 and res.delta == 3999.0
    assert res.quality is Quality.ESTIMATED and res.event is GuardEvent.GAP


def test_nan_negative_and_backdated_readings_are_refused() -> None:
    g = RegisterGuard()
    samples = [(-60, 9.0), (0, 10.0), (60, math.nan), (120, -5.0), (180, 11.0), (150, 12.0)]
    assert feed(g, samples) == [9.0, 10.0, None, None, 11.0, None]
    assert g.status()[KEY].refused == 2


def test_unannounced_replacement_by_a_meter_that_starts_elsewhere_is_no_spike() -> None:
    g = RegisterGuard(rate_limit=lambda key: 20_000.0)
    # 4 kW for 30 min, then a new meter reading 2 345 Wh: from 0 that would be 9.4 kW for the last
    # 15 min, more than twice the 4 kW the circuit used — a meter that started elsewhere. Confirmed after
    # 3 polls; the step across is estimated at 4 kW for 15 min = 1 kWh, then its own steps count
    feed(g, [(0, 4000.0), (900, 5000.0), (1800, 6000.0)])
    res = [g.update(KEY, t, v) for t, v in ((2700, 2_345.0), (3600, 3_345.0), (4500, 4_345.0))]
    assert [r.accepted for r in res] == [False, False, True]
    assert res[-1].event is GuardEvent.REBASE and res[-1].quality is Quality.ESTIMATED
    assert res[-1].value == pytest.approx(6000.0 + 1000.0 + 2000.0)
    assert res[-1].backfill == ((2700.0, 7000.0), (3600.0, 8000.0))


def test_operator_confirmation_accepts_a_pending_replacement_at_once() -> None:
    g = RegisterGuard(rate_limit=lambda key: 10_000.0)
    feed(g, [(-60, 4990.0), (0, 5000.0), (60, 5010.0), (120, 12.0)])  # the new meter reads 12 Wh
    res = g.confirm(KEY)
    assert isinstance(res, GuardResult) and res.event is GuardEvent.RESET and res.value == 5022.0
    assert g.update(KEY, 180, 22.0).value == 5032.0


def test_changed_serial_number_accepts_the_next_decrease_without_waiting() -> None:
    g = RegisterGuard(rate_limit=lambda key: 10_000.0)
    feed(g, [(-60, 4990.0), (0, 5000.0), (60, 5010.0)])
    assert g.confirm(KEY, "serial number changed") is None  # armed for the next reading
    assert "serial number changed" in g.status()[KEY].text()
    res = g.update(KEY, 120, 3.0)
    assert res.accepted and res.event is GuardEvent.RESET and res.value == 5013.0
    assert g.status()[KEY].armed is None


def test_restart_without_raw_baseline_continues_the_register() -> None:
    g = RegisterGuard()
    g.restore({KEY: 7000.0})
    res = g.update(KEY, 100.0, 7050.0)
    assert res.value == 7050.0 and res.event is GuardEvent.RESTORED
    g2 = RegisterGuard()
    # the register had a reset in its past; 200 Wh at 40 s, at most 3.6 kW lately
    g2.restore({KEY: 9000.0}, raw={KEY: 200.0}, raw_ts={KEY: 40.0}, rates={KEY: 3600.0})
    res2 = g2.update(KEY, 100.0, 260.0)
    assert res2.value == 9060.0
    # a zero answer right after a restart is quarantined like any other
    assert not g2.update(KEY, 101.0, 0.0).accepted


def test_continuous_series_matches_the_stateful_guard() -> None:
    ts = np.arange(10) * 900.0
    # 1.2 kW: 300 Wh per quarter hour; a 6-digit Wh display wraps after 999 700, later a reset to 0
    raw = np.array([999_100.0, 999_400.0, 999_700.0, 0.0, 300.0, 600.0, 900.0, 20.0, 80.0, 140.0])
    t, v, est = continuous(ts, raw)
    # the first step waited for a confirming reading; the wrap is exact (1 000 000 − 999 700 + 0);
    # the reset counts the new counter from 0 (20 Wh)
    assert t.tolist() == ts.tolist()
    assert v.tolist() == [
        999_100.0,
        999_400.0,
        999_700.0,
        1_000_000.0,
        1_000_300.0,
        1_000_600.0,
        1_000_900.0,
        1_000_920.0,
        1_000_980.0,
        1_001_040.0,
    ]
    assert not est.any()
    t2, v2, est2 = continuous(np.array([0.0, 60.0, 7200.0]), np.array([1.0, 2.0, 50.0]), gap=900)
    assert v2.tolist() == [1.0, 2.0, 50.0] and est2.tolist() == [False, False, True]


# -- glitching meters -------------------------------------------------------------------------------
FLOAT32_MAX_KWH = 3.4028234663852886e38


def swapped_words(wh: float) -> float:
    """What a meter's float32 kWh register reads as when its two words arrive swapped [Wh]."""
    raw = struct.pack(">f", wh / 1000.0)
    return float(struct.unpack(">f", raw[2:] + raw[:2])[0]) * 1000.0


def as_float32_kwh(wh: float) -> float:
    """The value an SDM630 float32 kWh register holds [Wh]."""
    return float(struct.unpack(">f", struct.pack(">f", wh / 1000.0))[0]) * 1000.0


def test_a_glitching_sdm630_over_ten_minutes_adds_its_true_consumption() -> None:
    """4.5 kW for 600 s is 4.5 kW × 1/6 h = 750 Wh. One poll in 15 glitches, in turn: all-zero
    registers, swapped words, 3.4e38, the previous frame again, the frame of two polls back. At 1 s
    polls one poll is 1.25 Wh."""
    g = RegisterGuard(rate_limit=lambda key: SDM630_BOUND)
    e0, p, dt = 20_000.0, 4500.0, 1.0
    glitches = [0.0, None, FLOAT32_MAX_KWH * 1000.0, "repeat", "stale"]
    first = last = None
    quarantined_polls = 0
    previous = stale = as_float32_kwh(e0)
    for k in range(601):
        t = T0 + k * dt
        true = as_float32_kwh(e0 + p * k * dt / 3600.0)
        value = true
        if k % 15 == 7:
            kind = glitches[(k // 15) % 5]
            value = {None: swapped_words(true), "repeat": previous, "stale": stale}.get(kind, kind)  # type: ignore[assignment]
            quarantined_polls += kind != "repeat"  # the previous frame again is a step of 0
        res = g.update(KEY, t, value)
        previous, stale = true, previous
        if res.accepted:
            first = res.value if first is None else first
            last = res.value
        assert res.delta >= 0 and math.isfinite(res.value)
    assert first is not None and last is not None
    counted = last - first
    true_total = as_float32_kwh(e0 + 750.0) - as_float32_kwh(e0)  # 750 Wh within float32 resolution
    assert true_total == pytest.approx(750.0, abs=0.01)
    assert counted <= true_total + p * dt / 3600.0
    assert counted >= true_total - quarantined_polls * p * dt / 3600.0
    status = g.status()[KEY]
    assert status.confirmed == ()  # no glitch was taken for a reset
    # 40 glitches, 8 of each kind; a repeated previous frame is a step of 0, the others are refused
    # (a swapped word can read negative), quarantined or held
    assert status.quarantined + status.refused + status.held == quarantined_polls == 32
    assert status.held == 8


GLITCHES = ("zero", "swap", "max", "nan", "repeat", "reset")


@settings(max_examples=200, deadline=None)
@given(
    e0=st.floats(min_value=0.0, max_value=1e8),
    dt=st.sampled_from([1.0, 5.0, 60.0]),
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=20_000.0),  # true power of the interval [W]
            st.one_of(st.none(), st.none(), st.none(), st.sampled_from(GLITCHES)),
        ),
        min_size=2,
        max_size=120,
    ),
)
def test_glitches_never_add_more_than_one_poll_interval(
    e0: float, dt: float, steps: list[tuple[float, str | None]]
) -> None:
    """Random glitch sequences on a 138 kW circuit: the register never goes back or negative, never
    counts more than the true consumption plus one poll interval's energy, and when only glitches
    (no true reset) occurred it ends no lower than the truth at the last genuine reading it accepted."""
    # a run of glitches as long as the confirmation rule (3 polls spanning ≥ 30 s) is what a replaced
    # meter looks like; that case is for the serial number or the operator (tests above)
    run = longest = 0
    for _, glitch in steps[1:]:
        run = run + 1 if glitch not in (None, "reset") else 0
        longest = max(longest, run)
    assume(longest < CONFIRM_POLLS or (longest - 1) * dt < CONFIRM_SECONDS)
    # the same wrong value twice in a row, within the circuit's rating, is a load step that held: on an
    # idle meter two swapped answers in a row are that
    assume(not any(a == b == "swap" for (_, a), (_, b) in zip(steps, steps[1:], strict=False)))
    g = RegisterGuard(rate_limit=lambda key: SDM630_BOUND)
    counter, true_total = e0, 0.0
    true_at: dict[float, float] = {}
    genuine_at: dict[float, bool] = {}  # was the reading at t the meter's true counter?
    first: float | None = None
    last: GuardResult | None = None
    genuine = 0.0  # time of the last accepted reading that was the meter's true counter [s]
    largest = 0.0  # largest true energy of one poll interval so far [Wh]
    history = [e0]
    resets = 0
    for k, (p, glitch) in enumerate(steps):
        t = k * dt
        if k < 2:
            glitch = None  # a new series' first answer and first step have nothing to be judged by
        resets += glitch == "reset"
        if k:
            e = p * dt / 3600.0
            largest = max(largest, e)
            # a reset just below a round rollover value is indistinguishable from a wrap (wrap_modulus)
            assume(glitch != "reset" or wrap_modulus(counter, e) is None)
            counter = e if glitch == "reset" else counter + e
            true_total += e
        true_at[t] = true_total
        genuine_at[t] = glitch in (None, "reset")
        value = {
            "zero": 0.0,
            "swap": swapped_words(counter),
            "max": FLOAT32_MAX_KWH * 1000.0,
            "nan": math.nan,
            "repeat": history[max(len(history) - 3, 0)],
        }.get(glitch or "", counter)
        history.append(counter)
        res = g.update(KEY, t, value)
        assert res.delta >= 0
        if not res.accepted:
            continue
        assert math.isfinite(res.value)
        if first is None:
            first = res.value
        if last is not None:
            assert res.value >= last.value
        last = res
        if genuine_at[res.ts]:
            genuine = res.ts
        counted = res.value - first
        assert counted <= true_at[res.ts] + largest + 1e-6 * max(counter, 1.0)
    if first is None or last is None:
        return
    if resets == 0 and not g.status()[KEY].confirmed:
        # glitches alone lose nothing: the register holds the truth of the last genuine reading
        assert last.value - first >= true_at[genuine] - 1e-6 * max(e0, 1.0)


def test_status_says_what_awaits_confirmation_and_what_was_held() -> None:
    g = RegisterGuard(rate_limit=lambda key: SDM630_BOUND)
    feed(g, [(T0, 100.0), (T0 + 1, 101.0), (T0 + 2, 102.0), (T0 + 3, 101.0), (T0 + 4, 3.0), (T0 + 5, 3.0)])
    status = g.status()[KEY]
    assert (status.held, status.pending, status.pending_direction) == (1, 2, "lower")
    assert status.text("Europe/Berlin", now=T0) == (
        "1 stale reading held at the register; 2 lower readings awaiting confirmation since 12:00:04"
    )
    assert RegisterGuard().status() == {} and g.status()[KEY].ok is False


def test_the_status_says_why_an_outlier_was_quarantined() -> None:
    """10 Wh per second (36 kW), then +500 Wh in one second: above the recent rate, deferred; the next
    reading (the truth) does not confirm it, so it was an outlier — and the status says why. (500 Wh in
    a second is 1.8 MW: within the 10 MW rating, so the step is judged by the recent rate.)"""
    g = RegisterGuard(gap=900.0, max_power=1e7)  # a rating of 10 MW
    for k in range(5):
        g.update(KEY, T0 + k, 1000.0 + 10.0 * k)
    assert not g.update(KEY, T0 + 5, 1540.0).accepted  # deferred
    assert g.update(KEY, T0 + 6, 1060.0).accepted  # the truth: the deferred step was an outlier
    st_ = g.status()[KEY]
    assert st_.quarantined == 1
    assert st_.reason == "step 500 Wh in 1 s above the recent rate 36 kW, not confirmed by the next reading"
    # a reading implying more than the rating: 4 kWh in 1 s = 14.4 MW, waits as a candidate
    assert not g.update(KEY, T0 + 7, 5070.0).accepted
    st_ = g.status()[KEY]
    assert st_.pending == 1 and st_.reason == "step 4.01 kWh in 1 s above the circuit's rating 10 MW"
