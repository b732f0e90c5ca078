"""Demand limiting: keep the site's demand under a target by shedding loads by priority (peak shaving).

The energy stage predicts the demand the running window will end with if the present power holds
(:meth:`meterhub.energy.demand.DemandMeter.predicted`, the reading ``demand_active_import_predicted`` of the
main circuit, every few seconds). Each second :meth:`DemandLimiter.tick` compares it with the target:

* **shed** — predicted > target − margin: the load that is on, allowed to go off (its ``min_on`` passed, no
  user override) and first in priority (1 first) is switched off through the audited control path
  (actor ``demand-limit``); then the limiter waits ``settle`` seconds for the meters to see it;
* **restore** — the load shed last (reverse order) goes back on once its ``min_off`` passed and the
  prediction with the load back on for the rest of the running (sub)interval stays below target − restore
  margin; if the next window then heads over the target, the load is shed again once its ``min_on``
  passed (so ``margin`` should cover a load's draw over ``min_on``: draw × min_on / interval);
* **max_off** — a load off for ``max_off`` seconds is restored whatever the demand (then others are shed
  in its place if needed);
* a load found off that no user holds off (e.g. shed before a restart: the module keeps its relay) is
  taken as shed from when it went off, and restored by the same rules.

A load's draw when on comes from its circuit's active power (the highest value seen while it was on, at
least ``power_kw``), or from ``power_kw`` alone.

**Target**: ``target_kw``, or with ``from_capacity_tariff`` the highest demand of the current local month
so far (the capacity tariff bills the monthly peak, e.g. the Flemish "capaciteitstarief": demand up to the
month's peak costs nothing more), never below ``floor_kw``. The month's peak is tracked from the main's
closed demand windows (``demand_active_import``); :meth:`DemandLimiter.seed_peak` gives it what the
energy stage already knows at start.

The limiter only acts on what it measures. Until the energy stage predicts (a fresh gateway fills its first
demand window; a sliding window needs all but one of its subintervals) it acts on the main's mean power of
about the last minute as if that held for the whole window; without either (nothing newer than
:data:`STALE` seconds) it does nothing and says so in :meth:`DemandLimiter.status` and its health.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meterhub.config.control import Action, DemandLimitConfig, ShedLoad
from meterhub.config.schema import SiteConfig
from meterhub.energy.timeutil import local_datetime
from meterhub.model.health import Health, HealthState
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading, iso_utc
from meterhub.model.topology import Phase, Purpose

if TYPE_CHECKING:  # annotations only: the control module builds the limiter
    from meterhub.alarms.control import ControlResult, ControlService

__all__ = ["DEMAND_LIMIT_ACTOR", "POWER_TAU", "STALE", "DemandLimiter", "LoadState"]

#: The actor of the demand limiter's actions in the audit log.
DEMAND_LIMIT_ACTOR = "demand-limit"

log = logging.getLogger("meterhub.control.demand")

#: A prediction older than this does not count [s] (the energy stage emits one every 5 s).
STALE = 30.0
#: Time constant of the main's mean power, used until the energy stage predicts demand [s].
POWER_TAU = 60.0


@dataclass
class LoadState:
    """What the limiter knows of one load: shed by it (and when), its draw when on [W]."""

    spec: ShedLoad
    shed_at: float | None = None  # when the limiter switched it off [s]
    power_on: float = 0.0  # highest active power seen while on since it last went on [W]
    busy: bool = False  # an action is queued


class DemandLimiter:
    """Sheds and restores loads to keep the main circuit's demand under the target (module docstring)."""

    def __init__(self, config: SiteConfig, service: ControlService) -> None:
        if config.control is None or config.control.demand_limit is None:
            raise ValueError("the site has no control.demand_limit section")
        self.cfg: DemandLimitConfig = config.control.demand_limit
        self.service = service
        self.tz = config.site.timezone
        grid = [c.id for c in config.circuits if c.purpose is Purpose.GRID]
        self.circuit = self.cfg.circuit or (grid[0] if grid else "")
        demand = config.energy.demand if config.energy is not None else None
        self.interval = 60.0 * (demand.interval if demand is not None else 15)  # [s]
        subs = demand.subintervals if demand is not None and demand.method == "sliding" else 1
        self.sub_len = self.interval / subs  # the prediction is for the window ending at the next sub end
        self.loads = [LoadState(spec) for spec in sorted(self.cfg.loads, key=lambda s: s.priority)]
        self._by_circuit = {ld.spec.circuit: ld for ld in self.loads if ld.spec.circuit is not None}
        self.predicted: float | None = None  # [W]
        self.predicted_ts: float | None = None
        self.power: float | None = None  # present active power of the main [W]
        self.power_avg: float | None = None  # its mean over about a minute [W]
        self.power_ts: float | None = None
        self.peak: tuple[str, float, float] | None = None  # (local month "YYYY-MM", peak [W], window end [s])
        self.settle_until = -math.inf
        self.last: str = "waiting for the first predicted demand"
        self.counters = {"shed": 0, "restored": 0, "over_target": 0}

    # -- inputs -----------------------------------------------------------------------------------
    def _month(self, ts: float) -> str:
        d = local_datetime(ts, self.tz)
        return f"{d.year:04d}-{d.month:02d}"

    def seed_peak(self, value: float, window_end: float) -> None:
        """Offer a closed window's demand [W] ending at ``window_end`` [s] to the month's peak."""
        month = self._month(window_end - self.interval)  # a window belongs to the month it started in
        if self.peak is None or month > self.peak[0] or (month == self.peak[0] and value > self.peak[1]):
            self.peak = (month, value, window_end)

    def seed_maxima(self, maxima: Mapping[str, Mapping[str, list[float | None]]]) -> None:
        """Offer the energy stage's maximum demands (:meth:`meterhub.energy.pipeline.EnergyPipeline.max_demand`:
        ``"circuit/quantity"`` → rate → [value [W], window end [s]]) to the month's peak, so a restart keeps
        the capacity-tariff target; maxima of earlier months are ignored."""
        for rate in maxima.get(f"{self.circuit}/{Q.DEMAND_ACTIVE_IMPORT.value}", {}).values():
            value, ts = rate[0], rate[1]
            if value is not None and ts is not None:
                self.seed_peak(float(value), float(ts))

    def observe(self, readings: Sequence[Reading]) -> None:
        """Take the main's predicted and closed demand and active power, and the loads' active power."""
        for r in readings:
            if r.quality is not Quality.GOOD or r.phase not in (Phase.TOTAL, None):
                continue
            if r.circuit == self.circuit:
                if r.quantity == Q.DEMAND_ACTIVE_IMPORT_PREDICTED:
                    self.predicted, self.predicted_ts = float(r.value), float(r.ts)
                elif r.quantity == Q.ACTIVE_POWER:
                    self._power(float(r.ts), float(r.value))
                elif r.quantity == Q.DEMAND_ACTIVE_IMPORT:
                    self.seed_peak(float(r.value), float(r.ts))
            ld = self._by_circuit.get(r.circuit)
            if ld is not None and r.quantity == Q.ACTIVE_POWER and self._is_on(ld):
                ld.power_on = max(ld.power_on, float(r.value))

    def _power(self, ts: float, value: float) -> None:
        """The main's present power [W] and its exponential mean over :data:`POWER_TAU` seconds."""
        if self.power_avg is None or self.power_ts is None or ts - self.power_ts > STALE:
            self.power_avg = value
        elif ts > self.power_ts:
            self.power_avg += (value - self.power_avg) * (1.0 - math.exp(-(ts - self.power_ts) / POWER_TAU))
        self.power, self.power_ts = value, ts

    # -- state ------------------------------------------------------------------------------------
    def target(self, now: float) -> float:
        """The demand not to exceed now [W]."""
        if self.cfg.target_kw is not None:
            return self.cfg.target_kw * 1000.0
        floor = self.cfg.floor_kw * 1000.0
        if self.peak is None or self.peak[0] != self._month(now):
            return floor
        return max(floor, self.peak[1])

    def _is_on(self, ld: LoadState) -> bool:
        st = self.service.state(ld.spec.point)
        return st is None or bool(st)  # unknown: assume it runs (the safe assumption for the demand)

    def draw(self, ld: LoadState) -> float | None:
        """What ``ld`` draws when on [W]; None when unknown."""
        floor = (ld.spec.power_kw or 0.0) * 1000.0
        best = max(floor, ld.power_on)
        return best if best > 0 else None

    def status(self) -> dict[str, Any]:
        """JSON-ready: target, prediction, the month's peak, each load's state."""
        now = self.service.clock()
        return {
            "circuit": self.circuit,
            "target": self.target(now),
            "predicted": self.predicted,
            "predicted_at": iso_utc(self.predicted_ts) if self.predicted_ts is not None else None,
            "power": self.power,
            "month_peak": None if self.peak is None else {"month": self.peak[0], "value": self.peak[1]},
            "last": self.last,
            "loads": [
                {
                    "point": ld.spec.point,
                    "priority": ld.spec.priority,
                    "on": self._is_on(ld),
                    "shed": ld.shed_at is not None,
                    "shed_since": iso_utc(ld.shed_at) if ld.shed_at is not None else None,
                    "draw": self.draw(ld),
                }
                for ld in self.loads
            ],
        }

    def health(self) -> Health:
        now = self.service.clock()
        fresh = any(ts is not None and now - ts <= STALE for ts in (self.predicted_ts, self.power_ts))
        c = dict(self.counters)
        c["shed_now"] = sum(1 for ld in self.loads if ld.shed_at is not None)
        if not fresh:
            return Health(HealthState.DEGRADED, self.last, c)
        return Health(HealthState.OK, self.last, c)

    # -- decisions --------------------------------------------------------------------------------
    def _submit(self, ld: LoadState, action: Action, why: str) -> None:
        ld.busy = True

        def done(res: ControlResult) -> None:
            ld.busy = False
            if res.result not in ("done", "skipped"):
                return
            if action is Action.OFF:
                ld.shed_at = self.service.clock()
                self.counters["shed"] += 1
            else:
                ld.shed_at = None
                ld.power_on = 0.0
                self.counters["restored"] += 1

        self.settle_until = self.service.clock() + self.cfg.settle
        self.last = why
        log.info("demand limit: %s %s: %s", "shed" if action is Action.OFF else "restore", ld.spec.point, why)
        self.service.submit(ld.spec.point, action, actor=DEMAND_LIMIT_ACTOR, comment=why, done=done)

    def _can_switch(self, ld: LoadState, now: float, off: bool) -> bool:
        if ld.busy or self.service.blocked(ld.spec.point, Action.OFF if off else Action.ON) is not None:
            return False  # a user's override, the output's own minimum times, an interlock
        since = self.service.since(ld.spec.point)
        if off:
            hold = ld.spec.min_on
        else:
            hold = ld.spec.min_off
            since = ld.shed_at if ld.shed_at is not None else since
        return since is None or now - since >= hold

    def tick(self, now: float) -> None:
        """One decision (see the module docstring)."""
        if not self.cfg.enabled:
            return
        for ld in self.loads:
            if ld.busy:
                continue
            if ld.shed_at is not None and self._is_on(ld):  # a user switched it on: no longer ours to restore
                ld.shed_at = None
            elif ld.shed_at is None and not self._is_on(ld) and self.service.override(ld.spec.point) is None:
                # off, and nobody holds it off (e.g. shed before a restart: the module kept its relay):
                # it is restored like a load this limiter shed, so it can never stay off for good
                ld.shed_at = self.service.since(ld.spec.point) or now
        for ld in reversed(self.loads):
            if ld.shed_at is not None and ld.spec.max_off is not None and now - ld.shed_at >= ld.spec.max_off:
                if not ld.busy:
                    self._submit(ld, Action.ON, f"{ld.spec.point} was off for max_off {ld.spec.max_off:g} s")
                return
        if now < self.settle_until:
            return
        if self.predicted is not None and self.predicted_ts is not None and now - self.predicted_ts <= STALE:
            predicted, basis, share = self.predicted, "predicted", None
        elif self.power_avg is not None and self.power_ts is not None and now - self.power_ts <= STALE:
            # no prediction yet (a fresh gateway fills its first demand window): the window would end
            # at the mean power of the last minute if it held, and a load adds all of its draw
            predicted, basis, share = self.power_avg, "1-min mean power (no prediction yet)", 1.0
        else:
            self.last = f"no predicted demand or power of {self.circuit} in the last {STALE:g} s; not acting"
            return
        target = self.target(now)
        margin = self.cfg.margin_kw * 1000.0
        kw = f"{basis} {predicted / 1000:.1f} kW, target {target / 1000:.1f} kW"
        if predicted > target - margin:
            for ld in self.loads:
                if ld.shed_at is None and self._is_on(ld) and self._can_switch(ld, now, off=True):
                    self._submit(ld, Action.OFF, f"{kw} (margin {margin / 1000:g} kW)")
                    return
            if predicted > target:
                self.counters["over_target"] += 1
            self.last = f"{kw}: nothing left to shed"
            return
        if share is None:  # the part of the predicted window still to come
            share = (self.sub_len - (now % self.sub_len)) / self.interval
        for ld in reversed(self.loads):
            if ld.shed_at is None:
                continue
            if not self._can_switch(ld, now, off=False):
                return  # restore strictly in reverse order
            draw = self.draw(ld) or 0.0
            limit = target - self.cfg.restore_kw * 1000.0
            if predicted + draw * share <= limit:
                self._submit(
                    ld, Action.ON, f"{kw}; with {ld.spec.point} back ({draw / 1000:.1f} kW) still below"
                )
            return
        self.last = kw
