"""The event logs over HTTP: alarm log, power-quality log and audit log (JSON and CSV, filters, roles),
and configuration changes through the API landing in the audit log with user, before and after."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient

from meterhub.alarms.model import AlarmEvent, AlarmState, EventKind, Severity
from meterhub.model.audit import AuditEntry
from meterhub.model.pq import PqEvent, PqKind, PqSource
from meterhub.model.quantities import Q
from meterhub.runtime import Gateway
from meterhub.storage.events import AlarmLogListener

from .conftest import T0, add_user, login

DAY = 86400.0
SPAN = {"from": "2025-11-22T00:00:00Z", "to": "2025-11-23T00:00:00Z"}  # T0 is 2025-11-22T04:00:00Z


def _alarm(seq: int, ts: float, kind: EventKind, state: AlarmState, **kw: object) -> AlarmEvent:
    fields: dict[str, object] = {
        "alarm_id": "pf-low/hvac/total",
        "rule": "pf-low",
        "severity": Severity.HIGH,
        "target": "hvac",
        "phase": "total",
        "quantity": Q.POWER_FACTOR,
        "value": 0.62,
        "limit": 0.8,
        "unit": "",
        "title": "PF low on HVAC",
        "message": "power factor 0.62 below 0.80",
    }
    fields.update(kw)
    return AlarmEvent(seq=seq, kind=kind, state=state, ts=ts, **fields)  # type: ignore[arg-type]


def _log_alarms(gateway: Gateway) -> None:
    listener = AlarmLogListener(gateway.event_log)  # as the alarm engine's listener
    listener.on_event(_alarm(1, T0 + 10, EventKind.RAISED, AlarmState.UNACK_ACTIVE))
    listener.on_event(
        _alarm(2, T0 + 70, EventKind.ACKNOWLEDGED, AlarmState.ACK_ACTIVE, user="alice", comment="bank off")
    )
    listener.on_event(
        _alarm(
            3,
            T0 + 80,
            EventKind.RAISED,
            AlarmState.UNACK_ACTIVE,
            rule="u-high",
            alarm_id="u-high/grid/L1",
            target="grid",
            phase="L1",
            quantity=Q.VOLTAGE,
            value=255.1,
            limit=253.0,
            unit="V",
            severity=Severity.CRITICAL,
            title="Overvoltage L1",
            message="255.1 V above 253 V",
        )  # fmt: skip
    )
    listener.on_event(_alarm(4, T0 - 2 * DAY, EventKind.CLEARED, AlarmState.NORMAL))  # outside the span
    assert gateway.event_log.wait_written(10.0)


def test_alarm_log_answers_every_transition_with_value_limit_and_user(
    client: TestClient, gateway: Gateway, reader: dict[str, str]
) -> None:
    _log_alarms(gateway)
    r = client.get("/api/v1/alarms/log", params=SPAN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["truncated"] is False
    assert [e["seq"] for e in body["events"]] == [3, 2, 1]  # newest first
    over = body["events"][0]
    assert over == {
        "seq": 3, "ts": "2025-11-22T04:01:20.000Z", "alarm_id": "u-high/grid/L1", "rule": "u-high",
        "kind": "raised", "state": "unack-active", "severity": "critical", "target": "grid", "phase": "L1",
        "quantity": "voltage", "value": 255.1, "limit": 253.0, "unit": "V", "title": "Overvoltage L1",
        "message": "255.1 V above 253 V", "user": None, "comment": None,
    }  # fmt: skip
    acked = body["events"][1]
    assert (acked["kind"], acked["user"], acked["comment"]) == ("acknowledged", "alice", "bank off")


def test_alarm_log_filters_and_orders(client: TestClient, gateway: Gateway, reader: dict[str, str]) -> None:
    _log_alarms(gateway)

    def seqs(**params: object) -> list[int]:
        r = client.get("/api/v1/alarms/log", params={**SPAN, **params})
        assert r.status_code == 200, r.text
        return [e["seq"] for e in r.json()["events"]]

    assert seqs(order="asc") == [1, 2, 3]
    assert seqs(rule="pf-low") == [2, 1]
    assert seqs(target="grid") == [3]
    assert seqs(severity="critical") == [3]
    assert seqs(severity="critical,high", kind="raised") == [3, 1]
    assert seqs(alarm="pf-low/hvac/total", kind=["acknowledged"]) == [2]
    assert seqs(**{"from": str(T0 + 60)}) == [3, 2]  # Unix seconds work too
    assert seqs(**{"from": "2025-11-20T00:00:00Z"}) == [3, 2, 1, 4]
    r = client.get("/api/v1/alarms/log", params={**SPAN, "limit": 2})
    assert [e["seq"] for e in r.json()["events"]] == [3, 2] and r.json()["truncated"] is True


def test_alarm_log_exports_csv(client: TestClient, gateway: Gateway, reader: dict[str, str]) -> None:
    _log_alarms(gateway)
    r = client.get("/api/v1/alarms/log", params={**SPAN, "format": "csv", "order": "asc"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"] and ".csv" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["seq"] for row in rows] == ["1", "2", "3"]
    assert rows[0]["ts"] == "2025-11-22T04:00:10.000Z" and rows[0]["value"] == "0.62"
    assert rows[0]["limit"] == "0.8" and rows[0]["user"] == ""
    assert rows[1]["user"] == "alice" and rows[1]["comment"] == "bank off"


def test_log_queries_refuse_bad_parameters_naming_them(client: TestClient, reader: dict[str, str]) -> None:
    def refused(path: str, **params: object) -> str:
        r = client.get(path, params=params)
        assert r.status_code == 422, r.text
        return str(r.json()["detail"][0]["loc"][-1]) + ": " + r.json()["detail"][0]["msg"]

    assert refused("/api/v1/alarms/log", severity="urgent").startswith("severity: unknown severity 'urgent'")
    assert refused("/api/v1/alarms/log", kind="exploded").startswith("kind: ")
    assert refused("/api/v1/alarms/log", **{"from": "yesterday"}).startswith("from: ")
    assert refused("/api/v1/alarms/log", **{"from": "2025-11-23", "to": "2025-11-22"}).startswith("from: ")
    assert refused("/api/v1/events/pq", kind="sag").startswith("kind: unknown kind 'sag'")
    assert refused("/api/v1/events/pq", phase="L4").startswith("phase: ")
    assert refused("/api/v1/alarms/log", limit=0).startswith("limit: ")


def test_logs_need_a_user_and_the_audit_log_an_admin(client: TestClient, gateway: Gateway) -> None:
    for path in ("/api/v1/alarms/log", "/api/v1/events/pq", "/api/v1/audit"):
        assert client.get(path).status_code == 401, path
    add_user(client, "rita", "reader")
    login(client, "rita")
    assert client.get("/api/v1/alarms/log").status_code == 200
    assert client.get("/api/v1/events/pq").status_code == 200
    assert client.get("/api/v1/audit").status_code == 403


def test_pq_log_answers_events_with_phase_extreme_and_flag(
    client: TestClient, gateway: Gateway, reader: dict[str, str]
) -> None:
    gateway.emit_pq_events(
        [
            PqEvent(
                PqKind.DIP, T0 + 12.25, 0.08, 161.0, "V", "vu", PqSource.WAVEFORM, phase="L2", threshold=90.0
            ),
            PqEvent(
                PqKind.INTERRUPTION,
                T0 + 300,
                2.5,
                3.1,
                "V",
                "vu",
                PqSource.WAVEFORM,
                phase="L1",
                threshold=5.0,
            ),
        ]
    )
    assert gateway.event_log.wait_written(10.0)
    r = client.get("/api/v1/events/pq", params={**SPAN, "order": "asc"})
    assert r.status_code == 200
    events = r.json()["events"]
    assert [(e["kind"], e["phase"], e["extreme"], e["duration"]) for e in events] == [
        ("dip", "L2", 161.0, 0.08),
        ("interruption", "L1", 3.1, 2.5),
    ]
    assert events[0]["start"] == "2025-11-22T04:00:12.250Z"
    assert (
        events[0]["flagged"] is True and events[0]["source"] == "waveform" and events[0]["threshold"] == 90.0
    )
    only = client.get("/api/v1/events/pq", params={**SPAN, "kind": "interruption"}).json()["events"]
    assert [e["kind"] for e in only] == ["interruption"]
    rows = list(
        csv.DictReader(io.StringIO(client.get("/api/v1/events/pq", params={**SPAN, "format": "csv"}).text))
    )
    assert [(row["kind"], row["flagged"], row["unit"]) for row in rows] == [
        ("interruption", "1", "V"),
        ("dip", "1", "V"),
    ]


def test_a_circuit_change_through_the_api_is_audited_with_user_before_and_after(
    client: TestClient, gateway: Gateway, admin: dict[str, str]
) -> None:
    r = client.patch("/api/v1/circuits/hvac", json={"name": "Cooling"}, headers=admin)
    assert r.status_code == 200, r.text
    assert gateway.event_log.wait_written(10.0)
    entries = client.get("/api/v1/audit").json()["entries"]
    assert len(entries) == 1
    e = entries[0]
    assert (e["actor"], e["action"], e["target"]) == ("alice", "config.write", "circuits")
    # Only the changed circuit, before and after (not the whole list of circuits).
    assert list(e["before"]) == ["hvac"] and list(e["after"]) == ["hvac"]
    assert e["before"]["hvac"]["name"] == "HVAC" and e["after"]["hvac"]["name"] == "Cooling"
    assert e["extra"] == {"request": "PATCH /api/v1/circuits/hvac"}
    # A circuit added and one removed: None on the side where it does not exist.
    body = {"id": "ev", "name": "EV charger", "device": "m2", "channels": [2], "wiring": "1P2W"}
    assert client.post("/api/v1/circuits", json=body, headers=admin).status_code in (200, 201)
    assert client.delete("/api/v1/circuits/ev", headers=admin).status_code in (200, 204)
    assert gateway.event_log.wait_written(10.0)
    entries = client.get("/api/v1/audit", params={"action": "config.write", "order": "asc"}).json()["entries"]
    assert [(x["before"].get("ev") is None, x["after"].get("ev") is None) for x in entries[1:]] == [
        (True, False),
        (False, True),
    ]
    assert entries[1]["after"]["ev"]["name"] == "EV charger"


def test_audit_log_filters_and_csv(client: TestClient, gateway: Gateway, admin: dict[str, str]) -> None:
    gateway.auditor.record(AuditEntry(T0 + 1, "rule:ev-shed", "relay.switch", "dio/relay2", "on", "off"))
    gateway.auditor.record(AuditEntry(T0 + 2, "alice", "alarm.ack", "pf-low/hvac/total", comment="seen"))
    assert gateway.event_log.wait_written(10.0)
    only = client.get("/api/v1/audit", params={**SPAN, "actor": "alice"}).json()["entries"]
    assert [(x["action"], x["comment"]) for x in only] == [("alarm.ack", "seen")]
    r = client.get("/api/v1/audit", params={**SPAN, "format": "csv", "order": "asc"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(row["actor"], row["action"], row["before"], row["after"]) for row in rows] == [
        ("rule:ev-shed", "relay.switch", "on", "off"),  # objects and lists as JSON text, values as they are
        ("alice", "alarm.ack", "", ""),
    ]
