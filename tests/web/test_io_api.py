"""GET /api/v1/io against a real server: gateway + uvicorn + simulated DIO-4/2, AIO-2/2 and pulse
concentrator on Modbus TCP, with the IO points of the demo site.

Each value is checked against what a person can work out from the live readings of the same point
(``/api/v1/live``) and its configuration: engineering scaling, count × weight, NO/NC and function.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from meterhub.web.auth import UserStore

from .conftest import TestClient
from .liveserver import LiveServer

# The module bus and IO points of examples/demo-site.yaml (faster polls so pulses come quickly).
IO_SITE = """\
site: {name: IO site, timezone: Europe/Berlin}
buses: [{id: panel, kind: modbus-tcp, host: 127.0.0.1, port: 15980, timeout: 1}]
devices:
  - {id: vu, name: Voltage unit, bus: panel, unit: 1, profile: enertrek-v10, poll_interval: 5}
  - {id: dio, name: DIO-4/2 main board, bus: panel, unit: 13, profile: enertrek-dio-4-2, poll_interval: 0.3}
  - {id: aio, name: AIO-2/2 plant room, bus: panel, unit: 14, profile: enertrek-aio-2-2, poll_interval: 0.3}
  - {id: pulses, name: Pulse concentrator, bus: panel, unit: 15, profile: pulse-concentrator-7, poll_interval: 0.3}
io:
  points:
    - {id: gas-main, name: Gas meter, kind: pulse, device: pulses, channel: 1, medium: gas, unit: m3, weight: 0.01}
    - {id: water-main, name: Water meter, kind: pulse, device: pulses, channel: 2, medium: water, unit: m3,
       weight: 0.001}
    - {id: pv-export-meter, name: PV generation meter (S0), kind: pulse, device: pulses, channel: 3,
       medium: electricity, unit: kWh, weight: 0.001, contact: NC}
    - {id: q1-trip, name: Breaker Q1 trip (SD), kind: digital, device: dio, channel: 1, function: breaker-sd}
    - {id: door-main, name: Main board door, kind: digital, device: dio, channel: 2, function: door}
    - {id: fan-relay, name: Plant room fan, kind: relay, device: dio, channel: 1}
    - {id: tank-pressure, name: Heating pressure, kind: analog-in, device: aio, channel: 1, signal: 4-20mA,
       range: [0, 6], unit: bar}
    - {id: supply-temp, name: Supply temperature, kind: analog-in, device: aio, channel: 2, signal: 0-10V,
       range: [-20, 80]}
"""

ADMIN_PW = "admin password 1"
READER_PW = "reader password 1"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """``check()``'s first truthy result, polled until ``timeout`` [s]."""
    end = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("io")
    srv = LiveServer(tmp, site_yaml=IO_SITE)
    store = UserStore(srv.data)
    store.add("alice", ADMIN_PW, "admin")
    store.add("rita", READER_PW, "reader")
    tokens = {user: store.create_token(user, "test")[1] for user in ("alice", "rita")}
    with srv:
        yield srv, tokens


@pytest.fixture(scope="module")
def reader(server: tuple[LiveServer, dict[str, str]]) -> Iterator[httpx.Client]:
    srv, tokens = server
    with httpx.Client(base_url=srv.url, timeout=10, headers=bearer(tokens["rita"])) as c:
        # every point has a value, and the electricity meter has counted pulses and knows its rate
        def ready() -> bool:
            pts = {p["id"]: p for p in c.get("/api/v1/io").json()["points"]}
            pv = pts["pv-export-meter"]
            return all(p["ts"] for p in pts.values()) and (pv["count"] or 0) >= 2 and pv["rate"] is not None

        wait_for(ready)
        yield c


def points(c: httpx.Client, **params: str) -> dict[str, dict[str, Any]]:
    r = c.get("/api/v1/io", params=params)
    assert r.status_code == 200, r.text
    return {p["id"]: p for p in r.json()["points"]}


def live_of(c: httpx.Client, point: str) -> dict[str, dict[str, Any]]:
    """The live readings of one point by quantity."""
    rows = c.get("/api/v1/live").json()["readings"]
    return {r["quantity"]: r for r in rows if r["circuit"] == point}


def same_moment(c: httpx.Client, point: str, quantity: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The point from /io and its live reading of ``quantity`` taken from the same poll (same ts)."""

    def pair() -> tuple[dict[str, Any], dict[str, Any]] | None:
        p = points(c)[point]
        r = live_of(c, point)[quantity]
        return (p, r) if r["ts"] == p["ts"] else None

    return wait_for(pair, timeout=10)


def test_io_points_are_listed_with_their_configuration(reader: httpx.Client) -> None:
    pts = points(reader)
    assert list(pts) == [
        "gas-main",
        "water-main",
        "pv-export-meter",
        "q1-trip",
        "door-main",
        "fan-relay",
        "tank-pressure",
        "supply-temp",
    ]
    assert {k: pts["gas-main"][k] for k in ("kind", "device", "channel", "medium", "weight", "unit")} == {
        "kind": "pulse",
        "device": "pulses",
        "channel": 1,
        "medium": "gas",
        "weight": 0.01,
        "unit": "m³",
    }
    assert (pts["q1-trip"]["function"], pts["q1-trip"]["contact"]) == ("breaker-sd", "NO")
    assert (pts["fan-relay"]["kind"], pts["fan-relay"]["mode"], pts["fan-relay"]["device"]) == (
        "relay",
        "latched",
        "dio",
    )
    assert pts["supply-temp"]["name"] == "Supply temperature"
    assert set(points(reader, device="aio")) == {"tank-pressure", "supply-temp"}
    assert reader.get("/api/v1/io", params={"device": "nope"}).status_code == 404


def test_analog_input_is_given_in_its_engineering_unit_and_matches_the_live_reading(
    reader: httpx.Client,
) -> None:
    p, r = same_moment(reader, "tank-pressure", "analog_input")
    assert (p["unit"], p["signal"], p["range"]) == ("bar", "4-20mA", [0.0, 6.0])
    assert r["unit"] == ""  # the catalogue quantity has no unit: only the point knows it is bar
    assert p["value"] == r["value"]
    # the simulator swings ±30 % of the span about the middle: 3 ± 1.8 bar
    assert 1.2 - 1e-6 <= p["value"] <= 4.8 + 1e-6
    assert p["quality"] == 0
    t, rt = same_moment(reader, "supply-temp", "analog_input")
    assert (t["unit"], t["signal"], t["range"]) == ("", "0-10V", [-20.0, 80.0])
    assert t["value"] == rt["value"] and 0.0 - 1e-6 <= t["value"] <= 60.0 + 1e-6


def test_pulse_totals_are_count_times_weight_in_the_meters_unit(reader: httpx.Client) -> None:
    for point, weight, unit, index_q, factor, rate_unit in [
        ("gas-main", 0.01, "m³", "volume_gas", 1.0, "m³/h"),
        ("water-main", 0.001, "m³", "volume_water", 1.0, "m³/h"),
        ("pv-export-meter", 0.001, "kWh", "energy_active_import", 1000.0, "W"),
    ]:
        p, r = same_moment(reader, point, index_q)
        assert (p["unit"], p["rate_unit"]) == (unit, rate_unit)
        assert p["total"] == pytest.approx(p["count"] * weight, abs=1e-9)
        assert p["value"] == p["total"]
        # the live index is in the catalogue unit (Wh, m³): the same meter reading
        assert p["total"] == pytest.approx(r["value"] / factor, rel=1e-12, abs=1e-12)
        live = live_of(reader, point)
        assert "pulse_count" in live
    pv = points(reader)["pv-export-meter"]
    assert pv["count"] >= 2 and pv["rate"] > 0  # ~0.5 pulses/s of 1 Wh: some kW


def test_inputs_carry_their_state_and_the_functions_words(reader: httpx.Client) -> None:
    q1, r = same_moment(reader, "q1-trip", "digital_input")
    # the simulated SD contact of a breaker that has not tripped
    assert (q1["state"], q1["label"], q1["labels"]) == (False, "normal", ["normal", "tripped"])
    assert r["value"] == 0.0
    door, rd = same_moment(reader, "door-main", "digital_input")
    assert door["labels"] == ["closed", "open"]
    assert door["state"] is (rd["value"] == 1.0)
    assert door["label"] == ("open" if door["state"] else "closed")


def test_relay_state_follows_a_confirmed_switch(
    server: tuple[LiveServer, dict[str, str]], reader: httpx.Client
) -> None:
    srv, tokens = server
    fan = points(reader)["fan-relay"]
    assert (fan["state"], fan["label"], fan["labels"]) == (False, "off", ["off", "on"])
    with httpx.Client(base_url=srv.url, timeout=10, headers=bearer(tokens["alice"])) as admin:
        r = admin.post("/api/v1/devices/dio/outputs/fan-relay", json={"state": True})
        assert r.status_code == 200, r.text
        assert r.json()["confirmed"] is True
        fan = points(reader)["fan-relay"]
        assert (fan["state"], fan["label"]) == (True, "on")
        assert live_of(reader, "fan-relay")["relay_output"]["value"] == 1.0
        assert admin.post("/api/v1/devices/dio/outputs/fan-relay", json={"state": False}).status_code == 200
    assert points(reader)["fan-relay"]["state"] is False


def test_io_needs_sign_in_like_the_live_values(server: tuple[LiveServer, dict[str, str]]) -> None:
    srv, _ = server
    with httpx.Client(base_url=srv.url, timeout=10) as anonymous:
        assert anonymous.get("/api/v1/io").status_code == 401
        assert anonymous.get("/api/v1/live").status_code == 401


def test_public_live_opens_io_to_anyone(public_client: TestClient) -> None:
    r = public_client.get("/api/v1/io")
    assert r.status_code == 200
    assert r.json() == {"points": []}  # the test site of conftest has no io section


def test_io_is_documented_with_its_response_model(reader: httpx.Client) -> None:
    spec = reader.get("/openapi.json").json()
    op = spec["paths"]["/api/v1/io"]["get"]
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/IOPointsOut")
    fields = spec["components"]["schemas"]["IOPointOut"]["properties"]
    assert {"unit", "value", "count", "total", "rate", "state", "label", "ts"} <= set(fields)


def test_a_points_live_values_and_history_are_found_by_its_id(reader: httpx.Client) -> None:
    rows = wait_for(
        lambda: reader.get("/api/v1/live", params={"circuit": "gas-main"}).json()["readings"] or None
    )
    assert {r["circuit"] for r in rows} == {"gas-main"}
    assert {"pulse_count", "volume_gas"} <= {r["quantity"] for r in rows}
    h = reader.get("/api/v1/circuits/gas-main/history", params={"quantity": "volume_gas"})
    assert h.status_code == 200 and h.json()["unit"] == "m³"
    assert reader.get("/api/v1/live", params={"circuit": "no-such-point"}).status_code == 404
