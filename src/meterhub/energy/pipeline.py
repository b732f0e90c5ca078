"""The energy stage of the gateway: every batch of readings passes through :class:`EnergyPipeline`.

* cumulative readings (catalogue kind CUMULATIVE) are replaced by guarded continuous registers
  (:mod:`meterhub.energy.registers`), restored at start from ``storage.load_registers()`` so a restart
  continues them and they never go backwards;
* when a demand window closes, derived readings are appended: ``demand_*`` and ``max_demand_*``
  (:mod:`meterhub.energy.demand`), ``cost`` and ``co2`` of the closed (sub)interval
  (:mod:`meterhub.energy.tariffs`), with ``ts`` = the end of the window;
* ``demand_active_import_predicted`` follows every import-register update;
* virtual circuits (:mod:`meterhub.energy.virtual`) get ``active_power`` and demand from their members;
* monthly billing closes automatically at its time (:mod:`meterhub.energy.billing`), or on command.

Every reading is first checked against the plausible range of its quantity on its circuit
(:mod:`meterhub.energy.plausibility`); one outside it, or one the source already marked invalid, goes
on re-marked :attr:`Quality.INVALID` (kept for diagnosis) and is never integrated nor fed to demand.
A register reading the guard quarantines goes on the same way, with its raw value. What was refused is
counted per circuit (:meth:`EnergyPipeline.refusals`) and per register series
(:meth:`EnergyPipeline.register_status`), and summed up per device for its status
(:meth:`EnergyPipeline.data_status`: "all values NaN since 10:02:03", a quarantined register step …).
Sinks other than storage skip INVALID readings (docs/ARCHITECTURE.md, "Invalid readings").

Nothing here raises on bad data: a bad value is logged with its series and skipped.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from meterhub.config.schema import SiteConfig
from meterhub.energy.billing import BillingBook, BillingReason, BillingSnapshot
from meterhub.energy.config import EnergyConfig, HistoryError, energy_of
from meterhub.energy.data_status import DataStatus, device_data
from meterhub.energy.demand import AverageMeter, DemandMeter, DemandValue, MaxDemand
from meterhub.energy.plausibility import (
    DEFAULT_RATED_CURRENT,
    Rating,
    RefusalLog,
    RefusalReason,
    RefusalStatus,
    bounds,
    check,
    invalid,
    rating_of,
)
from meterhub.energy.ratio_changes import announce_ratio_changes
from meterhub.energy.registers import GuardEvent, GuardResult, MeterChange, RegisterGuard, RegisterStatus
from meterhub.energy.state_file import Json, numbers, read_json, write_json
from meterhub.energy.tariffs import Co2Factor, TariffTimeline
from meterhub.energy.timeutil import parse_time
from meterhub.energy.virtual import FormulaError, expand
from meterhub.energy.virtual_demand import virtual_window
from meterhub.model.quantities import CATALOGUE, DEMAND_OF, Kind, Q
from meterhub.model.readings import Quality, Reading, SeriesKey, iso_utc
from meterhub.model.topology import Phase

__all__ = ["NET_AND_ABSOLUTE", "PREDICTED_OF", "EnergyPipeline", "Json", "RegisterStore"]

log = logging.getLogger(__name__)

_TOTAL_PHASES = (None, Phase.TOTAL)
_AVERAGED_PHASES = (Phase.L1, Phase.L2, Phase.L3, Phase.N)
#: cumulative readings stamped further ahead of the clock than this are dropped [s]
MAX_FUTURE = 600.0
_NONE = CATALOGUE[Q.VOLTAGE]  # stands in for an unknown quantity (not cumulative)
_ENERGY_UNITS = frozenset({"Wh", "varh", "VAh"})
#: import register → (export register, net, absolute) computed from the two (seed 002 Appendix 3):
#: net = import − export, absolute = import + export, for active [Wh] and reactive [varh] energy.
NET_AND_ABSOLUTE: dict[str, tuple[str, str, str]] = {
    Q.ENERGY_ACTIVE_IMPORT: (Q.ENERGY_ACTIVE_EXPORT, Q.ENERGY_ACTIVE_NET, Q.ENERGY_ACTIVE_ABSOLUTE),
    Q.ENERGY_REACTIVE_IMPORT: (Q.ENERGY_REACTIVE_EXPORT, Q.ENERGY_REACTIVE_NET, Q.ENERGY_REACTIVE_ABSOLUTE),
}
_PAIRED = {imp: imp for imp in NET_AND_ABSOLUTE} | {exp: imp for imp, (exp, _, _) in NET_AND_ABSOLUTE.items()}
_COMPUTED = frozenset(
    q for _, net, absolute in NET_AND_ABSOLUTE.values() for q in (net, absolute)
) | frozenset(
    m for _, m in DEMAND_OF.values() if m is not None
)  # a meter's own net/absolute registers and maximum demands (DLMS class 4 with its capture time)
#: register → its predicted demand (seed 003 "predictive power"): active P, reactive Q and apparent S.
PREDICTED_OF: dict[str, str] = {
    Q.ENERGY_ACTIVE_IMPORT: Q.DEMAND_ACTIVE_IMPORT_PREDICTED,
    Q.ENERGY_REACTIVE_IMPORT: Q.DEMAND_REACTIVE_IMPORT_PREDICTED,
    Q.ENERGY_APPARENT: Q.DEMAND_APPARENT_PREDICTED,
}
#: predicted demand is emitted at most this often per register [s] (a live value, not a series to keep at 1 Hz)
PREDICTED_EVERY = 5.0


class RegisterStore(Protocol):
    """Where the registers persisted at the last flush come from (the site's storage)."""

    def load_registers(self) -> dict[SeriesKey, float]: ...


class EnergyPipeline:
    """Registers, demand, tariffs, billing and virtual circuits for one site.

    Parameters
    ----------
    config : the site configuration (``config.energy`` is the :class:`EnergyConfig`).
    storage : the site's :class:`~meterhub.storage.base.Storage` (registers are restored from it).
    clock : time source [s since the epoch, UTC] (injected for tests).
    state_file : where demand and billing state and the raw register baselines are kept between
        runs (JSON); default ``<storage.data_dir>/energy-state.json`` when the storage has a data dir.
    """

    def __init__(
        self,
        config: SiteConfig,
        storage: RegisterStore | None,
        clock: Callable[[], float] = time.time,
        *,
        state_file: Path | None = None,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self._lock = threading.RLock()
        if state_file is None:
            data_dir = getattr(storage, "data_dir", None)
            state_file = Path(data_dir) / "energy-state.json" if data_dir is not None else None
        self.state_file = state_file
        self._switch_state: tuple[float, float] | None = None
        self._power: dict[str, tuple[float, float]] = {}  # circuit → (ts, active_power total)
        self._billing_written: float | None = None  # next_ts as last written to the billing file
        self._predicted_at: dict[SeriesKey, float] = {}  # register → ts of its last predicted demand
        # (virtual id, window end) → member → {"demand_active_import": W, "demand_active_export": W}
        self._virtual_demand: dict[tuple[str, float], dict[str, dict[str, float]]] = {}
        self.demand: dict[SeriesKey, DemandMeter] = {}
        self.averages: dict[SeriesKey, AverageMeter] = {}  # (circuit, "current", phase) → max average current
        self.refused = RefusalLog()
        # counted import/export registers of the last few polls: key → ts → (value, quality)
        self._recent_registers: dict[SeriesKey, dict[float, tuple[float, Quality]]] = {}
        self._reported: set[SeriesKey] = set()  # net/absolute series a source reports itself
        self._serials: dict[str, str] = {}  # device → serial number last reported
        self._apply_config(config)
        try:
            restored = storage.load_registers() if storage is not None else {}
        except Exception:
            log.exception("cannot load persisted registers; registers start from the next readings")
            restored = {}
        state = self._read_state_file()
        self.guard.restore(
            restored,
            numbers(state.get("raw")),
            numbers(state.get("raw_ts")),
            numbers(state.get("raw_rate")),
        )
        announce_ratio_changes(self.guard, None, config)  # ratio changes after the persisted readings
        serials = state.get("serials")
        if isinstance(serials, dict):
            self._serials = {str(k): str(v) for k, v in serials.items()}
        self.load_state(state)

    # -- configuration ------------------------------------------------------------------------
    def _apply_config(self, config: SiteConfig) -> None:
        previous: SiteConfig | None = getattr(self, "config", None)
        self.config = config
        self.energy: EnergyConfig = energy_of(config)
        tz = config.site.timezone
        self.tz = tz
        try:  # the tariff in force at each instant: a tariff change never re-prices earlier energy
            self.schedule = TariffTimeline.of(self.energy, tz)
        except HistoryError as exc:  # the site checks refuse this before; never stop acquisition for it
            log.error("energy.%s: %s; pricing with the current tariff only", ".".join(map(str, exc.loc)), exc)
            self.schedule = TariffTimeline([(None, self.energy.tariffs)], tz)
        try:
            data_dir = getattr(self.storage, "data_dir", None)
            self.co2 = Co2Factor.from_settings(self.energy.co2, config.site.co2_factor, [data_dir], tz)
        except (OSError, ValueError) as exc:
            log.error("energy.co2: %s; using the constant factor", exc)
            self.co2 = Co2Factor(self.energy.co2.factor or config.site.co2_factor)
        self.circuits = {c.id: c for c in config.circuits}
        nominal = config.site.nominal_voltage
        self.nominal_voltage = nominal
        self.ratings: dict[str, Rating] = {c.id: rating_of(c, nominal) for c in config.circuits}
        self.device_of: dict[str, str] = {c.id: c.device for c in config.circuits}
        # IO points (pulse meters, sensors) report under their own id: their device, for the status only
        self._point_device = {p.id: p.device for p in config.io.points} if config.io is not None else {}
        # (circuit, quantity, phase) → plausible (lowest, highest) [unit], filled as series appear
        self._bounds: dict[tuple[str, str, Phase | None], tuple[float, float]] = {}
        # a meter that no circuit uses reports under its device id: a three-phase direct meter
        for device in config.devices:
            if device.id not in self.ratings:
                self.ratings[device.id] = Rating(current=DEFAULT_RATED_CURRENT, voltage=nominal, phases=3)
                self.device_of[device.id] = device.id
        formulas = {v.id: v.formula for v in self.energy.virtual}
        self.virtual: dict[str, dict[str, int]] = {}
        for vid in formulas:
            try:
                self.virtual[vid] = expand(vid, formulas)
            except FormulaError as exc:
                log.error("virtual circuit %s: %s", vid, exc)
        changes: dict[SeriesKey, list[MeterChange]] = {}
        for ch in self.energy.meter_changes:
            key = SeriesKey(ch.circuit, ch.quantity, Phase(ch.phase) if ch.phase else None)
            try:
                ts = parse_time(ch.time, tz)
            except ValueError as exc:
                log.error("energy.meter_changes %s: %s", key, exc)
                continue
            changes.setdefault(key, []).append(MeterChange(ts, ch.old_final, ch.new_initial))
        moduli = {
            SeriesKey(r.circuit, r.quantity, Phase(r.phase) if r.phase else None): r.modulus
            for r in self.energy.registers
        }
        old = getattr(self, "guard", None)
        self.guard = RegisterGuard(
            gap=self.energy.gap,
            max_power=self.energy.max_power,
            rate_limit=self._rate_limit,
            moduli=moduli,
            changes=changes,
        )
        if old is not None:
            self.guard.adopt(old)  # keep the registers across a reconfiguration
            announce_ratio_changes(self.guard, previous, config)  # a CT ratio change rescales no register
        d = self.energy.demand
        subs = d.subintervals if d.method == "sliding" else 1
        for meter in self.demand.values():
            if (meter.interval, meter.subintervals, meter.method) != (d.interval * 60.0, subs, d.method):
                self.demand.clear()  # a new demand definition starts new windows
                break
        if any(a.interval != d.interval * 60.0 for a in getattr(self, "averages", {}).values()):
            self.averages.clear()
        book = getattr(self, "billing", None)
        self.billing = BillingBook(self.energy.billing, tz)
        if book is not None:
            self.billing.count, self.billing.last_ts = book.count, book.last_ts
            self.billing.history, self.billing.cumulative = book.history, book.cumulative
            self.billing.meter_history = book.meter_history

    def _rate_limit(self, key: SeriesKey) -> float:
        """Largest plausible rate of a register series [unit per hour]: the circuit's rated power for
        energy, 2 h per hour for an hour counter, else the configured ``max_power``."""
        q = CATALOGUE.get(key.quantity)
        rating = self.ratings.get(key.circuit)
        if q is not None and q.unit in _ENERGY_UNITS and rating is not None:
            return min(rating.power, self.energy.max_power)
        if key.quantity == Q.OPERATING_HOURS:
            return 2.0
        return self.energy.max_power

    def reconfigure(self, config: SiteConfig) -> None:
        """Apply a changed site configuration; registers, maxima and billing history are kept."""
        with self._lock:
            self._apply_config(config)

    # -- the data path ------------------------------------------------------------------------
    def process(self, batch: list[Reading]) -> list[Reading]:
        """Guard registers and append derived readings; never raises on bad data."""
        with self._lock:
            out: list[Reading] = []
            derived: list[Reading] = []
            book = self.billing
            now = self.clock()
            book.due(now)  # starts the schedule on the first batch
            nan_only: dict[str, bool] = {}
            frequency_ok: set[str] = set()  # circuits with a finite frequency in this batch
            for r in batch:
                try:
                    reason = self._refusal(r)
                    # "all values NaN" leaves the frequency aside: a meter reads it from its supply,
                    # whatever its channels see (the device status then says "except frequency")
                    if r.quantity == Q.FREQUENCY and _finite(r.value):
                        frequency_ok.add(r.circuit)
                    elif nan_only.get(r.circuit, True):
                        nan_only[r.circuit] = not _finite(r.value)
                    if reason is not None:
                        self.refused.add(r, reason, self.device_of.get(r.circuit))
                        out.append(r if r.quality is Quality.INVALID else invalid(r))
                        continue
                    if r.ts > now + MAX_FUTURE and CATALOGUE.get(r.quantity, _NONE).kind is Kind.CUMULATIVE:
                        # one reading from a device with a wrong clock would hold the register (and the
                        # billing schedule) until that time; it is dropped instead
                        log.warning(
                            "register %s: reading at %r is %.0f s in the future; skipped",
                            r.key,
                            r.ts,
                            r.ts - now,
                        )
                        continue
                    if book.settings.automatic and book.next_ts is not None and r.ts > book.next_ts:
                        self.bill(BillingReason.AUTOMATIC, ts=book.next_ts)  # readings up to then are in
                    self._one(r, out, derived)
                except Exception:
                    log.exception(
                        "energy: reading %s at %r skipped", getattr(r, "key", r), getattr(r, "ts", None)
                    )
            self.refused.batch_done(nan_only, frequency_ok)
            try:
                self._check_billing()
            except Exception:
                log.exception("automatic billing failed")
            if self._virtual_demand or self.virtual:
                try:
                    derived += self._virtual_power(batch)
                except Exception:
                    log.exception("energy: virtual circuits failed on this batch")
            return out + derived

    def _refusal(self, r: Reading) -> RefusalReason | None:
        """Why ``r`` may not be used (marked invalid by its source, or implausible), or None."""
        if r.quality is Quality.INVALID:
            return RefusalReason.SOURCE if _finite(r.value) else RefusalReason.NOT_A_NUMBER
        value = r.value
        if type(value) is float and math.isfinite(value):  # the common case, from the cached bounds
            key = (r.circuit, r.quantity, r.phase)
            b = self._bounds.get(key)
            if b is None:
                rating = self.ratings.get(r.circuit)
                b = bounds(
                    r.quantity, r.phase, rating, voltage=self.nominal_voltage, power=self.energy.max_power
                )
                self._bounds[key] = b
            return None if b[0] <= value <= b[1] else RefusalReason.OUT_OF_RANGE
        return check(
            r, self.ratings.get(r.circuit), voltage=self.nominal_voltage, power=self.energy.max_power
        )

    def _one(self, r: Reading, out: list[Reading], derived: list[Reading]) -> None:
        if r.quantity in _COMPUTED:
            self._reported.add(r.key)  # the device has its own: ours would be a second series
        q = CATALOGUE.get(r.quantity)
        if q is None or q.kind is not Kind.CUMULATIVE:
            out.append(r)
            if r.quantity == Q.ACTIVE_POWER and r.phase in _TOTAL_PHASES:
                self._power[r.circuit] = (r.ts, r.value)
            elif r.quantity == Q.CURRENT and r.phase in _AVERAGED_PHASES:
                derived += self._feed_average(r)
            sw = self.energy.tariffs.switch
            if sw is not None and r.circuit == sw.input and r.quantity == Q.DIGITAL_INPUT:
                self._switch_state = (r.ts, r.value)
            return
        if r.circuit not in self.circuits:
            log.debug("register %s: circuit not in the site file; guarded all the same", r.key)
        res = self.guard.update(r.key, float(r.ts), float(r.value))
        self._registered(r, res, out, derived)

    def _registered(self, r: Reading, res: GuardResult, out: list[Reading], derived: list[Reading]) -> None:
        """Emit what the guard accepted (backfilled points first) and feed demand; a quarantined
        reading goes on invalid, with its raw value."""
        points = [*res.backfill, *([(res.ts, res.value)] if res.accepted else [])]
        demand = (
            r.phase in _TOTAL_PHASES
            and r.quantity in DEMAND_OF
            and r.quantity in self.energy.demand.quantities
        )
        for i, (t, v) in enumerate(points):
            quality = max(r.quality, res.quality) if i == 0 else r.quality
            reg = Reading(t, r.circuit, r.quantity, r.phase, v, quality)
            out.append(reg)
            if demand:
                derived += self._feed_demand(reg, v)
            if r.quantity in _PAIRED:
                derived += self._net_and_absolute(reg)
        if res.event in (GuardEvent.QUARANTINED, GuardEvent.REFUSED):
            quarantined = res.event is GuardEvent.QUARANTINED
            reason = RefusalReason.QUARANTINED if quarantined else RefusalReason.NOT_A_NUMBER
            self.refused.add(r, reason, self.device_of.get(r.circuit))
            out.append(invalid(r))

    def _net_and_absolute(self, reg: Reading) -> list[Reading]:
        """Net (import − export) and absolute (import + export) energy [Wh] of one poll, once both
        registers of it were counted (same time stamp)."""
        recent = self._recent_registers.setdefault(reg.key, {})
        recent[reg.ts] = (reg.value, reg.quality)
        while len(recent) > 4:  # a deferred step is confirmed one poll later
            del recent[min(recent)]
        imp_q = _PAIRED[reg.quantity]
        exp_q, net_q, abs_q = NET_AND_ABSOLUTE[imp_q]
        imp = self._recent_registers.get(SeriesKey(reg.circuit, imp_q, reg.phase), {}).get(reg.ts)
        exp = self._recent_registers.get(SeriesKey(reg.circuit, exp_q, reg.phase), {}).get(reg.ts)
        if imp is None or exp is None:
            return []
        quality = max(imp[1], exp[1])
        out: list[Reading] = []
        for q, value in ((net_q, imp[0] - exp[0]), (abs_q, imp[0] + exp[0])):
            if SeriesKey(reg.circuit, q, reg.phase) not in self._reported:
                out.append(Reading(reg.ts, reg.circuit, q, reg.phase, value, quality))
        return out

    def _average(self, key: SeriesKey) -> AverageMeter:
        m = self.averages.get(key)
        if m is None:
            m = AverageMeter(interval=self.energy.demand.interval * 60.0, gap=self.energy.gap)
            self.averages[key] = m
        return m

    def _feed_average(self, r: Reading) -> list[Reading]:
        """Average current over each demand interval and its maximum since reset (seed 003)."""
        meter = self._average(r.key)
        out: list[Reading] = []
        for end, mean in meter.feed(float(r.ts), float(r.value)):
            out.append(Reading(end, r.circuit, Q.DEMAND_CURRENT, r.phase, mean))
            out.append(Reading(end, r.circuit, Q.MAX_DEMAND_CURRENT, r.phase, meter.maximum.value))
        return out

    def _meter(self, key: SeriesKey) -> DemandMeter:
        m = self.demand.get(key)
        if m is None:
            d = self.energy.demand
            m = DemandMeter(
                interval=d.interval * 60.0,
                subintervals=d.subintervals if d.method == "sliding" else 1,
                method=d.method,
                gap=self.energy.gap,
            )
            self.demand[key] = m
        return m

    def rate_at(self, ts: float) -> int:
        """Index of the tariff rate in force at ``ts`` [s]."""
        sw = None
        if self._switch_state is not None:
            sw = (np.array([self._switch_state[0]]), np.array([self._switch_state[1]]))
        return int(self.schedule.rate_index(np.array([ts]), sw)[0])

    def _feed_demand(self, r: Reading, value: float) -> list[Reading]:
        key = SeriesKey(r.circuit, r.quantity, Phase.TOTAL)
        meter = self._meter(key)
        closed = meter.feed(float(r.ts), value, self.rate_at)
        demand_q, max_q = DEMAND_OF[r.quantity]
        out: list[Reading] = []
        for w in closed:
            if not math.isfinite(w.demand):
                continue
            quality = Quality.ESTIMATED if w.estimated else Quality.GOOD
            out.append(Reading(w.end, r.circuit, demand_q, Phase.TOTAL, w.demand, quality))
            if max_q is not None and SeriesKey(r.circuit, max_q, Phase.TOTAL) not in self._reported:
                best = max(meter.maxima.values(), key=lambda m: m.value)
                out.append(Reading(w.end, r.circuit, max_q, Phase.TOTAL, best.value, quality))
            self._collect_virtual_demand(r.circuit, demand_q, w)
        if r.quantity == Q.ENERGY_ACTIVE_IMPORT:
            out += self._cost_and_co2(r.circuit, meter, closed)
        predicted_q = PREDICTED_OF.get(r.quantity)
        if predicted_q is not None:
            last = self._predicted_at.get(key)
            if last is None or r.ts - last >= PREDICTED_EVERY or r.ts < last:
                p = meter.predicted()
                if p is not None and math.isfinite(p):
                    out.append(Reading(r.ts, r.circuit, predicted_q, Phase.TOTAL, p))
                    self._predicted_at[key] = r.ts
        return out

    def _cost_and_co2(self, circuit: str, meter: DemandMeter, closed: list[DemandValue]) -> list[Reading]:
        """Energy cost [currency] and CO2 [kg] of each closed subinterval, at its rate and factor."""
        out: list[Reading] = []
        for w in closed:
            quality = Quality.ESTIMATED if w.estimated else Quality.GOOD
            start = w.end - meter.sub_len
            price = float(self.schedule.prices(np.array([start]), np.array([w.rate]))[0][0])
            out.append(Reading(w.end, circuit, Q.COST, Phase.TOTAL, w.energy / 1000.0 * price, quality))
            factor = float(self.co2.at(np.array([start]))[0])
            out.append(Reading(w.end, circuit, Q.CO2, Phase.TOTAL, w.energy / 1000.0 * factor, quality))
        return out

    def _collect_virtual_demand(self, circuit: str, quantity: str, w: DemandValue) -> None:
        if quantity not in (Q.DEMAND_ACTIVE_IMPORT, Q.DEMAND_ACTIVE_EXPORT):
            return
        for vid, coef in self.virtual.items():
            if circuit in coef:
                self._virtual_demand.setdefault((vid, w.end), {}).setdefault(circuit, {})[quantity] = w.demand

    def _virtual_power(self, batch: list[Reading]) -> list[Reading]:
        out: list[Reading] = []
        touched = {
            r.circuit
            for r in batch
            if r.quantity == Q.ACTIVE_POWER and r.quality is not Quality.INVALID and _finite(r.value)
        }
        for vid, coef in self.virtual.items():
            if not touched & set(coef):
                continue
            vals = [self._power.get(c) for c in coef]
            if any(v is None for v in vals):
                continue
            ts = max(v[0] for v in vals if v is not None)
            if min(v[0] for v in vals if v is not None) < ts - self.energy.gap:
                continue  # a member is silent: its old power would make the sum wrong
            total = sum(c * v[1] for c, v in zip(coef.values(), vals, strict=True) if v is not None)
            out.append(Reading(ts, vid, Q.ACTIVE_POWER, Phase.TOTAL, total))
        for (vid, end), members in list(self._virtual_demand.items()):
            vcoef = self.virtual.get(vid)
            if vcoef is None:
                del self._virtual_demand[(vid, end)]
                continue
            if all(Q.DEMAND_ACTIVE_IMPORT in members.get(m, {}) for m in vcoef):
                out += virtual_window(vid, end, vcoef, members)
                del self._virtual_demand[(vid, end)]
            elif end < self.clock() - 2 * self.energy.gap - self.energy.demand.interval * 60:
                del self._virtual_demand[(vid, end)]
        return out

    # -- what was refused, and commands about registers ----------------------------------------
    def refusals(self) -> dict[str, RefusalStatus]:
        """Circuit (or device / point) id → what was refused from it and why; ``.text(tz)`` reads
        e.g. "3 values out of range since 10:02" or "all values NaN since 10:02:03"."""
        with self._lock:
            return self.refused.status()

    def register_status(self) -> dict[SeriesKey, RegisterStatus]:
        """Register series → quarantined, held, pending and confirmed events; ``.text(tz, now)``
        reads e.g. "1 outlier quarantined at 10:02:03"."""
        with self._lock:
            return self.guard.status()

    def data_status(self) -> dict[str, DataStatus]:
        """Device id → why its data is (not) used: refused values and quarantined register readings
        in one line, times in the site's time zone (:func:`meterhub.energy.data_status.device_data`).
        Devices with nothing refused are absent."""
        with self._lock:
            owners = {**self._point_device, **self.device_of}
            return device_data(
                self.refused.status(), self.guard.status(), owners, tz=self.tz, now=self.clock()
            )

    def serial(self, device: str) -> str | None:
        """The serial number ``device`` reported last (:meth:`device_serial`), or None."""
        with self._lock:
            return self._serials.get(device)

    def confirm_meter_change(
        self, circuit: str, quantity: str | None = None, phase: Phase | None = None
    ) -> list[SeriesKey]:
        """An operator says the meter of ``circuit`` was reset or replaced: every register series of
        the circuit (or the one given) accepts its pending or next lower (or out-of-rating) counter
        at once instead of waiting for confirmation. Returns the series concerned."""
        with self._lock:
            keys = [
                k
                for k in self.guard.keys()
                if k.circuit == circuit
                and (quantity is None or k.quantity == quantity)
                and (phase is None or k.phase == phase)
            ]
            for key in keys:
                self.guard.confirm(key, "operator confirmed a meter change")
            return keys

    def device_serial(self, device: str, serial: str) -> list[SeriesKey]:
        """The serial number ``device`` reports now; when it differs from the last one, the meter
        was replaced: its circuits' register series accept their next counter at once. Returns the
        series concerned (none when the serial is the first seen or unchanged)."""
        with self._lock:
            last = self._serials.get(device)
            self._serials[device] = serial
            if last is None or last == serial:
                return []
            circuits = {c for c, d in self.device_of.items() if d == device}
            keys = [k for k in self.guard.keys() if k.circuit in circuits]
            log.warning(
                "device %s: serial number %s → %s; its registers accept the new meter", device, last, serial
            )
            for key in keys:
                self.guard.confirm(key, f"serial number changed from {last} to {serial}")
            return keys

    # -- registers, maxima, billing ------------------------------------------------------------
    def registers(self) -> dict[SeriesKey, float]:
        """Continuous registers to persist (the runtime calls this at every flush)."""
        with self._lock:
            regs = self.guard.registers()
            self._write_state_file()
            return regs

    def register_values(self) -> dict[SeriesKey, float]:
        """Continuous registers, for display (unlike :meth:`registers`, nothing is written)."""
        with self._lock:
            return self.guard.registers()

    def max_demand(self) -> dict[str, dict[str, list[float | None]]]:
        """``"circuit/quantity"`` → {rate id: [maximum demand [W], window end [s]]}."""
        with self._lock:
            return self._max_demand()

    def _max_demand(self) -> dict[str, dict[str, list[float | None]]]:
        ids = self.schedule.rate_ids or ["total"]
        out: dict[str, dict[str, list[float | None]]] = {}
        for key, meter in self.demand.items():
            q, _ = DEMAND_OF[key.quantity]
            out[f"{key.circuit}/{q}"] = {
                ids[i] if i < len(ids) else str(i): [m.value, m.ts] for i, m in sorted(meter.maxima.items())
            }
        for key, avg in self.averages.items():
            if avg.maximum.ts is not None and key.phase is not None:
                out[f"{key.circuit}/{Q.DEMAND_CURRENT.value}/{key.phase.value}"] = {
                    "total": [avg.maximum.value, avg.maximum.ts]
                }
        return out

    def predicted(self) -> dict[str, float]:
        """Predicted import demand of the running window per circuit [W] (seed 003 predictive power)."""
        with self._lock:
            out: dict[str, float] = {}
            for key, meter in self.demand.items():
                if key.quantity == Q.ENERGY_ACTIVE_IMPORT:
                    p = meter.predicted()
                    if p is not None and math.isfinite(p):
                        out[key.circuit] = p
            return out

    def predicted_all(self) -> dict[str, dict[str, float]]:
        """Predicted demand of the running window per circuit and predicted-demand quantity (P, Q and S:
        :data:`PREDICTED_OF`) [W, var, VA]."""
        with self._lock:
            out: dict[str, dict[str, float]] = {}
            for key, meter in self.demand.items():
                if key.phase not in _TOTAL_PHASES:
                    continue
                target = PREDICTED_OF.get(key.quantity)
                if target is None:
                    continue
                p = meter.predicted()
                if p is not None and math.isfinite(p):
                    out.setdefault(key.circuit, {})[str(target)] = p
            return out

    def reset_max_demand(self, circuit: str | None = None) -> dict[str, dict[str, list[float | None]]]:
        """Reset maximum demands (all circuits, or one); return the values before the reset."""
        with self._lock:
            before = self.max_demand()
            for key, meter in self.demand.items():
                if circuit is None or key.circuit == circuit:
                    meter.reset_maxima()
            for key, avg in self.averages.items():
                if circuit is None or key.circuit == circuit:
                    avg.maximum = MaxDemand()
            if circuit is not None:
                before = {k: v for k, v in before.items() if k.split("/")[0] == circuit}
            self._write_state_file()
            return before

    def bill(self, reason: BillingReason = BillingReason.MANUAL, ts: float | None = None) -> BillingSnapshot:
        """Close a billing period now: snapshot registers and maximum demands, then reset the maxima."""
        with self._lock:
            when = self.clock() if ts is None else ts
            regs = {str(k): v for k, v in self.guard.registers().items()}
            snap = self.billing.close(when, reason, regs, self.max_demand())
            if self.energy.billing.reset_max_demand:
                for meter in self.demand.values():
                    meter.reset_maxima()
                for avg in self.averages.values():
                    avg.maximum = MaxDemand()
            log.info("billing period %d closed (%s)", snap.count, reason.value)
            self._write_state_file(billing=True)
            return snap

    def billing_status(self) -> dict[str, Json]:
        """Billing count, schedule and past periods (newest first), JSON-ready."""
        with self._lock:
            book = self.billing
            return {
                "count": book.count,
                "day": book.settings.day,
                "hour": book.settings.hour,
                "automatic": book.settings.automatic,
                "next": iso_utc(book.next_ts, "seconds") if book.next_ts is not None else None,
                "history": [s.as_json() for s in reversed(book.history)],
                # the meters' own snapshots (DLMS billing profile), newest first
                "meter": [s.as_json() for s in reversed(book.meter_history)],
            }

    def meter_billing(
        self,
        device: str,
        ts: float,
        registers: dict[str, float],
        max_demand: dict[str, dict[str, list[float | None]]],
    ) -> bool:
        """A meter's own billing snapshot taken at ``ts`` [s] (read from the meter by its driver): kept
        in the billing history, marked with the device; False when it was already kept."""
        with self._lock:
            new = self.billing.add_meter(device, ts, registers, max_demand)
            if new:
                log.info("billing snapshot of meter %s at %s kept", device, iso_utc(ts, "seconds"))
                self._write_state_file(billing=True)
            return new

    def last_meter_billing(self, device: str) -> float | None:
        """Time of the newest kept billing snapshot of the meter ``device`` [s]."""
        with self._lock:
            return self.billing.last_meter_ts(device)

    def _check_billing(self) -> None:
        now = self.clock()
        if self.billing.due(now) and self.billing.next_ts is not None:
            self.bill(BillingReason.AUTOMATIC, ts=self.billing.next_ts)

    # -- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Json]:
        with self._lock:
            base = self.guard.raw_baselines()
            raw: dict[str, Json] = {str(k): v[0] for k, v in base.items()}
            raw_ts: dict[str, Json] = {str(k): v[1] for k, v in base.items() if v[1] is not None}
            raw_rate: dict[str, Json] = {str(k): v[2] for k, v in base.items() if v[2] is not None}
            serials: dict[str, Json] = dict(self._serials)
            return {
                "version": 1,
                "raw": raw,
                "raw_ts": raw_ts,
                "raw_rate": raw_rate,
                "serials": serials,
                "demand": {str(k): m.state_dict() for k, m in self.demand.items()},
                "average": {str(k): m.state_dict() for k, m in self.averages.items()},
                "billing": self.billing.state_dict(),
            }

    def load_state(self, state: Mapping[str, Json]) -> None:
        with self._lock:
            demand = state.get("demand")
            for k, s in demand.items() if isinstance(demand, dict) else ():
                try:
                    if not isinstance(s, dict):
                        raise TypeError("not an object")
                    self._meter(SeriesKey.parse(k)).load_state(s)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("energy state: demand %s not restored: %s", k, exc)
            average = state.get("average")
            for k, s in average.items() if isinstance(average, dict) else ():
                try:
                    if not isinstance(s, dict):
                        raise TypeError("not an object")
                    self._average(SeriesKey.parse(k)).load_state(s)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("energy state: average %s not restored: %s", k, exc)
            billing = state.get("billing")
            if isinstance(billing, dict):
                try:
                    self.billing.load_state(billing)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("energy state: billing not restored: %s", exc)

    @property
    def billing_file(self) -> Path | None:
        """Billing count and history, written only when a period closes (the state file is written
        at every flush and stays small)."""
        return (
            None
            if self.state_file is None
            else self.state_file.with_name(self.state_file.stem + "-billing.json")
        )

    def _read_state_file(self) -> dict[str, Json]:
        return read_json(path for path in (self.state_file, self.billing_file) if path is not None)

    def _write_state_file(self, *, billing: bool = False) -> None:
        if self.state_file is None:
            return
        state = self.state_dict()
        book = state.pop("billing")
        write_json(self.state_file, state)
        path = self.billing_file
        next_ts = book.get("next_ts") if isinstance(book, dict) else None
        written = next_ts if isinstance(next_ts, float | int) else None
        if path is not None and (billing or written != self._billing_written or not path.exists()):
            write_json(path, {"billing": book})
            self._billing_written = written

    def close(self) -> None:
        """Persist demand and billing state (the runtime saves the registers itself)."""
        self._write_state_file(billing=True)


def _finite(v: object) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)
