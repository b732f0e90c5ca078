"""CSV backfill: ``timestamp,circuit,quantity,phase,value`` rows into a :class:`Storage`.

Each row is checked on its own; a bad row is refused with its line number and the reason, every good
row is stored. Rows are committed in chunks, one flush (transaction) per chunk, so a file of any
size imports in bounded memory, and re-importing the same file changes nothing (rows are keyed by
(series, timestamp)). :class:`ImportResult` counts only what was committed: when the storage fails
mid-way the import stops there, and the result says at which line and that the rows from the
uncommitted chunk on were not imported.

Columns (a header line naming them is required; order is free, an optional ``quality`` column takes
``good``, ``estimated``, ``flagged`` or ``invalid``):

``timestamp``  ISO 8601, e.g. ``2026-03-29T01:15:00+01:00`` or ``…Z``; without an offset it is read in
               the import's time zone (UTC unless given), and a local time that a DST change makes
               ambiguous or skips is refused. Only 1970-01-01 to 2999-12-31 can be stored.
``circuit``    circuit id; circuits the storage has not seen are created.
``quantity``   catalogue id (``meterhub.model.quantities``).
``phase``      ``L1``, ``L2``, ``L3``, ``N`` or ``total``, as the quantity allows; empty for quantities
               that only have a system value (means ``total``).
``value``      a finite number in the catalogue unit of the quantity, |value| ≤ 1e12.

Refused as well: a line that is not UTF-8 or not CSV, a line longer than 64 KiB, a row repeating the
series and time of an earlier row, and for cumulative registers (energy, pulse counts) an outlier: a
value below the newest one before it (in the file, or stored before it) or rising faster than
``max_rate`` (default 1e8 per hour: 100 MW for an energy register in Wh) after which the series goes
on from its old level. A new level that holds for :data:`CONFIRM_ROWS` rows is a reset, counter wrap
or meter replacement and is imported (the energy reports account for it, with ``energy.registers``
and ``energy.meter_changes``); one the file ends before confirming is refused. The rows kept to check
repeats and registers take memory in proportion to the rows imported (about 100 B a row).
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import math
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

from meterhub.errors import InputError
from meterhub.model.quantities import CATALOGUE, Kind, UnknownQuantityError
from meterhub.model.readings import Quality, Reading, SeriesKey, iso_utc
from meterhub.model.topology import Phase
from meterhub.storage.base import Storage, StorageError

__all__ = [
    "CONFIRM_ROWS",
    "MAX_ABS_VALUE",
    "MAX_LINE_BYTES",
    "MAX_RATE",
    "REQUIRED_COLUMNS",
    "ImportFileError",
    "ImportResult",
    "RowError",
    "import_csv",
    "parse_rows",
]

REQUIRED_COLUMNS = ("timestamp", "circuit", "quantity", "phase", "value")
#: Rows in a row at a new level that confirm a register reset, wrap or replacement.
CONFIRM_ROWS = 3
#: Longest line read [B]; a longer one is refused (and skipped without reading it into memory).
MAX_LINE_BYTES = 64 * 1024
#: Largest magnitude of a stored value [unit of the quantity]; beyond it a value is implausible
#: (and sums of a few such values would overflow the rollups).
MAX_ABS_VALUE = 1e12
#: Fastest plausible rise of a cumulative register [unit per hour]: 100 MW for energy in Wh.
MAX_RATE = 1e8
#: Storable timestamps [s]: 1970-01-01 to 2999-12-31 (UTC).
EARLIEST, LATEST = 0.0, 32_503_680_000.0
_BOM = b"\xef\xbb\xbf"
_QUALITY = {q.name.lower(): q for q in Quality}
_CIRCUIT_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_.-")


class ImportFileError(InputError):
    """The file as a whole cannot be imported (missing header or columns)."""


@dataclass(frozen=True, slots=True)
class RowError:
    """A refused row (or the place an import stopped): its 1-based line number in the file and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportResult:
    """What an import did; every count is of rows committed to the storage."""

    rows: int = 0  # data rows read
    imported: int = 0  # rows stored (committed)
    errors: list[RowError] = field(default_factory=list)  # refused rows
    new_circuits: set[str] = field(default_factory=set)
    series: set[SeriesKey] = field(default_factory=set)
    first_ts: float | None = None  # [s]
    last_ts: float | None = None  # [s]
    stopped: RowError | None = None  # where and why the import stopped before the end of the file

    @property
    def exit_code(self) -> int:
        """0: every row imported; 1: some imported, some refused or not reached; 2: nothing imported."""
        if self.imported == 0:
            return 2
        return 1 if self.errors or self.stopped is not None else 0

    def summary(self) -> str:
        """One line for a person: "imported N of R rows … into S series …, refused M; stopped at line L: …"."""
        text = f"imported {self.imported} of {self.rows} rows read into {len(self.series)} series"
        if self.first_ts is not None and self.last_ts is not None:
            text += f" from {iso_utc(self.first_ts)} to {iso_utc(self.last_ts)}"
        if self.errors:
            text += f", refused {len(self.errors)}"
        if self.stopped is not None:
            text += f"; stopped at {self.stopped}"
        return text


def _timestamp(text: str, tz: ZoneInfo | None) -> float:
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"timestamp {_short(text)!r} is not ISO 8601 (e.g. 2026-03-29T01:15:00Z)") from None
    if dt.tzinfo is None:
        if tz is None:
            dt = dt.replace(tzinfo=UTC)
        else:
            # PEP 495: a local time is valid and unambiguous iff both folds give the same UTC offset
            # and it survives a round trip through UTC.
            a, b = dt.replace(tzinfo=tz, fold=0), dt.replace(tzinfo=tz, fold=1)
            if a.utcoffset() != b.utcoffset():
                back = a.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
                what = "does not exist" if back != dt else "is ambiguous"
                raise ValueError(f"local time {text!r} {what} in {tz.key} (DST change); add a UTC offset")
            dt = a
    try:
        ts = dt.timestamp()
    except (OverflowError, OSError, ValueError):
        ts = math.nan
    if not EARLIEST <= ts < LATEST:
        raise ValueError(f"timestamp {text.strip()!r} is outside 1970-01-01 to 2999-12-31 (cannot be stored)")
    return ts


def _phase(text: str, quantity: str) -> Phase:
    allowed = CATALOGUE[quantity].phases
    t = text.strip()
    if t in ("", "-"):
        if allowed == (Phase.TOTAL,):
            return Phase.TOTAL
        raise ValueError(f"phase is empty; {quantity} needs one of {', '.join(p.value for p in allowed)}")
    try:
        phase = Phase(t if t in ("L1", "L2", "L3", "N") else t.lower())
    except ValueError:
        raise ValueError(f"phase {t!r} is not one of L1, L2, L3, N, total") from None
    if phase not in allowed:
        raise ValueError(
            f"{quantity} has no phase {phase.value}; use one of {', '.join(p.value for p in allowed)}"
        )
    return phase


class _Registers:
    """The cumulative series of one import: refuses outliers, accepts confirmed resets.

    A row that falls below the series' newest accepted value, or rises from it faster than
    ``max_rate``, is held. If the next row goes on from the old level, the held rows were outliers
    and are refused; if :data:`CONFIRM_ROWS` rows in a row go on from the new level, the change is a
    confirmed reset, counter wrap or meter replacement (the energy reports handle those) and they
    are accepted. A late row (older than the newest accepted one) must lie between its neighbours.
    """

    def __init__(self, storage: Storage | None, max_rate: float) -> None:
        self.storage = storage
        self.max_rate = max_rate
        # series → (sorted ts [s], values, line of each; line 0 = stored before the import)
        self.seen: dict[SeriesKey, tuple[list[float], list[float], list[int]]] = {}
        self.held: dict[SeriesKey, list[tuple[int, Reading, str]]] = {}  # (line, row, why held)

    def feed(self, r: Reading, line: int) -> list[tuple[int, Reading | RowError]]:
        """What to yield now for row ``r`` on ``line``: readings accepted, rows refused (possibly
        earlier held ones), or nothing while ``r`` is held."""
        key = r.key
        track = self.seen.get(key)
        if track is None:
            track = self.seen[key] = ([], [], [])
            before = self._stored(key, r.ts)
            if before is not None:
                track[0].append(before[0])
                track[1].append(before[1])
                track[2].append(0)
        ts, vals, lines = track
        unit = CATALOGUE[r.quantity].unit
        held = self.held.get(key)
        if ts and r.ts < ts[-1]:
            return [self._late(r, line, track, unit)]
        why = self._step(ts[-1], vals[-1], r.ts, r.value, unit, lines[-1], "after") if ts else ""
        if not held:
            if not why:
                return [self._accept(r, line)]
            self.held[key] = [(line, r, why)]
            return []
        last_line, last, _ = held[-1]
        if not why:  # the series goes on from the old level: the held rows were outliers
            del self.held[key]
            refused: list[tuple[int, Reading | RowError]] = [
                (n, RowError(n, f"{w}, and line {line} goes on from before it (an outlier, not a reset)"))
                for n, _r, w in held
            ]
            return [*refused, self._accept(r, line)]
        if r.ts > last.ts and not self._step(last.ts, last.value, r.ts, r.value, unit, last_line, "after"):
            held.append((line, r, why))
            if len(held) < CONFIRM_ROWS:
                return []
            del self.held[key]  # the new level held for CONFIRM_ROWS rows: a reset or replacement
            return [self._accept(h, n) for n, h, _w in held]
        return [(line, RowError(line, why))]

    def finish(self) -> list[tuple[int, Reading | RowError]]:
        """Rows still held at the end of the file: refused, their change not confirmed."""
        out: list[tuple[int, Reading | RowError]] = []
        for held in self.held.values():
            out += [
                (
                    n,
                    RowError(
                        n,
                        f"{w}, and the file ends before {CONFIRM_ROWS} rows confirm a reset or replacement",
                    ),
                )
                for n, _r, w in held
            ]
        self.held.clear()
        return sorted(out, key=operator.itemgetter(0))

    def _late(
        self, r: Reading, line: int, track: tuple[list[float], list[float], list[int]], unit: str
    ) -> tuple[int, Reading | RowError]:
        ts, vals, lines = track
        at = bisect.bisect_left(ts, r.ts)
        if at > 0:
            why = self._step(ts[at - 1], vals[at - 1], r.ts, r.value, unit, lines[at - 1], "after")
            if why:
                return line, RowError(line, why)
        if at < len(ts) and ts[at] > r.ts:
            why = self._step(r.ts, r.value, ts[at], vals[at], unit, lines[at], "before")
            if why:
                return line, RowError(line, why)
        return self._accept(r, line)

    def _accept(self, r: Reading, line: int) -> tuple[int, Reading | RowError]:
        ts, vals, lines = self.seen[r.key]
        at = bisect.bisect_left(ts, r.ts)
        ts.insert(at, r.ts)
        vals.insert(at, r.value)
        lines.insert(at, line)
        return line, r

    def _stored(self, key: SeriesKey, ts: float) -> tuple[float, float] | None:
        if self.storage is None:
            return None
        try:
            found = self.storage.value_at(key, ts)
        except NotImplementedError:
            return None
        if found is None or found[0] >= ts:
            return None
        return found

    def _step(self, t0: float, v0: float, t1: float, v1: float, unit: str, line: int, where: str) -> str:
        """Why the step from (t0 [s], v0) to (t1, v1) is implausible, or "". ``where``: the row is
        the later point ("after" its neighbour on ``line``) or the earlier one ("before")."""
        other = f"line {line}" if line else "the value stored before the import"
        of = f"of line {line}" if line else "stored before the import"
        if v1 < v0:
            if where == "after":
                return f"register value {v1:.10g} {unit} is below the earlier {v0:.10g} {unit} {of}"
            return f"register value {v0:.10g} {unit} is above the later {v1:.10g} {unit} {of}"
        rate = (v1 - v0) / ((t1 - t0) / 3600.0)
        if rate > self.max_rate:
            return (
                f"register rises {v1 - v0:.6g} {unit} in {t1 - t0:g} s {where} {other} "
                f"({rate:.3g} {unit}/h; at most {self.max_rate:.3g} {unit}/h is plausible)"
            )
        return ""


def _lines(raw: BinaryIO, bad: list[RowError]) -> Iterator[str]:
    """Text lines of a binary file; a line that is too long or not UTF-8 is recorded in ``bad`` and
    replaced by an empty line (so line numbers stay right)."""
    n = 0
    while True:
        b = raw.readline(MAX_LINE_BYTES + 1)
        if not b:
            return
        n += 1
        if len(b) > MAX_LINE_BYTES and not b.endswith(b"\n"):
            size = len(b)
            while b and not b.endswith(b"\n"):  # skip the rest of the line, a block at a time
                b = raw.readline(MAX_LINE_BYTES + 1)
                size += len(b)
            bad.append(
                RowError(n, f"line is {size} bytes long; at most {MAX_LINE_BYTES // 1024} KiB is read")
            )
            yield "\n"
            continue
        if n == 1 and b.startswith(_BOM):
            b = b[len(_BOM) :]
        try:
            yield b.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.append(RowError(n, f"not UTF-8 text: byte 0x{b[exc.start]:02x} at column {exc.start + 1}"))
            yield "\n"


def _parse(
    lines: Iterable[str],
    *,
    timezone: str | None = None,
    bad: list[RowError] | None = None,
    max_rate: float = MAX_RATE,
    storage: Storage | None = None,
) -> Iterator[tuple[int, Reading | RowError]]:
    """(line, reading or refusal) per data row, in file order; see :func:`parse_rows`.

    bad : refusals found while reading lines (:func:`_lines`), yielded in line order.
    """
    pending = bad if bad is not None else []
    tz = ZoneInfo(timezone) if timezone and timezone != "UTC" else None
    # One physical line is one row: a quote left open refuses its line instead of swallowing the
    # lines after it into one field.
    numbered = enumerate(lines, 1)
    header: list[str] | None = None
    for _n, text in numbered:
        try:
            header = [h.strip().lower() for h in _csv_row(text)]
        except csv.Error as exc:
            raise ImportFileError(f"line 1: the header is not CSV ({exc})") from None
        break
    if header is None:
        raise ImportFileError("the file is empty; expected a header line: " + ",".join(REQUIRED_COLUMNS))
    if pending:
        raise ImportFileError(f"{pending[0]}; expected a header line: {','.join(REQUIRED_COLUMNS)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ImportFileError(
            f"line 1: header lacks column(s) {', '.join(missing)}; "
            f"expected {','.join(REQUIRED_COLUMNS)}[,quality]"
        )
    col = {name: header.index(name) for name in (*REQUIRED_COLUMNS, "quality") if name in header}
    width = max(col.values()) + 1
    registers = _Registers(storage, max_rate)
    # series → stored time [ms] → line, to refuse repeats (storage keys rows on whole milliseconds)
    seen: dict[SeriesKey, dict[int, int]] = {}
    for line, text in numbered:
        while pending:
            e = pending.pop(0)
            yield e.line, e
        try:
            row = _csv_row(text)
        except csv.Error as exc:
            yield line, RowError(line, f"not CSV: {exc}")
            continue
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < width:
            yield line, RowError(line, f"has {len(row)} column(s), expected {len(header)}")
            continue
        try:
            reading = _reading(row, col, tz)
            earlier = seen.setdefault(reading.key, {}).get(round(reading.ts * 1000))
            if earlier is not None:
                raise ValueError(f"repeats the series and time of line {earlier}")
        except ValueError as exc:
            yield line, RowError(line, str(exc))
            continue
        if CATALOGUE[reading.quantity].kind is Kind.CUMULATIVE and reading.quality < Quality.INVALID:
            out = registers.feed(reading, line)
        else:
            out = [(line, reading)]
        for n, item in out:
            if isinstance(item, Reading):
                seen[item.key][round(item.ts * 1000)] = n
            yield n, item
    while pending:
        e = pending.pop(0)
        yield e.line, e
    yield from registers.finish()


def _csv_row(text: str) -> list[str]:
    """The fields of one CSV line (strict: an unclosed quote is a :class:`csv.Error`)."""
    return next(csv.reader((text,), strict=True), [])


def _reading(row: list[str], col: dict[str, int], tz: ZoneInfo | None) -> Reading:
    """One data row as a reading; ValueError says what is wrong with it."""
    ts = _timestamp(row[col["timestamp"]], tz)
    circuit = row[col["circuit"]].strip()
    if not circuit or not set(circuit) <= _CIRCUIT_CHARS:
        raise ValueError(f"circuit {_short(circuit)!r} is not an id (lower-case letters, digits, _ . -)")
    quantity = row[col["quantity"]].strip()
    if quantity not in CATALOGUE:
        raise ValueError(str(UnknownQuantityError(_short(quantity))))
    phase = _phase(row[col["phase"]], quantity)
    text = row[col["value"]].strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"value {_short(text)!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"value {_short(text)!r} is not finite")
    if abs(value) > MAX_ABS_VALUE:
        raise ValueError(f"value {value:.6g} is implausible (|value| > {MAX_ABS_VALUE:.0e})")
    quality = Quality.GOOD
    if "quality" in col and row[col["quality"]].strip():
        qtext = row[col["quality"]].strip().lower()
        if qtext not in _QUALITY:
            raise ValueError(f"quality {_short(qtext)!r} is not one of {', '.join(_QUALITY)}")
        quality = _QUALITY[qtext]
    return Reading(ts, circuit, quantity, phase, value, quality)


def _short(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters for a message."""
    return text if len(text) <= limit else text[:limit] + "…"


def parse_rows(
    lines: Iterable[str], *, timezone: str | None = None, max_rate: float = MAX_RATE
) -> Iterator[Reading | RowError]:
    """Parse CSV text lines (header first) into readings, or a :class:`RowError` per refused row.

    Raises :class:`ImportFileError` when the header lacks a required column.
    """
    for _line, item in _parse(lines, timezone=timezone, max_rate=max_rate):
        yield item


def import_csv(
    path: Path,
    storage: Storage,
    *,
    timezone: str | None = None,
    chunk: int = 50_000,
    max_rate: float = MAX_RATE,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import a CSV file into ``storage``; refused rows are collected in the result, not raised.

    path : the CSV file (UTF-8, optional BOM).
    timezone : IANA zone for timestamps without an offset (default UTC).
    chunk : rows per flush (transaction).
    max_rate : fastest plausible rise of a cumulative register [unit/h].
    progress : called with the number of bytes read so far, for a progress bar.

    Raises :class:`ImportFileError` for a file without a usable header, OSError when it cannot be
    read; a storage failure stops the import (``result.stopped``) with what was committed counted.
    """
    result = ImportResult()
    known = {k.circuit for k in storage.series()}
    batch: list[Reading] = []
    first_line = 0  # line of the first row of ``batch``

    def commit() -> bool:
        nonlocal batch
        if not batch:
            return True
        storage.write(batch)
        try:
            storage.flush()
        except StorageError as exc:
            storage.discard()
            result.stopped = RowError(
                first_line, f"the storage failed ({exc}); this row and those after it were not imported"
            )
            batch = []
            return False
        result.imported += len(batch)
        for r in batch:
            if r.circuit not in known:
                known.add(r.circuit)
                result.new_circuits.add(r.circuit)
            result.series.add(r.key)
        lo = min(r.ts for r in batch)
        hi = max(r.ts for r in batch)
        result.first_ts = lo if result.first_ts is None else min(result.first_ts, lo)
        result.last_ts = hi if result.last_ts is None else max(result.last_ts, hi)
        batch = []
        return True

    bad: list[RowError] = []
    last_line = 1
    with path.open("rb") as raw:
        rows = _parse(_lines(raw, bad), timezone=timezone, bad=bad, max_rate=max_rate, storage=storage)
        try:
            for n, (line, item) in enumerate(rows, 1):
                if progress is not None and n % 4096 == 0:
                    progress(raw.tell())
                result.rows += 1
                last_line = max(last_line, line)
                if isinstance(item, RowError):
                    result.errors.append(item)
                    continue
                first_line = line if not batch else min(first_line, line)  # held rows come later
                batch.append(item)
                if len(batch) >= chunk and not commit():
                    break
            else:
                commit()
        except (OSError, StorageError) as exc:
            # Reading the file (or a stored value to check against) failed part-way: what was
            # committed stays and is counted; the rest is not imported.
            storage.discard()
            at = first_line if batch else last_line + 1
            result.stopped = RowError(at, f"{exc}; this row and those after it were not imported")
        if progress is not None:
            with contextlib.suppress(OSError):
                progress(raw.tell())
    result.errors.sort(key=lambda e: e.line)
    return result
