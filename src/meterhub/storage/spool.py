"""A durable, bounded on-disk spool of flushes the database could not take (PostgreSQL outages).

The spool is one SQLite file in the data folder (:data:`SPOOL_FILE`). Each flush that cannot reach
the database becomes one *chunk*: its readings and the registers saved with them, packed as column
arrays (about 21 bytes per reading before compression) and committed with ``synchronous=FULL``, so
the chunk is on disk (fsync) before :meth:`Spool.append` returns and a ``kill -9`` loses at most the
readings buffered since the last flush. Chunks are delivered oldest first, each in one database
transaction with its registers, and deleted from the spool only after that transaction committed; a
crash between the two delivers the chunk again, which changes nothing because the database writes
are idempotent on (series, timestamp) and registers only ever grow.

The spool also keeps the newest value of every register it has seen (:meth:`Spool.registers`), so
a gateway that starts while the database is away restores its registers from the data folder
instead of starting them from zero.

Bound: by default (``max_bytes=None``) the packed chunks may take 24 hours of spooling at the rate
measured in this run plus 25 %, at least :data:`MIN_BYTES` (256 MiB) and at most half the disk space
free when the bound is checked — so the default holds ≥ 24 h at the site's rate unless the disk is
too small for it, which is then logged. A reading packs to 8–12 bytes (1 000 readings of 200 noisy
series: 8.5 B; white-noise values: 12 B), so 256 MiB alone hold 24 h at 260–360 readings/s. ``max_bytes`` sets a fixed
bound instead. When a new chunk would pass the bound the *oldest* chunks are dropped, loudly (an ERROR
log line naming the readings and the span lost, and the count in :attr:`Spool.dropped_rows`): the
newest data is what the live view, alarms and bills of the current period need, and energy is not
lost with the old raw values because the cumulative registers after the gap still carry it (the
rollups attribute the increase to the first bucket after the gap).
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import struct
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from meterhub.model.readings import Quality, Reading, SeriesKey, iso_utc
from meterhub.model.topology import Phase
from meterhub.storage.base import StorageError

__all__ = ["HOLD_FOR", "MIN_BYTES", "SPOOL_FILE", "Chunk", "Spool"]

log = logging.getLogger(__name__)

SPOOL_FILE = "storage-spool.db"
#: Smallest automatic bound of the packed chunks [B].
MIN_BYTES = 256 * 1024**2
#: Spooling time the automatic bound is sized for [s], and its margin.
HOLD_FOR, MARGIN = 86_400.0, 1.25

_DDL = """
CREATE TABLE IF NOT EXISTS chunk (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spooled REAL NOT NULL,
    n INTEGER NOT NULL,
    first_ts REAL,
    bytes INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS refused (
    id INTEGER PRIMARY KEY, spooled REAL NOT NULL, error TEXT NOT NULL, payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS register (
    circuit TEXT NOT NULL, quantity TEXT NOT NULL, phase TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (circuit, quantity, phase)
);
CREATE TABLE IF NOT EXISTS computed_register (
    circuit TEXT NOT NULL, quantity TEXT NOT NULL, phase TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (circuit, quantity, phase)
);
"""
_HEADER = struct.Struct("<4sII")  # magic, length of the JSON part, number of readings
_MAGIC = b"MHS1"


@dataclass(frozen=True, slots=True)
class Chunk:
    """One spooled flush: its readings (in the order written), the registers saved with them and the
    registers sources computed (:meth:`Storage.save_computed_registers`)."""

    id: int
    readings: list[Reading]
    registers: dict[SeriesKey, float]
    computed: dict[SeriesKey, float] = field(default_factory=dict)


def _phase_text(phase: Phase | None) -> str:
    return phase.value if phase is not None else ""


def _key(circuit: str, quantity: str, phase: str) -> SeriesKey:
    return SeriesKey(circuit, quantity, Phase(phase) if phase else None)


def encode(
    readings: Sequence[Reading],
    registers: dict[SeriesKey, float],
    computed: dict[SeriesKey, float] | None = None,
) -> bytes:
    """Pack readings, registers and computed registers into one compressed blob (see :func:`decode`)."""
    index: dict[tuple[str, str, str], int] = {}
    idx = np.empty(len(readings), dtype=np.int32)
    for i, r in enumerate(readings):
        k = (r.circuit, r.quantity, _phase_text(r.phase))
        idx[i] = index.setdefault(k, len(index))
    meta = {
        "series": list(index),
        "registers": [[k.circuit, k.quantity, _phase_text(k.phase), v] for k, v in registers.items()],
        "computed": [[k.circuit, k.quantity, _phase_text(k.phase), v] for k, v in (computed or {}).items()],
    }
    head = json.dumps(meta, separators=(",", ":")).encode()
    ts = np.fromiter((r.ts for r in readings), dtype=np.float64, count=len(readings))
    value = np.fromiter((r.value for r in readings), dtype=np.float64, count=len(readings))
    quality = np.fromiter((int(r.quality) for r in readings), dtype=np.int8, count=len(readings))
    body = b"".join((idx.tobytes(), ts.tobytes(), value.tobytes(), quality.tobytes()))
    return zlib.compress(_HEADER.pack(_MAGIC, len(head), len(readings)) + head + body, 1)


def decode(blob: bytes) -> tuple[list[Reading], dict[SeriesKey, float], dict[SeriesKey, float]]:
    """Unpack a blob made by :func:`encode`: readings, registers, computed registers (none in a chunk
    spooled before they were kept)."""
    data = zlib.decompress(blob)
    magic, hlen, n = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise ValueError("not a meterhub spool chunk")
    at = _HEADER.size
    meta = json.loads(data[at : at + hlen])
    at += hlen
    idx = np.frombuffer(data, dtype=np.int32, count=n, offset=at)
    at += 4 * n
    ts = np.frombuffer(data, dtype=np.float64, count=n, offset=at)
    at += 8 * n
    value = np.frombuffer(data, dtype=np.float64, count=n, offset=at)
    at += 8 * n
    quality = np.frombuffer(data, dtype=np.int8, count=n, offset=at)
    keys = [_key(*s) for s in meta["series"]]
    readings = [
        Reading(t, keys[i].circuit, keys[i].quantity, keys[i].phase, v, Quality(q))
        for i, t, v, q in zip(idx.tolist(), ts.tolist(), value.tolist(), quality.tolist(), strict=True)
    ]
    registers = {_key(c, q, p): float(v) for c, q, p, v in meta["registers"]}
    computed = {_key(c, q, p): float(v) for c, q, p, v in meta.get("computed", [])}
    return readings, registers, computed


class Spool:
    """The spool file of one data folder (see the module doc). Not thread-safe: the owner serialises.

    path : the SQLite file (``DATA_DIR/storage-spool.db``).
    max_bytes : bound of the packed chunks [B], beyond which the oldest are dropped; None sizes it
        for 24 h at the measured rate (see the module doc).
    clock : time source [s since the epoch] (injected in tests).
    """

    def __init__(
        self, path: Path, *, max_bytes: int | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.clock = clock
        self._since: float | None = None  # first append of this run [s]
        self._appended = 0  # bytes appended in this run
        self._warned_small = False
        self.dropped_rows = 0  # readings dropped because the spool was full (this process)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: every commit is fsynced, so a spooled flush survives kill -9 and a power cut.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_DDL)
            n, rows, size, oldest = self._db.execute(
                "SELECT count(*), coalesce(sum(n), 0), coalesce(sum(bytes), 0), min(first_ts) FROM chunk"
            ).fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the storage spool: {exc}") from exc
        self.chunks = int(n)
        self.rows = int(rows)
        self.bytes = int(size)
        self._oldest: float | None = None if oldest is None else float(oldest)

    @property
    def oldest_ts(self) -> float | None:
        """Time of the oldest spooled reading [s], or None when the spool is empty."""
        return self._oldest if self.chunks else None

    def append(
        self,
        readings: Sequence[Reading],
        registers: dict[SeriesKey, float],
        computed: dict[SeriesKey, float] | None = None,
    ) -> None:
        """Store one flush durably (fsync before returning); drop the oldest chunks if full.

        Raises :class:`StorageError` when the file cannot be written (disk full, read-only).
        """
        if not readings and not registers and not computed:
            return
        blob = encode(readings, registers, computed)
        first = min((r.ts for r in readings), default=None)
        now = self.clock()
        if self._since is None:
            self._since = now
        self._appended += len(blob)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO chunk (spooled, n, first_ts, bytes, payload) VALUES (?, ?, ?, ?, ?)",
                    (now, len(readings), first, len(blob), blob),
                )
                self._save_registers(registers, computed)
                dropped = self._make_room()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot write the storage spool: {exc}") from exc
        self.chunks += 1 - dropped[0]
        self.rows += len(readings) - dropped[1]
        self.bytes += len(blob) - dropped[2]
        if dropped[0]:
            self.dropped_rows += dropped[1]
            self._refresh_oldest()
            log.error(
                "storage spool full (%.0f MiB): dropped the %d oldest spooled readings (%s to %s); "
                "the database has been away too long",
                self.limit() / 1024**2,
                dropped[1],
                iso_utc(dropped[3]) if dropped[3] is not None else "?",
                iso_utc(dropped[4]) if dropped[4] is not None else "?",
            )
        elif first is not None and (self._oldest is None or first < self._oldest):
            self._oldest = first

    def limit(self) -> float:
        """The bound of the packed chunks now [B] (see the module doc)."""
        if self.max_bytes is not None:
            return float(self.max_bytes)
        elapsed = self.clock() - self._since if self._since is not None else 0.0
        # Rate over at least a minute, so that the first flushes do not size the bound.
        need = MARGIN * HOLD_FOR * self._appended / max(elapsed, 60.0)
        try:
            room = self.bytes + shutil.disk_usage(self.path.parent).free / 2
        except OSError:
            room = need
        if need > room and not self._warned_small:
            self._warned_small = True
            log.warning(
                "the storage spool can take %.0f MiB on this disk, less than the %.0f MiB that 24 h at "
                "the current rate need; an outage longer than %.1f h loses the oldest readings",
                room / 1024**2,
                need / 1024**2,
                HOLD_FOR * MARGIN * room / need / 3600,
            )
        return max(float(MIN_BYTES), min(need, room))

    def _make_room(self) -> tuple[int, int, int, float | None, float | None]:
        """Delete the oldest chunks until the packed chunks fit :meth:`limit` (the newest is kept).
        Returns (chunks, readings, bytes, first ts, last first-ts) of what was deleted."""
        total = int(self._db.execute("SELECT coalesce(sum(bytes), 0) FROM chunk").fetchone()[0])
        limit = self.limit()
        if total <= limit:
            return 0, 0, 0, None, None
        gone = [0, 0, 0]
        span: list[float] = []
        newest = self._db.execute("SELECT max(id) FROM chunk").fetchone()[0]
        for cid, n, size, first in self._db.execute(
            "SELECT id, n, bytes, first_ts FROM chunk WHERE id < ? ORDER BY id", (newest,)
        ).fetchall():
            if total <= limit:
                break
            self._db.execute("DELETE FROM chunk WHERE id = ?", (cid,))
            total -= size
            gone[0] += 1
            gone[1] += n
            gone[2] += size
            if first is not None:
                span.append(first)
        return gone[0], gone[1], gone[2], min(span, default=None), max(span, default=None)

    def _save_registers(
        self, registers: dict[SeriesKey, float], computed: dict[SeriesKey, float] | None = None
    ) -> None:
        for table, values in (("register", registers), ("computed_register", computed or {})):
            if values:
                self._db.executemany(
                    f"INSERT INTO {table} (circuit, quantity, phase, value) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (circuit, quantity, phase) DO UPDATE SET value = max(value, excluded.value)",
                    [(k.circuit, k.quantity, _phase_text(k.phase), v) for k, v in values.items()],
                )

    def remember_registers(
        self, registers: dict[SeriesKey, float], computed: dict[SeriesKey, float] | None = None
    ) -> None:
        """Keep the newest value of each register and computed register (written before the database
        transaction that persists them, so the spool never holds less than the database)."""
        if not registers and not computed:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._save_registers(registers, computed)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot write the storage spool: {exc}") from exc

    def registers(self) -> dict[SeriesKey, float]:
        """The newest value of every register the spool has seen [unit of each quantity]."""
        return self._read_registers("register")

    def computed_registers(self) -> dict[SeriesKey, float]:
        """The newest value of every register computed by a source the spool has seen [unit]."""
        return self._read_registers("computed_register")

    def _read_registers(self, table: str) -> dict[SeriesKey, float]:
        try:
            rows = self._db.execute(f"SELECT circuit, quantity, phase, value FROM {table}").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot read the storage spool: {exc}") from exc
        return {_key(c, q, p): float(v) for c, q, p, v in rows}

    def first(self) -> Chunk | None:
        """The oldest chunk, or None when the spool is empty."""
        try:
            row = self._db.execute("SELECT id, payload FROM chunk ORDER BY id LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot read the storage spool: {exc}") from exc
        if row is None:
            return None
        try:
            readings, registers, computed = decode(row[1])
        except (ValueError, zlib.error, struct.error, KeyError, IndexError) as exc:
            # A chunk that cannot be read would block delivery for good: say so and move on.
            log.error("storage spool chunk %d is unreadable (%s); dropped", row[0], exc)
            self.remove(int(row[0]))
            return self.first()
        return Chunk(int(row[0]), readings, registers, computed)

    def remove(self, chunk_id: int) -> None:
        """Delete a delivered chunk."""
        try:
            row = self._db.execute("SELECT n, bytes FROM chunk WHERE id = ?", (chunk_id,)).fetchone()
            if row is None:
                return
            self._db.execute("DELETE FROM chunk WHERE id = ?", (chunk_id,))
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot update the storage spool: {exc}") from exc
        self.chunks -= 1
        self.rows -= int(row[0])
        self.bytes -= int(row[1])
        self._refresh_oldest()

    def refuse(self, chunk_id: int, error: str) -> None:
        """Set aside a chunk the database keeps refusing (kept in table ``refused`` for diagnosis),
        so that it does not hold back the chunks after it."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO refused (id, spooled, error, payload) "
                    "SELECT id, spooled, ?, payload FROM chunk WHERE id = ?",
                    (error, chunk_id),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot update the storage spool: {exc}") from exc
        self.remove(chunk_id)

    def _refresh_oldest(self) -> None:
        row = self._db.execute("SELECT min(first_ts) FROM chunk").fetchone()
        self._oldest = None if row is None or row[0] is None else float(row[0])

    def close(self) -> None:
        self._db.close()
