"""The fleet API on data stored by central: site list, drill-down, history, totals, comparisons —
values worked out by hand from the simulator's formulas (``meterhub.central.simulate``)."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # starlette warns once, at import, that it prefers the httpx2 package; the client works with httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from meterhub.central.api import create_central_app
from meterhub.central.config import CentralConfig
from meterhub.central.payload import parse_circuit_message
from meterhub.central.simulate import circuit_message
from meterhub.central.store import Batch, CentralStore
from meterhub.central.views import FleetViews
from meterhub.web.auth import AuthState

pytestmark = pytest.mark.postgres

DAY0 = int(datetime(2026, 12, 6, tzinfo=UTC).timestamp())  # a UTC midnight


def _auth(folder: Path) -> tuple[AuthState, str]:
    """Central's users in ``folder``: admin ``ada``, reader ``rex`` (password ``correct horse``); a token
    of rex's."""
    auth = AuthState.for_data_dir(folder)
    auth.store.add("ada", "correct horse", "admin")
    auth.store.add("rex", "correct horse", "reader")
    _, secret = auth.store.create_token("rex", "test")
    return auth, secret


def _app(dsn: str, folder: Path, clock: float, cfg: CentralConfig | None = None) -> TestClient:
    cfg = cfg or CentralConfig(dsn=dsn)
    auth, secret = _auth(folder)
    views = FleetViews(cfg, CentralStore(dsn), clock=lambda: clock)
    client = TestClient(create_central_app(views, lambda: {"received": 0}, auth))
    client.headers["Authorization"] = f"Bearer {secret}"
    return client


@pytest.fixture
def client(dsn: str, tmp_path: Path) -> TestClient:
    store = CentralStore(dsn)
    store.connect()
    msgs = []
    # sites 0 and 1, circuits c0 and c1, 10 series each, intervals ending 10 min before midnight,
    # 10 and 20 min after it
    for n in (0, 1):
        for k in (0, 1):
            for ts in (DAY0 - 600, DAY0 + 600, DAY0 + 1200):
                site = f"sim-{n:05d}"
                msgs.append(parse_circuit_message(circuit_message(site, n, k, 10, ts, 600), site, f"c{k}"))
    store.write(Batch(messages=msgs), now=DAY0 + 1250)
    cfg = CentralConfig(
        dsn=dsn,
        sites=[
            {"id": "sim-00000", "name": "Plant zero", "floor_area_m2": 200, "main_circuit": "c1"},
            {"id": "sim-00001", "floor_area_m2": 100},
            {"id": "sim-00009", "name": "Not yet connected"},
        ],
    )
    return _app(dsn, tmp_path / "central", DAY0 + 1300, cfg)


def test_sites_lists_every_site_with_status_and_energy_today(client: TestClient) -> None:
    sites = {s["id"]: s for s in client.get("/api/v1/sites").json()["sites"]}
    assert list(sites) == ["sim-00000", "sim-00001", "sim-00009"]
    zero, one, nine = sites["sim-00000"], sites["sim-00001"], sites["sim-00009"]
    assert zero["name"] == "Plant zero" and zero["status"] == "online" and zero["age_s"] == 50.0
    assert nine["status"] == "never_seen" and nine["last_seen"] is None and nine["backlog"] is None
    # site 1 has no main/grid/incomer: the sum of c0 (2000 W) and c1 (4000 W) over 30 min = 3.0 kWh
    assert one["energy_today_kwh"] == pytest.approx(3.0, abs=1e-3)
    assert one["power_w"] == 6000.0
    # site 0's main circuit is c1 (2000 W): 2000 W × 0.5 h = 1.0 kWh
    assert zero["energy_today_kwh"] == pytest.approx(1.0, abs=1e-3)
    assert zero["messages"] == 6 and zero["circuits"] == 2
    assert [s["id"] for s in client.get("/api/v1/sites?search=plant").json()["sites"]] == ["sim-00000"]


def test_compare_gives_kwh_per_m2_and_peak_demand(client: TestClient) -> None:
    body = client.get("/api/v1/fleet/compare").json()
    assert body["start"] == "2026-12-06T00:00:00Z"
    rows = {r["id"]: r for r in body["sites"]}
    assert rows["sim-00001"]["kwh_per_m2"] == pytest.approx(0.03, abs=1e-4)  # 3.0 kWh / 100 m²
    assert rows["sim-00000"]["kwh_per_m2"] == pytest.approx(0.005, abs=1e-4)  # 1.0 kWh / 200 m²
    assert rows["sim-00001"]["peak_demand_w"] == 6000.0
    assert rows["sim-00000"]["peak_demand_w"] == 2000.0
    assert [r["id"] for r in body["sites"]][:2] == ["sim-00001", "sim-00000"]  # highest kWh first
    totals = client.get("/api/v1/fleet/totals").json()
    assert totals["energy_today_kwh"] == pytest.approx(4.0, abs=1e-3)
    assert totals["by_status"] == {"online": 2, "never_seen": 1}


def test_site_drill_down_and_history(client: TestClient) -> None:
    site = client.get("/api/v1/sites/sim-00001").json()
    c0 = next(c for c in site["circuits_list"] if c["id"] == "c0")
    assert c0["last_data"] == "2026-12-06T00:20:00Z"
    power = next(v for v in c0["values"] if v["quantity"] == "active_power" and v["phase"] == "total")
    assert power["value"] == 2000.0 and power["unit"] == "W"
    hist = client.get(
        "/api/v1/sites/sim-00001/history",
        params={
            "circuit": "c0",
            "quantity": "voltage",
            "phase": "L1",
            "start": "2026-12-05T23:00:00Z",
            "end": "2026-12-06T01:00:00Z",
        },
    ).json()
    assert [p["value"] for p in hist["points"]] == [230.0, 230.0, 230.0] and hist["unit"] == "V"
    assert client.get("/api/v1/sites/nowhere").status_code == 404
    bad = client.get("/api/v1/fleet/compare", params={"start": "yesterday"})
    assert bad.status_code == 422 and "ISO 8601" in bad.text
    page = client.get("/")
    assert page.status_code == 200 and "/static/js/pages/fleet.js" in page.text


def test_the_api_needs_a_signed_in_user_or_token(client: TestClient) -> None:
    anonymous = {"Authorization": ""}
    for path in ("/api/v1/sites", "/api/v1/sites/sim-00000", "/api/v1/fleet/totals", "/api/v1/central"):
        del client.headers["Authorization"]
        r = client.get(path)
        assert r.status_code == 401, path
        assert "sign in" in r.json()["detail"] or "sign in" in r.text
        client.headers["Authorization"] = "Bearer mh_wrong"
        assert client.get(path).status_code == 401
    del client.headers["Authorization"]
    assert client.get("/", headers=anonymous).status_code == 200  # the page itself, with its sign-in form
    assert client.get("/api/v1/auth/me").json()["authenticated"] is False
    bad = client.post("/api/v1/auth/login", json={"username": "rex", "password": "wrong horse"})
    assert bad.status_code == 401
    # a reader signs in with a password: the session cookie opens every read
    r = client.post("/api/v1/auth/login", json={"username": "rex", "password": "correct horse"})
    assert r.status_code == 200 and r.json()["role"] == "reader"
    assert [s["id"] for s in client.get("/api/v1/sites").json()["sites"]][0] == "sim-00000"
    assert client.get("/api/v1/auth/me").json()["username"] == "rex"
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert client.get("/api/v1/sites").status_code == 401


def test_site_silent_and_gateway_offline_alarms(dsn: str, tmp_path: Path) -> None:
    store = CentralStore(dsn)
    store.connect()
    for n in (0, 1):
        site = f"sim-{n:05d}"
        msg = parse_circuit_message(circuit_message(site, n, 0, 10, DAY0 + 600, 600), site, "c0")
        store.write(Batch(messages=[msg]), now=DAY0 + 600)
    store.write(Batch(statuses={"sim-00001": "offline"}), now=DAY0 + 601)
    cfg = CentralConfig(dsn=dsn, silent_after=60)
    # 30 s after the last message: site 0 is fine, site 1's gateway said offline
    fresh = {
        s["id"]: s for s in _app(dsn, tmp_path / "a", DAY0 + 630, cfg).get("/api/v1/sites").json()["sites"]
    }
    assert fresh["sim-00000"]["status"] == "online" and fresh["sim-00000"]["alarms"] == []
    assert fresh["sim-00001"]["status"] == "offline"
    assert [a["kind"] for a in fresh["sim-00001"]["alarms"]] == ["gateway_offline"]
    assert fresh["sim-00001"]["alarms"][0]["since"] == "2026-12-06T00:10:01Z"  # when central stored it
    # the retained "offline" again (a worker resubscribing) keeps the time; "online" ends the alarm
    store.write(Batch(statuses={"sim-00001": "offline"}), now=DAY0 + 620)
    again = _app(dsn, tmp_path / "a2", DAY0 + 630, cfg).get("/api/v1/sites/sim-00001").json()
    assert again["alarms"][0]["since"] == "2026-12-06T00:10:01Z"
    # 61 s after: both silent since DAY0 + 660 (last message + silent_after 60 s)
    late = _app(dsn, tmp_path / "b", DAY0 + 661, cfg)
    sites = {s["id"]: s for s in late.get("/api/v1/sites").json()["sites"]}
    assert sites["sim-00000"]["status"] == "silent"
    silent = sites["sim-00000"]["alarms"]
    assert [a["kind"] for a in silent] == ["site_silent"]
    assert silent[0]["since"] == "2026-12-06T00:11:00Z" and "no message for 61 s" in silent[0]["message"]
    assert [a["kind"] for a in sites["sim-00001"]["alarms"]] == ["gateway_offline", "site_silent"]
    assert late.get("/api/v1/fleet/totals").json()["alarms"] == 3
    assert late.get("/api/v1/sites/sim-00000").json()["alarms"][0]["kind"] == "site_silent"
    store.write(Batch(statuses={"sim-00001": "online"}), now=DAY0 + 662)
    back = _app(dsn, tmp_path / "c", DAY0 + 663, cfg).get("/api/v1/sites/sim-00001").json()
    assert back["status"] == "silent" and [a["kind"] for a in back["alarms"]] == ["site_silent"]
