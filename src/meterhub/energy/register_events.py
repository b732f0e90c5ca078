"""The register guard's vocabulary: what it decides per reading, what it reports per series.

:mod:`meterhub.energy.registers` applies the rules; these are the values it hands out (and the
pipeline and the UI read).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from meterhub.model.readings import Quality, SeriesKey

__all__ = ["CONFIRMED_EVENTS", "GuardEvent", "GuardResult", "MeterChange", "RegisterStatus", "amount"]

#: SI prefixes for :func:`amount`, largest first.
_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"))
#: Units that take an SI prefix (energy, power); other units are printed as they are.
_PREFIXED = frozenset({"W", "var", "VA", "Wh", "varh", "VAh"})


def amount(value: float, unit: str) -> str:
    """``value`` [unit] for people, three significant digits with an SI prefix where the unit takes
    one: ``amount(60_100.0, "Wh")`` → ``"60.1 kWh"``, ``amount(69_000.0, "W")`` → ``"69 kW"``."""
    if not math.isfinite(value):
        return f"{value!r} {unit}".strip()
    scaled, prefix = value, ""
    if unit in _PREFIXED:
        for factor, p in _PREFIXES:
            if abs(value) >= factor:
                scaled, prefix = value / factor, p
                break
    return f"{scaled:.3g} {prefix}{unit}".strip()


class GuardEvent(StrEnum):
    """What the guard decided for one reading."""

    FIRST = "first"  # first reading of a series: the baseline
    NORMAL = "normal"  # an increase within the envelope
    GAP = "gap"  # an increase across a silence longer than ``gap`` (estimated)
    HELD = "held"  # behind the register (stale frame, or the truth after an outlier): Δ = 0
    WRAP = "wrap"  # confirmed counter rollover
    RESET = "reset"  # confirmed reset to 0
    CHANGE = "change"  # announced meter change
    REBASE = "rebase"  # confirmed replacement by a meter that started elsewhere (estimated)
    RESTORED = "restored"  # first reading after a restart without the raw baseline
    # not accepted:
    DEFERRED = "deferred"  # above the envelope, waits for the next reading
    QUARANTINED = "quarantined"  # refused (outlier, or a candidate counter not yet confirmed)
    REFUSED = "refused"  # not a finite non-negative number
    STALE = "stale"  # not after the last reading of the series


#: Events of confirmed discontinuities (shown in the status).
CONFIRMED_EVENTS = frozenset({GuardEvent.WRAP, GuardEvent.RESET, GuardEvent.CHANGE, GuardEvent.REBASE})


@dataclass(frozen=True, slots=True)
class MeterChange:
    """An announced meter replacement or reset of one series.

    ts : when the change happened [s, UTC]; it applies to the first decrease after ``ts − 1 day``.
    old_final : last reading of the old counter [unit of the quantity].
    new_initial : first reading of the new counter [unit of the quantity].
    """

    ts: float
    old_final: float
    new_initial: float


@dataclass(frozen=True, slots=True)
class GuardResult:
    """Outcome of one reading.

    accepted : True when ``value`` is the continuous register at ``ts``; False when the reading was
        not integrated (``event`` says why; ``value`` is then the raw reading).
    value : continuous register [unit] (accepted) or the raw reading [unit].
    delta : what this update added to the register [unit], ≥ 0.
    event : :class:`GuardEvent`.
    quality : of the step into the first point this update accepted (``backfill[0]`` when there is a
        backfill, else ``value``); the steps between the points after it are exact. INVALID when
        nothing was accepted.
    ts : time of ``value`` [s]; a deferred reading confirmed later is reported at its own time.
    backfill : earlier points accepted by this update, (ts [s], register [unit]) in time order — the
        readings of a confirmed candidate or deferred step, which were quarantined when they came.
    """

    value: float
    delta: float
    event: GuardEvent
    quality: Quality
    ts: float
    accepted: bool = True
    backfill: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class RegisterStatus:
    """What the guard refused or confirmed for one series (for device status and the UI).

    quarantined : readings refused as outliers, never integrated [-]; first_quarantined /
        last_quarantined their times [s].
    held : readings behind the register (stale frames), held at the register value [-].
    pending : readings of a candidate new counter awaiting confirmation [-], since ``pending_since`` [s];
        ``pending_direction`` "lower" or "higher".
    refused : NaN, infinite or negative readings [-].
    confirmed : the last confirmed discontinuities, (event, ts [s]), oldest first.
    armed : why the next deviating reading will be accepted at once ("serial number changed",
        "operator confirmed"), or None.
    reason : why the pending candidate waits, else why the last outlier was quarantined, e.g.
        "step 60.1 kWh in 1 s above the circuit's rating 69 kW"; None when nothing was quarantined.
    """

    key: SeriesKey
    quarantined: int = 0
    first_quarantined: float | None = None
    last_quarantined: float | None = None
    held: int = 0
    pending: int = 0
    pending_since: float | None = None
    pending_direction: str | None = None
    refused: int = 0
    confirmed: tuple[tuple[GuardEvent, float], ...] = ()
    armed: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when nothing was refused, held, confirmed or is pending."""
        return not (
            self.quarantined or self.held or self.pending or self.refused or self.confirmed or self.armed
        )

    def text(self, tz: str = "UTC", now: float | None = None) -> str:
        """One line for people, e.g. ``"1 outlier quarantined at 10:02:03"``; times in ``tz``, with the
        date when it is not the day of ``now`` [s]."""
        zone = ZoneInfo(tz)
        today = datetime.fromtimestamp(now, zone).date() if now is not None else None

        def at(ts: float | None) -> str:
            if ts is None:
                return "?"
            d = datetime.fromtimestamp(ts, zone)
            return (
                d.strftime("%H:%M:%S")
                if d.date() == today or today is None
                else d.strftime("%Y-%m-%d %H:%M:%S")
            )

        parts: list[str] = []
        if self.quarantined == 1:
            parts.append(f"1 outlier quarantined at {at(self.last_quarantined)}")
        elif self.quarantined > 1:
            parts.append(
                f"{self.quarantined} outliers quarantined since {at(self.first_quarantined)}, "
                f"last at {at(self.last_quarantined)}"
            )
        if self.refused:
            parts.append(
                f"{self.refused} non-numeric or negative reading{'s' if self.refused > 1 else ''} refused"
            )
        if self.held:
            parts.append(f"{self.held} stale reading{'s' if self.held > 1 else ''} held at the register")
        if self.pending:
            parts.append(
                f"{self.pending} {self.pending_direction} reading{'s' if self.pending > 1 else ''} "
                f"awaiting confirmation since {at(self.pending_since)}"
            )
        for event, ts in self.confirmed[-3:]:
            name = {GuardEvent.REBASE: "meter replacement", GuardEvent.WRAP: "counter wrap"}.get(
                event, event.value
            )
            parts.append(f"{name} confirmed at {at(ts)}")
        if self.armed:
            parts.append(f"{self.armed}: the next change of the counter is accepted")
        return "; ".join(parts) if parts else "ok"
