"""A durable on-disk outbox: what must leave the gateway waits here until it was delivered.

Used by every link that sends data out — each publish instance (MQTT, HTTP upload) and the alarm
notifications (email, webhooks). One SQLite file per user in the data folder (e.g.
``DATA/outbox-<instance>.sqlite``, WAL, ``synchronous=FULL``),
one row per message (payloads of 256 bytes or more zlib-compressed): ``id`` (``INTEGER PRIMARY KEY AUTOINCREMENT``: strictly increasing and never reused,
even after deletions, so it is the message id a receiver deduplicates by), topic, payload bytes, QoS,
retain flag and the time it was created [s since the epoch]. A message counts once its row is committed
(fsync), so a ``kill -9`` loses nothing that :meth:`Outbox.put` returned for, and a message whose
delivery was not yet acknowledged is sent again after a restart — with the same id.

Delivery is oldest first (:meth:`Outbox.peek` by increasing id). Messages put by this process are also
kept in memory, uncompressed, up to :data:`FRESH_BYTES`, so a link that keeps up reads them without a
query or a decompression; a backlog older than that is read from the file. A row is deleted only by
:meth:`Outbox.ack` (committed without fsync: a deletion lost in a power cut sends that message again,
with its id), which the MQTT client calls when the broker acknowledged it (PUBACK for QoS 1; for
QoS 0 when paho wrote it to the socket — QoS 0 promises no more).

Bounds: by bytes on disk (stored payloads and topics; ``max_bytes``) and by age (``max_age`` [s]). When a new message
would pass the byte bound, or a message is older than the age bound, the oldest rows are dropped: counted
in :attr:`Outbox.dropped` (kept in the file, so the count survives restarts) and logged as a WARNING
naming the instance. The newest data is kept because it is what a receiver that comes back needs first,
and the cumulative registers in the newer messages still carry the energy of the dropped ones.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Message", "Outbox", "OutboxError", "OutboxStats", "StoredMessage", "wait_drained"]

log = logging.getLogger("meterhub.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL,
    zlib INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
#: Payloads of at least this many bytes are stored zlib-compressed (JSON shrinks 5–10×) [B].
COMPRESS_FROM = 256
#: Messages put by this process are also kept in memory (uncompressed) up to this many bytes, so the
#: link that drains the outbox reads them without a query and a decompression [B].
FRESH_BYTES = 8 * 2**20
#: Bytes a row costs beyond its topic and payload (id, qos, retain, created, SQLite's row header),
#: counted so that many tiny messages cannot pass the bound unnoticed [B].
ROW_OVERHEAD = 32


class OutboxError(Exception):
    """The outbox file cannot be opened or written (names the file)."""


@dataclass(frozen=True, slots=True)
class Message:
    """A message to send: MQTT topic, payload bytes, QoS 0 or 1, retain flag."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message in the outbox: ``id`` is its message id; ``created`` [s since the epoch, UTC]."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """backlog [messages], size [B], oldest [s since the epoch] or None, dropped [messages, ever]."""

    backlog: int
    size: int
    oldest: float | None
    dropped: int


class Outbox:
    """A durable FIFO of messages for one outgoing link (see the module docstring).

    path : the SQLite file.
    name : the link as logs name it, e.g. ``publish cloud`` or ``notify email``.
    max_bytes : bound on topics + payloads + :data:`ROW_OVERHEAD` per row [B]; None: unbounded.
    max_age : messages older than this are dropped [s]; None: kept.
    clock : time source [s since the epoch].

    Thread-safe: the event loop puts, the MQTT client's thread peeks and acks.
    """

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        max_bytes: int | None = None,
        max_age: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.name = name
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            count, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(topic) + LENGTH(payload)), 0) FROM outbox"
            ).fetchone()
            oldest = self._first_created()
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: cannot open: {exc}") from exc
        self._count = int(count)
        self._size = int(size) + ROW_OVERHEAD * self._count
        self._oldest: float | None = oldest
        self.dropped = int(row[0]) if row else 0
        self.last_drop_warning: str | None = None
        # id → message, for ids put by this process and still in the file; consecutive ids (one put
        # after another), evicted oldest first past FRESH_BYTES, removed when acknowledged or dropped.
        self._fresh: OrderedDict[int, StoredMessage] = OrderedDict()
        self._fresh_bytes = 0

    # -- writing ----------------------------------------------------------------------------------
    def put(self, messages: Sequence[Message]) -> list[int]:
        """Append messages in order, committed (fsync) before returning; return their ids."""
        if not messages:
            return []
        now = self._clock()
        ids: list[int] = []
        added = 0
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for m in messages:
                    packed = len(m.payload) >= COMPRESS_FROM
                    blob = zlib.compress(m.payload, 1) if packed else m.payload
                    cur = self._db.execute(
                        "INSERT INTO outbox (topic, payload, qos, retain, created, zlib) VALUES (?, ?, ?, ?, ?, ?)",
                        (m.topic, blob, m.qos, int(m.retain), now, int(packed)),
                    )
                    ids.append(int(cur.lastrowid or 0))
                    added += len(m.topic) + len(blob) + ROW_OVERHEAD
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(
                    f"outbox {self.path}: cannot write {len(messages)} message(s): {exc}"
                ) from exc
            self._count += len(messages)
            self._size += added
            if self._oldest is None:
                self._oldest = now
            for i, m in zip(ids, messages, strict=True):
                self._fresh[i] = StoredMessage(i, m.topic, m.payload, m.qos, m.retain, now)
                self._fresh_bytes += len(m.payload)
            while self._fresh_bytes > FRESH_BYTES:
                self._fresh_bytes -= len(self._fresh.popitem(last=False)[1].payload)
            self._enforce_bounds(now)
        return ids

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _enforce_bounds(self, now: float) -> None:
        """Drop the oldest rows past the age or byte bound (caller holds the lock)."""
        dropped = 0
        if self.max_age is not None and self._oldest is not None and self._oldest < now - self.max_age:
            dropped += self._drop_where("created < ?", (now - self.max_age,))
        if self.max_bytes is not None and self._size > self.max_bytes:
            excess = self._size - self.max_bytes
            cut, last = 0, 0
            while excess > 0:  # walk the oldest rows (by id, indexed) until they cover the excess
                rows = self._db.execute(
                    "SELECT id, LENGTH(topic) + LENGTH(payload) FROM outbox WHERE id > ? ORDER BY id LIMIT 1000",
                    (last,),
                ).fetchall()
                if not rows:
                    break
                for rid, size in rows:
                    excess -= int(size) + ROW_OVERHEAD
                    cut = last = int(rid)
                    if excess <= 0:
                        break
            if cut:
                dropped += self._drop_where("id <= ?", (cut,))
        if dropped:
            self._fresh.clear()
            self._fresh_bytes = 0
            self.dropped += dropped
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES ('dropped', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (self.dropped,),
            )
            bound = f"{self.max_bytes} B" if self.max_bytes is not None else "-"
            age = f"{self.max_age / 86400:g} d" if self.max_age is not None else "-"
            self.last_drop_warning = (
                f"{self.name}: outbox full (bounds {bound}, {age}): dropped the {dropped} oldest "
                f"message(s), {self.dropped} in all"
            )
            log.warning("%s", self.last_drop_warning)

    def _drop_where(self, where: str, args: tuple[float | int, ...]) -> int:
        n, size = self._db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(LENGTH(topic) + LENGTH(payload)), 0) FROM outbox WHERE {where}",
            args,
        ).fetchone()
        if not n:
            return 0
        self._db.execute(f"DELETE FROM outbox WHERE {where}", args)
        self._count -= int(n)
        self._size -= int(size) + ROW_OVERHEAD * int(n)
        self._oldest = self._first_created()
        return int(n)

    def _first_created(self) -> float | None:
        # Rows are created in id order, so the first row is the oldest (an index lookup, not a scan).
        row = self._db.execute("SELECT created FROM outbox ORDER BY id LIMIT 1").fetchone()
        return float(row[0]) if row else None

    # -- reading and acknowledging ----------------------------------------------------------------
    def peek(self, after: int = 0, limit: int = 500) -> list[StoredMessage]:
        """Up to ``limit`` messages with an id greater than ``after``, oldest first."""
        with self._lock:
            # From memory while the next id was put by this process and is still here (consecutive ids:
            # nothing else can lie between); the rest, if any, from the file.
            out: list[StoredMessage] = []
            while len(out) < limit and (m := self._fresh.get(after + 1)) is not None:
                out.append(m)
                after += 1
            if len(out) == limit:
                return out
            try:
                rows = self._db.execute(
                    "SELECT id, topic, payload, qos, retain, created, zlib FROM outbox WHERE id > ? "
                    "ORDER BY id LIMIT ?",
                    (after, limit - len(out)),
                ).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot read: {exc}") from exc
        try:
            return out + [
                StoredMessage(int(i), t, zlib.decompress(p) if z else bytes(p), int(q), bool(r), float(c))
                for i, t, p, q, r, c, z in rows
            ]
        except zlib.error as exc:
            raise OutboxError(f"outbox {self.path}: a stored payload is damaged: {exc}") from exc

    def ack(self, ids: Iterable[int]) -> int:
        """Delete delivered messages (one transaction); return how many were still there."""
        keys = sorted(set(ids))
        if not keys:
            return 0
        ids_deleted = keys
        n = size = 0
        with self._lock:
            try:
                # A deletion lost in a power cut only sends a message again (same id): no fsync for it.
                # The next put's FULL commit syncs the log with these deletions in it.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                if keys[-1] - keys[0] + 1 == len(keys):
                    # Consecutive ids (the usual case: acknowledgements come in send order): the range
                    # holds exactly these ids, so one range DELETE on the primary key does it.
                    c, s = self._db.execute(
                        "SELECT COUNT(*), COALESCE(SUM(LENGTH(topic) + LENGTH(payload)), 0) FROM outbox "
                        "WHERE id BETWEEN ? AND ?",
                        (keys[0], keys[-1]),
                    ).fetchone()
                    self._db.execute("DELETE FROM outbox WHERE id BETWEEN ? AND ?", (keys[0], keys[-1]))
                    n, size = int(c), int(s)
                    keys = []
                for k in range(0, len(keys), 500):
                    chunk = keys[k : k + 500]
                    marks = ",".join("?" * len(chunk))
                    c, s = self._db.execute(
                        f"SELECT COUNT(*), COALESCE(SUM(LENGTH(topic) + LENGTH(payload)), 0) FROM outbox "
                        f"WHERE id IN ({marks})",
                        chunk,
                    ).fetchone()
                    self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)
                    n += int(c)
                    size += int(s)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"outbox {self.path}: cannot delete delivered messages: {exc}") from exc
            finally:
                self._db.execute("PRAGMA synchronous=FULL")
            self._count -= n
            self._size -= size + ROW_OVERHEAD * n
            for k in ids_deleted:
                m = self._fresh.pop(k, None)
                if m is not None:
                    self._fresh_bytes -= len(m.payload)
            if self._count <= 0:
                self._count, self._size, self._oldest = 0, 0, None
            else:
                self._oldest = self._first_created()
        return n

    def holds(self, message_id: int) -> bool:
        """True while message ``message_id`` waits in the outbox (not yet delivered nor dropped)."""
        with self._lock:
            try:
                row = self._db.execute("SELECT 1 FROM outbox WHERE id = ?", (message_id,)).fetchone()
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: cannot read: {exc}") from exc
        return row is not None

    # -- state ------------------------------------------------------------------------------------
    def stats(self) -> OutboxStats:
        """Backlog, bytes, oldest creation time and dropped count (no database access)."""
        return OutboxStats(self._count, self._size, self._oldest, self.dropped)

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error as exc:  # pragma: no cover - closing a healthy file does not fail
                log.error("outbox %s: cannot close: %s", self.path, exc)


def wait_drained(outbox: Outbox, connected: Callable[[], bool], timeout: float) -> bool:
    """Wait until every message in ``outbox`` was delivered, at most ``timeout`` [s] and only while the
    link that drains it is ``connected()``; True if the outbox is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if outbox.stats().backlog == 0:
            return True
        if not connected():
            return False
        time.sleep(0.02)
    return outbox.stats().backlog == 0
