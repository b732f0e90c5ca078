"""Readings: what every source yields and every sink consumes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from typing import NamedTuple

from meterhub.model.topology import Phase

__all__ = ["Quality", "Reading", "SeriesKey", "Spectrum", "good_readings", "iso_utc"]


class Quality(IntEnum):
    """Quality of a value (ordered: higher is worse)."""

    GOOD = 0
    ESTIMATED = 1  # filled from a cumulative counter across a gap, or interpolated
    FLAGGED = 2  # IEC 61000-4-30 flag: the window overlapped a dip, swell or interruption
    INVALID = 3  # out of range, decoding failed; kept for diagnosis, never aggregated


class SeriesKey(NamedTuple):
    """Identity of a stored series: (circuit or point id, quantity id, phase or None)."""

    circuit: str
    quantity: str
    phase: Phase | None

    def __str__(self) -> str:
        return f"{self.circuit}/{self.quantity}/{self.phase.value if self.phase else '-'}"

    @classmethod
    def parse(cls, text: str) -> SeriesKey:
        """Inverse of ``str()``: ``"main/voltage/L1"`` → SeriesKey."""
        circuit, quantity, phase = text.rsplit("/", 2)
        return cls(circuit, quantity, None if phase == "-" else Phase(phase))


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one series at one time.

    ts : time of the value, seconds since the Unix epoch, UTC. [s]
    circuit : circuit id (or the id of a device-level point such as a DIO input).
    quantity : catalogue id (``meterhub.model.quantities``).
    phase : phase of the series, or None for quantities without a phase dimension.
    value : in the catalogue unit of ``quantity``.
    quality : :class:`Quality`.
    """

    ts: float
    circuit: str
    quantity: str
    phase: Phase | None
    value: float
    quality: Quality = Quality.GOOD

    @property
    def key(self) -> SeriesKey:
        return SeriesKey(self.circuit, self.quantity, self.phase)


@dataclass(frozen=True, slots=True)
class Spectrum:
    """One harmonic spectrum of one series at one time: a value per harmonic order 0…50.

    Spectra are vectors, so they do not travel as :class:`Reading` batches (51 series per phase each
    second would swamp storage); sources that measure them hand them to the live cache only
    (:attr:`meterhub.drivers.base.SourceContext.publish_spectra`).

    ts : end of the interval the spectrum was aggregated over, seconds since the Unix epoch, UTC. [s]
    circuit : circuit id.
    quantity : catalogue id of kind ``spectrum`` (``harmonics_voltage``, ``harmonics_current_percent`` …).
    phase : phase of the series.
    values : ``values[h]`` is order h = 0…50 (0 = DC), in the catalogue unit of ``quantity``; NaN where
        the order was not measured.
    quality : :class:`Quality`.
    """

    ts: float
    circuit: str
    quantity: str
    phase: Phase
    values: tuple[float, ...]
    quality: Quality = Quality.GOOD

    @property
    def key(self) -> SeriesKey:
        return SeriesKey(self.circuit, self.quantity, self.phase)

    @property
    def orders(self) -> range:
        """The harmonic order of each value: 0, 1, … len(values) − 1. [-]"""
        return range(len(self.values))


_new = object.__new__
_set_ts, _set_circuit, _set_quantity, _set_phase, _set_value, _set_quality = (
    Reading.__dict__[
        name
    ].__set__  # the slots' own setters: what the frozen __init__ does, minus its overhead
    for name in ("ts", "circuit", "quantity", "phase", "value", "quality")
)


def good_readings(
    ts: float, circuit: str, values: Iterable[tuple[tuple[str, Phase | None], float]]
) -> list[Reading]:
    """``[Reading(ts, circuit, q, ph, v) for (q, ph), v in values]``, built several times faster (hot
    paths build tens of thousands of readings per second); the readings are identical."""
    out: list[Reading] = []
    good = Quality.GOOD
    append = out.append
    for (q, ph), v in values:
        r = _new(Reading)
        _set_ts(r, ts)
        _set_circuit(r, circuit)
        _set_quantity(r, q)
        _set_phase(r, ph)
        _set_value(r, v)
        _set_quality(r, good)
        append(r)
    return out


def iso_utc(ts: float, timespec: str = "milliseconds") -> str:
    """ISO 8601 UTC text, e.g. ``2026-11-22T04:10:00.123Z`` (``timespec="seconds"``: ``…04:10:00Z``)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
