"""Central's rollups on a real PostgreSQL database: values worked out by hand on a small data set, a late
replay three days back rebuilding only its buckets, idempotent re-delivery, and the views (energy, peak,
cost, CO2) equal to a raw-points computation.

Data set: site ``s1``, circuit ``main``, one point every 15 min (``ts`` = interval end). The register
``energy_active_import`` reads ``1000·k`` Wh at ``ts = T0 + 900·k`` (4 kW steady), the power reads
``4000 + 100·(k mod 4)`` W, so every whole hour has the powers 4000…4300 in some order.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg
import pytest

from meterhub.central.config import CentralConfig, CentralConfigError, parse_central_config
from meterhub.central.payload import CircuitMessage
from meterhub.central.rollups import PassResult, RollupTask, install, rollup_pass
from meterhub.central.store import Batch, CentralStore
from meterhub.central.views import FleetViews
from meterhub.model.quantities import Q

pytestmark = pytest.mark.postgres

T0 = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())  # a UTC midnight
H, D, STEP = 3600, 86400, 900


#: the message shape of circuit main: (quantity, phase, unit) per value
SHAPE = ((Q.ENERGY_ACTIVE_IMPORT.value, "total", "Wh"), (Q.ACTIVE_POWER.value, "total", "W"))


def _msg(k: int, site: str = "s1", offset: float = 0.0) -> CircuitMessage:
    """Point number ``k`` of ``site`` (``offset`` [Wh] added to its register)."""
    return CircuitMessage(
        site=site,
        circuit="main",
        name="Main",
        zone=None,
        ts=T0 + STEP * k,
        interval=STEP,
        shape=SHAPE,
        values=(1000.0 * k + offset, 4000.0 + 100 * (k % 4)),
        qualities=(0, 0),
        samples=(1, 1),
    )


def _rows(dsn: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as db:
        return db.execute(sql, params).fetchall()


def _pass(dsn: str, now: float) -> PassResult:
    with psycopg.connect(dsn, autocommit=True) as db:
        res = rollup_pass(db, now=now)
    assert res is not None  # no other pass runs
    return res


def _catch_up(dsn: str, now: float) -> tuple[int, int, int]:
    """Passes until the rollups reach ``now``'s last ended hour (a pass advances a day at most): the
    boundary, and the marks claimed and hours rebuilt by all of them."""
    claimed = hours = 0
    while True:
        res = _pass(dsn, now)
        claimed, hours = claimed + res.claimed, hours + res.hours
        if res.through == int(now - 60) // H * H:
            return int(res.through), claimed, hours


def _series(dsn: str, quantity: str) -> int:
    return int(_rows(dsn, "SELECT id FROM fleet_series WHERE quantity = %s", (quantity,))[0][0])


def _hour(dsn: str, table: str, sid: int, bucket: int) -> tuple[object, ...]:
    return _rows(
        dsn,
        f"SELECT n, total, lo, hi, last, last_ts, delta FROM {table} WHERE series = %s AND bucket = %s",
        (sid, bucket),
    )[0]


def test_hourly_and_daily_rollups_by_hand(dsn: str) -> None:
    store = CentralStore(dsn)
    store.connect()
    # k = 0 … 192: T0 (the last point of the day before) to T0 + 2 days
    store.write(Batch(messages=[_msg(k) for k in range(193)]), now=T0 + 2 * D)
    # nothing was late: the passes take the newly ended hours, two series × (48 hours + the one ending at T0)
    assert _catch_up(dsn, now=T0 + 2 * D + 120) == (T0 + 2 * D, 0, 2 * (48 + 1))
    energy, power = _series(dsn, Q.ENERGY_ACTIVE_IMPORT.value), _series(dsn, Q.ACTIVE_POWER.value)
    # hour (T0, T0+1h]: k = 1…4 (the point at T0+1h belongs to it); the step from k = 0 (at T0) counts
    assert _hour(dsn, "fleet_rollup_1h", energy, T0) == (4, 10000.0, 1000.0, 4000.0, 4000.0, T0 + H, 4000.0)
    # power k = 1…4: 4100, 4200, 4300, 4000 (delta of a power is meaningless but defined: 3 × 100 up)
    assert _hour(dsn, "fleet_rollup_1h", power, T0) == (4, 16600.0, 4000.0, 4300.0, 4000.0, T0 + H, 300.0)
    # the hour before T0 holds k = 0 only: no predecessor, delta 0
    assert _hour(dsn, "fleet_rollup_1h", energy, T0 - H) == (1, 0.0, 0.0, 0.0, 0.0, T0, 0.0)
    # day (T0, T0+1d]: k = 1…96, 96 kWh; the second day k = 97…192, another 96 kWh
    assert _hour(dsn, "fleet_rollup_1d", energy, T0)[::6] == (96, 96000.0)
    assert _hour(dsn, "fleet_rollup_1d", energy, T0 + D)[0] == 96
    assert _hour(dsn, "fleet_rollup_1d", energy, T0 + D)[4:] == (192000.0, T0 + 2 * D, 96000.0)
    n, total, lo, hi = _hour(dsn, "fleet_rollup_1d", power, T0)[:4]
    assert (n, total / n, lo, hi) == (96, 4150.0, 4000.0, 4300.0)
    # a second pass with nothing new does nothing
    again = _pass(dsn, now=T0 + 2 * D + 300)
    assert (again.claimed, again.hours, again.days) == (0, 0, 0)


def test_a_register_drop_adds_nothing(dsn: str) -> None:
    store = CentralStore(dsn)
    store.connect()
    msgs = [_msg(k) for k in range(5)] + [_msg(k, offset=-4500.0) for k in range(5, 9)]
    store.write(Batch(messages=msgs), now=T0 + 3 * H)
    _pass(dsn, now=T0 + 3 * H)
    energy = _series(dsn, Q.ENERGY_ACTIVE_IMPORT.value)
    # second hour: 4000 (k=4) → 500, 1500, 2500, 3500: the drop adds 0, the three steps 3000 Wh
    assert _hour(dsn, "fleet_rollup_1h", energy, T0 + H)[6] == 3000.0


def test_late_replay_rebuilds_only_its_buckets_and_totals_equal_raw(dsn: str) -> None:
    store = CentralStore(dsn)
    store.connect()
    now = T0 + 4 * D + 600
    gap = T0 + D + 5 * H  # the hour (gap, gap + 1h] of day 2: three days before `now`
    missing = [k for k in range(4 * 96 + 1) if gap < T0 + STEP * k <= gap + H]
    assert missing == [117, 118, 119, 120]
    store.write(Batch(messages=[_msg(k) for k in range(4 * 96 + 1) if k not in missing]), now=now)
    assert _catch_up(dsn, now=now)[:2] == (T0 + 4 * D, 0)
    energy = _series(dsn, Q.ENERGY_ACTIVE_IMPORT.value)
    # without the gap's points the next hour's first step spans the gap: 1000·(121 − 116) + 3 × 1000
    assert _hour(dsn, "fleet_rollup_1h", energy, gap + H)[6] == 8000.0
    assert _rows(dsn, "SELECT count(*) FROM fleet_rollup_1h WHERE bucket = %s", (gap,))[0][0] == 0

    # the gateway replays its outbox: the missing hour, plus (at-least-once) the hour after it again
    res = store.write(Batch(messages=[_msg(k) for k in [*missing, 121, 122]]), now=now + 60)
    assert res.new_points == 8
    power = _series(dsn, Q.ACTIVE_POWER.value)
    marks = _rows(dsn, "SELECT series, bucket FROM fleet_rollup_dirty ORDER BY bucket, series")
    assert sorted(marks) == sorted([(energy, gap), (power, gap)])
    second = _pass(dsn, now=now + 120)
    # 2 marks (one hour of 2 series); rebuilt: that hour and the next per series, and their one day
    assert (second.claimed, second.hours, second.days) == (2, 4, 2)
    assert _hour(dsn, "fleet_rollup_1h", energy, gap) == (
        4,
        1000.0 * sum(missing),
        117000.0,
        120000.0,
        120000.0,
        gap + H,
        4000.0,
    )
    assert _hour(dsn, "fleet_rollup_1h", energy, gap + H)[6] == 4000.0
    assert _hour(dsn, "fleet_rollup_1d", energy, T0 + D)[::6] == (96, 96000.0)

    # every hourly delta equals the raw register difference over its hour (last at or before each end)
    raw = dict(_rows(dsn, "SELECT ts, value FROM fleet_points WHERE series = %s", (energy,)))
    for bucket, delta in _rows(dsn, "SELECT bucket, delta FROM fleet_rollup_1h WHERE series = %s", (energy,)):
        before = [v for t, v in raw.items() if t <= bucket]
        upto = [v for t, v in raw.items() if t <= bucket + H]
        assert delta == (max(upto) - max(before) if before else max(upto) - min(upto)), bucket

    # the views: on rollups and raw points alike — 4 days = 384 kWh, peak 4300 W
    cfg = CentralConfig(dsn=dsn)
    on = FleetViews(cfg, store, clock=lambda: now)
    off = FleetViews(cfg, CentralStore(dsn), clock=lambda: now, use_rollups=False)
    for start, end in [(T0, T0 + 4 * D), (T0 + 1234, T0 + 3 * D + 4321), (gap, gap + H), (T0 - D, now)]:
        a, b = on.compare(start, end)["sites"][0], off.compare(start, end)["sites"][0]
        assert (a["energy_kwh"], a["peak_demand_w"]) == (b["energy_kwh"], b["peak_demand_w"]), (start, end)
    assert on.compare(T0, T0 + 4 * D)["sites"][0]["energy_kwh"] == 384.0
    assert on.compare(T0, T0 + 4 * D)["sites"][0]["peak_demand_w"] == 4300.0
    # (T0+1234, T0+3d+4321]: last point T0+3d+3600 (k=292) minus the last before T0+1234 (k=1) → 291 kWh
    assert on.compare(T0 + 1234, T0 + 3 * D + 4321)["sites"][0]["energy_kwh"] == 291.0

    # the same replay delivered again: nothing inserted, nothing marked, nothing rebuilt
    before_rows = _rows(dsn, "SELECT * FROM fleet_rollup_1h ORDER BY series, bucket")
    res = store.write(Batch(messages=[_msg(k) for k in [*missing, 121, 122]]), now=now + 180)
    assert res.new_points == 0
    assert _rows(dsn, "SELECT count(*) FROM fleet_rollup_dirty")[0][0] == 0
    third = _pass(dsn, now=now + 240)
    assert (third.claimed, third.hours, third.days) == (0, 0, 0)
    assert _rows(dsn, "SELECT * FROM fleet_rollup_1h ORDER BY series, bucket") == before_rows


def test_history_of_a_long_span_reads_hourly_rollups(dsn: str) -> None:
    store = CentralStore(dsn)
    store.connect()
    store.write(Batch(messages=[_msg(k) for k in range(8 * 96 + 1)]), now=T0 + 8 * D)
    _catch_up(dsn, now=T0 + 8 * D + 120)
    views = FleetViews(CentralConfig(dsn=dsn), store, clock=lambda: T0 + 8 * D)
    h = views.history("s1", "main", Q.ACTIVE_POWER.value, "total", T0, T0 + 8 * D)
    assert h["resolution"] == "1h" and len(h["points"]) == 8 * 24
    first = h["points"][0]
    assert first["ts"] == "2026-12-01T01:00:00Z"
    assert (first["value"], first["min"], first["max"], first["count"]) == (4150.0, 4000.0, 4300.0, 4)
    short = views.history("s1", "main", Q.ACTIVE_POWER.value, "total", T0, T0 + D)
    assert short["resolution"] == "raw" and len(short["points"]) == 96


def test_compare_gives_cost_and_co2_from_the_tariffs(dsn: str) -> None:
    store = CentralStore(dsn)
    store.connect()
    store.write(Batch(messages=[_msg(k, site) for site in ("s1", "s2") for k in range(97)]), now=T0 + D + 600)
    _pass(dsn, now=T0 + D + 600)
    cfg = parse_central_config(
        "tariff: {price_per_kwh: 0.25, currency: EUR}\n"
        "co2_g_per_kwh: 400\n"
        "sites:\n"
        "  - id: s2\n"
        "    tariff: {price_per_kwh: 0.3, currency: CHF}\n"
        "    co2_g_per_kwh: 30\n",
        "central.yaml",
    )
    rows = {r["id"]: r for r in FleetViews(cfg, store).compare(T0, T0 + D)["sites"]}
    # 96 kWh each: 96 × 0.25 EUR = 24 EUR, 96 × 400 g = 38.4 kg; s2: 28.80 CHF, 2.88 kg
    assert (rows["s1"]["energy_kwh"], rows["s1"]["cost"], rows["s1"]["currency"], rows["s1"]["co2_kg"]) == (
        96.0,
        24.0,
        "EUR",
        38.4,
    )
    assert (rows["s2"]["cost"], rows["s2"]["currency"], rows["s2"]["co2_kg"]) == (28.8, "CHF", 2.88)
    bare = FleetViews(CentralConfig(dsn=dsn), store).compare(T0, T0 + D)["sites"][0]
    assert (bare["cost"], bare["currency"], bare["co2_kg"]) == (None, None, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tariff: {price_per_kwh: 0.3, currency: euro}\n",
            "central.yaml:1: tariff.currency: String should match",
        ),
        (
            "sites:\n  - id: a\n    co2_g_per_kwh: -5\n",
            "central.yaml:3: sites.0.co2_g_per_kwh: Input should be",
        ),
        ("rollup_every: 0\n", "central.yaml:1: rollup_every: Input should be greater than or equal to 1"),
    ],
)
def test_tariff_and_co2_errors_name_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(CentralConfigError, match=message.replace(".", r"\.")):
        parse_central_config(text, "central.yaml")


def test_the_workers_periodic_task_runs_passes(dsn: str) -> None:
    store = CentralStore(dsn)
    store.connect()
    store.write(Batch(messages=[_msg(k) for k in range(9)]), now=T0 + 2 * H)
    task = RollupTask(CentralStore(dsn), every=0.05)
    task.start()
    try:
        deadline = time.monotonic() + 20
        while task.last is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        task.stop()
    assert task.status()["through"] is not None
    energy = _series(dsn, Q.ENERGY_ACTIVE_IMPORT.value)
    assert _hour(dsn, "fleet_rollup_1h", energy, T0 + H)[6] == 4000.0


def test_no_rollups_on_a_hypertable_layout() -> None:
    # TimescaleDB is not installed here: the branch only declines (the views then read raw points)
    assert install(None, "hypertable") is False  # type: ignore[arg-type]
