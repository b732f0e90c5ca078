"""The SQL implementation shared by the SQLite and PostgreSQL backends.

Tables (same names and columns in both backends):

``series``     id ↔ (circuit, quantity, phase); phase ``''`` for series without a phase dimension.
``raw``        (series, ts [ms since epoch UTC], value, quality), primary key (series, ts): writing the
               same (series, ts) again replaces the value (idempotent re-import).
``r_1min`` ``r_15min`` ``r_1h`` ``r_1d``
               rollups (series, bucket [s], n, vsum, vmin, vmax, vlast, last_ts [ms], quality, delta),
               see :mod:`meterhub.storage.rollup`; 1-minute rollups maintained on every flush, the
               coarser ones stored when their bucket closes, the open bucket computed on read
               (:mod:`meterhub.storage.ingest`).
``registers``  persisted cumulative registers (series, value, ts), written in the flush transaction.
``meta``       key/value: schema version, time zone of the day buckets, retention horizons.
``alarm_log`` ``audit_log`` ``pq_log``
               the event logs (:mod:`meterhub.storage.events`), with their own retention.

:meth:`SqlStorage.write` only buffers; :meth:`SqlStorage.flush` writes the buffer and the registers
in one transaction (:mod:`meterhub.storage.ingest`). Retention deletes raw values (monthly partitions
at once on PostgreSQL) and optionally 1-minute rollups; the coarser rollups are kept.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import operator
import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from meterhub.model.quantities import CATALOGUE, Kind
from meterhub.model.readings import Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage.base import (
    HistoryColumns,
    HistoryPoint,
    Resolution,
    StorageError,
    StorageHealth,
    StorageState,
)
from meterhub.storage.events import SqlEvents
from meterhub.storage.ingest import COARSE, INVALID, ROLLUP_COLUMNS, ROLLUP_TABLES
from meterhub.storage.rollup import (
    DayCalendar,
    aggregates_from_rows,
    auto_resolution,
    bucket_starts,
    check_span_edges,
    merge_aggregates,
)

__all__ = ["ROLLUP_COLUMNS", "ROLLUP_TABLES", "SCHEMA_VERSION", "SqlStorage", "is_cumulative"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = "1"
#: Readings kept in memory while the database is unavailable; older ones are dropped beyond this.
MAX_BUFFER = 2_000_000

_FIRST = operator.itemgetter(0)
# ``ROLLUP_COLUMNS`` row → the columns history() and history_columns() select.
_HISTORY = operator.itemgetter(1, 2, 3, 4, 5, 6, 8, 9)
_COLUMNS = operator.itemgetter(1, 6, 7, 2, 8)


def _key_of(circuit: str, quantity: str, phase: str) -> SeriesKey:
    return SeriesKey(circuit, quantity, Phase(phase) if phase else None)


def is_cumulative(quantity: str) -> bool:
    """True for catalogue registers that only grow (energy, pulse counts, volumes)."""
    q = CATALOGUE.get(quantity)
    return q is not None and q.kind is Kind.CUMULATIVE


class SqlStorage(SqlEvents):
    """Storage on a DB-API connection; subclasses supply the connection and dialect details."""

    # ----------------------------------------------------------------- setup
    def _check_meta(self) -> None:
        """Record schema version and day time zone; rebuild day rollups if the zone changed."""
        meta = dict(self._execute("SELECT key, value FROM meta"))
        if self._requested_tz is None:
            self.calendar = DayCalendar(meta.get("timezone", "UTC"))
        if self.read_only:
            self._minute_horizon = int(meta.get("minute_horizon", 0))
            version = meta.get("schema_version")
            if version is not None and version != SCHEMA_VERSION:
                raise StorageError(
                    f"database schema version {version} is not supported (this meterhub uses {SCHEMA_VERSION})"
                )
            return
        self._minute_horizon = int(meta.get("minute_horizon", 0))
        for key, value in meta.items():
            if key == "raw_horizon" or key.startswith("raw_horizon:"):
                self._raw_horizon[key.partition(":")[2] or "*"] = int(value)
        version = meta.get("schema_version")
        if version is not None and version != SCHEMA_VERSION:
            raise StorageError(
                f"database schema version {version} is not supported (this meterhub uses {SCHEMA_VERSION})"
            )
        self._begin()
        try:
            for key, value in (("schema_version", SCHEMA_VERSION), ("timezone", self.calendar.timezone)):
                self._execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            old = meta.get("timezone")
            if old is not None and old != self.calendar.timezone:
                log.info(
                    "day rollups move from time zone %s to %s; rebuilding them", old, self.calendar.timezone
                )
                self._rebuild_days()
            self._commit()
        except Exception:
            self._rollback()
            raise

    def _rebuild_days(self) -> None:
        self._execute("DELETE FROM r_1d")
        for (sid,) in self._execute("SELECT id FROM series"):
            rows = aggregates_from_rows(
                self._execute(
                    f"SELECT {ROLLUP_COLUMNS} FROM r_15min WHERE series = ? ORDER BY bucket", (sid,)
                )
            )
            self._insert_rollups("1d", merge_aggregates(rows, "1d", self.calendar))

    # ----------------------------------------------------------------- Storage API
    def write(self, readings: Sequence[Reading]) -> None:
        """Buffer readings; they are durable after the next :meth:`flush`.

        Never waits for the database: a flush running in another thread holds the connection lock,
        not the buffer lock, so the event loop keeps buffering while a transaction is written.
        """
        if self.read_only:
            raise StorageError("the storage was opened read-only; nothing can be written")
        with self._buf_lock:
            self._buffer.extend(readings)
            over = len(self._buffer) - MAX_BUFFER
            if over > 0:
                del self._buffer[:over]
                self.dropped += over
        if over > 0:
            log.warning("storage buffer full: dropped %d oldest readings", over)

    @property
    def buffered(self) -> int:
        """Readings written but not yet flushed."""
        return len(self._buffer)

    def discard(self) -> int:
        """Drop what was written or saved since the last flush; return the readings dropped."""
        with self._buf_lock:
            n = len(self._buffer)
            self._buffer = []
            self._pending_registers = {}
            self._pending_computed = {}
        return n

    def flush(self) -> None:
        """Write buffered readings and registers in one transaction and maintain the rollups.

        Thread-safe and meant to run in a worker thread (``await asyncio.to_thread(storage.flush)``):
        the buffer is swapped out under the short buffer lock, then written under the connection
        lock while :meth:`write` keeps filling a new buffer. Flushes are serialised, so a flush that
        starts while another runs waits for it and then writes what arrived meanwhile.

        Raises :class:`StorageError` when the database fails; the readings go back to the front of
        the buffer (before anything written since) for the next attempt.
        """
        with self._lock:
            with self._buf_lock:
                if not self._buffer and not self._pending_registers and not self._pending_computed:
                    return
                batch, self._buffer = self._buffer, []
                registers, self._pending_registers = self._pending_registers, {}
                computed, self._pending_computed = self._pending_computed, {}
            try:
                self._transaction(batch, registers, computed)
            except StorageError as exc:
                self._note_error(exc)
                self._requeue(batch, registers, computed)
                raise
            self._failing = False

    def _transaction(
        self,
        batch: list[Reading],
        registers: dict[SeriesKey, float],
        computed: dict[SeriesKey, float] | None = None,
    ) -> None:
        """Write readings, the registers they carry and the registers sources computed in one
        transaction (all or nothing).

        Raises :class:`StorageError` (the transaction rolled back) when the database fails.
        """
        try:
            self._begin()
            try:
                self._flush_batch(batch)
                self._flush_registers(registers)
                self._flush_computed(computed or {})
                self._commit()
            except BaseException:
                self._rollback()
                raise
        except Exception as exc:
            # Ids and tails learned inside the failed transaction are not trustworthy.
            self._series_ids.clear()
            self._tails.clear()
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"flush of {len(batch)} readings failed: {exc}") from exc

    def _requeue(
        self,
        batch: list[Reading],
        registers: dict[SeriesKey, float],
        computed: dict[SeriesKey, float] | None = None,
    ) -> None:
        """Put a batch that could not be written back at the front of the buffer (before anything
        written since) for the next flush."""
        with self._buf_lock:
            self._buffer[:0] = batch
            for k, v in registers.items():
                # A value saved since the swap is newer (and not lower: save_registers).
                self._pending_registers.setdefault(k, v)
            for k, v in (computed or {}).items():
                self._pending_computed[k] = max(v, self._pending_computed.get(k, v))

    def _note_error(self, exc: BaseException) -> None:
        """Remember the last failure for :meth:`health`."""
        self._failing = True
        self._last_error = str(exc)
        self._last_error_at = time.time()

    @property
    def timezone(self) -> str:
        """IANA zone of the day rollups: the site's, as stored with the data."""
        return self.calendar.timezone

    def health(self) -> StorageHealth:
        """Connected unless the last flush failed (the readings then wait in memory for the next)."""
        return StorageHealth(
            state=StorageState.DOWN if self._failing else StorageState.CONNECTED,
            backend=self.config.backend,
            buffered=len(self._buffer),
            dropped_rows=self.dropped,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
        )

    def history(
        self, key: SeriesKey, start: float, end: float, resolution: Resolution = "raw"
    ) -> list[HistoryPoint]:
        """Points of one series with start ≤ ts < end [s] at ``resolution``.

        resolution : "raw", "1min", "15min", "1h", "1d" or "auto" (:func:`auto_resolution`).
        For rollups ``ts`` is the bucket start and, for cumulative quantities, ``delta`` the energy
        (increase) in the bucket; ``quality`` is the worst quality of the values aggregated.
        """
        if resolution == "auto":
            resolution = auto_resolution(start, end)
        if resolution != "raw" and resolution not in ROLLUP_TABLES:
            raise ValueError(
                f"unknown resolution {resolution!r}; use one of raw, {', '.join(ROLLUP_TABLES)}, auto"
            )
        with self._lock:
            sid = self._lookup_series(key)
            if sid is None:
                return []
            if resolution == "raw":
                rows = self._execute(
                    "SELECT ts, value, quality FROM raw WHERE series = ? AND ts >= ? AND ts < ? "
                    "AND quality < ? ORDER BY ts",
                    (sid, math.ceil(start * 1000), math.ceil(end * 1000), INVALID),
                )
                return [HistoryPoint(t / 1000, v, v, v, v, 1, quality=q) for t, v, q in rows]
            rows = self._rollup_rows(
                sid, resolution, start, end, "bucket, n, vsum, vmin, vmax, vlast, quality, delta", _HISTORY
            )
        cumulative = is_cumulative(key.quantity)
        return [
            HistoryPoint(float(b), s / n, lo, hi, last, n, quality=q, delta=(d if cumulative else None))
            for b, n, s, lo, hi, last, q, d in rows
        ]

    def history_columns(
        self, key: SeriesKey, start: float, end: float, resolution: Resolution = "raw"
    ) -> HistoryColumns:
        """Points of one series with start ≤ ts < end [s] as numpy columns, straight from the rows
        (no point objects; ``last_ts`` of rollups is the stored read time of their last value)."""
        if resolution != "raw" and resolution not in ROLLUP_TABLES:
            raise ValueError(f"unknown resolution {resolution!r}; use one of raw, {', '.join(ROLLUP_TABLES)}")
        flagged: list[tuple] = []
        with self._lock:
            sid = self._lookup_series(key)
            if sid is None:
                rows: list[tuple] = []
            elif resolution == "raw":
                # Two columns, and the few flagged rows apart: a third column costs ~40 % more to fetch.
                span = (sid, math.ceil(start * 1000), math.ceil(end * 1000), INVALID)
                rows = self._execute(
                    "SELECT ts, value FROM raw WHERE series = ? AND ts >= ? AND ts < ? AND quality < ? "
                    "ORDER BY ts",
                    span,
                )
                flagged = self._execute(
                    "SELECT ts, quality FROM raw WHERE series = ? AND ts >= ? AND ts < ? AND quality < ? "
                    "AND quality > 0 ORDER BY ts",
                    span,
                )
            else:
                rows = self._rollup_rows(
                    sid, resolution, start, end, "bucket, vlast, last_ts, n, quality", _COLUMNS
                )
        width = 2 if resolution == "raw" else 5
        flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width)
        cols = flat.reshape(len(rows), width).T
        if resolution == "raw":
            quality = np.zeros(len(rows), dtype=np.int64)
            if rows and flagged:
                at = np.searchsorted(cols[0], np.array([t for t, _ in flagged], dtype=np.float64))
                quality[at] = [q for _, q in flagged]
            ts = cols[0] / 1000.0
            return HistoryColumns(ts, cols[1], ts, np.ones(len(rows), dtype=np.int64), quality)
        return HistoryColumns(
            cols[0], cols[1], cols[2] / 1000.0, cols[3].astype(np.int64), cols[4].astype(np.int64)
        )

    def delta_sums(
        self, keys: Sequence[SeriesKey], edges: npt.ArrayLike, resolution: Resolution = "1h"
    ) -> dict[SeriesKey, npt.NDArray[np.float64]]:
        """Sum of the rollup ``delta`` of each series over each span ``edges[k]`` ≤ bucket <
        ``edges[k + 1]`` [unit of the quantity], added up in the database (see
        :meth:`Storage.delta_sums <meterhub.storage.base.Storage.delta_sums>`).

        The database returns one row per (series, span) instead of one per bucket (a year of 100
        circuits at time-of-use: ~90 000 sums instead of ~900 000 hour rows); the open bucket of a
        coarse resolution is corrected with its computed row, as :meth:`history` does."""
        e = check_span_edges(edges, resolution)
        out = {key: np.zeros(len(e) - 1) for key in keys}
        if len(e) < 2 or not keys:
            return out
        with self._lock:
            ids = {key: self._lookup_series(key) for key in keys}
            by_sid = {sid: key for key, sid in ids.items() if sid is not None}
            sids = sorted(by_sid)
            for at in range(0, len(sids), 500):
                part = sids[at : at + 500]
                for sid, sums in self._span_arrays(resolution, part, e).items():
                    out[by_sid[sid]] += sums
                if resolution in COARSE:
                    self._correct_open_buckets(resolution, part, e, by_sid, out)
        return out

    def _span_arrays(self, resolution: str, sids: Sequence[int], edges: np.ndarray) -> dict[int, np.ndarray]:
        """Σ delta of the ``resolution`` rollups per span of ``edges`` [s] for each series id that
        has rows there (an array of ``len(edges) − 1`` sums), from :meth:`_span_sums`."""
        out: dict[int, np.ndarray] = {}
        for sid, k, total in self._span_sums(ROLLUP_TABLES[resolution], sids, edges):
            out.setdefault(int(sid), np.zeros(len(edges) - 1))[int(k)] += float(total)
        return out

    def _span_sums(self, table: str, sids: Sequence[int], edges: np.ndarray) -> list[tuple]:
        """(series, span number, Σ delta) of ``table`` per span of ``edges`` [s].

        SQLite: per series, the spans as a VALUES list, each summed by a correlated subquery (a
        primary-key range seek; no sort of the rows for a GROUP BY — about twice as fast as a join).
        Every number is an integer formatted here, so nothing user-supplied reaches the SQL.
        """
        bounds = edges.tolist()
        spans = ", ".join(f"({k}, {lo}, {hi})" for k, (lo, hi) in enumerate(itertools.pairwise(bounds)))
        sql = (
            f"WITH span(k, lo, hi) AS (VALUES {spans}) SELECT span.k, (SELECT SUM(r.delta) FROM {table} r "
            "WHERE r.series = ? AND r.bucket >= span.lo AND r.bucket < span.hi) FROM span"
        )
        out: list[tuple] = []
        for sid in sids:
            out += [(sid, k, total) for k, total in self._execute(sql, (int(sid),)) if total is not None]
        return out

    def _correct_open_buckets(
        self,
        resolution: str,
        sids: Sequence[int],
        edges: np.ndarray,
        by_sid: dict[int, SeriesKey],
        out: dict[SeriesKey, np.ndarray],
    ) -> None:
        """Replace the stored (missing or stale) row of each series' open ``resolution`` bucket by the
        row computed from the finer rollups, where that bucket lies within ``edges`` [s]."""
        series = ", ".join(str(int(s)) for s in sids)
        newest = self._execute(
            f"SELECT s.id, (SELECT MAX(m.bucket) FROM r_1min m WHERE m.series = s.id) FROM series s "
            f"WHERE s.id IN ({series})"
        )
        lo, hi = int(edges[0]), int(edges[-1])
        for sid, minute in newest:
            if minute is None:
                continue
            b = int(bucket_starts(resolution, np.asarray([int(minute)], dtype=np.int64), self.calendar)[0])
            if not lo <= b < hi:
                continue
            row = self._open_rollup(int(sid), resolution)
            if row is None:  # before the 1-minute retention: the stored row is kept up to date
                continue
            stored = self._execute(
                f"SELECT delta FROM {ROLLUP_TABLES[resolution]} WHERE series = ? AND bucket = ?",
                (int(sid), int(row[1])),
            )
            k = int(np.searchsorted(edges, row[1], side="right")) - 1
            out[by_sid[int(sid)]][k] += float(row[9]) - (float(stored[0][0]) if stored else 0.0)

    def _rollup_rows(
        self,
        sid: int,
        resolution: str,
        start: float,
        end: float,
        columns: str,
        pick: Callable[[tuple], tuple],
    ) -> list[tuple]:
        """Rollup rows (``columns``) of one series with start ≤ bucket < end [s], ordered by bucket;
        a coarse resolution's open bucket is computed from the finer rollups (its stored row, if
        any, is stale), ``pick`` taking those columns from a ``ROLLUP_COLUMNS`` row."""
        lo, hi = math.ceil(start), math.ceil(end)
        rows = self._execute(
            f"SELECT {columns} FROM {ROLLUP_TABLES[resolution]} "
            "WHERE series = ? AND bucket >= ? AND bucket < ? ORDER BY bucket",
            (sid, lo, hi),
        )
        if resolution in COARSE:
            open_row = self._open_rollup(sid, resolution)
            if open_row is not None and lo <= open_row[1] < hi:
                at = bisect.bisect_left(rows, open_row[1], key=_FIRST)
                rows[at : at + (at < len(rows) and rows[at][0] == open_row[1])] = [pick(open_row)]
        return rows

    def value_at(self, key: SeriesKey, ts: float) -> tuple[float, float] | None:
        """The last valid value at or before ``ts`` [s] as (its timestamp [s], value), or None.

        Reads raw values, and the 1-minute rollups where retention already removed the raw ones.
        """
        with self._lock:
            sid = self._lookup_series(key)
            if sid is None:
                return None
            limit = math.floor(ts * 1000)
            raw = self._execute(
                "SELECT ts, value FROM raw WHERE series = ? AND ts <= ? AND quality < ? ORDER BY ts DESC LIMIT 1",
                (sid, limit, INVALID),
            )
            # Minutes that end at or before ``ts`` (a primary-key range, however old ``ts`` is).
            minute = math.floor(ts) - math.floor(ts) % 60
            roll = self._execute(
                "SELECT last_ts, vlast FROM r_1min WHERE series = ? AND bucket < ? ORDER BY bucket DESC LIMIT 1",
                (sid, minute),
            )
        best = max(raw + roll, default=None, key=lambda r: r[0])
        return None if best is None else (best[0] / 1000, best[1])

    def series(self) -> list[SeriesKey]:
        """Every series stored, ordered by circuit, quantity and phase."""
        with self._lock:
            rows = self._execute("SELECT circuit, quantity, phase FROM series")
        return [_key_of(c, q, p) for c, q, p in sorted(rows)]  # code-point order in every backend

    def load_registers(self) -> dict[SeriesKey, float]:
        """Persisted cumulative registers as of the last flush (plus any saved since)."""
        with self._lock:
            rows = self._execute(
                "SELECT s.circuit, s.quantity, s.phase, r.value FROM registers r JOIN series s ON s.id = r.series"
            )
            out = {_key_of(c, q, p): float(v) for c, q, p, v in rows}
            with self._buf_lock:
                self._register_floor.update(out)
                out.update(self._pending_registers)
        return out

    def save_registers(self, registers: dict[SeriesKey, float]) -> None:
        """Persist registers [unit of each quantity, float64] in the next flush's transaction.

        Registers never go backwards: a value below the one already persisted is not stored (and
        logged once per register); repairing resets is the register guard's job upstream.
        """
        if self.read_only:
            raise StorageError("the storage was opened read-only; registers cannot be saved")
        with self._buf_lock:  # not the connection lock: this runs on the event loop
            for key, value in registers.items():
                if not math.isfinite(value):
                    log.warning("register %s = %r not saved (not a finite number)", key, value)
                    continue
                floor = self._register_floor.get(key)
                if floor is not None and value < floor:
                    if key not in self._register_warned:
                        self._register_warned.add(key)
                        log.warning(
                            "register %s = %r is below the persisted %r; keeping %r", key, value, floor, floor
                        )
                    continue
                self._pending_registers[key] = float(value)

    def load_computed_registers(self) -> dict[SeriesKey, float]:
        """Registers computed by sources as of the last flush (plus any saved since) [unit]."""
        with self._lock:
            rows = self._execute("SELECT circuit, quantity, phase, value FROM computed_registers")
            out = {_key_of(c, q, p): float(v) for c, q, p, v in rows}
            with self._buf_lock:
                for k, v in self._pending_computed.items():
                    out[k] = max(v, out.get(k, v))
        return out

    def save_computed_registers(self, registers: dict[SeriesKey, float]) -> None:
        """Persist registers computed by sources [unit of each quantity] in the next flush's
        transaction; the table keeps the greater of the stored and the new value of each."""
        if self.read_only:
            raise StorageError("the storage was opened read-only; registers cannot be saved")
        with self._buf_lock:
            for key, value in registers.items():
                if not math.isfinite(value):
                    log.warning("computed register %s = %r not saved (not a finite number)", key, value)
                    continue
                self._pending_computed[key] = max(float(value), self._pending_computed.get(key, -math.inf))

    def retention_days(self, quantity: str) -> float:
        """Raw retention of a quantity's series [d] (per-quantity override or the default)."""
        overrides = self.config.raw_retention_by_quantity
        return float(overrides.get(quantity, self.config.raw_retention_days))

    def apply_retention(self, now: float) -> int:
        """Delete raw values older than their retention before ``now`` [s] and, when
        ``minute_rollup_retention_days`` is set, older 1-minute rollups (15-min, hourly and daily
        rollups are kept). Returns the number of raw values removed."""
        if self.read_only:
            raise StorageError("the storage was opened read-only; retention cannot delete anything")
        overrides: dict[str, float] = dict(self.config.raw_retention_by_quantity)
        default_cut = int((now - self.config.raw_retention_days * 86400) * 1000)
        oldest_cut = min([default_cut] + [int((now - d * 86400) * 1000) for d in overrides.values()])
        with self._lock:
            self._begin()
            try:
                removed = self._drop_expired(oldest_cut)
                if overrides:
                    removed += self._delete_raw_before(default_cut, list(overrides), exclude=True)
                    for quantity, days in overrides.items():
                        removed += self._delete_raw_before(
                            int((now - days * 86400) * 1000), [quantity], False
                        )
                else:
                    removed += self._delete_raw_before(default_cut, None, False)
                self._set_raw_horizon("*", default_cut)
                for quantity, days in overrides.items():
                    self._set_raw_horizon(quantity, int((now - days * 86400) * 1000))
                minute_days = self.config.minute_rollup_retention_days
                if minute_days is not None:
                    horizon = int(now - minute_days * 86400)
                    horizon -= horizon % 60
                    if horizon > self._minute_horizon:
                        self._store_open_rollups(horizon)
                        gone = len(
                            self._execute("DELETE FROM r_1min WHERE bucket < ? RETURNING 1", (horizon,))
                        )
                        self._execute(
                            "INSERT INTO meta (key, value) VALUES ('minute_horizon', ?) "
                            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                            (str(horizon),),
                        )
                        self._minute_horizon = horizon
                        if gone:
                            log.info("retention removed %d 1-minute rollups", gone)
                self._delete_expired_events(now)  # the alarm, audit and power-quality logs
                self._commit()
            except BaseException:
                self._rollback()
                raise
        if removed:
            log.info("retention removed %d raw values", removed)
        return removed

    def _store_open_rollups(self, horizon: int) -> None:
        """Store the open coarse buckets that begin before ``horizon`` [s], before the 1-minute
        rollups they are computed from go; from then on they are maintained incrementally."""
        for (sid,) in self._execute("SELECT id FROM series"):
            last = self._execute("SELECT MAX(bucket) FROM r_1min WHERE series = ?", (sid,))
            if not last or last[0][0] is None:
                continue
            minute = int(last[0][0])
            # Hours are UTC, days local: either may begin first (a day at 18:30 UTC in +05:30).
            if min(minute - minute % 3600, self.calendar.day_start(minute)) >= horizon:
                continue  # all its open buckets begin after the horizon
            for res in COARSE:
                row = self._open_rollup(int(sid), res)
                if row is not None and row[1] < horizon:
                    self._replace_rollups(res, aggregates_from_rows([row]))

    def _set_raw_horizon(self, quantity: str, cut_ms: int) -> None:
        if cut_ms <= self._raw_horizon.get(quantity, 0):
            return
        self._raw_horizon[quantity] = cut_ms
        self._execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            ("raw_horizon" if quantity == "*" else f"raw_horizon:{quantity}", str(cut_ms)),
        )

    def _drop_expired(self, cutoff_ms: int) -> int:
        """Backend fast path: drop whole stretches of raw rows older than cutoff_ms (every series);
        return how many rows went. PostgreSQL drops monthly partitions."""
        return 0

    def close(self) -> None:
        """Flush and release the backend."""
        with self._lock:
            try:
                self.flush()
            finally:
                self._close_connection()
