"""A durable on-disk outbox: what must leave the gateway waits here until it was delivered.

Used by every link that sends data out — each publish instance (MQTT, HTTP upload) and the alarm
notifications (email, webhooks). One SQLite file per user in the data folder (e.g.
``DATA/outbox-<instance>.sqlite``, WAL, ``synchronous=FULL``),
one row per message (payloads of 256 bytes or more zlib-compressed): ``id`` (``INTEGER PRIMARY KEY AUTOINCREMENT``: strictly increasing and never reused,
even after deletions, so it is the message id a receiver deduplicates by), topic, payload bytes, QoS,
retain flag and the time it was created [s since the epoch]. A message counts once its row is committed
(fsync), so a ``kill -9`` loses nothing that :meth:`Outbox.put` returned for, and a message whose
delivery was not yet acknowledged is sent again after a restart — with the same id.

Writing is a group commit: :meth:`Outbox.put` and :meth:`Outbox.stage` queue messages for the outbox's
writer thread, which compresses and inserts everything queued meanwhile and commits it in one
transaction (fsync). ``put`` returns once its messages are committed (the notifier hands alarm events over
with it and deletes them from its own outbox then); ``stage`` returns at once (the publish sink: a flood of
intervals then costs one fsync per round, not one per interval). Either way a message becomes visible to
:meth:`Outbox.peek` — hence to the link that sends it — only once it is committed: nothing leaves before it
is durable, and the ids (assigned in the transaction) are never those of a message that was sent but rolled
back by a crash. A staged message not yet committed is lost in a crash, like the readings of the interval
still being aggregated in memory; a write that fails keeps the staged messages in memory, tries again every
:data:`RETRY_WRITE` seconds and says so in :attr:`Outbox.failed`.

Delivery is oldest first (:meth:`Outbox.peek` by increasing id). Messages committed by this process are also
kept in memory, uncompressed, up to :data:`FRESH_BYTES`, so a link that keeps up reads them without a
query, a decompression or the database lock (a commit's fsync never holds it up); a backlog older than
that is read from the file. A row is deleted only by
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
from dataclasses import dataclass, field
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


#: Messages committed in one transaction of the writer thread at most (whole put/stage calls; a
#: larger call is one transaction of its own) [count].
ROUND = 500
#: stage() waits at most this long for its commit when the link lags [s].
STAGE_WAIT = 10.0
#: A failed write of staged messages is tried again after this long [s].
RETRY_WRITE = 1.0
#: While writes fail (a full or read-only disk), staged messages are held in memory up to this many
#: bytes; stage() refuses more with an :class:`OutboxError` instead of growing without bound [B].
STAGED_CAP = 64 * 2**20


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


@dataclass(slots=True)
class _Pending:
    """Messages queued for the writer thread: created [s since the epoch]; ``wait``: a put() waits for
    ``done`` and gets ``ids`` or ``error``."""

    messages: list[Message]
    created: float
    wait: bool
    ids: list[int] = field(default_factory=list)
    error: OutboxError | None = None
    done: threading.Event = field(default_factory=threading.Event)
    size: int = 0  # the payloads [B]

    def __post_init__(self) -> None:
        self.size = sum(len(m.payload) for m in self.messages)


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

    Thread-safe: the sink stages, the notifier puts, the MQTT client's thread peeks and acks; a writer
    thread of its own commits (:meth:`close` commits what is staged and stops it).
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
            (last_id,) = self._db.execute(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0), "
                "COALESCE((SELECT MAX(id) FROM outbox), 0))"
            ).fetchone()
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: cannot open: {exc}") from exc
        self._count = int(count)
        self._size = int(size) + ROW_OVERHEAD * self._count
        self._oldest: float | None = oldest  # of the committed rows
        self.dropped = int(row[0]) if row else 0
        self.last_drop_warning: str | None = None
        # id → message, for ids put by this process and still in the file; consecutive ids (one put
        # after another), evicted oldest first past FRESH_BYTES, removed when acknowledged or dropped.
        self._fresh: OrderedDict[int, StoredMessage] = OrderedDict()
        self._fresh_bytes = 0
        self._fresh_lock = threading.Lock()  # _fresh, _fresh_bytes, _last_id (taken after _lock, if both)
        self._last_id = last_id  # the highest id committed: peek() needs no query past it
        # Group commit: put() and stage() queue here; the writer thread commits what waits in one
        # transaction. _cv guards _pending, _committing (the round being written), _staged, _closing.
        self._cv = threading.Condition()
        self._pending: list[_Pending] = []
        self._committing: list[_Pending] = []
        self._staged = 0  # messages queued or being written, not yet committed
        self._staged_bytes = 0  # their payloads [B]
        self._closing = False
        self.commits = 0  # transactions that wrote messages [count since open]
        self.failed: str | None = None  # the last write error while staged messages wait; None when fine
        #: called (in the writer thread) after each commit: the link that drains the outbox wakes up
        self.on_commit: Callable[[], None] | None = None
        self._committer = threading.Thread(target=self._commit_loop, name=f"outbox {name}", daemon=True)
        self._committer.start()

    # -- writing ----------------------------------------------------------------------------------
    def put(self, messages: Sequence[Message]) -> list[int]:
        """Append messages in order, committed (fsync) before returning; return their ids."""
        if not messages:
            return []
        entry = self._enqueue(messages, wait=True)
        entry.done.wait()
        if entry.error is not None:
            raise entry.error
        return entry.ids

    def stage(self, messages: Sequence[Message]) -> None:
        """Append messages in order without waiting for the commit (see the module docstring: group
        commit). They count in the backlog at once, are committed by the outbox's writer thread — with
        whatever else was staged meanwhile, in one fsync'd transaction — and only then become visible to
        :meth:`peek`, so nothing is sent before it is durable. :meth:`sync` waits for the commit. While
        the messages staged, or committed and not yet delivered, fill most of the memory window
        (:data:`FRESH_BYTES`)
        this waits for its commit (at most :data:`STAGE_WAIT`), so the writer stays within reach of the
        link."""
        if not messages:
            return
        with self._cv:
            if self.failed is not None and self._staged_bytes >= STAGED_CAP:
                raise OutboxError(
                    f"outbox {self.path}: writing fails ({self.failed}); {self._staged} message(s) already "
                    f"wait in memory ({self._staged_bytes // 2**20} MiB), {len(messages)} more not kept"
                )
        entry = self._enqueue(messages, wait=False)
        if self._fresh_bytes + self._staged_bytes > FRESH_BYTES * 3 // 4:
            # The link lags (or is away): committed messages it has not taken fill the memory window.
            # Running further ahead would only make it read them back from the file and decompress them
            # (bench/publish.py: more CPU per message than the commit saves), so wait for this commit,
            # as put() does — bounded, since a failing write keeps staged messages and retries.
            entry.done.wait(STAGE_WAIT)

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until everything staged is committed (or ``timeout`` [s]); True if so."""
        with self._cv:
            return self._cv.wait_for(lambda: self._staged == 0, timeout)

    def _enqueue(self, messages: Sequence[Message], *, wait: bool) -> _Pending:
        entry = _Pending(list(messages), self._clock(), wait)
        with self._cv:
            if self._closing:
                raise OutboxError(f"outbox {self.path}: closed; cannot write {len(messages)} message(s)")
            self._pending.append(entry)
            self._staged += len(entry.messages)
            self._staged_bytes += entry.size
            self._cv.notify_all()
        return entry

    def _commit_loop(self) -> None:
        """The writer thread: commit what is pending, in order, one transaction per round (group commit)."""
        while True:
            with self._cv:
                self._cv.wait_for(lambda: bool(self._pending) or self._closing)
                if not self._pending:
                    return  # closing, and everything is committed
                # At most ROUND messages per transaction (whole put/stage calls), so that in a flood
                # the link starts sending after the first round instead of after everything.
                n = taken = 0
                while taken < len(self._pending) and (taken == 0 or n < ROUND):
                    n += len(self._pending[taken].messages)
                    taken += 1
                batch, self._pending = self._pending[:taken], self._pending[taken:]
                self._committing = batch
            error: OutboxError | None = None
            try:
                self._write(batch)
            except OutboxError as exc:
                error = exc
            except Exception as exc:  # never let the writer thread die: put() would wait forever
                log.exception("%s: writing the outbox failed", self.name)
                error = OutboxError(f"outbox {self.path}: cannot write: {exc!r}")
            if error is None and self.on_commit is not None:
                self.on_commit()  # the link: new messages to send (before put() returns, too)
            with self._cv:
                self._committing = []
                if error is None:
                    self._staged -= sum(len(e.messages) for e in batch)
                    self._staged_bytes -= sum(e.size for e in batch)
                    self.failed = None
                    for e in batch:
                        e.done.set()
                else:
                    # put() callers get the error at once (as before); staged messages stay in memory,
                    # in front of anything newer, and are tried again.
                    retry = [e for e in batch if not e.wait]
                    if str(error) != self.failed:
                        log.error(
                            "%s: %s (%d message(s) held in memory, retried every %g s)",
                            self.name,
                            error,
                            sum(len(e.messages) for e in retry),
                            RETRY_WRITE,
                        )
                    self.failed = str(error)  # before put() returns its error: a caller sees both
                    for e in batch:
                        if e.wait:
                            e.error = error
                            self._staged -= len(e.messages)
                            self._staged_bytes -= e.size
                            e.done.set()
                    self._pending[:0] = retry
                    if self._closing and retry:
                        lost = sum(len(e.messages) for e in retry)
                        log.error(
                            "%s: closing: %d staged message(s) could not be written and are lost: %s",
                            self.name,
                            lost,
                            error,
                        )
                        self._staged -= lost
                        self._staged_bytes -= sum(e.size for e in retry)
                        self._pending = []
                    elif retry:
                        self._cv.notify_all()
                        self._cv.wait(RETRY_WRITE)
                self._cv.notify_all()

    def _write(self, batch: list[_Pending]) -> None:
        """Compress (outside the lock: zlib releases the GIL), insert and commit ``batch`` in one
        transaction (fsync), then keep the messages in memory for :meth:`peek` and apply the bounds."""
        rows: list[tuple[str, bytes, int, int, float, int]] = []
        added = 0
        for e in batch:
            for m in e.messages:
                packed = len(m.payload) >= COMPRESS_FROM
                blob = zlib.compress(m.payload, 1) if packed else m.payload
                rows.append((m.topic, blob, m.qos, int(m.retain), e.created, int(packed)))
                added += len(m.topic) + len(blob) + ROW_OVERHEAD
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                # AUTOINCREMENT's next id, taken explicitly so that executemany() can insert the rows
                # in one call and the ids are known: one more than any id ever used.
                (last,) = self._db.execute(
                    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0), "
                    "COALESCE((SELECT MAX(id) FROM outbox), 0))"
                ).fetchone()
                first = int(last) + 1
                self._db.executemany(
                    "INSERT INTO outbox (id, topic, payload, qos, retain, created, zlib) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(first + i, *r) for i, r in enumerate(rows)],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"outbox {self.path}: cannot write {len(rows)} message(s): {exc}") from exc
            self.commits += 1
            self._count += len(rows)
            self._size += added
            if self._oldest is None:
                self._oldest = batch[0].created
            i = first
            with self._fresh_lock:
                for e in batch:
                    e.ids = list(range(i, i + len(e.messages)))
                    for m in e.messages:
                        self._fresh[i] = StoredMessage(i, m.topic, m.payload, m.qos, m.retain, e.created)
                        self._fresh_bytes += len(m.payload)
                        i += 1
                while self._fresh_bytes > FRESH_BYTES:
                    self._fresh_bytes -= len(self._fresh.popitem(last=False)[1].payload)
                self._last_id = i - 1
            self._enforce_bounds(batch[-1].created)

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
            with self._fresh_lock:
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
        # From memory while the next id was committed by this process and is still here (consecutive
        # ids: nothing else can lie between) — without the database lock, so a commit's fsync never
        # holds up the link; the rest, if any, from the file.
        out: list[StoredMessage] = []
        with self._fresh_lock:
            while len(out) < limit and (m := self._fresh.get(after + 1)) is not None:
                out.append(m)
                after += 1
            last = self._last_id
        if len(out) == limit or after >= last:
            return out
        with self._lock:
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
            with self._fresh_lock:
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
        """Backlog, bytes, oldest creation time and dropped count (no database access). Messages
        staged and not yet committed count in the backlog (and the oldest), not yet in the bytes."""
        with self._cv:
            staged = self._staged
            first = self._committing[0] if self._committing else (self._pending[0] if self._pending else None)
        oldest = self._oldest
        if oldest is None and first is not None:
            oldest = first.created
        return OutboxStats(self._count + staged, self._size, oldest, self.dropped)

    def close(self) -> None:
        """Commit what is staged, stop the writer thread and close the file."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if self._committer.is_alive():
            self._committer.join()
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
