"""The alarm, audit and power-quality logs in every backend (see conftest.py), and their writer."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from meterhub.alarms.model import AlarmEvent, AlarmListener, AlarmState, EventKind, Severity
from meterhub.model.audit import AuditEntry, Auditor
from meterhub.model.pq import PqEvent, PqKind, PqSource
from meterhub.model.quantities import Q
from meterhub.storage import Storage, open_storage
from meterhub.storage.base import StorageError, StorageUnavailableError
from meterhub.storage.events import (
    AlarmLogListener,
    EventStore,
    EventWriter,
    StorageAuditor,
)

from .conftest import BackendSpec

T0 = 1_798_761_600  # 2027-01-01T00:00:00Z
DAY = 86400


def alarm(seq: int, ts: float, kind: EventKind, state: AlarmState, **kw: Any) -> AlarmEvent:
    fields: dict[str, Any] = {
        "alarm_id": "pf-low/compressor/total",
        "rule": "pf-low",
        "severity": Severity.HIGH,
        "target": "compressor",
        "phase": "total",
        "quantity": Q.POWER_FACTOR,
        "value": 0.62,
        "limit": 0.8,
        "unit": "",
        "title": "PF low on compressor",
        "message": "power factor 0.62 below 0.80",
    }
    fields.update(kw)
    return AlarmEvent(seq=seq, kind=kind, state=state, ts=ts, **fields)


def events_of(storage: Storage) -> EventStore:
    assert isinstance(storage, EventStore)
    return storage


def test_alarm_log_keeps_every_transition_once_with_value_limit_and_user(storage_backend: Storage) -> None:
    log = events_of(storage_backend)
    raised = alarm(1, T0 + 10, EventKind.RAISED, AlarmState.UNACK_ACTIVE)
    acked = alarm(
        2, T0 + 70, EventKind.ACKNOWLEDGED, AlarmState.ACK_ACTIVE, user="olga", comment="capacitor bank off"
    )
    cleared = alarm(3, T0 + 700, EventKind.CLEARED, AlarmState.NORMAL, value=0.93)
    log.write_events(alarms=[raised, acked])
    log.write_events(alarms=[acked, cleared])  # seq 2 again: a replay after a restart, stored once
    page = log.alarm_log(T0, T0 + DAY, newest_first=False)
    assert not page.truncated
    assert [(r.seq, r.kind, r.state) for r in page.rows] == [
        (1, "raised", "unack-active"),
        (2, "acknowledged", "ack-active"),
        (3, "cleared", "normal"),
    ]
    first, second, third = page.rows
    assert (first.ts, first.value, first.limit, first.quantity, first.phase) == (
        T0 + 10,
        0.62,
        0.8,
        "power_factor",
        "total",
    )
    assert (second.user, second.comment) == ("olga", "capacitor bank off")
    assert third.value == 0.93
    # Newest first by default; the row carries every field of the event.
    newest = log.alarm_log(T0, T0 + DAY).rows[0]
    assert newest.seq == 3 and newest.title == "PF low on compressor" and newest.rule == "pf-low"


def test_alarm_log_filters_by_time_rule_target_severity_and_kind(storage_backend: Storage) -> None:
    log = events_of(storage_backend)
    log.write_events(
        alarms=[
            alarm(1, T0 + 1, EventKind.RAISED, AlarmState.UNACK_ACTIVE),
            alarm(
                2,
                T0 + 2,
                EventKind.RAISED,
                AlarmState.UNACK_ACTIVE,
                rule="u-high",
                target="main",
                alarm_id="u-high/main/L1",
                severity=Severity.CRITICAL,
            ),  # fmt: skip
            alarm(
                3,
                T0 + 3,
                EventKind.CLEARED,
                AlarmState.RTN_UNACK,
                rule="u-high",
                target="main",
                alarm_id="u-high/main/L1",
                severity=Severity.CRITICAL,
            ),  # fmt: skip
            alarm(4, T0 + 3600, EventKind.REMINDER, AlarmState.UNACK_ACTIVE),
        ]
    )

    def seqs(**kw: Any) -> list[int]:
        return [
            r.seq
            for r in log.alarm_log(
                kw.pop("start", T0), kw.pop("end", T0 + DAY), newest_first=False, **kw
            ).rows
        ]

    assert seqs() == [1, 2, 3, 4]
    assert seqs(end=T0 + 3) == [1, 2]  # end is exclusive
    assert seqs(start=T0 + 3) == [3, 4]
    assert seqs(rule=["u-high"]) == [2, 3]
    assert seqs(target=["compressor"]) == [1, 4]
    assert seqs(severity=["critical"]) == [2, 3]
    assert seqs(kind=["raised"]) == [1, 2]
    assert seqs(kind=["raised", "reminder"], target=["compressor"]) == [1, 4]
    page = log.alarm_log(T0, T0 + DAY, limit=2)
    assert [r.seq for r in page.rows] == [4, 3] and page.truncated


def test_audit_log_keeps_before_and_after_as_json(storage_backend: Storage) -> None:
    log = events_of(storage_backend)
    before = {"id": "compressor", "ct": {"ratio": "800/5"}}
    after = {"id": "compressor", "ct": {"ratio": "1000/5"}}
    log.write_events(
        audit=[
            AuditEntry(T0 + 5, "olga", "config.write", "circuits", before, after, comment="new CT"),
            AuditEntry(T0 + 6, "rule:ev-shed", "relay.switch", "dio1/relay2", "on", "off"),
            AuditEntry(T0 + 7, "olga", "alarm.ack", "pf-low/compressor/total", extra={"seq": 2}),
        ]
    )
    page = log.audit_log(T0, T0 + DAY, newest_first=False)
    assert [(s.entry.actor, s.entry.action, s.entry.target) for s in page.rows] == [
        ("olga", "config.write", "circuits"),
        ("rule:ev-shed", "relay.switch", "dio1/relay2"),
        ("olga", "alarm.ack", "pf-low/compressor/total"),
    ]
    first = page.rows[0].entry
    assert (first.ts, first.before, first.after, first.comment) == (T0 + 5, before, after, "new CT")
    assert page.rows[1].entry.before == "on" and page.rows[1].entry.after == "off"
    assert page.rows[2].entry.before is None and page.rows[2].entry.extra == {"seq": 2}
    assert [s.entry.action for s in log.audit_log(T0, T0 + DAY, actor=["olga"]).rows] == [
        "alarm.ack",
        "config.write",
    ]
    assert [s.entry.actor for s in log.audit_log(T0, T0 + DAY, action=["relay.switch"]).rows] == [
        "rule:ev-shed"
    ]


def test_pq_log_keeps_events_once_with_phase_extreme_and_flag(storage_backend: Storage) -> None:
    log = events_of(storage_backend)
    dip = PqEvent(
        PqKind.DIP, T0 + 12.25, 0.08, 161.0, "V", "vu1", PqSource.WAVEFORM, phase="L2", threshold=90.0
    )
    swell = PqEvent(
        PqKind.SWELL, T0 + 100.5, 0.2, 262.5, "V", "vu1", PqSource.WAVEFORM, phase="L1", threshold=110.0
    )
    freq = PqEvent(PqKind.FREQUENCY, T0 + 200, 10.0, 49.42, "Hz", "m1", PqSource.DEVICE, flagged=False)
    log.write_events(pq=[dip, swell])
    log.write_events(pq=[dip, freq])  # the same dip reported again is stored once
    page = log.pq_log(T0, T0 + DAY, newest_first=False)
    assert [s.event for s in page.rows] == [dip, swell, freq]
    assert [s.event.kind for s in log.pq_log(T0, T0 + DAY, kind=["dip", "interruption"]).rows] == [PqKind.DIP]
    assert [s.event.device for s in log.pq_log(T0, T0 + DAY, device=["m1"]).rows] == ["m1"]
    assert [s.event.phase for s in log.pq_log(T0, T0 + DAY, phase=["L1"]).rows] == ["L1"]


def test_retention_removes_old_log_rows_and_keeps_the_audit_log_longer(storage_spec: BackendSpec) -> None:
    storage = storage_spec.open(event_retention_days=30, audit_retention_days=365)
    log = events_of(storage)
    old, recent = T0 - 40 * DAY, T0 - 10 * DAY
    log.write_events(
        alarms=[
            alarm(1, old, EventKind.RAISED, AlarmState.UNACK_ACTIVE),
            alarm(2, recent, EventKind.CLEARED, AlarmState.RTN_UNACK),
        ],  # fmt: skip
        audit=[
            AuditEntry(old, "olga", "config.write", "site"),
            AuditEntry(T0 - 400 * DAY, "olga", "config.write", "site"),
        ],
        pq=[
            PqEvent(PqKind.DIP, old, 0.1, 150.0, "V", "vu1", PqSource.WAVEFORM, phase="L1"),
            PqEvent(PqKind.DIP, recent, 0.1, 150.0, "V", "vu1", PqSource.WAVEFORM, phase="L1"),
        ],  # fmt: skip
    )
    storage.apply_retention(T0)  # the storage's periodic retention covers the logs
    assert [r.seq for r in log.alarm_log(0, T0 + DAY).rows] == [2]
    assert [s.event.start for s in log.pq_log(0, T0 + DAY).rows] == [recent]
    assert [s.entry.ts for s in log.audit_log(0, T0 + DAY).rows] == [old]  # 40 d < 365 d; 400 d went
    assert log.apply_event_retention(T0 + 400 * DAY) == {"alarm_log": 1, "pq_log": 1, "audit_log": 1}


def test_logs_survive_a_restart(storage_spec: BackendSpec) -> None:
    first = storage_spec.open()
    events_of(first).write_events(alarms=[alarm(7, T0, EventKind.RAISED, AlarmState.UNACK_ACTIVE)])
    first.close()
    again = events_of(storage_spec.open())
    assert [r.seq for r in again.alarm_log(0, T0 + 1).rows] == [7]


def test_listener_and_auditor_write_through_the_writer_thread(storage_backend: Storage) -> None:
    writer = EventWriter(lambda: events_of(storage_backend))
    listener: AlarmListener = AlarmLogListener(writer)  # they satisfy the contract's protocols
    auditor: Auditor = StorageAuditor(writer)
    caller = threading.get_ident()
    for seq in range(1, 501):
        listener.on_event(alarm(seq, T0 + seq, EventKind.REMINDER, AlarmState.UNACK_ACTIVE))
    auditor.record(AuditEntry(T0, "olga", "alarm.ack", "pf-low/compressor/total", comment="seen"))
    assert writer.wait_written(10.0)
    assert threading.get_ident() == caller
    log = events_of(storage_backend)
    assert len(log.alarm_log(0, T0 + DAY, limit=1000).rows) == 500
    assert log.audit_log(0, T0 + DAY).rows[0].entry.comment == "seen"
    assert writer.written == 501 and writer.health().state.value == "ok"
    writer.close()


class _Flaky(EventStore):
    """A store that is away until ``back`` is set, then keeps what it is given."""

    def __init__(self) -> None:
        self.back = threading.Event()
        self.alarms: list[int] = []
        self.audit: list[tuple[Any, ...]] = []
        self.attempts = 0

    def write_events(self, alarms: Any = (), audit: Any = (), pq: Any = ()) -> None:
        self.attempts += 1
        if not self.back.is_set():
            raise StorageUnavailableError("PostgreSQL (host=127.0.0.1) is unreachable")
        self.alarms.extend(a.seq for a in alarms)
        self.audit.extend((e.actor, e.action, e.before, e.comment) for e in audit)

    def alarm_log(self, *a: Any, **k: Any) -> Any:
        raise NotImplementedError

    def audit_log(self, *a: Any, **k: Any) -> Any:
        raise NotImplementedError

    def pq_log(self, *a: Any, **k: Any) -> Any:
        raise NotImplementedError

    def apply_event_retention(self, now: float) -> dict[str, int]:
        return {}


def test_writer_keeps_records_in_order_while_the_database_is_away() -> None:
    store = _Flaky()
    writer = EventWriter(lambda: store, retry=0.01)
    began = time.perf_counter()
    for seq in (1, 2, 3):
        writer.alarm(alarm(seq, T0 + seq, EventKind.RAISED, AlarmState.UNACK_ACTIVE))
    assert time.perf_counter() - began < 0.5  # never waits for the database
    deadline = time.monotonic() + 5
    while store.attempts < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    health = writer.health()
    assert health.state.value == "degraded" and "unreachable" in health.message
    assert health.counters["pending"] == 3
    writer.alarm(alarm(4, T0 + 4, EventKind.CLEARED, AlarmState.RTN_UNACK))
    store.back.set()
    assert writer.wait_written(5.0)
    assert store.alarms == [1, 2, 3, 4]
    assert writer.health().state.value == "ok"
    writer.close()


def test_with_a_spool_records_that_meet_an_outage_survive_a_restart_and_keep_their_order(
    tmp_path: Path,
) -> None:
    spool = tmp_path / "event-log-spool.sqlite"
    store = _Flaky()
    first = EventWriter(lambda: store, spool=spool, retry=0.01)
    for seq in (1, 2, 3):
        first.alarm(alarm(seq, T0 + seq, EventKind.RAISED, AlarmState.UNACK_ACTIVE))
    first.audit(AuditEntry(T0 + 4, "olga", "alarm.ack", "pf-low/compressor/total", {"a": 1}, None, "seen"))
    deadline = time.monotonic() + 5
    while first.health().counters["spooled"] < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    health = first.health()
    assert health.counters["spooled"] == 4 and health.state.value == "degraded"
    first.close(timeout=0.2)  # the gateway stops during the outage: the records stay in the file
    assert store.alarms == [] and spool.exists()
    store.back.set()
    second = EventWriter(lambda: store, spool=spool, retry=0.01)  # the next start delivers them
    assert second.wait_written(5.0)
    assert store.alarms == [1, 2, 3]
    assert store.audit == [("olga", "alarm.ack", {"a": 1}, "seen")]
    second.alarm(alarm(5, T0 + 5, EventKind.CLEARED, AlarmState.RTN_UNACK))
    assert second.wait_written(5.0) and store.alarms == [1, 2, 3, 5]
    assert second.health().counters["spooled"] == 0
    second.close()


def test_read_only_storage_refuses_to_log(storage_spec: BackendSpec) -> None:
    storage_spec.open().close()
    if storage_spec.name != "sqlite":
        pytest.skip("read-only opening is checked on SQLite")
    ro = open_storage(storage_spec.config(), storage_spec.data_dir, read_only=True)
    with pytest.raises(StorageError, match="read-only"):
        events_of(ro).write_events(audit=[AuditEntry(T0, "olga", "config.write", "site")])
    assert events_of(ro).audit_log(0, T0).rows == []
    ro.close()
