"""The storage interface the runtime and the API use (SQLite by default, PostgreSQL for scale-out)."""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from meterhub import errors
from meterhub.model.readings import Reading, SeriesKey
from meterhub.storage.rollup import RESOLUTIONS, check_span_edges

__all__ = [
    "HistoryColumns",
    "HistoryPoint",
    "Resolution",
    "Storage",
    "StorageError",
    "StorageHealth",
    "StorageState",
    "StorageUnavailableError",
]

#: Resolutions a history query may ask for; "raw" returns stored values unaggregated.
Resolution = str  # "raw" | "1min" | "15min" | "1h" | "1d"


class StorageError(errors.StorageError):
    """A storage backend failed (connection lost, disk full, schema mismatch)."""


class StorageUnavailableError(StorageError):
    """The database cannot be reached now (refused, connection lost); a later attempt may work."""


class StorageState(enum.StrEnum):
    """Where flushed readings go now."""

    CONNECTED = "connected"  # into the database (a spooled backlog may still be being delivered)
    SPOOLING = "spooling"  # the database is away: into the on-disk spool, delivered when it is back
    DOWN = "down"  # neither the database nor the spool takes them: held in memory, lost on exit


@dataclass(frozen=True, slots=True)
class StorageHealth:
    """What :meth:`Storage.health` reports (the web UI and ``/metrics`` show it).

    state : see :class:`StorageState`.
    backend : ``sqlite`` or ``postgres``.
    buffered : readings in memory, not yet flushed.
    spooled_rows : readings in the on-disk spool waiting for the database.
    spool_bytes : size of the packed spooled readings [B].
    oldest_spooled : time of the oldest spooled reading [s since epoch, UTC], or None.
    dropped_rows : readings lost since start (spool or memory buffer full) — 0 unless an outage
        outlasted the spool.
    last_error : the last failure (connection refused, disk full …), or None since start.
    last_error_at : when it happened [s since epoch, UTC].
    """

    state: StorageState
    backend: str
    buffered: int = 0
    spooled_rows: int = 0
    spool_bytes: int = 0
    oldest_spooled: float | None = None
    dropped_rows: int = 0
    last_error: str | None = None
    last_error_at: float | None = None


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One point of a history answer; for raw data min = max = mean = last and count = 1."""

    ts: float  # start of the bucket (or the raw timestamp) [s since epoch, UTC]
    mean: float
    min: float
    max: float
    last: float
    count: int
    quality: int = 0  # worst Quality of the values aggregated (meterhub.model.readings.Quality)
    delta: float | None = None  # cumulative quantities: increase within the bucket, never negative


@dataclass(frozen=True, slots=True)
class HistoryColumns:
    """A history answer as columns, one entry per point, for bulk readers (reports) that would
    otherwise build a :class:`HistoryPoint` per point (a year of minutes is 525 600 of them).

    ts : raw timestamp or bucket start [s]. last : the (last) value [unit]. last_ts : when ``last``
    was read [s] (= ts for raw values). count : values aggregated (1 for raw). quality : worst
    :class:`~meterhub.model.readings.Quality` of the values.
    """

    ts: npt.NDArray[np.float64]
    last: npt.NDArray[np.float64]
    last_ts: npt.NDArray[np.float64]
    count: npt.NDArray[np.int64]
    quality: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_points(cls, points: Sequence[HistoryPoint], width: float = 0.0) -> HistoryColumns:
        """Columns of points; without a stored read time, ``last`` is placed where the last of
        ``count`` evenly spaced values in a bucket of ``width`` [s] falls (0 for raw values)."""
        ts = np.array([p.ts for p in points], dtype=np.float64)
        count = np.array([p.count for p in points], dtype=np.int64)
        return cls(
            ts,
            np.array([p.last for p in points], dtype=np.float64),
            ts + width * (count - 1) / np.maximum(count, 1),
            count,
            np.array([p.quality for p in points], dtype=np.int64),
        )


class Storage(abc.ABC):
    """A time-series store keyed by (series, timestamp)."""

    @abc.abstractmethod
    def write(self, readings: Sequence[Reading]) -> None:
        """Buffer readings; they are durable after the next :meth:`flush`."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Write buffered readings in one transaction (and maintain rollups)."""

    @abc.abstractmethod
    def history(
        self, key: SeriesKey, start: float, end: float, resolution: Resolution = "raw"
    ) -> list[HistoryPoint]:
        """Points of one series with start ≤ ts < end [s], at the given resolution."""

    @abc.abstractmethod
    def series(self) -> list[SeriesKey]:
        """Every series stored."""

    @abc.abstractmethod
    def load_registers(self) -> dict[SeriesKey, float]:
        """Persisted cumulative registers (energy, pulses) as last flushed."""

    @abc.abstractmethod
    def save_registers(self, registers: dict[SeriesKey, float]) -> None:
        """Persist cumulative registers (part of the next flush's transaction where possible)."""

    @abc.abstractmethod
    def load_computed_registers(self) -> dict[SeriesKey, float]:
        """Registers the gateway's sources compute themselves (waveform energy, pulse totals), as last
        flushed — see :class:`meterhub.drivers.base.ComputesRegisters`."""

    @abc.abstractmethod
    def save_computed_registers(self, registers: dict[SeriesKey, float]) -> None:
        """Persist registers computed by sources in the next flush's transaction, next to (not mixed
        with) the energy registers of :meth:`save_registers`: the same series has both, the source's
        own counter and the guarded register made of it. They never go backwards either."""

    @abc.abstractmethod
    def apply_retention(self, now: float) -> int:
        """Delete raw values older than the configured retention; return how many were removed."""

    def history_columns(
        self, key: SeriesKey, start: float, end: float, resolution: Resolution = "raw"
    ) -> HistoryColumns:
        """:meth:`history` as columns (see :class:`HistoryColumns`); backends answer it without
        building a point object per value."""
        width = 0.0 if resolution == "raw" else float(RESOLUTIONS.get(resolution, 0))
        return HistoryColumns.from_points(self.history(key, start, end, resolution), width)

    def delta_sums(
        self, keys: Sequence[SeriesKey], edges: npt.ArrayLike, resolution: Resolution = "1h"
    ) -> dict[SeriesKey, npt.NDArray[np.float64]]:
        """The increase of cumulative series per span: Σ rollup ``delta`` of the ``resolution``
        buckets with ``edges[k]`` ≤ bucket start < ``edges[k + 1]``, for every k [unit of each
        quantity, e.g. Wh]. Energy per local day and tariff band is one call: the edges are the
        local midnights and band changes (a 23- or 25-hour day is simply a longer or shorter span).

        edges : increasing span boundaries [s, UTC], each the start of a ``resolution`` bucket
            ("1min", "15min" or "1h"; ValueError otherwise).
        Returns per key an array of ``len(edges) − 1`` sums, zeros for a series not stored.
        This generic version sums :meth:`history`; the SQL backends add up in the database.
        """
        e = check_span_edges(edges, resolution).astype(np.float64)
        out: dict[SeriesKey, npt.NDArray[np.float64]] = {}
        for key in keys:
            sums = np.zeros(max(len(e) - 1, 0))
            if len(e) > 1:
                points = self.history(key, float(e[0]), float(e[-1]), resolution)
                ts = np.array([p.ts for p in points], dtype=np.float64)
                delta = np.array([p.delta or 0.0 for p in points], dtype=np.float64)
                np.add.at(sums, np.searchsorted(e, ts, side="right") - 1, delta)
            out[key] = sums
        return out

    def value_at(self, key: SeriesKey, ts: float) -> tuple[float, float] | None:
        """The last valid value at or before ``ts`` [s] as (its timestamp [s], value), or None."""
        raise NotImplementedError

    @property
    def timezone(self) -> str:
        """IANA zone of the day rollups: the site's, as stored with the data."""
        return "UTC"

    def discard(self) -> int:
        """Drop readings and registers written but not yet flushed (an import that stops after a
        failed flush must not commit them later); return how many readings were dropped."""
        return 0

    @abc.abstractmethod
    def health(self) -> StorageHealth:
        """Where readings go now, what waits in the spool and the last error (never raises, never
        waits for the database)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release the backend."""
