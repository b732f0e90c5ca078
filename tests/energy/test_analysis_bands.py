"""Energy per local day and tariff band summed in the database (issue 16: a one-year Sankey under 1 s).

A tiny site in Europe/Berlin: ``main`` (grid) imports 1.5 kW, ``light`` (zone office) uses 1 kW, read
every 15 min; 0.5 kW is unmetered. Every day has two bands: ``night`` 0.10 EUR/kWh from 00:00 and
``day`` 0.40 EUR/kWh from 06:00 (local clock time). On the DST days the night band is an hour shorter
or longer:

* 2026-03-29 (23 h; 02:00 does not exist): night 00:00–06:00 is 5 h, day 06:00–24:00 18 h. ``light``
  uses 5 + 18 = 23 kWh costing 5 × 0.10 + 18 × 0.40 = 7.70 EUR;
* 2026-10-25 (25 h; 02:00 happens twice): night 7 h, day 18 h: 25 kWh costing 0.70 + 7.20 = 7.90 EUR.

Each answer is checked by hand, against the hourly path (one rollup row per hour, priced per hour)
and between SQLite and PostgreSQL (a database of its own, created and dropped here).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from meterhub.config import parse_config
from meterhub.config.schema import SiteConfig, StorageConfig
from meterhub.energy.analysis import Analysis, compare, flow, ranking
from meterhub.model.readings import Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage import Storage, open_storage

BERLIN = ZoneInfo("Europe/Berlin")
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"

SITE = """
site: {name: Bands, timezone: Europe/Berlin, currency: EUR, co2_factor: 0.5}
buses: [{id: b1, kind: modbus-tcp, port: 5020}]
devices:
  - {id: m1, bus: b1, unit: 1, profile: eastron-sdm630}
  - {id: m2, bus: b1, unit: 2, profile: eastron-sdm630}
circuits:
  - {id: main, device: m1, purpose: grid}
  - {id: light, device: m2, zone: office}
energy:
  tariffs:
    rates: [{id: night, price: 0.10}, {id: day, price: 0.40}]
    seasons:
      - start: "01-01"
        weekday: [{from: "00:00", rate: night}, {from: "06:00", rate: day}]
"""

LIGHT = SeriesKey("light", "energy_active_import", Phase.TOTAL)
#: Constant loads [kW] per (circuit, register).
LOADS = {("main", "energy_active_import"): 1.5, ("main", "energy_active_export"): 0.0}
LOADS[("light", "energy_active_import")] = 1.0
#: The spans read (local, inclusive): each DST Sunday whole with the hour before and after.
SPANS = (("2026-03-28T23:00", "2026-03-30T01:00"), ("2026-10-24T23:00", "2026-10-26T01:00"))


def local(text: str) -> float:
    """A local Berlin time [s, UTC]."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def site() -> SiteConfig:
    return parse_config(SITE)


def readings(spans: tuple[tuple[str, str], ...] = SPANS) -> list[Reading]:
    """Registers every 15 min over the spans; each goes on from where the previous span left it (a
    meter standing still in between)."""
    out: list[Reading] = []
    hours = 0.0  # hours of load counted so far
    for first, last in spans:
        t0, t1 = local(first), local(last)
        for k in range(int((t1 - t0) // 900) + 1):
            for (c, q), kw in LOADS.items():
                out.append(Reading(t0 + 900 * k, c, q, Phase.TOTAL, kw * 1000.0 * (hours + k / 4)))
        hours += (t1 - t0) / 3600
    return out


def fill(s: Storage, spans: tuple[tuple[str, str], ...] = SPANS) -> Storage:
    s.write(readings(spans))
    s.flush()
    return s


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Storage]:
    s = fill(open_storage(StorageConfig(), tmp_path, timezone="Europe/Berlin"))
    yield s
    s.close()


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Storage]:
    """The same readings in a PostgreSQL database of its own, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_DSN!r} is unreachable: {str(exc).strip()}")
    name = f"mh_bands_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE DATABASE {name}")
    s: Storage | None = None
    try:
        cfg = StorageConfig(backend="postgres", dsn=f"host=127.0.0.1 port=5432 user=postgres dbname={name}")
        s = fill(open_storage(cfg, tmp_path, timezone="Europe/Berlin"))
        yield s
    finally:
        if s is not None:
            s.close()
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def bands(day: str, nxt: str) -> list[float]:
    """Edges of a day's two bands [s]: midnight, 06:00, the next midnight (local)."""
    return [local(f"{day}T00:00"), local(f"{day}T06:00"), local(f"{nxt}T00:00")]


def test_energy_per_band_on_the_dst_days_is_the_local_clock_hours(lite: Storage) -> None:
    spring = lite.delta_sums([LIGHT], bands("2026-03-29", "2026-03-30"))[LIGHT]
    autumn = lite.delta_sums([LIGHT], bands("2026-10-25", "2026-10-26"))[LIGHT]
    assert spring.tolist() == [5000.0, 18000.0]  # [Wh]: 02:00 does not exist
    assert autumn.tolist() == [7000.0, 18000.0]  # 02:00 twice
    # the generic version (Σ of the history's hour deltas) agrees with the database's sums
    assert Storage.delta_sums(lite, [LIGHT], bands("2026-03-29", "2026-03-30"))[LIGHT].tolist() == [
        5000.0,
        18000.0,
    ]
    nothing = lite.delta_sums(
        [SeriesKey("nope", "energy_active_import", Phase.TOTAL)], bands("2026-03-29", "2026-03-30")
    )
    assert list(nothing.values())[0].tolist() == [0.0, 0.0]  # a series never stored


def test_span_edges_must_be_on_bucket_starts(lite: Storage) -> None:
    with pytest.raises(
        ValueError, match=r"span edge 2026-03-29T04:30:00\+00:00 is not the start of a 1h bucket"
    ):
        lite.delta_sums([LIGHT], [local("2026-03-29T00:00"), local("2026-03-29T06:30")])
    with pytest.raises(ValueError, match="not '1d'"):
        lite.delta_sums([LIGHT], bands("2026-03-29", "2026-03-30"), "1d")


@pytest.mark.parametrize(
    ("day", "nxt", "kwh", "cost"),
    [("2026-03-29", "2026-03-30", 23.0, 7.70), ("2026-10-25", "2026-10-26", 25.0, 7.90)],
)
def test_flow_over_a_dst_day_prices_each_band_and_equals_the_hourly_path(
    lite: Storage, day: str, nxt: str, kwh: float, cost: float
) -> None:
    d0, d1 = date.fromisoformat(day), date.fromisoformat(nxt)
    rep = flow(lite, site(), start=d0, end=d1)
    links = {(x["source"], x["target"]): x for x in rep["links"]}
    light = links[("zone:office", "circuit:light")]
    assert (light["kwh"], light["cost"], light["co2"]) == (kwh, pytest.approx(cost), pytest.approx(kwh * 0.5))
    assert links[("site", "unmetered")]["kwh"] == kwh / 2 and rep["balance"]["grid_cost"] == pytest.approx(
        1.5 * cost
    )
    summed = Analysis(lite, site(), d0, d1)
    hourly = Analysis(lite, site(), d0, d1, hourly=True)
    assert summed.summed and len(summed.starts) == 2  # the night band and the day band
    assert not hourly.summed and len(hourly.starts) == kwh  # one bucket per hour of the local day
    for cid in ("main", "light"):
        assert summed.summary(summed.circuit(cid)[0]) == hourly.summary(hourly.circuit(cid)[0])


def test_compare_week_and_ranking_over_the_spring_change(lite: Storage) -> None:
    # the ISO week 2026-03-23 … 03-29 has data on its Saturday (23:15 … 23:45: three 15-min steps at
    # the day price) and its Sunday, the DST day
    rep = compare(lite, site(), period="week", at=date(2026, 3, 29))
    assert rep["series"]["this"] == [0.0] * 5 + [0.75 * 1.5, 23.0 * 1.5]
    light = next(r for r in rep["rows"] if r["id"] == "light")
    assert light["this"]["kwh"] == 23.75 and light["this"]["cost"] == pytest.approx(0.75 * 0.40 + 7.70)
    rows = ranking(lite, site(), start=date(2026, 3, 29), end=date(2026, 3, 30), by="cost")["rows"]
    assert [(r["kind"], r["id"], r["cost"]) for r in rows] == [
        ("zone", "office", pytest.approx(7.70)),
        ("circuit", "light", pytest.approx(7.70)),
    ]


def test_the_open_hour_is_counted(tmp_path: Path) -> None:
    # readings 00:00 … 10:30: the hour 10:00 is still open (not stored until it closes)
    s = fill(
        open_storage(StorageConfig(), tmp_path, timezone="Europe/Berlin"),
        (("2026-06-03T00:00", "2026-06-03T10:30"),),
    )
    try:
        sums = s.delta_sums(
            [LIGHT], [local("2026-06-03T00:00"), local("2026-06-03T10:00"), local("2026-06-04T00:00")]
        )
    finally:
        s.close()
    # [Wh]: the steps ending 00:15 … 09:45 (39 × 250 Wh), then those ending 10:00, 10:15 and 10:30
    assert sums[LIGHT].tolist() == [9750.0, 750.0]


@pytest.mark.postgres
def test_sqlite_and_postgresql_sum_the_same_bands(lite: Storage, pg: Storage) -> None:
    edges = [*bands("2026-03-29", "2026-03-30"), *bands("2026-10-25", "2026-10-26")]
    edges = sorted(set(edges))
    keys = [LIGHT, SeriesKey("main", "energy_active_import", Phase.TOTAL)]
    a, b = lite.delta_sums(keys, edges), pg.delta_sums(keys, edges)
    assert {k: v.tolist() for k, v in a.items()} == {k: v.tolist() for k, v in b.items()}
    # spring night, spring day, the months between (the steps ending 03-30 00:00 … 01:00 and
    # 10-24 23:15 … 23:45, 8 × 250 Wh), autumn night, autumn day [Wh]
    assert a[LIGHT].tolist() == [5000.0, 18000.0, 2000.0, 7000.0, 18000.0]
    for d0, d1 in ((date(2026, 3, 29), date(2026, 3, 30)), (date(2026, 10, 25), date(2026, 10, 26))):
        assert flow(lite, site(), start=d0, end=d1) == flow(pg, site(), start=d0, end=d1)


@pytest.mark.postgres
def test_postgresql_band_sums_leave_the_session_as_it_was(pg: Storage, tmp_path: Path) -> None:
    # the sums run in a transaction of their own with a larger work_mem for that statement only
    before = pg._execute("SHOW work_mem")  # type: ignore[attr-defined]
    assert pg.delta_sums([LIGHT], bands("2026-03-29", "2026-03-30"))[LIGHT].tolist() == [5000.0, 18000.0]
    assert pg._execute("SHOW work_mem") == before  # type: ignore[attr-defined]
    assert pg._conn().info.transaction_status.name == "IDLE"  # type: ignore[attr-defined]
    # the next flush still commits (no transaction left open), and a read-only session (``meterhub
    # report``) sums the same
    fill(pg, (("2026-11-04T00:00", "2026-11-04T01:00"),))
    dsn = pg.dsn  # type: ignore[attr-defined]
    cfg = StorageConfig(backend="postgres", dsn=dsn)
    reader = open_storage(cfg, tmp_path / "reader", spool=False, read_only=True)
    try:
        edges = [local("2026-11-04T00:00"), local("2026-11-04T01:00"), local("2026-11-05T00:00")]
        # [Wh]: the register starts again from 0 (a drop adds nothing); the steps ending 00:15 …
        # 00:45 in the first hour, the one ending 01:00 in the open hour after it
        assert reader.delta_sums([LIGHT], edges)[LIGHT].tolist() == [750.0, 250.0]
        assert reader.delta_sums([LIGHT], bands("2026-10-25", "2026-10-26"))[LIGHT].tolist() == [
            7000.0,
            18000.0,
        ]
    finally:
        reader.close()
