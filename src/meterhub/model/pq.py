"""A power-quality event: a voltage dip, swell or interruption, or a frequency deviation.

It lives in the model layer because two layers that must not know each other hand it on: the sources
that detect events (the waveform engine, :mod:`meterhub.metering.events`, through the waveform driver;
later meters with event registers) and the power-quality log in the storage backend
(:mod:`meterhub.storage.events`), which the alarm engine and the API read.

Kinds and their extreme value follow IEC 61000-4-30 §5.4 (voltage events) and EN 50160 §4.2.1
(frequency): a dip's and an interruption's extreme is the residual voltage (the lowest Urms(½)), a
swell's the highest Urms(½), a frequency deviation's the frequency furthest from nominal.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["PqEvent", "PqKind", "PqSource"]


class PqKind(enum.StrEnum):
    """What happened (IEC 61000-4-30 §5.4.2, §5.4.3, §5.5; EN 50160 §4.2.1)."""

    DIP = "dip"
    SWELL = "swell"
    INTERRUPTION = "interruption"
    FREQUENCY = "frequency-deviation"  # frequency outside its band


class PqSource(enum.StrEnum):
    """Who detected it."""

    WAVEFORM = "waveform"  # meterhub's own engine on raw samples (metering.events.EventDetector)
    DEVICE = "device"  # a meter's own event register, read by its driver


@dataclass(frozen=True, slots=True)
class PqEvent:
    """One power-quality event, reported once it has ended.

    kind : see :class:`PqKind`.
    start : when it began [s since the epoch, UTC].
    duration : how long it lasted [s].
    extreme : residual voltage (dip, interruption) or highest voltage (swell) [V]; the frequency
        furthest from nominal (frequency deviation) [Hz].
    unit : the unit of ``extreme`` (``V`` or ``Hz``).
    device : the device whose inputs saw it. circuit : the circuit it is attributed to, if any.
    phase : ``L1``/``L2``/``L3`` where the extreme occurred; None when the device does not say.
    flagged : IEC 61000-4-30 §4.7: the event flags the values aggregated over its time (dips, swells
        and interruptions do, so the averages of that interval are marked rather than trusted).
    source : see :class:`PqSource`.
    threshold : the threshold that started it, in % of the declared voltage (dip 90 %, swell 110 %,
        interruption 5 %) or in Hz for frequency; None when unknown.
    """

    kind: PqKind
    start: float
    duration: float
    extreme: float
    unit: str
    device: str
    source: PqSource
    phase: str | None = None
    circuit: str | None = None
    flagged: bool = True
    threshold: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (enums as their values, times in seconds)."""
        return {
            "kind": self.kind.value,
            "start": self.start,
            "duration": self.duration,
            "extreme": self.extreme,
            "unit": self.unit,
            "device": self.device,
            "circuit": self.circuit,
            "phase": self.phase,
            "flagged": self.flagged,
            "source": self.source.value,
            "threshold": self.threshold,
        }
