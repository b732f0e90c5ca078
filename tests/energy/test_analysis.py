"""Energy analysis (flow, compare, ranking, heat map) on a synthetic site with constant loads.

The site (Europe/Berlin): ``main`` (grid) imports 2 kW, ``pv`` generates 0.5 kW, ``light`` 1 kW and
``hvac`` 0.5 kW in zone ``office``, ``pump`` 0.25 kW without a zone. Consumption is 2 + 0.5 = 2.5 kW,
the sub-meters explain 1.75 kW, so 0.75 kW is unmetered. A day (24 h) is therefore: grid 48 kWh, PV
12 kWh, light 24, hvac 12, office 36, pump 6, unmetered 18 kWh. Tariff: weekdays 0.30 EUR/kWh from
07:00 to 20:00 (13 h), 0.20 otherwise (11 h); weekends 0.20 all day — so a weekday kW costs
13 × 0.30 + 11 × 0.20 = 6.10 EUR. CO2 0.4 kg/kWh.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from meterhub.config import parse_config
from meterhub.config.schema import SiteConfig
from meterhub.energy.analysis import compare, flow, heatmap, ranking
from meterhub.energy.reports import ReportError
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.web.app import create_app

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

BERLIN = ZoneInfo("Europe/Berlin")

SITE = """
site: {name: Plant, timezone: Europe/Berlin, currency: EUR, co2_factor: 0.4}
buses: [{id: b1, kind: modbus-tcp, port: 5020}]
devices:
  - {id: m1, bus: b1, unit: 1, profile: eastron-sdm630}
  - {id: m2, bus: b1, unit: 2, profile: eastron-sdm630}
  - {id: m3, bus: b1, unit: 3, profile: eastron-sdm630}
  - {id: m4, bus: b1, unit: 4, profile: eastron-sdm630}
  - {id: m5, bus: b1, unit: 5, profile: eastron-sdm630}
circuits:
  - {id: main, device: m1, purpose: grid}
  - {id: pv, device: m2, purpose: renewable}
  - {id: light, device: m3, zone: office}
  - {id: hvac, device: m4, zone: office}
  - {id: pump, device: m5}
energy:
  tariffs:
    rates: [{id: peak, price: 0.30}, {id: offpeak, price: 0.20}]
    seasons:
      - start: "01-01"
        weekday: [{from: "00:00", rate: offpeak}, {from: "07:00", rate: peak}, {from: "20:00", rate: offpeak}]
        weekend: [{from: "00:00", rate: offpeak}]
  virtual:
    - {id: rest, formula: "main - light - hvac - pump"}
"""

#: Constant loads [kW] per (circuit, register).
LOADS = {
    ("main", "energy_active_import"): 2.0,
    ("main", "energy_active_export"): 0.0,
    ("pv", "energy_active_export"): 0.5,
    ("light", "energy_active_import"): 1.0,
    ("hvac", "energy_active_import"): 0.5,
    ("pump", "energy_active_import"): 0.25,
}


def site() -> SiteConfig:
    return parse_config(SITE)


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def readings(
    first: str, last: str, scale: float = 1.0, start: float = 0.0, loads: dict[tuple[str, str], float] = LOADS
) -> list[Reading]:
    """Registers read every 15 min from ``first`` to ``last`` (local, inclusive), loads × ``scale``,
    counting up from ``start`` kWh × load [kW] (begin an hour before the first day to have it whole)."""
    t0, t1 = local(first), local(last)
    out = []
    for k in range(int((t1 - t0) // 900) + 1):
        for (c, q), kw in loads.items():
            out.append(Reading(t0 + 900 * k, c, q, Phase.TOTAL, kw * (1000.0 * start + scale * 250.0 * k)))
    return out


def store(tmp_path: Path, *spans: tuple[str, str, float]) -> Any:
    """Spans of readings in time order; each register goes on from where the previous span left it
    (standing still in between, as a meter does when nothing is used)."""
    cfg = site()
    s = open_storage(cfg.storage, tmp_path, timezone="Europe/Berlin")
    reached = 0.0  # [h at 1 kW]
    for first, last, scale in sorted(spans):
        s.write(readings(first, last, scale, reached))
        reached += scale * (local(last) - local(first)) / 3600
    s.flush()
    return s


@pytest.fixture
def june(tmp_path: Path) -> Iterator[Any]:
    """2026-06-03 (a Wednesday) and 2026-06-06 (a Saturday) whole."""
    s = store(
        tmp_path, ("2026-06-02T23:00", "2026-06-04T01:00", 1.0), ("2026-06-05T23:00", "2026-06-07T01:00", 1.0)
    )
    yield s
    s.close()


def test_flow_of_a_weekday_is_the_constant_loads(june: Any) -> None:
    rep = flow(june, site(), start=date(2026, 6, 3), end=date(2026, 6, 4))
    links = {(x["source"], x["target"]): x for x in rep["links"]}
    kwh = {k: v["kwh"] for k, v in links.items()}
    assert kwh == {
        ("grid", "site"): 48.0,
        ("circuit:pv", "site"): 12.0,
        ("site", "zone:office"): 36.0,
        ("zone:office", "circuit:light"): 24.0,
        ("zone:office", "circuit:hvac"): 12.0,
        ("site", "circuit:pump"): 6.0,
        ("site", "unmetered"): 18.0,
    }
    assert links[("zone:office", "circuit:light")]["cost"] == pytest.approx(6.10)  # 13 h × 0.30 + 11 h × 0.20
    assert links[("site", "unmetered")]["cost"] == pytest.approx(0.75 * 6.10)
    assert links[("grid", "site")]["co2"] == pytest.approx(48 * 0.4)
    assert rep["balance"] == {
        "grid_import_kwh": 48.0,
        "grid_export_kwh": 0.0,
        "generation_kwh": 12.0,
        "consumption_kwh": 60.0,
        "metered_kwh": 42.0,
        "unmetered_kwh": 18.0,
        "grid_cost": pytest.approx(2 * 6.10),
    }
    names = {n["id"]: n for n in rep["nodes"]}
    assert "export" not in names  # nothing exported: no empty node
    assert names["site"]["kwh"] == 60.0 and rep["timezone"] == "Europe/Berlin"


def test_flow_of_a_weekend_day_is_all_offpeak(june: Any) -> None:
    rep = flow(june, site(), start=date(2026, 6, 6), end=date(2026, 6, 7))
    light = next(x for x in rep["links"] if x["target"] == "circuit:light")
    assert light["kwh"] == 24.0 and light["cost"] == pytest.approx(24 * 0.20)


def test_flow_with_export_and_sub_meters_adding_up_to_more_than_the_site(tmp_path: Path) -> None:
    # PV 2 kW, grid imports 0.2 kW and exports 0.5 kW: the site uses 0.2 − 0.5 + 2 = 1.7 kW, the
    # sub-meters say 1.75 kW, so the unmetered rest is −0.05 kW (−1.2 kWh a day): drawn as 0
    loads = {**LOADS, ("main", "energy_active_import"): 0.2, ("main", "energy_active_export"): 0.5}
    loads[("pv", "energy_active_export")] = 2.0
    cfg = parse_config(
        SITE.replace("{id: offpeak, price: 0.20}", "{id: offpeak, price: 0.20, export_price: 0.08}")
    )
    s = open_storage(cfg.storage, tmp_path, timezone="Europe/Berlin")
    s.write(readings("2026-06-05T23:00", "2026-06-07T01:00", loads=loads))  # Saturday: offpeak all day
    s.flush()
    try:
        rep = flow(s, cfg, start=date(2026, 6, 6), end=date(2026, 6, 7))
    finally:
        s.close()
    links = {(x["source"], x["target"]): x for x in rep["links"]}
    assert links[("site", "export")]["kwh"] == 12.0
    assert links[("site", "export")]["cost"] == pytest.approx(12 * 0.08)  # the feed-in credit
    assert ("site", "unmetered") not in links
    assert rep["balance"]["unmetered_kwh"] == pytest.approx(-1.2)
    assert rep["balance"]["consumption_kwh"] == pytest.approx(40.8)
    assert rep["balance"]["grid_cost"] == pytest.approx(4.8 * 0.20 - 12 * 0.08)


def test_ranking_by_energy_cost_and_peak(june: Any) -> None:
    rep = ranking(june, site(), start=date(2026, 6, 3), end=date(2026, 6, 4), by="cost")
    rows = [(r["kind"], r["id"], r["rank"]) for r in rep["rows"]]
    # rest = main − light − hvac − pump = 2 − 1.75 = 0.25 kW, as much as pump: a tie goes by id
    assert rows == [
        ("zone", "office", 1),
        ("circuit", "light", 1),
        ("circuit", "hvac", 2),
        ("circuit", "pump", 3),
        ("circuit", "rest", 4),
    ]
    by_id = {r["id"]: r for r in rep["rows"]}
    assert by_id["light"]["kwh"] == 24.0 and by_id["light"]["peak_kw"] is None  # only for by=peak
    assert by_id["hvac"]["cost"] == pytest.approx(3.05) and by_id["hvac"]["co2"] == pytest.approx(4.8)
    peaks = ranking(june, site(), start=date(2026, 6, 3), end=date(2026, 6, 4), by="peak")["rows"]
    assert [(r["id"], r["peak_kw"]) for r in peaks] == [
        ("office", 1.5),
        ("light", 1.0),
        ("hvac", 0.5),
        ("pump", 0.25),
        ("rest", 0.25),
    ]
    assert by_id["rest"]["kwh"] == pytest.approx(6.0)  # 0.25 kW × 24 h
    with pytest.raises(ReportError, match="by='watts' is not one of energy, cost, co2, peak"):
        ranking(june, site(), start=date(2026, 6, 3), end=date(2026, 6, 4), by="watts")


def test_compare_day_with_previous_and_last_year(tmp_path: Path) -> None:
    s = store(
        tmp_path,
        # a day holds the 15-min steps that end in it (00:00 … 23:45): the load changes at 23:45
        ("2026-06-02T23:45", "2026-06-04T01:00", 1.0),  # 2026-06-03 (Wed): loads × 1
        ("2026-06-01T23:00", "2026-06-02T23:45", 2.0),  # 2026-06-02 (Tue): loads × 2
        ("2025-06-02T23:00", "2025-06-04T01:00", 0.5),  # 2025-06-03 (Tue): loads × 0.5
    )
    try:
        rep = compare(s, site(), period="day", at=date(2026, 6, 3))
    finally:
        s.close()
    assert rep["periods"] == {
        "this": {"from": "2026-06-03", "to": "2026-06-04"},
        "previous": {"from": "2026-06-02", "to": "2026-06-03"},
        "last_year": {"from": "2025-06-03", "to": "2025-06-04"},
    }
    assert {k: v["kwh"] for k, v in rep["total"].items()} == {
        "this": 60.0,
        "previous": 120.0,
        "last_year": 30.0,
    }
    light = next(r for r in rep["rows"] if r["id"] == "light")
    assert (light["this"]["kwh"], light["previous"]["kwh"], light["last_year"]["kwh"]) == (
        24.0,
        48.0,
        12.0,
    )
    assert light["this"]["cost"] == pytest.approx(6.10) and light["change_last_year"] == pytest.approx(3.05)
    assert rep["bucket"] == "hour" and len(rep["series"]["this"]) == 24
    assert rep["series"]["this"][0] == 2.5 and rep["series"]["last_year"][12] == 1.25


def test_flat_tariff_reads_day_rollups_with_the_same_answer(june: Any) -> None:
    from meterhub.energy.analysis import Analysis

    flat = parse_config(SITE.split("energy:")[0] + "energy:\n  tariffs: {rates: [{id: flat, price: 0.25}]}\n")
    a = Analysis(june, flat, date(2026, 6, 1), date(2026, 6, 8))
    assert a.resolution == "1d" and len(a.starts) == 7
    rep = flow(june, flat, start=date(2026, 6, 3), end=date(2026, 6, 4))
    light = next(x for x in rep["links"] if x["target"] == "circuit:light")
    assert light["kwh"] == 24.0 and light["cost"] == pytest.approx(24 * 0.25)
    # the week: 06-03 and 06-06 whole and the hour either side of each: 2 × (24 + 2) h at 1 kW
    week = flow(june, flat, start=date(2026, 6, 1), end=date(2026, 6, 8))
    light = next(x for x in week["links"] if x["target"] == "circuit:light")
    assert light["kwh"] == 2 * 26.0 - 0.0
    tou = Analysis(june, site(), date(2026, 6, 1), date(2026, 6, 8))
    # time of use: hour rollups summed in the database per day and band — 3 bands on each of the 5
    # weekdays (00–07, 07–20, 20–24), 1 on Saturday and Sunday
    assert tou.resolution == "1h" and tou.summed and len(tou.starts) == 5 * 3 + 2


def test_compare_month_bounds_and_leap_day() -> None:
    from meterhub.energy.analysis import period_bounds

    assert period_bounds("month", date(2026, 12, 15)) == (date(2026, 12, 1), date(2027, 1, 1))
    assert period_bounds("week", date(2026, 6, 3)) == (date(2026, 6, 1), date(2026, 6, 8))
    assert period_bounds("year", date(2026, 6, 3)) == (date(2026, 1, 1), date(2027, 1, 1))


def test_heatmap_is_in_site_time_with_dst_days(tmp_path: Path) -> None:
    s = store(
        tmp_path, ("2026-03-28T23:00", "2026-03-30T01:00", 1.0), ("2026-10-24T23:00", "2026-10-26T01:00", 1.0)
    )
    try:
        spring = heatmap(s, site(), circuit="light", start=date(2026, 3, 29), end=date(2026, 3, 30))
        autumn = heatmap(s, site(), circuit="light", start=date(2026, 10, 25), end=date(2026, 10, 26))
        office = heatmap(s, site(), circuit="rest", start=date(2026, 10, 25), end=date(2026, 10, 26))
    finally:
        s.close()
    # 2026-03-29: 02:00 does not exist in Berlin (23 h); 2026-10-25: 02:00 happens twice (25 h)
    assert spring["values"][0][2] is None and spring["values"][0][3] == 1.0 and len(spring["cells"]) == 23
    assert autumn["values"][0][2] == 2.0 and autumn["values"][0][1] == 1.0
    assert sum(v for v in autumn["values"][0] if v) == 25.0
    assert office["values"][0][12] == 0.25


def test_unknown_circuit_is_named(june: Any) -> None:
    with pytest.raises(ReportError, match="unknown circuit 'nope'"):
        heatmap(june, site(), circuit="nope", start=date(2026, 6, 3), end=date(2026, 6, 4))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    cfg = site()
    data = tmp_path / "data"
    gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="Europe/Berlin"))
    gw.storage.write(readings("2026-06-02T23:00", "2026-06-04T01:00"))
    gw.storage.flush()
    with TestClient(create_app(gw)) as c:
        c.app.state.auth.store.add("reader-user", "correct horse", "reader")
        r = c.post("/api/v1/auth/login", json={"username": "reader-user", "password": "correct horse"})
        assert r.status_code == 200, r.text
        yield c
    gw.storage.close()


def test_api_answers_json_and_csv(client: Any) -> None:
    r = client.get("/api/v1/analysis/flow?from=2026-06-03&to=2026-06-04")
    assert r.status_code == 200, r.text
    assert r.json()["balance"]["unmetered_kwh"] == 18.0
    csv = client.get("/api/v1/analysis/flow?from=2026-06-03&to=2026-06-04&format=csv")
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0] == "source,target,kwh,cost,co2_kg" and lines[1] == "grid,site,48.0,12.2,19.2"
    r = client.get("/api/v1/analysis/ranking?from=2026-06-03&to=2026-06-04&by=energy&format=csv")
    assert r.text.splitlines()[1].startswith("1,zone,office,36.0,")
    r = client.get("/api/v1/analysis/heatmap?circuit=light&from=2026-06-03&to=2026-06-04&format=csv")
    assert r.text.splitlines()[1] == "2026-06-03," + ",".join(["1.0"] * 24)
    r = client.get("/api/v1/analysis/compare?period=day&at=2026-06-03")
    assert r.json()["total"]["this"]["kwh"] == 60.0 and r.json()["total"]["previous"]["kwh"] == 1.875
    # ↑ the day before has only the readings 23:00 … 23:45: three 15-min steps of 2.5 kW
    r = client.get("/api/v1/analysis/compare?period=day&at=2026-06-03&format=csv")
    assert r.text.splitlines()[1].startswith("total,site,60.0,12.2,1.875,")


def test_api_refuses_bad_input_by_name(client: Any) -> None:
    r = client.get("/api/v1/analysis/flow?from=2026-06-03&to=2026-06-03")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "to"]
    r = client.get("/api/v1/analysis/flow?from=2025-01-01&to=2026-06-03")
    assert r.status_code == 422 and "at most 400" in r.text
    r = client.get("/api/v1/analysis/compare?period=decade")
    assert r.status_code == 422 and "day, week, month, year" in r.text
    r = client.get("/api/v1/analysis/ranking?from=2026-06-03&to=2026-06-04&by=volts")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "by"]
    r = client.get("/api/v1/analysis/heatmap?circuit=nope&from=2026-06-03&to=2026-06-04")
    assert r.status_code == 404 and "unknown circuit 'nope'" in r.text
    r = client.get("/api/v1/analysis/heatmap?circuit=light&from=06/03/2026&to=2026-06-04")
    assert r.status_code == 422 and "YYYY-MM-DD" in r.text
    client.post("/api/v1/auth/logout")
    assert client.get("/api/v1/analysis/flow?from=2026-06-03&to=2026-06-04").status_code == 401


def test_sqlite_and_postgresql_give_the_same_flow(both_backends: tuple[Any, Any]) -> None:
    """The same readings in SQLite and in the PostgreSQL server: the same flow, hour and day rollups."""
    flat = parse_config(SITE.split("energy:")[0] + "energy:\n  tariffs: {rates: [{id: flat, price: 0.25}]}\n")
    answers = []
    for s in both_backends:
        s.write(readings("2026-06-02T23:00", "2026-06-04T01:00"))
        s.flush()
        answers.append(
            (
                flow(s, site(), start=date(2026, 6, 3), end=date(2026, 6, 4)),
                flow(s, flat, start=date(2026, 6, 3), end=date(2026, 6, 4)),
            )
        )
    assert answers[0] == answers[1]
    tou, day = answers[0]
    assert tou["balance"]["unmetered_kwh"] == 18.0 and day["balance"]["unmetered_kwh"] == 18.0
    assert day["balance"]["grid_cost"] == pytest.approx(48 * 0.25)
