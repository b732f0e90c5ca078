"""/api/v1/reports and /api/v1/energy on a real app (SQLite, TestClient), with roles."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from meterhub.energy.pipeline import EnergyPipeline
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.web.app import create_app

from .conftest import site

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

ENERGY = "  demand: {interval: 15}"

BERLIN = ZoneInfo("Europe/Berlin")


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[Any]:
    cfg = site(ENERGY)
    data = tmp_path / "data"
    gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone=cfg.site.timezone))
    gw.energy = EnergyPipeline(gw.config, gw.storage, clock=lambda: local("2026-06-03T12:00"))
    t0 = local("2026-06-01T00:00")
    batch = []
    for k in range(2 * 96 + 1):  # two days, grid imports 2 kW, PV exports 500 W, read every 15 min
        t = t0 + 900 * k
        batch += [
            Reading(t, "main", "energy_active_import", Phase.TOTAL, 500.0 * k),
            Reading(t, "main", "energy_active_export", Phase.TOTAL, 0.0),
            Reading(t, "pv", "energy_active_export", Phase.TOTAL, 125.0 * k),
        ]
    gw.storage.write(gw.energy.process(batch))
    gw.storage.flush()
    with TestClient(create_app(gw)) as c:
        yield c
    gw.storage.close()


def signed_in(client: Any, role: str) -> dict[str, str]:
    """A signed-in session of a new user with ``role``; returns the CSRF header for changes."""
    client.app.state.auth.store.add(role + "-user", "correct horse", role)
    r = client.post("/api/v1/auth/login", json={"username": role + "-user", "password": "correct horse"})
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": str(r.json()["csrf"])}


def test_energy_report_json_and_csv(app_client: Any) -> None:
    assert (
        app_client.get("/api/v1/reports/energy?circuit=main&from=2026-06-01&to=2026-06-03").status_code == 401
    )
    h = signed_in(app_client, "reader")
    r = app_client.get(
        "/api/v1/reports/energy?circuit=main&from=2026-06-01&to=2026-06-03&interval=day", headers=h
    )
    assert r.status_code == 200, r.text
    rows = r.json()["intervals"]
    assert [row["energy_active_import"] for row in rows] == [48000.0, 48000.0]
    assert rows[0]["start"] == "2026-06-01T00:00:00+02:00"
    assert rows[0]["co2"] == pytest.approx(48 * 0.4)  # site co2_factor 0.4 kg/kWh
    csv = app_client.get(
        "/api/v1/reports/energy?circuit=main&from=2026-06-01&to=2026-06-02&interval=hour&format=csv",
        headers=h,
    )
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert len(lines) == 25 and lines[1].startswith(
        "2026-06-01T00:00:00+02:00,2026-06-01T01:00:00+02:00,2000.0,0.0,"
    )


def test_energy_report_errors_name_the_parameter(app_client: Any) -> None:
    h = signed_in(app_client, "reader")
    r = app_client.get("/api/v1/reports/energy?circuit=main&from=2026-06-01&to=2026-06-01", headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "to"]
    r = app_client.get(
        "/api/v1/reports/energy?circuit=main&from=2026-06-01&to=2026-06-02&interval=week", headers=h
    )
    assert r.status_code == 422 and "15min, hour, day, month" in r.text
    r = app_client.get("/api/v1/reports/energy?circuit=nope&from=2026-06-01&to=2026-06-02", headers=h)
    assert r.status_code == 404 and "unknown circuit 'nope'" in r.text


def test_site_balance(app_client: Any) -> None:
    h = signed_in(app_client, "reader")
    r = app_client.get("/api/v1/reports/balance?from=2026-06-01&to=2026-06-02", headers=h)
    row = r.json()["intervals"][0]
    assert row["grid_import"] == 48000.0 and row["generation"] == 12000.0
    assert row["consumption"] == 60000.0 and row["self_consumption"] == 12000.0 and row["grid_export"] == 0.0


def test_demand_reset_and_billing_need_admin(app_client: Any) -> None:
    h = signed_in(app_client, "reader")
    md = app_client.get("/api/v1/energy/demand", headers=h).json()["max_demand"]
    assert md["main/demand_active_import"]["total"]["value"] == pytest.approx(2000.0)
    assert app_client.post("/api/v1/energy/demand/reset", headers=h).status_code == 403
    assert app_client.post("/api/v1/energy/billing", headers=h).status_code == 403
    a = signed_in(app_client, "admin")
    r = app_client.post("/api/v1/energy/demand/reset", json={"circuit": "main"}, headers=a)
    assert (
        r.status_code == 200 and r.json()["before"]["main/demand_active_import"]["total"]["value"] == 2000.0
    )
    assert (
        app_client.get("/api/v1/energy/demand", headers=a).json()["max_demand"]["main/demand_active_import"]
        == {}
    )
    snap = app_client.post("/api/v1/energy/billing", headers=a).json()
    assert snap["count"] == 1 and snap["reason"] == "api"
    assert snap["registers"]["main/energy_active_import/total"] == 500.0 * 192
    hist = app_client.get("/api/v1/energy/billing", headers=h).json()
    assert hist["count"] == 1 and len(hist["history"]) == 1


def test_load_profile_and_capacity_endpoints(app_client: Any) -> None:
    h = signed_in(app_client, "reader")
    r = app_client.get(
        "/api/v1/reports/profile?circuit=main&from=2026-06-01&to=2026-06-02&interval=60"
        "&quantities=energy_active_import",
        headers=h,
    )
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert len(rows) == 24 and rows[0] == {"end": "2026-06-01T01:00:00+02:00", "energy_active_import": 2000.0}
    bad = app_client.get(
        "/api/v1/reports/profile?circuit=main&from=2026-06-01&to=2026-06-02&interval=7", headers=h
    )
    assert bad.status_code == 422
    cap = app_client.get(
        "/api/v1/reports/capacity?circuit=main&from=2026-06-01&to=2026-06-03", headers=h
    ).json()
    assert cap["months"] == [
        {"month": "2026-06", "peak": 2000.0, "time": "2026-06-01T00:15:00+02:00", "rolling_mean": 2000.0}
    ]
