"""Monthly billing snapshots (seed 002 appendix 4).

On a set day (1–28, so every month has it) at a set local hour (00–23) the registers and the maximum
demands are captured as one billing period; the maximum demands are then reset. Billing is
automatic at that time, or manual / by API command at any time; each snapshot increments the billing
count. The last ``history`` periods are kept ("last 1 month …" values of seed 002 appendix 8).

Meters that bill themselves (a DLMS meter's billing profile 0.0.98.1.0.255) have their own snapshots,
read by their driver: they are kept beside the gateway's, per meter (the last ``history`` of each),
marked with the device (``device``) and reason ``meter``; their time is the meter's capture time, and a
snapshot read twice is kept once (device and time are its key).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from meterhub.energy.config import BillingSettings
from meterhub.energy.timeutil import local_datetime, zone
from meterhub.model.readings import iso_utc

__all__ = ["BillingBook", "BillingReason", "BillingSnapshot", "next_billing_time"]


class BillingReason(StrEnum):
    """Who closed a billing period (seed 002: manual, communication, automatic)."""

    AUTOMATIC = "automatic"
    MANUAL = "manual"
    API = "api"
    METER = "meter"  # a snapshot the meter took itself, read from its billing profile


def next_billing_time(after: float, day: int, hour: int, tz: str) -> float:
    """First local ``day`` at ``hour``:00 strictly after ``after`` [s, UTC]."""
    local = local_datetime(after, tz)
    y, m = local.year, local.month
    for _ in range(3):
        t = datetime(y, m, day, hour, tzinfo=zone(tz)).timestamp()
        if t > after:
            return t
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    raise RuntimeError("unreachable: a billing day exists in every month")  # pragma: no cover


@dataclass
class BillingSnapshot:
    """One closed billing period.

    count : billing count after this snapshot. ts : when it was taken [s, UTC].
    registers : ``"circuit/quantity/phase"`` → register value [Wh, varh, VAh].
    max_demand : ``"circuit/quantity"`` → {rate id: [value [W], time [s]]}.
    cumulative_max_demand : the sum of the maximum demands of all periods so far [W] (seed 002
        "cumulation maximum demand": a reset cannot hide a peak, it stays in this sum).
    device : the meter whose own snapshot this is (reason ``meter``; its registers and maximum
        demands are the meter's values, the rate id ``meter``, count 0 as the meter's own billing count
        is not read); None for the gateway's snapshots.
    """

    count: int
    ts: float
    reason: str
    start: float | None
    registers: dict[str, float] = field(default_factory=dict)
    max_demand: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    cumulative_max_demand: dict[str, dict[str, float]] = field(default_factory=dict)
    device: str | None = None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["time"] = iso_utc(self.ts, "seconds")
        return out


@dataclass
class BillingBook:
    """Billing count, schedule and history."""

    settings: BillingSettings
    tz: str
    count: int = 0
    last_ts: float | None = None  # time of the last snapshot [s]
    next_ts: float | None = None  # next automatic billing time [s]
    history: list[BillingSnapshot] = field(default_factory=list)
    cumulative: dict[str, dict[str, float]] = field(default_factory=dict)  # cumulated maximum demand [W]
    meter_history: list[BillingSnapshot] = field(default_factory=list)  # meters' own, by device and time

    def due(self, now: float) -> bool:
        """True when the automatic billing time has passed (the schedule starts at the first call)."""
        if not self.settings.automatic:
            return False
        if self.next_ts is None:
            self.next_ts = next_billing_time(now, self.settings.day, self.settings.hour, self.tz)
            return False
        return now >= self.next_ts

    def close(
        self,
        ts: float,
        reason: BillingReason,
        registers: dict[str, float],
        max_demand: dict[str, dict[str, list[float | None]]],
    ) -> BillingSnapshot:
        """Record a snapshot taken at ``ts`` [s]; schedules the next automatic one."""
        self.count += 1
        for key, rates in max_demand.items():
            cum = self.cumulative.setdefault(key, {})
            for rate, (value, _) in rates.items():
                cum[rate] = cum.get(rate, 0.0) + float(value or 0.0)
        cumulative = {k: dict(v) for k, v in self.cumulative.items()}
        snap = BillingSnapshot(
            self.count, ts, reason.value, self.last_ts, dict(registers), max_demand, cumulative
        )
        self.history.append(snap)
        del self.history[: max(0, len(self.history) - self.settings.history)]
        self.last_ts = ts
        self.next_ts = next_billing_time(ts, self.settings.day, self.settings.hour, self.tz)
        return snap

    def add_meter(
        self,
        device: str,
        ts: float,
        registers: dict[str, float],
        max_demand: dict[str, dict[str, list[float | None]]],
    ) -> bool:
        """Keep a meter's own snapshot taken at ``ts`` [s]; False when it is already kept."""
        mine = [s for s in self.meter_history if s.device == device]
        if any(s.ts == ts for s in mine):
            return False
        start = max((s.ts for s in mine if s.ts < ts), default=None)
        snap = BillingSnapshot(
            0, ts, BillingReason.METER.value, start, dict(registers), max_demand, {}, device
        )
        self.meter_history.append(snap)
        self.meter_history.sort(key=lambda s: s.ts)
        mine = [s for s in self.meter_history if s.device == device]
        for old in mine[: max(0, len(mine) - self.settings.history)]:
            self.meter_history.remove(old)
        return True

    def last_meter_ts(self, device: str) -> float | None:
        """Time of the newest kept snapshot of ``device`` [s], None when there is none."""
        return max((s.ts for s in self.meter_history if s.device == device), default=None)

    def state_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "last_ts": self.last_ts,
            "next_ts": self.next_ts,
            "history": [asdict(s) for s in self.history],
            "cumulative": self.cumulative,
            "meter_history": [asdict(s) for s in self.meter_history],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.count = int(state.get("count", 0))
        self.last_ts = state.get("last_ts")
        self.next_ts = state.get("next_ts")
        self.history = [BillingSnapshot(**s) for s in state.get("history", [])]
        self.cumulative = {
            k: {r: float(v) for r, v in d.items()} for k, d in state.get("cumulative", {}).items()
        }
        self.meter_history = [BillingSnapshot(**s) for s in state.get("meter_history", [])]
