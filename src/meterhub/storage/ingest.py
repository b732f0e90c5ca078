"""Ingest for the SQL backends: batches of readings into raw rows and rollups, in one transaction.

:meth:`SqlIngest._flush_batch` sorts and de-duplicates a batch (of repeated (series, ts) the reading
written last wins), upserts the raw rows, and for each series whose new values all lie after the
last value already aggregated (the live case) merges numpy-computed aggregates
(:mod:`meterhub.storage.rollup`) into the 1-minute rollups incrementally.

The coarse rollups (15 min, 1 h, 1 day; :data:`COARSE`) are written when a bucket *closes*: when a
series' newest aggregated value (its tail) moves past the bucket. A flush then stores the buckets
lying wholly in the batch from the batch's aggregates and rebuilds the bucket that was open before
it from the finer rollups (15 min from 1 min; hours and days from the then complete 15-minute
rollups). The bucket holding the tail stays open and unstored — or stale, if a recomputation
wrote it — and queries compute it from the stored 15-minute rollups before its open 15-minute
bucket plus the 1-minute rollups from there on (:meth:`SqlIngest._open_rollup`), so answers equal
those of rollups maintained on every flush and nothing needs rebuilding after a restart or crash.
This saves three upserts per series and flush (about half of the flush time at a few readings per
series). Buckets before the 1-minute rollup retention cannot be computed that way: retention stores
the open buckets it reaches first, and such buckets are merged incrementally as before.

A series that received late or repeated timestamps has the touched 1-minute buckets recomputed
from its raw values and the coarser buckets covering them recomputed from the 1-minute rollups —
except where retention already removed the raw values (or the 1-minute rollups) those buckets
would be rebuilt from. INVALID values are stored raw for diagnosis but never aggregated.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import math
import operator
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from meterhub.config.schema import StorageConfig
from meterhub.model.readings import Quality, Reading, SeriesKey, iso_utc
from meterhub.model.topology import Phase
from meterhub.storage.base import Storage, StorageError
from meterhub.storage.rollup import (
    Aggregates,
    DayCalendar,
    aggregate_raw,
    aggregates_from_rows,
    bucket_end,
    bucket_starts,
    merge_aggregates,
    steps,
)

__all__ = ["COARSE", "INVALID", "ROLLUP_COLUMNS", "ROLLUP_TABLES", "SqlIngest"]

log = logging.getLogger(__name__)

ROLLUP_TABLES: dict[str, str] = {"1min": "r_1min", "15min": "r_15min", "1h": "r_1h", "1d": "r_1d"}
#: Rollups written when a bucket closes (not on every flush); the open bucket is computed on read.
COARSE = ("15min", "1h", "1d")
ROLLUP_COLUMNS = "series, bucket, n, vsum, vmin, vmax, vlast, last_ts, quality, delta"
INVALID = int(Quality.INVALID)

_KEY_OF_READING = operator.attrgetter("circuit", "quantity", "phase")
_TS_OF_READING = operator.attrgetter("ts")
_VALUE_OF_READING = operator.attrgetter("value")
_QUALITY_OF_READING = operator.attrgetter("quality")
_SERIES_BUCKET = operator.itemgetter(0, 1)


def _phase_text(phase: Phase | None) -> str:
    return phase.value if phase is not None else ""


class SqlIngest(Storage):
    """State, backend hooks and the write path shared by the SQL backends (see the module doc).

    config : the site's ``storage`` section.
    timezone : IANA zone of the site; day rollups start at local midnight. None keeps the zone the
        database already uses (UTC for a new one).
    """

    #: SQL functions for the smaller/greater of two values (SQLite MIN/MAX, PostgreSQL LEAST/GREATEST).
    least = "MIN"
    greatest = "MAX"

    def __init__(
        self, config: StorageConfig, *, timezone: str | None = None, read_only: bool = False
    ) -> None:
        self.config = config
        self.read_only = read_only  # opened for reading only: writes raise StorageError
        self.data_dir: Path | None = None  # the data folder the storage was opened for (state files)
        self._requested_tz = timezone
        self.calendar = DayCalendar(timezone or "UTC")  # settled by _check_meta
        # Two locks, so that writers never wait for the database (see SqlStorage.flush):
        # ``_lock`` serialises use of the connection (one transaction or query at a time, whichever
        # thread runs it); ``_buf_lock`` guards only the in-memory buffer and registers and is held
        # for microseconds. Lock order: ``_lock`` before ``_buf_lock``.
        self._lock = threading.RLock()
        self._buf_lock = threading.Lock()
        self._buffer: list[Reading] = []
        self._pending_registers: dict[SeriesKey, float] = {}
        self._register_floor: dict[SeriesKey, float] = {}  # persisted values (registers never decrease)
        self._register_warned: set[SeriesKey] = set()
        # registers computed by sources (waveform energy, pulse totals): their own table, never lower
        self._pending_computed: dict[SeriesKey, float] = {}
        self._series_ids: dict[SeriesKey, int] = {}
        self._tails: dict[int, tuple[int, float] | None] = {}  # series → (last_ts [ms], last value)
        self._minute_horizon = 0  # 1-minute rollups before this bucket [s] were removed by retention
        self._raw_horizon: dict[str, int] = {}  # quantity ("*": default) → raw values before [ms] removed
        self.dropped = 0  # readings dropped because the buffer overflowed
        self.rejected = 0  # readings with an unusable timestamp
        self._failing = False  # the last flush failed
        self._last_error: str | None = None
        self._last_error_at: float | None = None  # [s]

    # ----------------------------------------------------------------- backend hooks
    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement with ``?`` placeholders; return its rows (empty for DML)."""

    @abc.abstractmethod
    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows."""

    @abc.abstractmethod
    def _begin(self) -> None: ...

    @abc.abstractmethod
    def _commit(self) -> None: ...

    @abc.abstractmethod
    def _rollback(self) -> None: ...

    @abc.abstractmethod
    def _close_connection(self) -> None: ...

    def _prepare_raw_range(self, ts_ms: np.ndarray) -> None:
        """Make sure raw rows with these timestamps [ms] can be inserted (PostgreSQL partitions)."""

    def _insert_rows(
        self, table: str, columns: str, rows: Sequence[Sequence[Any]], conflict: str = ""
    ) -> None:
        """INSERT many rows into ``table`` (``columns`` comma-separated), then the ON CONFLICT clause."""
        marks = ", ".join("?" for _ in columns.split(","))
        self._executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks}) {conflict}", rows)

    def _delete_raw_before(self, cutoff_ms: int, quantities: Sequence[str] | None, exclude: bool) -> int:
        """Delete raw rows older than cutoff of the given quantities (or of all others); return count."""
        if quantities is None:
            rows = self._execute("DELETE FROM raw WHERE ts < ? RETURNING 1", (cutoff_ms,))
            return len(rows)
        marks = ", ".join("?" for _ in quantities)
        neg = "NOT " if exclude else ""
        rows = self._execute(
            f"DELETE FROM raw WHERE ts < ? AND series {neg}IN "
            f"(SELECT id FROM series WHERE quantity IN ({marks})) RETURNING 1",
            (cutoff_ms, *quantities),
        )
        return len(rows)

    # ----------------------------------------------------------------- internals
    def _lookup_series(self, key: SeriesKey) -> int | None:
        sid = self._series_ids.get(key)
        if sid is None:
            rows = self._execute(
                "SELECT id FROM series WHERE circuit = ? AND quantity = ? AND phase = ?",
                (key.circuit, key.quantity, _phase_text(key.phase)),
            )
            if not rows:
                return None
            sid = int(rows[0][0])
            self._series_ids[key] = sid
        return sid

    def _series_id(self, key: SeriesKey) -> int:
        """Id of a series, created if new (inside the current transaction)."""
        sid = self._lookup_series(key)
        if sid is None:
            self._execute(
                "INSERT INTO series (circuit, quantity, phase) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (key.circuit, key.quantity, _phase_text(key.phase)),
            )
            sid = self._lookup_series(key)
            if sid is None:  # pragma: no cover - the insert above guarantees the row
                raise StorageError(f"could not create series {key}")
        return sid

    def _tail(self, sid: int) -> tuple[int, float] | None:
        """(last_ts [ms], value) of the newest valid value of a series already in the rollups."""
        if sid not in self._tails:
            rows = self._execute(
                "SELECT last_ts, vlast FROM r_1min WHERE series = ? ORDER BY bucket DESC LIMIT 1", (sid,)
            ) or self._execute(  # 1-minute rollups removed by retention
                "SELECT last_ts, vlast FROM r_15min WHERE series = ? ORDER BY bucket DESC LIMIT 1", (sid,)
            )
            self._tails[sid] = (int(rows[0][0]), float(rows[0][1])) if rows else None
        return self._tails[sid]

    def _arrays(self, batch: list[Reading]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = len(batch)
        # A plain (circuit, quantity, phase) tuple hashes and compares equal to its SeriesKey.
        known = self._series_ids
        sid_list = list(map(known.get, map(_KEY_OF_READING, batch)))  # type: ignore[arg-type]
        if None in sid_list:
            for i, key in enumerate(map(_KEY_OF_READING, batch)):
                if sid_list[i] is None:
                    sid_list[i] = self._series_id(SeriesKey(*key))
        sid_a = np.asarray(sid_list, dtype=np.int64)
        ts_f = np.fromiter(map(_TS_OF_READING, batch), dtype=np.float64, count=n)
        val = np.fromiter(map(_VALUE_OF_READING, batch), dtype=np.float64, count=n)
        qual = np.fromiter(map(_QUALITY_OF_READING, batch), dtype=np.int64, count=n)
        ok = np.isfinite(ts_f) & (ts_f >= 0) & (ts_f < 32503680000.0)  # before year 3000
        if not ok.all():
            bad = int((~ok).sum())
            self.rejected += bad
            log.warning("storage: %d readings with an invalid timestamp dropped", bad)
            sid_a, ts_f, val, qual = sid_a[ok], ts_f[ok], val[ok], qual[ok]
        ts_ms = np.rint(ts_f * 1000).astype(np.int64)
        qual[~np.isfinite(val)] = INVALID
        # Sort by (series, ts); of repeated (series, ts) the reading written last wins.
        order = np.lexsort((np.arange(len(ts_ms)), ts_ms, sid_a))
        sid_a, ts_ms, val, qual = sid_a[order], ts_ms[order], val[order], qual[order]
        if len(sid_a):
            keep = np.ones(len(sid_a), dtype=bool)
            keep[:-1] = (sid_a[:-1] != sid_a[1:]) | (ts_ms[:-1] != ts_ms[1:])
            sid_a, ts_ms, val, qual = sid_a[keep], ts_ms[keep], val[keep], qual[keep]
        return sid_a, ts_ms, val, qual

    def _flush_batch(self, batch: list[Reading]) -> None:
        if not batch:
            return
        sid, ts_ms, val, qual = self._arrays(batch)
        if not len(sid):
            return
        self._prepare_raw_range(ts_ms)
        finite = np.isfinite(val)
        values: list[float | None] = val.tolist()
        if not finite.all():
            values = [v if f else None for v, f in zip(values, finite.tolist(), strict=True)]
        self._insert_rows(
            "raw",
            "series, ts, value, quality",
            list(zip(sid.tolist(), ts_ms.tolist(), values, qual.tolist(), strict=True)),
            "ON CONFLICT (series, ts) DO UPDATE SET value = excluded.value, quality = excluded.quality",
        )
        # Which series get all their new values after the last stored one (incremental merge)?
        starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
        ends = np.r_[starts[1:], len(sid)]
        first_sid = sid[starts]
        first_ts = ts_ms[starts].tolist()
        tails = [self._tail(s) for s in first_sid.tolist()]
        # Per series: (read time [ms], value) of its tail before this batch; -1 and NaN for none.
        tail_ts = np.array([-1 if t is None else t[0] for t in tails], dtype=np.int64)
        tail_v = np.array([math.nan if t is None else t[1] for t in tails], dtype=np.float64)
        inc = np.array([t is None or f > t[0] for t, f in zip(tails, first_ts, strict=True)], dtype=bool)
        late = [
            (s, f, h)
            for s, f, h, i in zip(
                first_sid.tolist(), first_ts, ts_ms[ends - 1].tolist(), inc.tolist(), strict=True
            )
            if not i
        ]
        use = np.repeat(inc, ends - starts) & (qual < INVALID)
        if use.any():
            s_u, t_u, v_u, q_u = sid[use], ts_ms[use], val[use], qual[use]
            first = np.r_[True, s_u[1:] != s_u[:-1]]
            series_u = s_u[first]
            at = np.searchsorted(first_sid, series_u)
            # The value before each series' first valid new value: its tail.
            p_u = np.full(len(s_u), math.nan)
            p_u[first] = tail_v[at]
            step = steps(s_u, v_u, p_u)
            self._merge_rollups("1min", aggregate_raw(s_u, t_u, v_u, q_u, step, "1min", self.calendar))
            lasts = np.r_[first[1:], True]
            old_tail = tail_ts[at]
            # Each series' new values lie between its old tail (or first new value) and its new tail.
            lo_s, hi_s = np.where(old_tail >= 0, old_tail, t_u[first]) // 1000, t_u[lasts] // 1000
            for res in COARSE:
                newest = bucket_starts(res, hi_s, self.calendar)
                if (bucket_starts(res, lo_s, self.calendar) == newest).all() and (
                    newest.min() >= self._minute_horizon
                ):
                    continue  # every new value lies in its series' open bucket: nothing to write
                agg = aggregate_raw(s_u, t_u, v_u, q_u, step, res, self.calendar)
                self._write_coarse(res, agg, series_u, old_tail, t_u[lasts])
            for s, t, v in zip(s_u[lasts].tolist(), t_u[lasts].tolist(), v_u[lasts].tolist(), strict=True):
                self._tails[s] = (t, v)
        for s, lo, hi in late:
            self._recompute(s, lo, hi)

    def _merge_rollups(self, res: str, agg: Aggregates) -> None:
        if not len(agg):
            return
        t = ROLLUP_TABLES[res]
        self._insert_rows(
            t,
            ROLLUP_COLUMNS,
            agg.rows(),
            f"ON CONFLICT (series, bucket) DO UPDATE SET n = {t}.n + excluded.n, "
            f"vsum = {t}.vsum + excluded.vsum, vmin = {self.least}({t}.vmin, excluded.vmin), "
            f"vmax = {self.greatest}({t}.vmax, excluded.vmax), vlast = excluded.vlast, "
            f"last_ts = excluded.last_ts, quality = {self.greatest}({t}.quality, excluded.quality), "
            f"delta = {t}.delta + excluded.delta",
        )

    def _write_coarse(
        self, res: str, agg: Aggregates, series: np.ndarray, old_tail_ms: np.ndarray, new_tail_ms: np.ndarray
    ) -> None:
        """Write the coarse buckets of ``res`` that this batch closed (see the module doc).

        agg : aggregates of the batch's new values at ``res``. series, old_tail_ms, new_tail_ms : per
        series of ``agg``, the read time [ms] of its newest aggregated value before the batch (-1 for
        none) and after it.
        """
        horizon = self._minute_horizon
        old_b = bucket_starts(res, np.maximum(old_tail_ms, 0) // 1000, self.calendar)
        new_b = bucket_starts(res, new_tail_ms // 1000, self.calendar)
        # Buckets whose 1-minute rollups retention removed are merged incrementally, as stored.
        below = agg.bucket < horizon
        newest = np.r_[agg.series[1:] != agg.series[:-1], True]
        at = np.searchsorted(series, agg.series)
        fresh = ~below & ~newest & ((old_tail_ms[at] < 0) | (agg.bucket != old_b[at]))
        self._merge_rollups(res, _select(agg, below))
        self._replace_rollups(res, _select(agg, fresh))
        # The bucket open before this batch closed: rebuild it from the finer rollups.
        closed = (old_tail_ms >= 0) & (old_b != new_b) & (old_b >= horizon)
        if closed.any():
            self._replace_rollups(res, self._rollup_from_finer(res, series[closed], old_b[closed]))

    def _rollup_from_finer(self, res: str, series: np.ndarray, buckets: np.ndarray) -> Aggregates:
        """Closed coarse buckets (``res``, start [s] per series) from the finer rollups: 15 min from
        the 1-minute rollups; hours and days from the 15-minute ones (all closed, hence stored)."""
        table = "r_1min" if res == "15min" else "r_15min"
        rows: list[tuple] = []
        groups: dict[int, list[int]] = {}
        for s, b in zip(series.tolist(), buckets.tolist(), strict=True):
            groups.setdefault(b, []).append(s)
        for b, sids in groups.items():
            end = bucket_end(res, b, self.calendar)
            for k in range(0, len(sids), 500):
                part = sids[k : k + 500]
                marks = ", ".join("?" for _ in part)
                rows += self._execute(
                    f"SELECT {ROLLUP_COLUMNS} FROM {table} WHERE series IN ({marks}) "
                    "AND bucket >= ? AND bucket < ?",
                    (*part, b, end),
                )
        rows.sort(key=_SERIES_BUCKET)
        return merge_aggregates(aggregates_from_rows(rows), res, self.calendar)

    def _open_rollup(self, sid: int, res: str) -> tuple | None:
        """The row (``ROLLUP_COLUMNS``) of the open ``res`` bucket of a series — the one holding its
        newest aggregated value, not stored until it closes — computed from the stored 15-minute
        rollups before the open 15-minute bucket and the 1-minute rollups from there on. None when
        the series has no 1-minute rollups or the bucket began before the 1-minute retention (then
        the stored row is kept up to date instead)."""
        last = self._execute("SELECT MAX(bucket) FROM r_1min WHERE series = ?", (sid,))
        if not last or last[0][0] is None:
            return None
        minute = int(last[0][0])
        b = int(bucket_starts(res, np.asarray([minute], dtype=np.int64), self.calendar)[0])
        if b < self._minute_horizon:
            return None
        quarter = minute - minute % 900
        rows = []
        if quarter > b:
            rows = self._execute(
                f"SELECT {ROLLUP_COLUMNS} FROM r_15min WHERE series = ? AND bucket >= ? AND bucket < ? "
                "ORDER BY bucket",
                (sid, b, quarter),
            )
        rows += self._execute(
            f"SELECT {ROLLUP_COLUMNS} FROM r_1min WHERE series = ? AND bucket >= ? AND bucket < ? "
            "ORDER BY bucket",
            (sid, quarter, quarter + 900),
        )
        agg = merge_aggregates(aggregates_from_rows(rows), res, self.calendar)
        return agg.rows()[0] if len(agg) else None

    def _replace_rollups(self, res: str, agg: Aggregates) -> None:
        """Insert rollup rows, replacing stored rows of the same buckets."""
        if not len(agg):
            return
        self._insert_rows(
            ROLLUP_TABLES[res],
            ROLLUP_COLUMNS,
            agg.rows(),
            "ON CONFLICT (series, bucket) DO UPDATE SET n = excluded.n, vsum = excluded.vsum, "
            "vmin = excluded.vmin, vmax = excluded.vmax, vlast = excluded.vlast, "
            "last_ts = excluded.last_ts, quality = excluded.quality, delta = excluded.delta",
        )

    def _insert_rollups(self, res: str, agg: Aggregates) -> None:
        if len(agg):
            self._insert_rows(ROLLUP_TABLES[res], ROLLUP_COLUMNS, agg.rows())

    def _recompute(self, sid: int, lo_ms: int, hi_ms: int) -> None:
        """Recompute the rollups of one series touched by late values between lo_ms and hi_ms."""
        nxt = self._execute(
            "SELECT MIN(ts) FROM raw WHERE series = ? AND ts > ? AND quality < ?", (sid, hi_ms, INVALID)
        )
        upto = int(nxt[0][0]) if nxt and nxt[0][0] is not None else hi_ms
        b0 = (lo_ms // 1000) - (lo_ms // 1000) % 60
        b1 = (upto // 1000) - (upto // 1000) % 60 + 60  # end of the 1-minute bucket of ``upto``
        # Minutes whose raw values retention already removed keep their rollups as they are.
        quantity = self._execute("SELECT quantity FROM series WHERE id = ?", (sid,))[0][0]
        horizon_ms = self._raw_horizon.get(quantity, self._raw_horizon.get("*", 0))
        complete = -(-horizon_ms // 60_000) * 60  # first whole minute with all its raw values [s]
        if b0 < complete:
            log.warning(
                "late values of series %d before the raw retention (%s) are stored but not aggregated",
                sid,
                iso_utc(complete),
            )
            b0 = complete
            if b0 >= b1:
                self._tails.pop(sid, None)
                return
        # The value before b0 that the rollups already account for: raw if still kept, else rollups.
        before = self._execute(
            "SELECT value FROM raw WHERE series = ? AND ts < ? AND ts >= ? AND quality < ? "
            "ORDER BY ts DESC LIMIT 1",
            (sid, b0 * 1000, horizon_ms, INVALID),
        )
        for table in ("r_1min", "r_15min"):
            if not before:
                before = self._execute(
                    f"SELECT vlast FROM {table} WHERE series = ? AND bucket < ? AND last_ts < ? "
                    "ORDER BY bucket DESC LIMIT 1",
                    (sid, b0, b0 * 1000),
                )
        prev0 = float(before[0][0]) if before else math.nan
        rows = self._execute(
            "SELECT ts, value, quality FROM raw WHERE series = ? AND ts >= ? AND ts < ? AND quality < ? "
            "ORDER BY ts",
            (sid, b0 * 1000, b1 * 1000, INVALID),
        )
        t = np.asarray([r[0] for r in rows], dtype=np.int64)
        v = np.asarray([r[1] for r in rows], dtype=np.float64)
        q = np.asarray([r[2] for r in rows], dtype=np.int64)
        s = np.full(len(t), sid, dtype=np.int64)
        p = np.full(len(t), prev0)
        agg = aggregate_raw(s, t, v, q, steps(s, v, p), "1min", self.calendar)
        self._execute("DELETE FROM r_1min WHERE series = ? AND bucket >= ? AND bucket < ?", (sid, b0, b1))
        self._insert_rollups("1min", agg)
        # Coarser buckets: recompute every bucket overlapping [b0, b1) from the 1-minute rollups.
        d0 = int(bucket_starts("1d", np.asarray([b0], dtype=np.int64), self.calendar)[0])
        d1 = bucket_end(
            "1d", int(bucket_starts("1d", np.asarray([b1 - 60]), self.calendar)[0]), self.calendar
        )
        f0 = min(d0, b0 - b0 % 3600)
        f1 = max(d1, b1 + (-b1) % 3600)
        fine = aggregates_from_rows(
            self._execute(
                f"SELECT {ROLLUP_COLUMNS} FROM r_1min WHERE series = ? AND bucket >= ? AND bucket < ? "
                "ORDER BY bucket",
                (sid, f0, f1),
            )
        )
        for res in ("15min", "1h", "1d"):
            lo = int(bucket_starts(res, np.asarray([b0], dtype=np.int64), self.calendar)[0])
            last_start = int(bucket_starts(res, np.asarray([b1 - 60], dtype=np.int64), self.calendar)[0])
            hi = bucket_end(res, last_start, self.calendar)
            agg = merge_aggregates(fine, res, self.calendar)
            # A coarse bucket is rebuilt only while all its 1-minute rollups still exist.
            keep = (agg.bucket >= max(lo, self._minute_horizon)) & (agg.bucket < hi)
            if lo < self._minute_horizon:
                log.warning(
                    "late values before the 1-minute rollup retention (%s) do not change %s rollups",
                    iso_utc(self._minute_horizon),
                    res,
                )
                lo = max(lo, self._minute_horizon)
            self._execute(
                f"DELETE FROM {ROLLUP_TABLES[res]} WHERE series = ? AND bucket >= ? AND bucket < ?",
                (sid, lo, hi),
            )
            self._insert_rollups(res, _select(agg, keep))
        self._tails.pop(sid, None)

    def _flush_registers(self, registers: dict[SeriesKey, float]) -> None:
        if not registers:
            return
        rows = [(self._series_id(k), v, None) for k, v in registers.items()]
        self._executemany(
            "INSERT INTO registers (series, value, ts) VALUES (?, ?, ?) ON CONFLICT (series) DO UPDATE "
            f"SET value = {self.greatest}(registers.value, excluded.value)",
            rows,
        )
        with self._buf_lock:
            for k, v in registers.items():
                self._register_floor[k] = max(v, self._register_floor.get(k, v))

    def _flush_computed(self, computed: dict[SeriesKey, float]) -> None:
        if not computed:
            return
        self._executemany(
            "INSERT INTO computed_registers (circuit, quantity, phase, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (circuit, quantity, phase) DO UPDATE "
            f"SET value = {self.greatest}(computed_registers.value, excluded.value)",
            [(k.circuit, k.quantity, _phase_text(k.phase), v) for k, v in computed.items()],
        )


def _select(agg: Aggregates, mask: np.ndarray) -> Aggregates:
    return Aggregates(*(getattr(agg, f.name)[mask] for f in dataclasses.fields(agg)))
