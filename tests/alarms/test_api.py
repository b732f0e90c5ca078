"""The alarm API: the list, acknowledge (admin; reader only when allowed), shelve, rules CRUD through the
site file, an audit entry for every action. A real gateway with SQLite storage; readings are fed to its
alarm sink with a clock the test moves."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from meterhub.checks import parse_site
from meterhub.model.audit import AuditEntry
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
  reader_can_ack: READER_CAN_ACK
  rules:
    # the compressor of the demo: PF low
    - id: pf-low
      title: "Power factor low"
      target: grid
      quantity: power_factor
      condition: low
      low: 0.85
      on_delay: 5
"""


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


class Audit:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


def make(tmp_path: Path, reader_can_ack: bool = False) -> tuple[Gateway, Clock, Audit]:
    text = SITE.replace("READER_CAN_ACK", str(reader_can_ack).lower())
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    cfg = parse_site(text, str(path))
    data = tmp_path / "data"
    data.mkdir()
    clock = Clock()
    gw = Gateway(cfg, data_dir=data, config_path=path, storage=open_storage(cfg.storage, data), clock=clock)
    audit = Audit()
    gw.alarms.auditor = audit
    return gw, clock, audit


def pf(gw: Gateway, clock: Clock, value: float, seconds: int) -> None:
    for _ in range(seconds):
        clock.t += 1
        gw.alarms.engine.update([Reading(clock.t, "grid", Q.POWER_FACTOR, Phase.TOTAL, value)])
        gw.alarms.engine.tick()


def sign_in(client: TestClient, username: str, role: str) -> dict[str, str]:
    client.app.state.auth.store.add(username, "correct horse", role)  # type: ignore[attr-defined]
    r = client.post("/api/v1/auth/login", json={"username": username, "password": "correct horse"})
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": str(r.json()["csrf"])}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Gateway, Clock, Audit, TestClient]]:
    gw, clock, audit = make(tmp_path)
    with TestClient(create_app(gw)) as c:
        yield gw, clock, audit, c
    gw.storage.close()


def test_the_list_shows_an_active_alarm_with_the_documented_fields(site: tuple) -> None:
    gw, clock, _, client = site
    sign_in(client, "rita", "reader")
    assert client.get("/api/v1/alarms").json()["alarms"] == []
    pf(gw, clock, 0.82, 6)
    body = client.get("/api/v1/alarms").json()
    assert body["counts"]["unacknowledged"] == 1
    (a,) = body["alarms"]
    assert a == {
        "id": "pf-low/grid",
        "rule": "pf-low",
        "target": "grid",
        "phase": "total",
        "quantity": "power_factor",
        "state": "unack-active",
        "severity": "medium",
        "value": 0.82,
        "limit": 0.85,
        "unit": "",
        "since": "2025-11-22T04:00:06Z",
        "acked_by": None,
        "ack_comment": None,
        "shelved_until": None,
        "shelved_by": None,
        "title": "Power factor low",
        "message": "grid power_factor total = 0.82 (limit 0.85)",
    }
    every = client.get("/api/v1/alarms?all=true").json()["alarms"]
    assert {x["id"] for x in every} >= {
        "pf-low/grid",
        "system:device_offline/meter",
        "system:site_outage/site",
    }


def test_a_reader_cannot_acknowledge_unless_allowed_an_admin_can_and_it_is_audited(site: tuple) -> None:
    gw, clock, audit, client = site
    pf(gw, clock, 0.82, 6)
    h = sign_in(client, "rita", "reader")
    r = client.post("/api/v1/alarms/pf-low/grid/ack", json={"comment": "seen"}, headers=h)
    assert r.status_code == 403
    assert "alarms.reader_can_ack is off" in r.json()["detail"]
    h = sign_in(client, "alice", "admin")
    r = client.post("/api/v1/alarms/pf-low/grid/ack", json={"comment": "capacitor bank ordered"}, headers=h)
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["acked_by"], r.json()["ack_comment"]) == (
        "ack-active",
        "alice",
        "capacitor bank ordered",
    )
    r = client.post("/api/v1/alarms/pf-low/grid/ack", json={}, headers=h)
    assert r.status_code == 409 and "nothing to acknowledge" in r.json()["detail"]
    r = client.post("/api/v1/alarms/no-such/alarm/ack", json={}, headers=h)
    assert r.status_code == 404 and "unknown alarm 'no-such/alarm'" in r.json()["detail"]
    assert [(e.actor, e.action, e.target, e.before, e.after) for e in audit.entries] == [
        ("alice", "alarm.ack", "pf-low/grid", "unack-active", "ack-active")
    ]


def test_a_reader_may_acknowledge_when_the_site_allows_it(tmp_path: Path) -> None:
    gw, clock, audit = make(tmp_path, reader_can_ack=True)
    with TestClient(create_app(gw)) as client:
        pf(gw, clock, 0.82, 6)
        h = sign_in(client, "rita", "reader")
        r = client.post("/api/v1/alarms/pf-low/grid/ack", json={"comment": "seen"}, headers=h)
        assert r.status_code == 200 and r.json()["acked_by"] == "rita"
        r = client.post("/api/v1/alarms/pf-low/grid/shelve", json={"duration_s": 60}, headers=h)
        assert r.status_code == 403  # shelving stays with the admins
    gw.storage.close()


def test_shelve_and_unshelve(site: tuple) -> None:
    gw, clock, audit, client = site
    h = sign_in(client, "alice", "admin")
    pf(gw, clock, 0.82, 6)
    r = client.post("/api/v1/alarms/pf-low/grid/shelve", json={"duration_s": 0}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "duration_s"]
    r = client.post(
        "/api/v1/alarms/pf-low/grid/shelve", json={"duration_s": 600, "comment": "retrofit"}, headers=h
    )
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["shelved_until"], r.json()["shelved_by"]) == (
        "shelved",
        "2025-11-22T04:10:06Z",
        "alice",
    )
    r = client.post("/api/v1/alarms/pf-low/grid/unshelve", json={}, headers=h)
    assert r.json()["state"] == "unack-active"
    assert [e.action for e in audit.entries] == ["alarm.shelve", "alarm.unshelve"]


def test_rules_crud_writes_the_site_file_and_refuses_bad_rules_naming_the_field(
    site: tuple, tmp_path: Path
) -> None:
    gw, clock, audit, client = site
    h = sign_in(client, "alice", "admin")
    rule = {
        "id": "v-high",
        "target": "grid",
        "quantity": "voltage",
        "phase": "any",
        "condition": "high",
        "high": 253,
        "severity": "high",
    }
    bad = [
        ({**rule, "quantity": "voltag"}, ["body", "quantity"], "unknown quantity 'voltag'"),
        ({**rule, "target": "nowhere"}, ["body", "target"], "unknown target 'nowhere'"),
        ({**rule, "phase": "L4"}, ["body", "phase"], "Input should be"),
        ({**rule, "condition": "band", "low": 260}, ["body"], "can never fire"),
    ]
    for body, loc, msg in bad:
        r = client.post("/api/v1/alarm-rules", json=body, headers=h)
        assert r.status_code == 422, r.text
        d = r.json()["detail"][0]
        assert d["loc"] == loc and msg in d["msg"], d
    r = client.post("/api/v1/alarm-rules", json=rule, headers=h)
    assert r.status_code == 201, r.text
    assert "v-high" in (tmp_path / "site.yaml").read_text()
    assert "v-high/grid/any" in gw.alarms.engine.index  # in force at once
    r = client.post("/api/v1/alarm-rules", json=rule, headers=h)
    assert r.status_code == 409
    r = client.put("/api/v1/alarm-rules/v-high", json={**rule, "high": 250}, headers=h)
    assert r.status_code == 200 and r.json()["high"] == 250
    assert client.get("/api/v1/alarm-rules/v-high").json()["high"] == 250
    r = client.delete("/api/v1/alarm-rules/v-high", headers=h)
    assert r.status_code == 204
    assert [x["id"] for x in client.get("/api/v1/alarm-rules").json()["rules"]] == ["pf-low"]
    assert "v-high" not in (tmp_path / "site.yaml").read_text()
    assert [(e.action, e.target) for e in audit.entries] == [
        ("alarm-rule.create", "v-high"),
        ("alarm-rule.update", "v-high"),
        ("alarm-rule.delete", "v-high"),
    ]
    assert audit.entries[1].before["high"] == 253 and audit.entries[1].after["high"] == 250
    reader = sign_in(client, "rita", "reader")
    assert client.post("/api/v1/alarm-rules", json=rule, headers=reader).status_code == 403


def test_an_active_alarm_keeps_its_state_when_another_rule_is_added(site: tuple) -> None:
    gw, clock, _, client = site
    h = sign_in(client, "alice", "admin")
    pf(gw, clock, 0.82, 6)
    client.post("/api/v1/alarms/pf-low/grid/ack", json={}, headers=h)
    rule = {
        "id": "f",
        "target": "site",
        "quantity": "frequency",
        "condition": "band",
        "low": 49.5,
        "high": 50.5,
    }
    assert client.post("/api/v1/alarm-rules", json=rule, headers=h).status_code == 201
    (a,) = client.get("/api/v1/alarms").json()["alarms"]
    assert (a["id"], a["state"], a["acked_by"]) == ("pf-low/grid", "ack-active", "alice")


def test_health_lists_the_alarm_sink(site: tuple) -> None:
    gw, clock, _, client = site
    pf(gw, clock, 0.82, 6)
    h = gw.health()["sink:alarms"]
    assert h.counters["active"] == 1 and h.counters["unacknowledged"] == 1
    assert h.message.startswith("1 active, 1 unacknowledged of ")


def test_the_first_rule_of_a_site_without_an_alarms_section_adds_the_section(tmp_path: Path) -> None:
    text = SITE[: SITE.index("alarms:")]
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    cfg = parse_site(text, str(path))
    (tmp_path / "data").mkdir()
    gw = Gateway(
        cfg,
        data_dir=tmp_path / "data",
        config_path=path,
        storage=open_storage(cfg.storage, tmp_path / "data"),
    )
    with TestClient(create_app(gw)) as client:
        h = sign_in(client, "alice", "admin")
        rule = {
            "id": "ev-kw",
            "target": "grid",
            "quantity": "active_power",
            "unit": "kW",
            "condition": "high",
            "high": 11.5,
        }
        r = client.post("/api/v1/alarm-rules", json=rule, headers=h)
        assert r.status_code == 201, r.text
    written = path.read_text()
    assert written.startswith(text)  # what was there stays as it was
    reread = parse_site(written, str(path))
    assert reread.alarms is not None and [x.id for x in reread.alarms.rules] == ["ev-kw"]
    assert reread.alarms.rules[0].high == 11.5 and reread.alarms.rules[0].unit == "kW"
    assert "system:" not in written  # defaults are not spelled out
    gw.storage.close()
