"""Effective times of dated settings (tariffs, CT ratios): when a value took effect.

Written as a date ``"2026-07-01"`` (local midnight of the site) or a date-time with a UTC offset
``"2026-07-01T12:00:00+02:00"``, and kept as that text, normalised, in the site file.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from meterhub.errors import ConfigurationError

__all__ = ["HistoryError", "Start", "effective_text", "effective_time", "ordered_starts"]

#: (location of the field, name for messages, effective time text or None) of one dated period.
Start = tuple[tuple[str | int, ...], str, str | None]

#: Years an effective date may name (a tariff or price change outside these is a typo).
_YEARS = (1970, 2999)


def effective_text(value: Any, *, dates: bool = True) -> Any:
    """An effective time as text: a date ``"2026-07-01"`` (local midnight of the site) or a date-time with a
    UTC offset ``"2026-07-01T12:00:00+02:00"`` (``Z`` for UTC). A date-time without an offset is refused:
    its instant would depend on a time zone the value does not say. ``dates=False`` refuses a date too
    (where the site's time zone is not at hand to place it)."""
    if value is None:
        return None
    example = 'e.g. "2026-07-01" (local midnight) or "2026-07-01T12:00:00+02:00"'
    if not isinstance(value, str) or len(value) > 64:
        shown = repr(value) if not isinstance(value, str) else repr(value[:64] + "…")
        raise ValueError(f"effective time {shown} is not a date or a date-time; write {example}")
    text = value.strip()
    bad = f"effective time {value!r} is not a date or a date-time; write {example}"
    if len(text) == 10:
        if not dates:
            raise ValueError(
                f'effective time {value!r} is a date; give the time with a UTC offset, e.g. "2026-07-01T12:00:00+02:00"'
            )
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(bad) from None
        year, out = day.year, day.isoformat()
    else:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(bad) from None
        if when.tzinfo is None:
            raise ValueError(
                f"effective time {value!r} has no UTC offset; add one (+01:00, Z) or give a date, {example}"
            )
        year, out = when.year, when.isoformat()
    if not _YEARS[0] <= year <= _YEARS[1]:
        raise ValueError(f"effective time {value!r} is outside the years {_YEARS[0]}–{_YEARS[1]}")
    return out


def effective_time(text: str, tz: str) -> float:
    """The instant of an effective time [s, UTC]: a date is local midnight in ``tz`` (IANA name)."""
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)).timestamp()
    return datetime.fromisoformat(text).timestamp()


class HistoryError(ConfigurationError, ValueError):
    """Dated periods out of order or without a start; ``loc`` is the offending field in its section."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def ordered_starts(
    periods: Sequence[Start], tz: str | None, current: str, history: str
) -> list[float | None]:
    """The starts [s, UTC] of dated periods, oldest first, the current one last (None: since ever).

    Only the oldest period may have no start; the starts must increase strictly. ``tz`` (IANA name)
    places dates at local midnight; with None only the missing starts are checked. ``current`` and
    ``history`` name the current period's start field and the history list in messages. Raises
    :class:`HistoryError` naming the entry.
    """
    out: list[float | None] = []
    last: tuple[float, str, str] | None = None
    for i, (loc, name, start) in enumerate(periods):
        if start is None:
            if i == len(periods) - 1 and i > 0:
                raise HistoryError(
                    loc, f"{current} is missing: with a {history}, say when the present one took effect"
                )
            if i > 0:
                raise HistoryError(
                    loc, f"{name} has no start; only the oldest entry may apply since ever (from: null)"
                )
            out.append(None)
            continue
        ts = effective_time(start, tz) if tz is not None else None
        if ts is not None and last is not None and ts <= last[0]:
            raise HistoryError(
                loc,
                f"{name} starts at {start}, not after {last[1]} ({last[2]}); periods must follow each other, oldest first",
            )
        if ts is not None:
            last = (ts, name, start)
        out.append(ts)
    return out
