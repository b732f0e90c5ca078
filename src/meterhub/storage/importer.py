"""CSV backfill: ``timestamp,circuit,quantity,phase,value`` rows into a :class:`Storage`.

Each row is checked on its own; a bad row is reported with its line number and skipped, every good
row is stored. Rows are written in chunks, one flush (transaction) per chunk, so a file of any size
imports in bounded memory, and re-importing the same file changes nothing (rows are keyed by
(series, timestamp)).

Columns (a header line naming them is required; order is free, an optional ``quality`` column takes
``good``, ``estimated``, ``flagged`` or ``invalid``):

``timestamp``  ISO 8601, e.g. ``2026-03-29T01:15:00+01:00`` or ``…Z``; without an offset it is read in
               the import's time zone (UTC unless given), and a local time that a DST change makes
               ambiguous or skips is rejected.
``circuit``    circuit id; circuits the storage has not seen are created.
``quantity``   catalogue id (``meterhub.model.quantities``).
``phase``      ``L1``, ``L2``, ``L3``, ``N`` or ``total``, as the quantity allows; empty for quantities
               that only have a system value (means ``total``).
``value``      a finite number in the catalogue unit of the quantity.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from meterhub.model.quantities import CATALOGUE, UnknownQuantityError
from meterhub.model.readings import Quality, Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage.base import Storage

__all__ = ["ImportResult", "RowError", "import_csv", "parse_rows", "REQUIRED_COLUMNS"]

REQUIRED_COLUMNS = ("timestamp", "circuit", "quantity", "phase", "value")
_QUALITY = {q.name.lower(): q for q in Quality}
_CIRCUIT_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_.-")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (missing header or columns)."""


@dataclass(frozen=True, slots=True)
class RowError:
    """A skipped row: its 1-based line number in the file and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportResult:
    """What an import did."""

    rows: int = 0  # data rows read
    imported: int = 0  # rows stored
    errors: list[RowError] = field(default_factory=list)
    new_circuits: set[str] = field(default_factory=set)
    series: set[SeriesKey] = field(default_factory=set)
    first_ts: float | None = None  # [s]
    last_ts: float | None = None  # [s]


def _timestamp(text: str, tz: ZoneInfo | None) -> float:
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"timestamp {text!r} is not ISO 8601 (e.g. 2026-03-29T01:15:00Z)") from None
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
    return dt.timestamp()


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


def parse_rows(
    lines: Iterator[str], *, timezone: str | None = None, first_line: int = 1
) -> Iterator[Reading | RowError]:
    """Parse CSV text lines (header first) into readings, or a :class:`RowError` per bad row.

    Raises :class:`ImportFileError` when the header lacks a required column.
    """
    tz = ZoneInfo(timezone) if timezone and timezone != "UTC" else None
    reader = csv.reader(lines)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ImportFileError(
            "the file is empty; expected a header line: " + ",".join(REQUIRED_COLUMNS)
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ImportFileError(
            f"line {first_line}: header lacks column(s) {', '.join(missing)}; "
            f"expected {','.join(REQUIRED_COLUMNS)}[,quality]"
        )
    col = {name: header.index(name) for name in (*REQUIRED_COLUMNS, "quality") if name in header}
    width = max(col.values()) + 1
    for row in reader:
        line = first_line + reader.line_num - 1
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < width:
            yield RowError(line, f"has {len(row)} column(s), expected {len(header)}")
            continue
        try:
            ts = _timestamp(row[col["timestamp"]], tz)
            circuit = row[col["circuit"]].strip()
            if not circuit or not set(circuit) <= _CIRCUIT_CHARS:
                raise ValueError(f"circuit {circuit!r} is not an id (lower-case letters, digits, _ . -)")
            quantity = row[col["quantity"]].strip()
            if quantity not in CATALOGUE:
                raise ValueError(str(UnknownQuantityError(quantity)))
            phase = _phase(row[col["phase"]], quantity)
            text = row[col["value"]].strip()
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"value {text!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"value {text!r} is not finite")
            quality = Quality.GOOD
            if "quality" in col and row[col["quality"]].strip():
                qtext = row[col["quality"]].strip().lower()
                if qtext not in _QUALITY:
                    raise ValueError(f"quality {qtext!r} is not one of {', '.join(_QUALITY)}")
                quality = _QUALITY[qtext]
        except ValueError as exc:
            yield RowError(line, str(exc))
            continue
        yield Reading(ts, circuit, quantity, phase, value, quality)


def import_csv(
    path: Path,
    storage: Storage,
    *,
    timezone: str | None = None,
    chunk: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import a CSV file into ``storage``; bad rows are collected in the result, not raised.

    path : the CSV file (UTF-8, optional BOM).
    timezone : IANA zone for timestamps without an offset (default UTC).
    chunk : rows per flush (transaction).
    progress : called with the number of bytes read so far, for a progress bar.
    """
    result = ImportResult()
    known = {k.circuit for k in storage.series()}
    batch: list[Reading] = []
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")

        def lines() -> Iterator[str]:
            for n, line in enumerate(text, 1):
                if progress is not None and n % 4096 == 0:
                    progress(raw.tell())
                yield line

        for item in parse_rows(lines(), timezone=timezone):
            result.rows += 1
            if isinstance(item, RowError):
                result.errors.append(item)
                continue
            batch.append(item)
            if item.circuit not in known:
                known.add(item.circuit)
                result.new_circuits.add(item.circuit)
            result.series.add(item.key)
            result.first_ts = item.ts if result.first_ts is None else min(result.first_ts, item.ts)
            result.last_ts = item.ts if result.last_ts is None else max(result.last_ts, item.ts)
            if len(batch) >= chunk:
                storage.write(batch)
                storage.flush()
                result.imported += len(batch)
                batch = []
        if batch:
            storage.write(batch)
            storage.flush()
            result.imported += len(batch)
        if progress is not None:
            progress(raw.tell())
    return result
