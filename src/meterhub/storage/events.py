"""The event logs in the storage backend: the alarm log, the audit log, the power-quality log, the
devices' own event logs and the ranges filled from devices' memory.

Tables (same names and columns in SQLite and PostgreSQL; times in ms since the epoch, UTC):

``alarm_log``  every alarm transition (:class:`meterhub.alarms.model.AlarmEvent`): primary key
               ``seq``, the engine's strictly increasing event number, so writing an event again
               (a replay after a restart) stores it once. ``limit_value`` and ``user_name`` hold the
               event's ``limit`` and ``user`` (reserved words in SQL).
``audit_log``  every action on the plant or the configuration (:class:`meterhub.model.audit.AuditEntry`):
               who, when, action, target, before and after as JSON text, comment.
``pq_log``     power-quality events (:class:`meterhub.model.pq.PqEvent`): start, duration, extreme,
               phase, the IEC 61000-4-30 §4.7 flag, the source; unique on (source, device, kind,
               phase, start), so an event reported twice is stored once.
``device_events`` the entries of the devices' own event logs (:class:`meterhub.model.device_log.DeviceEvent`):
               device, ts (the device's capture time), log (``standard``, ``alarm`` …), code, text;
               unique on (device, log, ts, code), so a log read again stores nothing twice.
``filled_ranges`` ranges of a series filled from a device's memory
               (:class:`meterhub.model.device_log.FilledRange`): series (``circuit/quantity/phase``),
               from_ts, to_ts (both included), device, source (``meter-profile``); unique on (series,
               from_ts, to_ts, source).

Retention (``storage.event_retention_days`` for the alarm, power-quality and device event logs and
the filled ranges,
``storage.audit_retention_days`` for the audit log) runs with the raw-value retention
(:meth:`meterhub.storage.relational.SqlStorage.apply_retention`).

Writers never block the event loop: :class:`EventWriter` queues what it is given and writes it in its own
thread, in batches, retrying while the database is away. With PostgreSQL, what meets an outage is
committed to a spool file in the data folder (``DATA/event-log-spool.sqlite``, a durable outbox) and
written from there when the server is back, also after a restart; :meth:`EventWriter.health` shows it.
:class:`AlarmLogListener` (an alarm listener) and :class:`StorageAuditor` (an auditor) hand their
records to one writer.

The storage layer sits below the alarm engine, so it names what it stores of an alarm event with a
protocol of its own (:class:`AlarmRecord`), which :class:`~meterhub.alarms.model.AlarmEvent` satisfies.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from meterhub.model.audit import AuditEntry
from meterhub.model.device_log import DeviceEvent, FilledRange
from meterhub.model.health import Health, HealthState
from meterhub.model.pq import PqEvent, PqKind, PqSource
from meterhub.storage.base import StorageError
from meterhub.storage.ingest import SqlIngest
from meterhub.storage.outbox import Message, Outbox, OutboxError

__all__ = [
    "ALARM_LOG_COLUMNS",
    "AlarmLogListener",
    "AlarmLogRow",
    "AlarmRecord",
    "EventStore",
    "EventWriter",
    "LogPage",
    "POSTGRES_DDL",
    "SQLITE_DDL",
    "SqlEvents",
    "StorageAuditor",
    "StoredAudit",
    "StoredPqEvent",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Rows one query answers at most (a page; ``truncated`` says when more matched).
MAX_ROWS = 100_000

_ALARM_TABLE = """
CREATE TABLE IF NOT EXISTS alarm_log (
    seq BIGINT PRIMARY KEY,
    ts BIGINT NOT NULL,
    alarm_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    target TEXT NOT NULL,
    phase TEXT,
    quantity TEXT,
    value {real},
    limit_value {real},
    unit TEXT,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    user_name TEXT,
    comment TEXT
)"""
_AUDIT_TABLE = """
CREATE TABLE IF NOT EXISTS audit_log (
    id {serial},
    ts BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT,
    comment TEXT,
    extra_json TEXT
)"""
_PQ_TABLE = """
CREATE TABLE IF NOT EXISTS pq_log (
    id {serial},
    start_ts BIGINT NOT NULL,
    duration {real} NOT NULL,
    kind TEXT NOT NULL,
    phase TEXT NOT NULL,
    extreme {real} NOT NULL,
    unit TEXT NOT NULL,
    flagged SMALLINT NOT NULL,
    source TEXT NOT NULL,
    device TEXT NOT NULL,
    circuit TEXT,
    threshold {real},
    UNIQUE (source, device, kind, phase, start_ts)
)"""
_DEVICE_TABLE = """
CREATE TABLE IF NOT EXISTS device_events (
    id {serial},
    device TEXT NOT NULL,
    ts BIGINT NOT NULL,
    log TEXT NOT NULL,
    code BIGINT NOT NULL,
    text TEXT NOT NULL,
    UNIQUE (device, log, ts, code)
)"""
_FILLED_TABLE = """
CREATE TABLE IF NOT EXISTS filled_ranges (
    id {serial},
    series TEXT NOT NULL,
    from_ts BIGINT NOT NULL,
    to_ts BIGINT NOT NULL,
    device TEXT NOT NULL,
    source TEXT NOT NULL,
    UNIQUE (series, from_ts, to_ts, source)
)"""
_INDEXES = [
    "CREATE INDEX IF NOT EXISTS alarm_log_ts ON alarm_log (ts)",
    "CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log (ts)",
    "CREATE INDEX IF NOT EXISTS pq_log_start ON pq_log (start_ts)",
    "CREATE INDEX IF NOT EXISTS device_events_ts ON device_events (ts)",
    "CREATE INDEX IF NOT EXISTS filled_ranges_series ON filled_ranges (series, to_ts)",
]
_TABLES = (_ALARM_TABLE, _AUDIT_TABLE, _PQ_TABLE, _DEVICE_TABLE, _FILLED_TABLE)


def _ddl(real: str, serial: str) -> list[str]:
    return [t.format(real=real, serial=serial) for t in _TABLES] + _INDEXES


#: The event tables in SQLite (executed with ``executescript``).
SQLITE_DDL = ";\n".join(_ddl("REAL", "INTEGER PRIMARY KEY")) + ";\n"
#: The event tables in PostgreSQL, one statement each.
POSTGRES_DDL = _ddl("DOUBLE PRECISION", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")

#: The alarm log's columns, in the order of :class:`AlarmLogRow`'s fields.
ALARM_LOG_COLUMNS = (
    "seq, ts, alarm_id, rule, kind, state, severity, target, phase, quantity, value, limit_value, unit, "
    "title, message, user_name, comment"
)


class AlarmRecord(Protocol):
    """What the alarm log stores of an alarm event (:class:`meterhub.alarms.model.AlarmEvent`);
    enums are stored as their text values."""

    @property
    def seq(self) -> int: ...
    @property
    def alarm_id(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def phase(self) -> str | None: ...
    @property
    def quantity(self) -> str | None: ...
    @property
    def value(self) -> float | None: ...
    @property
    def limit(self) -> float | None: ...
    @property
    def unit(self) -> str | None: ...
    @property
    def ts(self) -> float: ...
    @property
    def title(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def user(self) -> str | None: ...
    @property
    def comment(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class AlarmLogRow:
    """One stored alarm transition: the fields of :class:`~meterhub.alarms.model.AlarmEvent`, enums as
    text (``kind`` raised/cleared/acknowledged …, ``state`` unack-active …, ``severity``)."""

    seq: int
    ts: float  # [s since the epoch, UTC]
    alarm_id: str
    rule: str
    kind: str
    state: str
    severity: str
    target: str
    phase: str | None
    quantity: str | None
    value: float | None
    limit: float | None
    unit: str | None
    title: str
    message: str
    user: str | None
    comment: str | None


@dataclass(frozen=True, slots=True)
class StoredAudit:
    """One stored audit entry (:class:`~meterhub.model.audit.AuditEntry`) with its row id."""

    id: int
    entry: AuditEntry


@dataclass(frozen=True, slots=True)
class StoredPqEvent:
    """One stored power-quality event with its row id."""

    id: int
    event: PqEvent


@dataclass(frozen=True, slots=True)
class LogPage(Generic[_T]):
    """The rows of a log query, newest first (or oldest first when asked); ``truncated``: more rows
    matched than ``limit``."""

    rows: list[_T]
    truncated: bool


class EventStore(abc.ABC):
    """The event logs a storage backend keeps (every SQL backend does, see :class:`SqlEvents`)."""

    @abc.abstractmethod
    def write_events(
        self,
        alarms: Sequence[AlarmRecord] = (),
        audit: Sequence[AuditEntry] = (),
        pq: Sequence[PqEvent] = (),
        device: Sequence[DeviceEvent] = (),
        filled: Sequence[FilledRange] = (),
    ) -> None:
        """Store alarm transitions, audit entries, power-quality events, device log entries and filled
        ranges in one transaction; an alarm event whose ``seq`` is stored already, or a power-quality
        event, device log entry or filled range stored already, is skipped (idempotent)."""

    @abc.abstractmethod
    def alarm_log(
        self,
        start: float,
        end: float,
        *,
        rule: Sequence[str] = (),
        target: Sequence[str] = (),
        severity: Sequence[str] = (),
        kind: Sequence[str] = (),
        alarm_id: Sequence[str] = (),
        limit: int = 1000,
        newest_first: bool = True,
    ) -> LogPage[AlarmLogRow]:
        """Alarm transitions with start ≤ ts < end [s]; each filter, when given, keeps rows whose
        column is one of its values."""

    @abc.abstractmethod
    def audit_log(
        self,
        start: float,
        end: float,
        *,
        actor: Sequence[str] = (),
        action: Sequence[str] = (),
        target: Sequence[str] = (),
        limit: int = 1000,
        newest_first: bool = True,
    ) -> LogPage[StoredAudit]:
        """Audit entries with start ≤ ts < end [s], filtered as :meth:`alarm_log`."""

    @abc.abstractmethod
    def pq_log(
        self,
        start: float,
        end: float,
        *,
        kind: Sequence[str] = (),
        device: Sequence[str] = (),
        phase: Sequence[str] = (),
        limit: int = 1000,
        newest_first: bool = True,
    ) -> LogPage[StoredPqEvent]:
        """Power-quality events that began at start ≤ start < end [s], filtered as :meth:`alarm_log`."""

    def device_events(
        self,
        start: float,
        end: float,
        *,
        device: Sequence[str] = (),
        log: Sequence[str] = (),
        limit: int = 1000,
        newest_first: bool = True,
    ) -> LogPage[DeviceEvent]:
        """Entries of the devices' own event logs with start ≤ ts < end [s], filtered as
        :meth:`alarm_log`."""
        raise NotImplementedError

    def filled_ranges(self, series: str, start: float, end: float) -> list[FilledRange]:
        """Ranges of ``series`` (``circuit/quantity/phase``) filled from a device's memory that overlap
        [start, end] [s], oldest first."""
        raise NotImplementedError

    @abc.abstractmethod
    def apply_event_retention(self, now: float) -> dict[str, int]:
        """Delete log rows older than their retention before ``now`` [s]; rows removed per table."""


def _ms(ts: float) -> int:
    return int(round(ts * 1000))


def _json(value: Any) -> str | None:
    """JSON text of a JSON-ready value (anything else as its ``str``); None stays NULL."""
    if value is None:
        return None
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def _unjson(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _alarm_row(e: AlarmRecord) -> tuple[Any, ...]:
    return (
        int(e.seq),
        _ms(e.ts),
        e.alarm_id,
        e.rule,
        str(e.kind),
        str(e.state),
        str(e.severity),
        e.target,
        e.phase,
        e.quantity,
        _finite(e.value),
        _finite(e.limit),
        e.unit,
        e.title,
        e.message,
        e.user,
        e.comment,
    )


def _where(
    column: str, start: float, end: float, filters: Sequence[tuple[str, Sequence[str]]]
) -> tuple[str, list[Any]]:
    sql = f"{column} >= ? AND {column} < ?"
    params: list[Any] = [math.ceil(start * 1000), math.ceil(end * 1000)]
    for name, values in filters:
        if values:
            sql += f" AND {name} IN ({', '.join('?' for _ in values)})"
            params.extend(values)
    return sql, params


class SqlEvents(SqlIngest, EventStore):
    """The event logs on the SQL backends' connection (see the module docstring)."""

    def write_events(
        self,
        alarms: Sequence[AlarmRecord] = (),
        audit: Sequence[AuditEntry] = (),
        pq: Sequence[PqEvent] = (),
        device: Sequence[DeviceEvent] = (),
        filled: Sequence[FilledRange] = (),
    ) -> None:
        if self.read_only:
            raise StorageError("the storage was opened read-only; events cannot be logged")
        if not (alarms or audit or pq or device or filled):
            return
        with self._lock:
            self._begin()
            try:
                if alarms:
                    self._executemany(
                        f"INSERT INTO alarm_log ({ALARM_LOG_COLUMNS}) VALUES "
                        f"({', '.join('?' for _ in range(17))}) ON CONFLICT (seq) DO NOTHING",
                        [_alarm_row(e) for e in alarms],
                    )
                if audit:
                    self._executemany(
                        "INSERT INTO audit_log (ts, actor, action, target, before_json, after_json, comment, "
                        "extra_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (
                                _ms(a.ts),
                                a.actor,
                                a.action,
                                a.target,
                                _json(a.before),
                                _json(a.after),
                                a.comment,
                                _json(a.extra) if a.extra else None,
                            )
                            for a in audit
                        ],
                    )
                if pq:
                    self._executemany(
                        "INSERT INTO pq_log (start_ts, duration, kind, phase, extreme, unit, flagged, source, "
                        "device, circuit, threshold) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (source, device, kind, phase, start_ts) DO NOTHING",
                        [
                            (
                                _ms(p.start),
                                float(p.duration),
                                p.kind.value,
                                p.phase or "",
                                float(p.extreme),
                                p.unit,
                                int(p.flagged),
                                p.source.value,
                                p.device,
                                p.circuit,
                                p.threshold,
                            )
                            for p in pq
                        ],
                    )
                if device:
                    self._executemany(
                        "INSERT INTO device_events (device, ts, log, code, text) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (device, log, ts, code) DO NOTHING",
                        [(d.device, _ms(d.ts), d.log, int(d.code), d.text) for d in device],
                    )
                if filled:
                    self._executemany(
                        "INSERT INTO filled_ranges (series, from_ts, to_ts, device, source) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (series, from_ts, to_ts, source) DO NOTHING",
                        [(f.series, _ms(f.start), _ms(f.end), f.device, f.source) for f in filled],
                    )
                self._commit()
            except BaseException:
                self._rollback()
                raise

    def _page(self, sql: str, params: list[Any], order: str, limit: int) -> tuple[list[tuple], bool]:
        limit = max(1, min(int(limit), MAX_ROWS))
        with self._lock:
            rows = self._execute(f"{sql} ORDER BY {order} LIMIT ?", (*params, limit + 1))
        return rows[:limit], len(rows) > limit

    def alarm_log(
        self,
        start: float,
        end: float,
        *,
        rule: Sequence[str] = (),
        target: Sequence[str] = (),
        severity: Sequence[str] = (),
        kind: Sequence[str] = (),
        alarm_id: Sequence[str] = (),
        limit: int = 1000,
        newest_first: bool = True,
    ) -> LogPage[AlarmLogRow]:
        where, params = _where(
            "ts",
            start,
            end,
            [
                ("rule", rule),
                ("target", target),
                ("severity", severity),
                ("kind", kind),
                ("alarm_id", alarm_id),
            ],
        )
        direction = "DESC" if newest_first else "ASC"
        rows, more = self._page(
            f"SELECT {ALARM_LOG_COLUMNS} FROM alarm_log WHERE {where}",
            params,
            f"ts {direction}, seq {direction}",
            limit,
        )
        out = [AlarmLogRow(int(r[0]), r[1] / 1000, *r[2:]) for r in rows]
        return LogPage(out, more)

    def audit_log(
        self,
        start: float,
        end: float,
        *,
        actor: Sequence[str] = (),
        action: Sequence[str] = (),
        target: Sequence[str] = (),
        limit: int = 1000,
        newest_first: bool = True,
    ) -> LogPage[StoredAudit]:
        where, params = _where("ts", start, end, [("actor", actor), ("action", action), ("target", target)])
        direction = "DESC" if newest_first else "ASC"
        rows, more = self._page(
            "SELECT id, ts, actor, action, target, before_json, after_json, comment, extra_json "
            f"FROM audit_log WHERE {where}",
            params,
            f"ts {direction}, id {direction}",
            limit,
        )
        out = [
            StoredAudit(
                int(r[0]),
                AuditEntry(
                    ts=r[1] / 1000,
                    actor=r[2],
                    action=r[3],
                    target=r[4],
                    before=_unjson(r[5]),
                    after=_unjson(r[6]),
                    comment=r[7],
                    extra=_unjson(r[8]) or {},
                ),
            )
            for r in rows
        ]
        return LogPage(out, more)

    def pq_log(
        self,
        start: float,
        end: float,
        *,
        kind: Sequence[str] = (),
        device: Sequence[str] = (),
        phase: Sequence[str] = (),
        limit: int = 1000,
        newest_first: bool = True,
    ) -> LogPage[StoredPqEvent]:
        where, params = _where("start_ts", start, end, [("kind", kind), ("device", device), ("phase", phase)])
        direction = "DESC" if newest_first else "ASC"
        rows, more = self._page(
            "SELECT id, start_ts, duration, kind, phase, extreme, unit, flagged, source, device, circuit, "
            f"threshold FROM pq_log WHERE {where}",
            params,
            f"start_ts {direction}, id {direction}",
            limit,
        )
        out = [
            StoredPqEvent(
                int(r[0]),
                PqEvent(
                    kind=PqKind(r[3]),
                    start=r[1] / 1000,
                    duration=float(r[2]),
                    extreme=float(r[5]),
                    unit=r[6],
                    device=r[9],
                    source=PqSource(r[8]),
                    phase=r[4] or None,
                    circuit=r[10],
                    flagged=bool(r[7]),
                    threshold=None if r[11] is None else float(r[11]),
                ),
            )
            for r in rows
        ]
        return LogPage(out, more)

    def device_events(
        self,
        start: float,
        end: float,
        *,
        device: Sequence[str] = (),
        log: Sequence[str] = (),
        limit: int = 1000,
        newest_first: bool = True,
    ) -> LogPage[DeviceEvent]:
        where, params = _where("ts", start, end, [("device", device), ("log", log)])
        direction = "DESC" if newest_first else "ASC"
        rows, more = self._page(
            f"SELECT device, ts, log, code, text FROM device_events WHERE {where}",
            params,
            f"ts {direction}, id {direction}",
            limit,
        )
        return LogPage([DeviceEvent(r[0], r[1] / 1000, r[2], int(r[3]), r[4]) for r in rows], more)

    def filled_ranges(self, series: str, start: float, end: float) -> list[FilledRange]:
        with self._lock:
            rows = self._execute(
                "SELECT series, from_ts, to_ts, device, source FROM filled_ranges "
                "WHERE series = ? AND to_ts >= ? AND from_ts <= ? ORDER BY from_ts, to_ts LIMIT ?",
                (series, math.floor(start * 1000), math.ceil(end * 1000), MAX_ROWS),
            )
        return [FilledRange(r[0], r[1] / 1000, r[2] / 1000, r[3], r[4]) for r in rows]

    def apply_event_retention(self, now: float) -> dict[str, int]:
        if self.read_only:
            raise StorageError("the storage was opened read-only; retention cannot delete anything")
        with self._lock:
            self._begin()
            try:
                removed = self._delete_expired_events(now)
                self._commit()
            except BaseException:
                self._rollback()
                raise
        return removed

    def _delete_expired_events(self, now: float) -> dict[str, int]:
        """Delete expired log rows in the current transaction; rows removed per table."""
        events_cut = _ms(now - self.config.event_retention_days * 86400)
        audit_cut = _ms(now - self.config.audit_retention_days * 86400)
        removed = {
            "alarm_log": len(self._execute("DELETE FROM alarm_log WHERE ts < ? RETURNING 1", (events_cut,))),
            "pq_log": len(self._execute("DELETE FROM pq_log WHERE start_ts < ? RETURNING 1", (events_cut,))),
            "audit_log": len(self._execute("DELETE FROM audit_log WHERE ts < ? RETURNING 1", (audit_cut,))),
        }
        for table, column in (("device_events", "ts"), ("filled_ranges", "to_ts")):  # named when any went
            n = len(self._execute(f"DELETE FROM {table} WHERE {column} < ? RETURNING 1", (events_cut,)))
            if n:
                removed[table] = n
        if any(removed.values()):
            log.info("retention removed %s", ", ".join(f"{n} rows of {t}" for t, n in removed.items() if n))
        return removed


# -- writing without blocking the event loop ----------------------------------------------------------
#: Records the writer holds while the database is away; beyond this the oldest are dropped (counted).
MAX_PENDING = 100_000
#: Records written per transaction at most.
BATCH = 2000
#: Longest pause between attempts while writes fail [s].
MAX_RETRY = 30.0


def _encode(kind: str, record: Any) -> Message:
    """A queued record as a spool message (topic = its kind, payload = JSON)."""
    if kind == "alarm":
        data: dict[str, Any] = {f.name: getattr(record, f.name) for f in dataclasses.fields(AlarmLogRow)}
        for f in ("kind", "state", "severity"):
            data[f] = str(data[f])
    elif kind == "audit":
        data = {
            "ts": record.ts, "actor": record.actor, "action": record.action, "target": record.target,
            "before": record.before, "after": record.after, "comment": record.comment, "extra": record.extra,
        }  # fmt: skip
    else:  # pq, device, filled
        data = record.as_dict()
    return Message(kind, json.dumps(data, default=str, ensure_ascii=False).encode())


def _decode(kind: str, payload: bytes) -> tuple[str, Any]:
    data = json.loads(payload)
    if kind == "alarm":
        return kind, AlarmLogRow(**data)
    if kind == "audit":
        return kind, AuditEntry(**data)
    if kind == "device":
        return kind, DeviceEvent(**data)
    if kind == "filled":
        return kind, FilledRange(**data)
    data["kind"], data["source"] = PqKind(data["kind"]), PqSource(data["source"])
    return kind, PqEvent(**data)


class EventWriter:
    """Queues alarm transitions, audit entries and power-quality events and writes them to the
    storage's logs in a thread of its own, in batches (one transaction each).

    store : returns the storage that keeps the logs (opened on first use by the gateway).
    spool : a file for records the database could not take (a durable outbox,
        :class:`~meterhub.storage.outbox.Outbox`): with it, records that meet an outage are committed
        there (fsync) and written to the database from there, oldest first, when it is back — also after
        a restart. Without it (SQLite: the logs are in the same local file) they wait in memory.
    retry : first pause after a failed write [s]; it doubles up to :data:`MAX_RETRY` while writes fail.

    Nothing here waits for the database: :meth:`alarm`, :meth:`audit` and :meth:`pq` append to a
    queue under a lock held for microseconds. Records reach the database in the order they were given.
    In memory at most :data:`MAX_PENDING` wait; older ones are dropped and counted.
    """

    def __init__(
        self, store: Callable[[], EventStore], *, spool: Path | None = None, retry: float = 1.0
    ) -> None:
        self._store = store
        self._retry = retry
        self._cond = threading.Condition()
        self._pending: deque[tuple[str, Any]] = deque()
        self._busy = 0  # records taken by the thread and not yet written or spooled
        self._thread: threading.Thread | None = None
        self._closed = False
        self._closing = threading.Event()  # cuts a retry pause short at close
        self.written = 0  # records stored since start [count]
        self.dropped = 0  # records lost because the queue was full [count]
        self.last_error: str | None = None  # the last failed write, None once one succeeds
        self.last_error_at: float | None = None  # [s since the epoch]
        self._spool: Outbox | None = None
        if spool is not None:
            try:
                self._spool = Outbox(spool, name="event log")
            except OutboxError as exc:
                log.error("%s; the event logs wait in memory during database outages", exc)
        if self._spooled():
            log.info("event log: %d records spooled by an earlier run wait for the database", self._spooled())
            self._start()

    # -- producers (any thread, the event loop included) -------------------------------------------
    def alarm(self, event: AlarmRecord) -> None:
        """Log one alarm transition."""
        self._put("alarm", event)

    def audit(self, entry: AuditEntry) -> None:
        """Log one audit entry."""
        self._put("audit", entry)

    def pq(self, events: Sequence[PqEvent]) -> None:
        """Log power-quality events."""
        for e in events:
            self._put("pq", e)

    def device(self, events: Sequence[DeviceEvent]) -> None:
        """Log entries of devices' own event logs."""
        for e in events:
            self._put("device", e)

    def filled(self, ranges: Sequence[FilledRange]) -> None:
        """Log ranges of series filled from a device's memory."""
        for r in ranges:
            self._put("filled", r)

    def _put(self, kind: str, record: Any) -> None:
        with self._cond:
            if self._closed:
                log.error("event log closed; %s record not written: %r", kind, record)
                self.dropped += 1
                return
            if len(self._pending) >= MAX_PENDING:
                self._pending.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.error(
                        "event log queue full (%d); %d oldest records dropped", MAX_PENDING, self.dropped
                    )
            self._pending.append((kind, record))
            self._start()
            self._cond.notify()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="event-log", daemon=True)
            self._thread.start()

    # -- state -------------------------------------------------------------------------------------
    def _spooled(self) -> int:
        return self._spool.stats().backlog if self._spool is not None else 0

    @property
    def pending(self) -> int:
        """Records queued, being written or spooled [count]."""
        with self._cond:
            return len(self._pending) + self._busy + self._spooled()

    def wait_written(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is written (True) or ``timeout`` [s] passed (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy or self._spooled():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting at most ``timeout`` [s]), then stop the thread; with a spool,
        what could not be written stays there for the next start."""
        self.wait_written(timeout)
        with self._cond:
            self._closed = True
            self._closing.set()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5.0)
        left = len(self._pending) + self._busy
        if left:
            log.error("event log closed with %d records not written (%s)", left, self.last_error)
        if self._spool is not None:
            if self._spooled():
                log.warning(
                    "event log: %d records stay spooled in %s for the next start",
                    self._spooled(),
                    self._spool.path,
                )
            self._spool.close()

    def health(self) -> Health:
        """OK while writing; DEGRADED with the last error while records wait for the database."""
        counters = {
            "written": self.written,
            "pending": self.pending,
            "spooled": self._spooled(),
            "dropped": self.dropped,
        }
        if self.last_error is not None:
            return Health(HealthState.DEGRADED, f"event logs wait: {self.last_error}", counters)
        if self.dropped:
            return Health(HealthState.DEGRADED, f"{self.dropped} log records were dropped", counters)
        return Health(HealthState.OK, "writing", counters)

    # -- the thread ------------------------------------------------------------------------------------
    def _write(self, batch: list[tuple[str, Any]]) -> None:
        more: dict[str, Any] = {}  # only when there are any: stores of earlier versions take three kinds
        if device := [r for k, r in batch if k == "device"]:
            more["device"] = device
        if filled := [r for k, r in batch if k == "filled"]:
            more["filled"] = filled
        self._store().write_events(
            alarms=[r for k, r in batch if k == "alarm"],
            audit=[r for k, r in batch if k == "audit"],
            pq=[r for k, r in batch if k == "pq"],
            **more,
        )

    def _failed(self, exc: Exception, n: int) -> None:
        with self._cond:
            if str(exc) != self.last_error:
                log.warning("event log: cannot write %d records (%s); retrying", n, exc)
            self.last_error, self.last_error_at = str(exc), time.time()
            self._cond.notify_all()

    def _succeeded(self, n: int) -> None:
        with self._cond:
            self._busy = 0
            self.written += n
            if self.last_error is not None:
                log.info("event log: writing again")
            self.last_error = None
            self._cond.notify_all()

    def _run(self) -> None:
        pause = self._retry
        while True:
            with self._cond:
                while not self._pending and not self._closed and not self._spooled():
                    self._cond.wait()
                if self._closed:
                    self._spool_memory()  # durable for the next start; without a spool, close() says what is lost
                    return
                spooled = self._spooled() > 0
                if spooled:  # what comes now goes behind the spooled records
                    batch, self._busy = list(self._pending), len(self._pending)
                    self._pending.clear()
                else:
                    batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
                    self._busy = len(batch)
            ok = self._deliver_spool(batch) if spooled else self._deliver(batch)
            if ok:
                pause = self._retry
                continue
            if self._closing.wait(pause):
                continue  # closing: the loop spools or gives up
            pause = min(pause * 2, MAX_RETRY)

    def _deliver(self, batch: list[tuple[str, Any]]) -> bool:
        """Write a batch from memory; on failure spool it (or put it back in front). True if written."""
        try:
            self._write(batch)
        except Exception as exc:  # the database is away or refused: keep them, retry later
            self._failed(exc, len(batch))
            if self._spool is not None:
                try:
                    self._spool.put([_encode(k, r) for k, r in batch])
                    with self._cond:
                        self._busy = 0
                    return True  # durable now; the next turn delivers from the spool (and pauses if it fails)
                except OutboxError as spool_exc:
                    log.error("event log: %s", spool_exc)
            with self._cond:
                self._pending.extendleft(reversed(batch))
                self._busy = 0
                self._cond.notify_all()
            return False
        self._succeeded(len(batch))
        return True

    def _deliver_spool(self, fresh: list[tuple[str, Any]]) -> bool:
        """Spool ``fresh`` records behind the spooled ones, then write the oldest spooled batch."""
        spool = self._spool
        if spool is None:  # pragma: no cover - only called with a spool
            return False
        try:
            if fresh:
                spool.put([_encode(k, r) for k, r in fresh])
        except OutboxError as exc:
            log.error("event log: %s", exc)
            with self._cond:
                self._pending.extendleft(reversed(fresh))
                self._busy = 0
            self._failed(exc, len(fresh))
            return False
        with self._cond:
            self._busy = 0
        try:
            stored = spool.peek(limit=BATCH)
            batch = [_decode(m.topic, m.payload) for m in stored]
        except (OutboxError, ValueError, TypeError) as exc:
            log.error("event log: the spool %s cannot be read (%s)", spool.path, exc)
            self._failed(exc, 0)
            return False
        try:
            self._write(batch)
        except Exception as exc:
            self._failed(exc, len(batch))
            return False
        try:
            spool.ack(m.id for m in stored)
        except (
            OutboxError
        ) as exc:  # written but still spooled: written again later, stored once (seq, unique)
            log.error("event log: %s", exc)
        self._succeeded(len(batch))
        return True

    def _spool_memory(self) -> None:
        """At close (lock held): commit what is still in memory to the spool, if there is one."""
        if self._spool is None or not self._pending:
            return
        try:
            self._spool.put([_encode(k, r) for k, r in self._pending])
        except OutboxError as exc:
            log.error("event log: %s", exc)
            return
        self._pending.clear()


class AlarmLogListener:
    """An alarm listener (:class:`meterhub.alarms.model.AlarmListener`) that logs every alarm event;
    ``on_event`` only queues it (see :class:`EventWriter`)."""

    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer

    def on_event(self, event: AlarmRecord) -> None:
        self.writer.alarm(event)


class StorageAuditor:
    """An auditor (:class:`meterhub.model.audit.Auditor`) that keeps entries in the audit log;
    ``record`` only queues it (see :class:`EventWriter`) and logs one line on ``meterhub.audit``."""

    def __init__(self, writer: EventWriter) -> None:
        self.writer = writer

    def record(self, entry: AuditEntry) -> None:
        _audit.info(
            "%s %s %s%s",
            entry.actor,
            entry.action,
            entry.target,
            f" ({entry.comment})" if entry.comment else "",
        )
        self.writer.audit(entry)


_audit = logging.getLogger("meterhub.audit")
