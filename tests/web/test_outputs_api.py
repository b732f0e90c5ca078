"""Relay outputs over HTTP against a real server: gateway + uvicorn + a simulated DIO-4/2 on Modbus TCP.

Every command is checked with an independent second Modbus master reading the coil, so "confirmed" in
the answer is compared with what the device really holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from meterhub.config.loader import parse_config
from meterhub.drivers.modbus.profile import Function
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.runtime import Gateway
from meterhub.sim.modbus_server import ModbusSimServer, ProfileDevice
from meterhub.storage import open_storage
from meterhub.web.auth import UserStore

from .liveserver import LiveServer, free_port

IO_SITE = """\
site: {name: Outputs}
buses: [{id: rs485, kind: modbus-tcp, port: PORT, timeout: 1}]
devices:
  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10, poll_interval: 5}
  - {id: dio1, bus: rs485, unit: 6, profile: enertrek-dio-4-2, poll_interval: 0.2}
  - {id: aio1, bus: rs485, unit: 7, profile: enertrek-aio-2-2, poll_interval: 0.2}
io:
  points:
    - {id: fan, name: Exhaust fan, kind: relay, device: dio1, channel: 2}
    - {id: trip, kind: relay, device: dio1, channel: 1, mode: pulse, pulse_duration: 0.1}
    - {id: q1, kind: digital, device: dio1, channel: 1, function: breaker-of}
    - {id: valve, kind: analog-out, device: aio1, channel: 1, signal: 4-20mA, range: [0, 100], unit: "%"}
"""


class IOServer(LiveServer):
    """:class:`LiveServer` running the IO site above (its simulators and gateway, a real uvicorn)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, simulate=True)
        self.gateway.storage.close()  # the base site's gateway is replaced before anything runs
        self.modbus_port = free_port()
        text = IO_SITE.replace("PORT", str(self.modbus_port))
        self.config_path.write_text(text, encoding="utf-8")
        cfg = parse_config(text, str(self.config_path))
        self.gateway = Gateway(
            cfg,
            data_dir=self.data,
            config_path=self.config_path,
            storage=open_storage(cfg.storage, self.data, timezone=cfg.site.timezone),
        )

    def device(self, unit: int) -> ProfileDevice:
        sim = self._sims[0]
        assert isinstance(sim, ModbusSimServer)
        dev = sim.context.table.get(unit)
        assert dev is not None
        return dev


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IOServer, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("outputs")
    srv = IOServer(tmp)
    store = UserStore(srv.data)
    store.add("alice", "admin password 1", "admin")
    store.add("rita", "reader password 1", "reader")
    tokens = {user: store.create_token(user, "test")[1] for user in ("alice", "rita")}
    with srv:
        yield srv, tokens


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def coils(port: int) -> list[int]:
    """Coils 0…1 of the DIO-4/2 (unit 6), read by a second master."""

    async def read() -> list[int]:
        probe = ModbusLink(TransportKind.TCP, port=port, timeout=3.0)
        try:
            return await probe.read(Function.COIL, 6, 0, 2)
        finally:
            await probe.close()

    return asyncio.run(read())


def test_admin_switches_a_relay_and_the_device_holds_it(server) -> None:
    srv, tokens = server
    admin = bearer(tokens["alice"])
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        r = c.post("/api/v1/devices/dio1/outputs/fan", json={"state": True}, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json() == {"device": "dio1", "point": "fan", "state": True, "confirmed": True}
        assert coils(srv.modbus_port) == [0, 1]  # relay 2 (channel 2) energised, relay 1 untouched
        listed = c.get("/api/v1/devices/dio1/outputs", headers=bearer(tokens["rita"])).json()
        fan = next(o for o in listed["outputs"] if o["point"] == "fan")
        assert (fan["kind"], fan["channel"], fan["mode"], fan["state"]) == ("relay", 2, "latched", True)
        assert fan["name"] == "Exhaust fan" and fan["ts"] is not None
        r = c.post("/api/v1/devices/dio1/outputs/fan", json={"state": False}, headers=admin)
        assert r.json() == {"device": "dio1", "point": "fan", "state": False, "confirmed": True}
        assert coils(srv.modbus_port) == [0, 0]


def test_outputs_list_names_relays_and_analog_outputs_only(server) -> None:
    srv, tokens = server
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        r = c.get("/api/v1/devices/dio1/outputs", headers=bearer(tokens["rita"]))
        assert r.status_code == 200
        body = r.json()
        assert body["device"] == "dio1"
        assert [o["point"] for o in body["outputs"]] == ["fan", "trip"]  # q1 is an input
        aio = c.get("/api/v1/devices/aio1/outputs", headers=bearer(tokens["rita"])).json()
        (valve,) = aio["outputs"]
        assert (valve["point"], valve["kind"], valve["unit"]) == ("valve", "analog-out", "%")
        assert c.get("/api/v1/devices/vu/outputs", headers=bearer(tokens["rita"])).json()["outputs"] == []


def test_only_admins_switch_outputs(server) -> None:
    srv, tokens = server
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        anonymous = c.post("/api/v1/devices/dio1/outputs/fan", json={"state": True})
        assert anonymous.status_code == 401
        reader = c.post(
            "/api/v1/devices/dio1/outputs/fan", json={"state": True}, headers=bearer(tokens["rita"])
        )
        assert reader.status_code == 403
        assert c.get("/api/v1/devices/dio1/outputs").status_code == 401
    assert coils(srv.modbus_port)[1] == 0  # nothing was written


def test_unknown_device_point_and_unswitchable_points_are_named(server) -> None:
    srv, tokens = server
    admin = bearer(tokens["alice"])
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        r = c.post("/api/v1/devices/nope/outputs/fan", json={"state": True}, headers=admin)
        assert r.status_code == 404 and "unknown device 'nope'" in r.json()["detail"]
        r = c.post("/api/v1/devices/dio1/outputs/horn", json={"state": True}, headers=admin)
        assert r.status_code == 404
        assert r.json()["detail"] == "device 'dio1' has no output point 'horn'; its outputs: fan, trip"
        r = c.post("/api/v1/devices/dio1/outputs/q1", json={"state": True}, headers=admin)
        assert r.status_code == 404  # an input is not an output
        r = c.post("/api/v1/devices/dio1/outputs/trip", json={"state": True}, headers=admin)
        assert r.status_code == 409 and "pulse-mode" in r.json()["detail"]
        r = c.post("/api/v1/devices/aio1/outputs/valve", json={"state": True}, headers=admin)
        assert r.status_code == 409 and "analog output" in r.json()["detail"]
        r = c.post("/api/v1/devices/dio1/outputs/fan", json={"state": "maybe"}, headers=admin)
        assert r.status_code == 422
        assert c.get("/api/v1/devices/nope/outputs", headers=admin).status_code == 404


def test_a_device_that_does_not_hold_the_state_is_a_502(server) -> None:
    srv, tokens = server
    dio = srv.device(6)
    original = dio.write
    dio.write = lambda function, address, values: None  # type: ignore[method-assign]  # accepts, ignores
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            r = c.post(
                "/api/v1/devices/dio1/outputs/fan", json={"state": True}, headers=bearer(tokens["alice"])
            )
    finally:
        dio.write = original  # type: ignore[method-assign]
    assert r.status_code == 502
    assert r.json()["detail"].startswith("device 'dio1' output 'fan': write not confirmed:")
    assert "wrote [1] but read back [0]" in r.json()["detail"]


def test_an_offline_device_is_a_504(server) -> None:
    srv, tokens = server
    dio = srv.device(6)
    dio.alive = False
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            r = c.post(
                "/api/v1/devices/dio1/outputs/fan", json={"state": True}, headers=bearer(tokens["alice"])
            )
    finally:
        dio.alive = True
    assert r.status_code == 504
    assert r.json()["detail"].startswith("device 'dio1' output 'fan': the device did not answer")


def test_outputs_api_is_in_the_openapi_document(server) -> None:
    srv, _ = server
    doc = httpx.get(f"{srv.url}/openapi.json", timeout=10).json()
    assert "post" in doc["paths"]["/api/v1/devices/{device_id}/outputs/{point}"]
    assert "get" in doc["paths"]["/api/v1/devices/{device_id}/outputs"]
    responses = doc["paths"]["/api/v1/devices/{device_id}/outputs/{point}"]["post"]["responses"]
    assert {"200", "401", "403", "404", "409", "502", "503", "504"} <= set(responses)
