"""Outputs over HTTP through the audited control path: latch, pulse, analog, refusals, the status view.

A real server (gateway + uvicorn) on a simulated DIO-4/2 and AIO-2/2 on Modbus TCP; the audit entries are
read from the gateway's control path, as the durable audit log receives them.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.web.liveserver import LiveServer

from meterhub.model.audit import AuditEntry
from meterhub.web.auth import UserStore

SITE = """\
site: {name: Control API}
buses: [{id: rs485, kind: modbus-tcp, port: 15901, timeout: 1}]
devices:
  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10, poll_interval: 5}
  - {id: dio1, bus: rs485, unit: 6, profile: enertrek-dio-4-2, poll_interval: 0.5}
  - {id: aio1, bus: rs485, unit: 7, profile: enertrek-aio-2-2, poll_interval: 0.5}
io:
  points:
    - {id: fan, kind: relay, device: dio1, channel: 2}
    - {id: trip, kind: relay, device: dio1, channel: 1, mode: pulse, pulse_duration: 0.1}
    - {id: valve, kind: analog-out, device: aio1, channel: 1, signal: 4-20mA, range: [0, 100], unit: "%"}
control:
  outputs: [{point: fan, min_on: 600, min_off: 0}]
simulation:
  loads: {}
"""


class Audit(list[AuditEntry]):
    def record(self, entry: AuditEntry) -> None:
        self.append(entry)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str, str, Audit]]:
    tmp = tmp_path_factory.mktemp("control-api")
    srv = LiveServer(tmp, site_yaml=SITE)
    audit = Audit()
    srv.gateway.control.auditor = audit
    store = UserStore(srv.data)
    store.add("alice", "admin password 1", "admin")
    store.add("rita", "reader password 1", "reader")
    admin, reader = (store.create_token(u, "test")[1] for u in ("alice", "rita"))
    with srv:
        yield srv, admin, reader, audit


def post(
    srv: LiveServer, token: str, point: str, body: dict[str, object], device: str = "dio1"
) -> httpx.Response:
    return httpx.post(
        f"{srv.url}/api/v1/devices/{device}/outputs/{point}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_a_pulse_and_an_analog_value_go_through_the_api_and_into_the_audit_log(server) -> None:
    srv, admin, _, audit = server
    pulse = post(srv, admin, "trip", {"pulse": True, "comment": "trip test"})
    valve = post(srv, admin, "valve", {"value": 62.5}, device="aio1")
    assert (pulse.status_code, pulse.json()) == (
        200,
        {"device": "dio1", "point": "trip", "state": False, "confirmed": True},
    )
    assert (valve.status_code, valve.json()) == (
        200,
        {"device": "aio1", "point": "valve", "value": 62.5, "confirmed": True},
    )
    mine = [e for e in audit if e.target in ("trip", "valve")]
    assert [(e.actor, e.action, e.target, e.after, e.extra["confirmed"]) for e in mine] == [
        ("alice", "relay.pulse", "trip", {"pulsed": pytest.approx(0.1, abs=0.1)}, True),
        ("alice", "analog.set", "valve", 62.5, True),
    ]
    assert mine[0].comment == "trip test"


def test_a_command_that_does_not_fit_or_breaks_a_minimum_time_is_refused_with_409(server) -> None:
    srv, admin, _, _ = server
    assert post(srv, admin, "fan", {"state": True}).status_code == 200
    held = post(srv, admin, "fan", {"state": False})
    assert held.status_code == 409
    assert "minimum on time 600 s" in held.json()["detail"]
    assert post(srv, admin, "fan", {"state": False, "force": True}).status_code == 200
    latch = post(srv, admin, "trip", {"state": True})
    assert latch.status_code == 409 and "pulse-mode output" in latch.json()["detail"]
    value = post(srv, admin, "fan", {"value": 3})
    assert value.status_code == 409 and "is a relay" in value.json()["detail"]
    both = post(srv, admin, "fan", {"state": True, "pulse": True})
    assert both.status_code == 422 and "exactly one of 'state', 'pulse' or 'value'" in both.text


def test_a_reader_sees_the_control_status_but_cannot_switch(server) -> None:
    srv, admin, reader, _ = server
    assert post(srv, reader, "fan", {"state": True}).status_code == 403
    assert post(srv, admin, "fan", {"state": True, "force": True}).status_code == 200
    r = httpx.get(f"{srv.url}/api/v1/control", headers={"Authorization": f"Bearer {reader}"}, timeout=10)
    assert r.status_code == 200
    body = r.json()
    fan = next(o for o in body["outputs"] if o["point"] == "fan")
    assert (fan["state"], fan["override_by"]) == (1.0, "alice")
    assert fan["override_until"].endswith("Z")
    assert body["demand_limit"] is None
    assert body["health"]["state"] == "ok"
