"""The real alarm engine into the logs: a low power factor that holds for its on-delay is raised, an
admin acknowledges it over the API, and both transitions are in the alarm log (with value, limit and
user) while the acknowledgement is in the audit log — through the gateway's own wiring (the alarm log
listener and the storage auditor)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from meterhub.checks import parse_site
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.web.app import create_app

T0 = 1_763_784_000.0  # 2025-11-22T04:00:00Z
SITE = """\
site: {name: Alarm site, timezone: UTC}
buses:
  - {id: panel, kind: modbus-tcp, port: 15999}
devices:
  - {id: meter, bus: panel, unit: 1, profile: eastron-sdm630}
circuits:
  - {id: grid, device: meter, channels: [1, 2, 3], wiring: 3P4W, purpose: grid}
alarms:
  rules:
    - id: pf-low
      title: "Power factor low"
      target: grid
      quantity: power_factor
      condition: low
      low: 0.85
      on_delay: 5
      severity: high
"""
SPAN = {"from": "2025-11-22T00:00:00Z", "to": "2025-11-23T00:00:00Z"}


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Gateway, Clock, TestClient]]:
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    cfg = parse_site(SITE, str(path))
    data = tmp_path / "data"
    data.mkdir()
    clock = Clock()
    gw = Gateway(cfg, data_dir=data, config_path=path, storage=open_storage(cfg.storage, data), clock=clock)
    with TestClient(create_app(gw)) as c:
        yield gw, clock, c
    gw.event_log.close()
    gw.storage.close()


def pf(gw: Gateway, clock: Clock, value: float, seconds: int) -> None:
    for _ in range(seconds):
        clock.t += 1
        gw.alarms.engine.update([Reading(clock.t, "grid", Q.POWER_FACTOR, Phase.TOTAL, value)])
        gw.alarms.engine.tick()


def test_raised_and_acknowledged_alarm_is_in_the_alarm_log_and_the_audit_log(
    site: tuple[Gateway, Clock, TestClient],
) -> None:
    gw, clock, client = site
    client.app.state.auth.store.add("alice", "correct horse", "admin")  # type: ignore[attr-defined]
    r = client.post("/api/v1/auth/login", json={"username": "alice", "password": "correct horse"})
    admin = {"X-CSRF-Token": str(r.json()["csrf"])}
    pf(gw, clock, 0.82, 6)  # below 0.85 for longer than the 5 s on-delay
    (active,) = client.get("/api/v1/alarms").json()["alarms"]
    r = client.post(
        f"/api/v1/alarms/{active['id']}/ack", json={"comment": "capacitor bank off"}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert gw.event_log.wait_written(10.0)

    events = client.get("/api/v1/alarms/log", params={**SPAN, "order": "asc"}).json()["events"]
    assert [(e["kind"], e["state"]) for e in events] == [
        ("raised", "unack-active"),
        ("acknowledged", "ack-active"),
    ]
    raised, acked = events
    assert (raised["rule"], raised["target"], raised["severity"]) == ("pf-low", "grid", "high")
    assert (raised["quantity"], raised["value"], raised["limit"]) == ("power_factor", 0.82, 0.85)
    assert raised["alarm_id"] == active["id"] and raised["user"] is None
    assert (acked["user"], acked["comment"]) == ("alice", "capacitor bank off")
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)

    audit = client.get("/api/v1/audit", params={**SPAN, "action": "alarm.ack"}).json()["entries"]
    assert [(a["actor"], a["target"], a["comment"]) for a in audit] == [
        ("alice", active["id"], "capacitor bank off")
    ]
