"""Central's hourly and daily rollups of every series, kept current by a periodic pass (issue 15).

Definitions (those of the gateway's :mod:`meterhub.storage.rollup`, on central's timestamps):

* a point's ``ts`` is the **end** of its interval [Unix s], so the hourly bucket ``b`` holds the points
  with ``b < ts <= b + 3600`` and the daily bucket ``d`` (a UTC day) those with ``d < ts <= d + 86400`` —
  the ``(start, end]`` periods of the fleet views (:mod:`meterhub.central.views`);
* ``n`` (count), ``total`` (sum, so a mean stays exact when buckets merge), ``lo``/``hi`` (min/max),
  ``last`` (the value with the greatest ``ts``), ``last_ts``, ``quality`` (the worst of the bucket);
* ``delta``: the sum of the non-negative increments between consecutive values of the series, each
  attributed to the bucket of its later value — the increment from the last value before the bucket to
  its first value included. For a register that never goes backwards this is ``last − last value before
  the bucket``: the bucket's energy [Wh]. A drop (reset, replaced meter) adds 0, never a negative amount.

Daily rows are merged from the hourly rows of their UTC day (sums of ``n``, ``total``, ``delta``; min of
``lo``, max of ``hi``, the last hour's ``last``). The views cut a local day, month or year into raw edges
(less than an hour at each end), whole hours and whole UTC days, so a fleet time zone with any offset is
exact and a changed ``timezone`` in central.yaml needs no rebuild.

**How they stay current.** ``fleet_meta`` holds two hour boundaries [Unix s]:

* ``rollup_through`` — every hour ending at or before it is in ``fleet_rollup_1h`` (the views read
  rollups up to there and raw points after it);
* ``rollup_dirty_through`` — a message with ``ts`` at or before it is *late*: a statement-level
  ``AFTER INSERT`` trigger on ``fleet_messages`` (one row per distinct message, written in the same
  transaction as its points; the transition table holds only the rows really inserted, so an idempotent
  re-delivery marks nothing) adds ``(series, hour)`` for every series of the message's circuit to
  ``fleet_rollup_dirty``. Live messages (after the boundary) cost the trigger a scan of the batch's
  message keys and nothing more. (The trigger is not on ``fleet_points``: PostgreSQL 15 turns a COPY into
  a partitioned table whose parent has a transition-table trigger into row-by-row inserts
  (``copyfrom.c``, ``CIM_SINGLE``) — measured: two workers' ingest 30–45 % lower.)

A pass (:func:`rollup_pass`, run by :class:`RollupTask` every ``rollup_every`` seconds in each worker;
one at a time across workers by a session advisory lock) first, under an exclusive advisory lock that
every writing trigger holds shared until its commit, moves the boundary to the last hour that ended
``_GRACE`` seconds ago and moves the dirty marks to ``fleet_rollup_claimed`` — so a mark is either claimed
with its points already committed, or made afterwards against the new boundary; nothing falls between.
Then, without blocking writers, it recomputes the claimed hours, the hour of each claimed hour's next
stored point (whose ``delta`` depends on its predecessor), the newly ended hours, and the days of all of
those, and deletes the claimed marks — in one transaction, so a pass that fails leaves them for the next.
A late replay of one hour three days back rebuilds that hour and its successor per series and their days,
nothing else (``tests/central/test_rollups.py`` counts them).

Why a periodic pass rather than after each commit: a worker commits several batches a second; the pass
takes the exclusive lock (a short stall of the writers) and recomputes whole hours, so doing it once per
``rollup_every`` amortises both. The cost is freshness: a late point shows in the rollup-based views
within one period (the open hour is always read raw).

Layouts: with the native monthly partitions (``fleet_meta.points_layout = partitioned``) this module
installs its tables and trigger. On a TimescaleDB hypertable (the extension is not installed on the
development machine, so that layout has never run) :func:`install` declines rather than run untried: no
rollups, no pass, the views read raw points; TimescaleDB's own continuous aggregates are not written.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from meterhub.central.store import CentralStore

__all__ = ["HOUR", "DAY", "PassResult", "RollupTask", "install", "rollup_pass", "rollup_through"]

log = logging.getLogger("meterhub.central")

HOUR = 3600
DAY = 86400
#: Seconds after an hour's end before a pass takes it (its last points are usually still in flight).
_GRACE = 60
#: Hours a pass advances ``rollup_through`` at most (bounds the first pass over an existing database).
_MAX_HOURS = 24
#: Writers hold it shared (in the trigger) until commit; a pass takes it exclusively to claim marks.
_MARK_LOCK = 0x6D68_726D  # "mhrm"
#: One pass at a time across workers (session lock, tried, never waited for).
_PASS_LOCK = 0x6D68_7270  # "mhrp"

_ROLLUP_COLUMNS = (
    "series BIGINT NOT NULL, bucket BIGINT NOT NULL, n INTEGER NOT NULL, total DOUBLE PRECISION NOT NULL, "
    "lo DOUBLE PRECISION NOT NULL, hi DOUBLE PRECISION NOT NULL, last DOUBLE PRECISION NOT NULL, "
    "last_ts BIGINT NOT NULL, quality SMALLINT NOT NULL, delta DOUBLE PRECISION NOT NULL, "
    "PRIMARY KEY (series, bucket)"
)
_DDL = [
    f"CREATE TABLE IF NOT EXISTS fleet_rollup_1h ({_ROLLUP_COLUMNS})",
    f"CREATE TABLE IF NOT EXISTS fleet_rollup_1d ({_ROLLUP_COLUMNS})",
    "CREATE TABLE IF NOT EXISTS fleet_rollup_dirty (series BIGINT NOT NULL, bucket BIGINT NOT NULL, "
    "PRIMARY KEY (series, bucket))",
    "CREATE TABLE IF NOT EXISTS fleet_rollup_claimed (series BIGINT NOT NULL, bucket BIGINT NOT NULL, "
    "PRIMARY KEY (series, bucket))",
    f"""CREATE OR REPLACE FUNCTION fleet_rollup_mark() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE w BIGINT;
    BEGIN
      PERFORM pg_advisory_xact_lock_shared({_MARK_LOCK});
      SELECT value::bigint INTO w FROM fleet_meta WHERE key = 'rollup_dirty_through';
      IF w IS NOT NULL THEN
        INSERT INTO fleet_rollup_dirty
          SELECT DISTINCT s.id, (m.ts - 1) / {HOUR} * {HOUR} FROM fleet_new_messages m
          JOIN fleet_series s ON s.site = m.site AND s.circuit = m.circuit WHERE m.ts <= w
          ORDER BY 1, 2 ON CONFLICT DO NOTHING;
      END IF;
      RETURN NULL;
    END $$""",
]
_TRIGGER = (
    "CREATE TRIGGER fleet_rollup_mark AFTER INSERT ON fleet_messages REFERENCING NEW TABLE AS fleet_new_messages "
    "FOR EACH STATEMENT EXECUTE FUNCTION fleet_rollup_mark()"
)

#: Recompute hourly rows for the (series, bucket) pairs in ``fleet_rollup_work``; empty hours are deleted.
_HOURS_SQL = f"""
WITH agg AS (
  SELECT w.series, w.bucket, a.n, a.total, a.lo, a.hi, a.last, a.last_ts, a.quality, a.delta
  FROM fleet_rollup_work w
  LEFT JOIN LATERAL (
    SELECT q.value FROM fleet_points q WHERE q.series = w.series AND q.ts <= w.bucket
    ORDER BY q.ts DESC LIMIT 1) prev ON TRUE
  CROSS JOIN LATERAL (
    SELECT count(*)::int AS n, sum(x.value) AS total, min(x.value) AS lo, max(x.value) AS hi,
           (array_agg(x.value ORDER BY x.ts DESC))[1] AS last, max(x.ts) AS last_ts,
           max(x.quality)::smallint AS quality, coalesce(sum(greatest(x.value - x.before, 0)), 0) AS delta
    FROM (SELECT p.ts, p.value, p.quality,
                 coalesce(lag(p.value) OVER (ORDER BY p.ts), prev.value) AS before
          FROM fleet_points p WHERE p.series = w.series AND p.ts > w.bucket AND p.ts <= w.bucket + {HOUR}) x
  ) a
), gone AS (
  DELETE FROM fleet_rollup_1h h USING agg WHERE agg.n = 0 AND h.series = agg.series AND h.bucket = agg.bucket
)
INSERT INTO fleet_rollup_1h
SELECT series, bucket, n, total, lo, hi, last, last_ts, quality, delta FROM agg WHERE n > 0
ORDER BY series, bucket
ON CONFLICT (series, bucket) DO UPDATE SET n = EXCLUDED.n, total = EXCLUDED.total, lo = EXCLUDED.lo,
  hi = EXCLUDED.hi, last = EXCLUDED.last, last_ts = EXCLUDED.last_ts, quality = EXCLUDED.quality,
  delta = EXCLUDED.delta
"""

#: Recompute the daily rows of the days of the pairs in ``fleet_rollup_work`` from the hourly rows.
_DAYS_SQL = f"""
WITH d AS (SELECT DISTINCT series, bucket / {DAY} * {DAY} AS day FROM fleet_rollup_work),
agg AS (
  SELECT d.series, d.day, sum(h.n)::int AS n, sum(h.total) AS total, min(h.lo) AS lo, max(h.hi) AS hi,
         (array_agg(h.last ORDER BY h.bucket DESC))[1] AS last, max(h.last_ts) AS last_ts,
         max(h.quality)::smallint AS quality, sum(h.delta) AS delta
  FROM d LEFT JOIN fleet_rollup_1h h ON h.series = d.series AND h.bucket >= d.day AND h.bucket < d.day + {DAY}
  GROUP BY d.series, d.day
), gone AS (
  DELETE FROM fleet_rollup_1d r USING agg WHERE agg.n IS NULL AND r.series = agg.series AND r.bucket = agg.day
)
INSERT INTO fleet_rollup_1d
SELECT series, day, n, total, lo, hi, last, last_ts, quality, delta FROM agg WHERE n IS NOT NULL
ORDER BY series, day
ON CONFLICT (series, bucket) DO UPDATE SET n = EXCLUDED.n, total = EXCLUDED.total, lo = EXCLUDED.lo,
  hi = EXCLUDED.hi, last = EXCLUDED.last, last_ts = EXCLUDED.last_ts, quality = EXCLUDED.quality,
  delta = EXCLUDED.delta
"""


def install(db: psycopg.Connection, layout: str) -> bool:
    """Create the rollup tables and the marking trigger (inside the caller's transaction, under its DDL
    lock). False, and nothing created, for a layout without rollups (a TimescaleDB hypertable)."""
    if layout != "partitioned":
        log.warning(
            "central: no rollups on a %s layout (continuous aggregates are not implemented); "
            "the fleet views read raw points",
            layout,
        )
        return False
    for stmt in _DDL:
        db.execute(stmt)
    # created once: re-creating it at every connect would lock fleet_messages against the other workers
    if not db.execute(
        "SELECT 1 FROM pg_trigger WHERE tgname = 'fleet_rollup_mark' AND tgrelid = 'fleet_messages'::regclass"
    ).fetchone():
        db.execute(_TRIGGER)
    return True


def _meta(db: psycopg.Connection, key: str) -> int | None:
    row = db.execute("SELECT value FROM fleet_meta WHERE key = %s", (key,)).fetchone()
    return int(row[0]) if row else None


def _set_meta(db: psycopg.Connection, key: str, value: int) -> None:
    db.execute(
        "INSERT INTO fleet_meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        (key, str(value)),
    )


def rollup_through(db: psycopg.Connection) -> int | None:
    """The hour boundary up to which the rollups are complete [Unix s]; None: no rollups (yet)."""
    try:
        return _meta(db, "rollup_through")
    except psycopg.errors.UndefinedTable:
        return None


@dataclass(frozen=True)
class PassResult:
    """What one pass did: the boundary it reached [Unix s], marks claimed, hourly and daily rows
    recomputed (including emptied ones), and its duration [s]."""

    through: int | None
    claimed: int
    hours: int
    days: int
    seconds: float


def rollup_pass(db: psycopg.Connection, now: float | None = None) -> PassResult | None:
    """One pass on an autocommit connection; None if another worker's pass is running."""
    t0 = time.monotonic()
    now = time.time() if now is None else now
    if not db.execute("SELECT pg_try_advisory_lock(%s)", (_PASS_LOCK,)).fetchone()[0]:  # type: ignore[index]
        return None
    try:
        target = int(now - _GRACE) // HOUR * HOUR
        with db.transaction():
            done = _meta(db, "rollup_through")
            if done is None:  # first pass: from the oldest stored point's hour
                row = db.execute("SELECT min(ts) FROM fleet_points").fetchone()
                done = (int(row[0]) - 1) // HOUR * HOUR if row and row[0] is not None else target
                _set_meta(db, "rollup_through", min(done, target))
            upto = max(done, min(target, done + _MAX_HOURS * HOUR))
            # claim: every writer that marked (or skipped marking) against the old boundary has committed
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_MARK_LOCK,))
            dirty = _meta(db, "rollup_dirty_through")
            if dirty is None or upto > dirty:
                _set_meta(db, "rollup_dirty_through", upto)
            db.execute(
                "WITH c AS (DELETE FROM fleet_rollup_dirty RETURNING series, bucket) "
                "INSERT INTO fleet_rollup_claimed SELECT * FROM c ORDER BY 1, 2 ON CONFLICT DO NOTHING"
            )
        with db.transaction():
            db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS fleet_rollup_work (series BIGINT, bucket BIGINT, "
                "PRIMARY KEY (series, bucket)) ON COMMIT DELETE ROWS"
            )
            claimed = db.execute(
                "INSERT INTO fleet_rollup_work SELECT series, bucket FROM fleet_rollup_claimed"
            ).rowcount
            # the hour holding each claimed hour's next point: its delta starts from a new predecessor
            db.execute(
                f"INSERT INTO fleet_rollup_work SELECT DISTINCT c.series, (n.ts - 1) / {HOUR} * {HOUR} "
                "FROM fleet_rollup_claimed c CROSS JOIN LATERAL (SELECT ts FROM fleet_points p "
                f"WHERE p.series = c.series AND p.ts > c.bucket + {HOUR} ORDER BY p.ts LIMIT 1) n "
                "WHERE n.ts <= %s ON CONFLICT DO NOTHING",
                (upto,),
            )
            if upto > done:
                db.execute(
                    f"INSERT INTO fleet_rollup_work SELECT DISTINCT series, (ts - 1) / {HOUR} * {HOUR} "
                    "FROM fleet_points WHERE ts > %s AND ts <= %s ON CONFLICT DO NOTHING",
                    (done, upto),
                )
            db.execute(_HOURS_SQL)
            db.execute(_DAYS_SQL)
            # counted from the work table: the upserts' row counts leave out the buckets that emptied
            hours, days = db.execute(
                f"SELECT count(*), count(DISTINCT (series, bucket / {DAY})) FROM fleet_rollup_work"
            ).fetchone() or (0, 0)
            db.execute("DELETE FROM fleet_rollup_claimed")
            _set_meta(db, "rollup_through", upto)
        return PassResult(
            through=upto,
            claimed=max(claimed, 0),
            hours=int(hours),
            days=int(days),
            seconds=round(time.monotonic() - t0, 3),
        )
    finally:
        db.execute("SELECT pg_advisory_unlock(%s)", (_PASS_LOCK,))


class RollupTask:
    """A thread running :func:`rollup_pass` every ``every`` seconds on its own connection of ``store``;
    a database error is logged (once until it recovers) and the next period tries again."""

    def __init__(self, store: CentralStore, every: float) -> None:
        self.store = store
        self.every = every
        self.last: PassResult | None = None
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="central-rollups", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60)
        self.store.close()

    def run_once(self) -> PassResult | None:
        """One pass now (None: not applicable on this layout, or another worker's pass is running)."""
        self.store.connect()
        if not self.store.rollups:
            return None
        try:
            res = rollup_pass(self.store.db)
        except psycopg.Error as exc:
            self.store.close()
            if not self._failing:
                log.error("central rollups: the pass failed, retrying every %g s: %s", self.every, exc)
            self._failing = True
            return None
        if self._failing:
            log.info("central rollups: passes work again")
        self._failing = False
        if res is not None:
            self.last = res
            if res.claimed:
                log.info(
                    "central rollups: %d late hour marks, %d hours and %d days rebuilt in %.2f s",
                    res.claimed,
                    res.hours,
                    res.days,
                    res.seconds,
                )
        return res

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.run_once()
            except Exception as exc:
                if not self._failing:
                    log.error("central rollups: %s", exc)
                self._failing = True

    def status(self) -> dict[str, Any]:
        r = self.last
        return {"through": r.through, "seconds": r.seconds} if r else {"through": None, "seconds": None}
