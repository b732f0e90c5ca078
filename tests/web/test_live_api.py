"""The live-display API: health, devices, circuits, live, history, stream, OpenAPI, the page."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway

from .conftest import T0, readings


def test_health_reports_site_counts_and_version(public_client: TestClient) -> None:
    r = public_client.get("/api/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["site"] == "Test site"
    assert (body["devices"], body["circuits"], body["devices_online"]) == (4, 3, 0)
    assert body["status"] == "degraded"  # no device has answered yet
    assert body["time"].endswith("Z")
    storage = body["storage"]
    assert (storage["state"], storage["backend"], storage["spooled_rows"], storage["dropped_rows"]) == (
        "connected",
        "sqlite",
        0,
        0,
    )
    # every sink says how it is (no source runs in this gateway: nothing was started)
    components = body["components"]
    assert components["sink:storage"]["state"] == "ok" and components["sink:live"]["state"] == "ok"
    assert set(components) >= {"sink:storage", "sink:live"}


def test_devices_show_status_and_last_seen_in_iso_utc(
    public_client: TestClient, public_gateway: Gateway
) -> None:
    public_gateway.status["meter"].ok(T0)
    rows = {d["id"]: d for d in public_client.get("/api/v1/devices").json()}
    assert rows["meter"]["status"] == "online"
    assert rows["meter"]["last_seen"] == datetime.fromtimestamp(T0, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert rows["meter"]["profile"] == "eastron-sdm630"
    assert rows["meter"]["name"] == "Incomer meter"
    assert rows["m1"]["status"] == "offline"
    assert rows["m1"]["last_seen"] is None


def test_circuits_list_wiring_purpose_zone_and_ct(public_client: TestClient) -> None:
    rows = {c["id"]: c for c in public_client.get("/api/v1/circuits").json()}
    assert list(rows) == ["grid", "hvac", "pv"]
    assert rows["grid"]["wiring"] == "3P4W"
    assert rows["grid"]["purpose"] == "grid"
    assert rows["grid"]["ct_ratio"] == "800/5"
    assert rows["grid"]["phases"] == ["L1", "L2", "L3"]
    assert rows["hvac"]["zone"] == "building"
    assert rows["pv"]["purpose"] == "renewable"
    assert rows["pv"]["wiring"] == "1P2W"
    assert public_client.get("/api/v1/circuits/pv").json()["name"] == "PV roof"
    assert public_client.get("/api/v1/circuits/nope").status_code == 404


def test_live_returns_latest_values_with_units_and_iso_times(
    public_client: TestClient, public_gateway: Gateway
) -> None:
    public_gateway.emit(readings(T0, "hvac", 3000.0))
    public_gateway.emit(readings(T0 + 1, "hvac", 4500.0))  # the newer value wins
    public_gateway.emit([Reading(T0, "grid", "frequency", Phase.TOTAL, 50.01)])
    body = public_client.get("/api/v1/live").json()
    rows = {(r["circuit"], r["quantity"], r["phase"]): r for r in body["readings"]}
    p = rows[("hvac", "active_power", "total")]
    assert p["value"] == 4500.0 and p["unit"] == "W"
    assert p["ts"] == datetime.fromtimestamp(T0 + 1, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert rows[("hvac", "current", "L2")]["unit"] == "A"
    assert rows[("hvac", "current", "L2")]["value"] == 1500.0 / 230.0 / 0.9
    assert rows[("grid", "frequency", "total")]["unit"] == "Hz"
    assert {r["phase"] for r in body["readings"]} <= {"L1", "L2", "L3", "N", "total", None}
    only = public_client.get("/api/v1/live", params={"circuit": "grid"}).json()["readings"]
    assert [(r["circuit"], r["quantity"]) for r in only] == [("grid", "frequency")]
    assert public_client.get("/api/v1/live", params={"circuit": "nope"}).status_code == 404


def _store(gw: Gateway, n: int = 120) -> None:
    """n seconds of hvac active power: P = 1000 + 10·i [W] at T0 + i."""
    gw.storage.write(
        [Reading(T0 + i, "hvac", "active_power", Phase.TOTAL, 1000.0 + 10 * i) for i in range(n)]
    )
    gw.storage.flush()


def test_history_raw_and_rollup_accept_iso_and_epoch(
    public_client: TestClient, public_gateway: Gateway
) -> None:
    _store(public_gateway)
    url = "/api/v1/circuits/hvac/history"
    raw = public_client.get(url, params={"start": str(T0), "end": str(T0 + 10), "resolution": "raw"}).json()
    assert raw["unit"] == "W" and raw["phase"] == "total" and raw["resolution"] == "raw"
    assert [p["mean"] for p in raw["points"]] == [1000.0 + 10 * i for i in range(10)]
    iso_start = datetime.fromtimestamp(T0, UTC).isoformat().replace("+00:00", "Z")
    minute = public_client.get(
        url,
        params={
            "quantity": "active_power",
            "phase": "total",
            "start": iso_start,
            "end": T0 + 120,
            "resolution": "1min",
        },
    ).json()
    # bucket 0 holds i = 0…59: mean 1000 + 10·29.5 = 1295 W, min 1000, max 1590
    first = minute["points"][0]
    assert (first["mean"], first["min"], first["max"], first["count"]) == (1295.0, 1000.0, 1590.0, 60)
    assert len(minute["points"]) == 2


def test_history_errors_name_the_parameter(public_client: TestClient) -> None:
    url = "/api/v1/circuits/hvac/history"
    assert public_client.get("/api/v1/circuits/nope/history").status_code == 404
    for params, name in [
        ({"quantity": "power"}, "quantity"),
        ({"phase": "L7"}, "phase"),
        ({"quantity": "frequency", "phase": "L1"}, "phase"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-13-01"}, "end"),
        ({"resolution": "5min"}, "resolution"),
        ({"start": str(T0 + 10), "end": str(T0)}, "start"),
    ]:
        r = public_client.get(url, params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["detail"][0]["loc"][-1] == name, (params, r.json())


def test_stream_sends_snapshot_then_new_readings(public_client: TestClient, public_gateway: Gateway) -> None:
    public_gateway.emit(readings(T0, "hvac", 3000.0))
    with public_client.websocket_connect("/api/v1/stream") as ws:
        snap = ws.receive_json()
        assert snap["type"] == "snapshot"
        assert any(r["quantity"] == "active_power" and r["value"] == 3000.0 for r in snap["readings"])
        public_client.portal.call(
            public_gateway.emit,
            [
                Reading(T0 + 1, "pv", "active_power", Phase.TOTAL, -1200.0),
                Reading(T0 + 1, "pv", "voltage", Phase.L1, 3.4e38, Quality.INVALID),  # never shown
            ],
        )  # type: ignore[union-attr]
        msg = ws.receive_json()
        assert msg["type"] == "readings"
        assert msg["readings"] == [
            {
                "circuit": "pv",
                "quantity": "active_power",
                "phase": "total",
                "value": -1200.0,
                "unit": "W",
                "ts": datetime.fromtimestamp(T0 + 1, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "quality": "good",
            }
        ]


def test_stream_circuit_filter_only_forwards_that_circuit(
    public_client: TestClient, public_gateway: Gateway
) -> None:
    with public_client.websocket_connect("/api/v1/stream?circuit=pv") as ws:
        assert ws.receive_json() == {"type": "snapshot", "readings": []}
        public_client.portal.call(public_gateway.emit, readings(T0, "hvac"))  # type: ignore[union-attr]
        public_client.portal.call(public_gateway.emit, [Reading(T0, "pv", "voltage", Phase.L1, 231.0)])  # type: ignore[union-attr]
        msg = ws.receive_json()
        assert [(r["circuit"], r["value"]) for r in msg["readings"]] == [("pv", 231.0)]


def test_openapi_lists_the_public_api(public_client: TestClient) -> None:
    spec = public_client.get("/openapi.json").json()
    for path in (
        "/api/v1/health",
        "/api/v1/devices",
        "/api/v1/circuits",
        "/api/v1/live",
        "/api/v1/circuits/{circuit_id}/history",
    ):
        assert path in spec["paths"], path
    params = {p["name"] for p in spec["paths"]["/api/v1/circuits/{circuit_id}/history"]["get"]["parameters"]}
    assert {"quantity", "phase", "start", "end", "resolution"} <= params


def test_live_page_and_its_assets_are_served(public_client: TestClient) -> None:
    page = public_client.get("/")
    assert page.status_code == 200 and '<script src="/static/js/main.js" type="module">' in page.text
    assert "Content-Security-Policy" in page.headers
    js = public_client.get("/static/js/pages/overview.js")
    assert js.status_code == 200 and "data-live" in js.text
    assert public_client.get("/static/i18n/de.json").json()["nav.overview"] == "Übersicht"
    assert public_client.get("/vendor/echarts.min.js").status_code == 200  # the bundle, or a console note


def test_stream_refuses_other_origins_and_anonymous_when_not_public(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/api/v1/stream") as ws:
        ws.receive_json()
    assert closed.value.code == 4401
    headers = {"origin": "http://evil.example"}
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/api/v1/stream", headers=headers) as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 4403


def test_history_of_a_device_level_series(public_client: TestClient, public_gateway: Gateway) -> None:
    public_gateway.storage.write([Reading(T0 + i, "vu", "voltage", Phase.L1, 230.0 + i) for i in range(3)])
    public_gateway.storage.flush()
    r = public_client.get(
        "/api/v1/circuits/vu/history",
        params={"quantity": "voltage", "phase": "L1", "start": T0, "end": T0 + 3, "resolution": "raw"},
    )
    assert r.status_code == 200 and [p["mean"] for p in r.json()["points"]] == [230.0, 231.0, 232.0]


def test_a_storage_failure_is_a_503_naming_it(
    public_client: TestClient, public_gateway: Gateway, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from meterhub.storage.base import StorageError

    def broken(*args: object, **kw: object) -> None:
        raise StorageError("connection to PostgreSQL lost")

    monkeypatch.setattr(public_gateway.storage, "history", broken)
    r = public_client.get("/api/v1/circuits/hvac/history")
    assert r.status_code == 503 and "PostgreSQL" in r.json()["detail"]
    assert public_client.get("/api/v1/live").status_code == 200  # the rest keeps working
