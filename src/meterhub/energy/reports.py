"""Interval reports: energy, energy per tariff, cost, CO2 and maximum demand per interval.

The report of a circuit (metered or virtual) or a zone over local days ``from`` ≤ day < ``to`` at
15 min, hour, day or month intervals. Energy comes from the stored cumulative registers:

1. the register samples are made continuous by the register guard rules (so imported raw meter
   readings with wraps, resets and replacements give no spikes and no negative consumption);
2. the register is interpolated linearly at the edges of fixed **slots** (15 min, or the demand
   subinterval when shorter) — exact when the meter was read on the edge, an even spread of the
   counter's increase across an outage otherwise (flagged ``estimated``);
3. slots are summed into report intervals (local days of 23/25 h on DST changes), split by the
   tariff rate in force at each slot's start, priced with the tariff in force then (tariffs are
   effective-dated, :class:`~meterhub.energy.tariffs.TariffTimeline`: a later tariff change never
   re-prices them), multiplied by the CO2 factor; demand by the
   configured method (block or sliding windows, or the thermal response) is formed from slots and
   its maximum taken per interval and per rate, with the time it occurred.

Where raw values were already removed by retention, the 1-minute rollups stand in for them (see
:func:`fetch_slots`). An interval without any data on either side is ``None``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from meterhub.energy.config import EnergyConfig, HistoryError, energy_of
from meterhub.energy.registers import MeterChange, continuous
from meterhub.energy.tariffs import Co2Factor, SwitchInput, TariffSchedule, TariffTimeline, split_by_rate
from meterhub.energy.timeutil import Interval, interval_edges, local_iso, parse_time
from meterhub.energy.virtual import FormulaError, expand, zone_members
from meterhub.errors import InputError, NotFoundError
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, SeriesKey
from meterhub.model.topology import Phase, Purpose

__all__ = [
    "ReportError",
    "UnknownTargetError",
    "Slots",
    "build_intervals",
    "combine",
    "energy_report",
    "fetch_slots",
    "slots_from_samples",
    "to_csv",
]

IMPORT = Q.ENERGY_ACTIVE_IMPORT
EXPORT = Q.ENERGY_ACTIVE_EXPORT


class ReportError(InputError, ValueError):
    """A report that cannot be made (bad interval, dates or settings); the message says why."""


class UnknownTargetError(ReportError, NotFoundError):
    """The circuit or zone a report asks for does not exist (the message lists the known ones)."""

    http_status = NotFoundError.http_status


@dataclass
class Slots:
    """Energy of consecutive slots of one register.

    edges : slot boundaries, N+1 [s]. energy : per slot [Wh], NaN where no data covers it.
    estimated : per slot, True when interpolated across a gap or derived from estimated values.
    """

    edges: np.ndarray
    energy: np.ndarray
    estimated: np.ndarray

    @classmethod
    def empty(cls, edges: np.ndarray) -> Slots:
        n = len(edges) - 1
        return cls(edges, np.full(n, np.nan), np.zeros(n, dtype=bool))


def slots_from_samples(
    ts: np.ndarray,
    values: np.ndarray,
    edges: np.ndarray,
    *,
    quality: np.ndarray | None = None,
    gap: float = 900.0,
    max_power: float = 1e8,
    modulus: float | None = None,
    changes: Sequence[MeterChange] = (),
) -> Slots:
    """Slot energies from register samples (ts [s], values [Wh]) — pure.

    A slot is covered when data exist on both sides of it (or inside it); partially covered slots
    (the series starts or ends inside) are estimated.
    """
    edges = np.asarray(edges, dtype=np.float64)
    ts = np.asarray(ts, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if quality is not None:
        keep = np.asarray(quality) < Quality.INVALID
        ts, values, q = ts[keep], values[keep], np.asarray(quality)[keep]
    else:
        q = np.zeros(ts.shape, dtype=np.int64)
    order = np.argsort(ts, kind="stable")
    ts, values, q = ts[order], values[order], q[order]
    flagged = {float(t) for t in ts[q >= Quality.ESTIMATED]}
    t, v, est = continuous(ts, values, gap=gap, max_power=max_power, modulus=modulus, changes=changes)
    if t.size == 0:
        return Slots.empty(edges)
    if flagged:
        est = est | np.isin(t, np.array(sorted(flagged)))
    e_at = np.interp(edges, t, v)
    energy = np.diff(e_at)
    lo, hi = edges[:-1], edges[1:]
    energy[(hi <= t[0]) | (lo >= t[-1])] = np.nan
    if t.size == 1:
        energy[:] = np.nan
    estimated = (lo < t[0]) & (hi > t[0]) | (lo < t[-1]) & (hi > t[-1])
    for i in np.flatnonzero(est):  # the step into sample i is not exact: its slots are estimated
        if i == 0:
            continue
        a = int(np.searchsorted(hi, t[i - 1], side="right"))
        b = int(np.searchsorted(lo, t[i], side="left"))
        estimated[a:b] = True
    return Slots(edges, energy, estimated & np.isfinite(energy))


def fetch_slots(
    storage: Any, key: SeriesKey, edges: np.ndarray, energy: EnergyConfig, tz: str = "UTC"
) -> Slots:
    """Slots of one register series from storage; ``tz`` reads naive meter-change times.

    Raw values are used where kept. Before the oldest raw value (removed by retention) the 1-minute
    rollups stand in, and before those (``minute_rollup_retention_days``) the 15-minute ones: each
    bucket's ``last`` at the time it was read (``last_ts``) — exact on the slot edges for meters read
    on them, within the bucket's spread otherwise. Both are read as
    columns (:meth:`~meterhub.storage.base.Storage.history_columns`), not as a point object per value.
    """
    t0, t1 = float(edges[0]), float(edges[-1])
    pad = max(energy.gap, 3600.0)
    raw = storage.history_columns(key, t0 - pad, t1 + pad, "raw")
    ts, vals, qual = raw.ts, raw.last, raw.quality
    for resolution, width in (("1min", 60.0), ("15min", 900.0)):
        first = float(ts[0]) if ts.size else t1 + pad
        if first <= t0 - pad + width:
            break
        older = storage.history_columns(key, t0 - pad, first, resolution)
        keep = (older.count > 0) & (older.last_ts < first)
        ts = np.concatenate([older.last_ts[keep], ts])
        vals = np.concatenate([older.last[keep], vals])
        qual = np.concatenate([older.quality[keep], qual])
    if ts.size == 0 or ts[0] > t0:
        before = _value_before(storage, key, t0 - pad if ts.size == 0 else float(ts[0]) - 1e-3)
        if before is not None and (ts.size == 0 or before[0] < ts[0]):
            ts = np.concatenate([[before[0]], ts])
            vals = np.concatenate([[before[1]], vals])
            qual = np.concatenate([[0], qual])
    modulus = next(
        (r.modulus for r in energy.registers if (r.circuit, r.quantity) == (key.circuit, key.quantity)), None
    )
    changes = [
        MeterChange(parse_time(c.time, tz), c.old_final, c.new_initial)
        for c in energy.meter_changes
        if (c.circuit, c.quantity) == (key.circuit, key.quantity)
    ]
    return slots_from_samples(
        ts,
        vals,
        edges,
        quality=qual,
        gap=energy.gap,
        max_power=energy.max_power,
        modulus=modulus,
        changes=changes,
    )


def _value_before(storage: Any, key: SeriesKey, ts: float) -> tuple[float, float] | None:
    try:
        found = storage.value_at(key, ts)
    except NotImplementedError:
        return None
    return None if found is None else (float(found[0]), float(found[1]))


def combine(parts: Sequence[tuple[int, Slots]], edges: np.ndarray) -> Slots:
    """Σ coefficient × slots (virtual circuits and zones): NaN only where no member has data;
    estimated where any member is estimated or lacks data."""
    n = len(edges) - 1
    if not parts:
        return Slots.empty(edges)
    energy = np.zeros(n)
    anyv = np.zeros(n, dtype=bool)
    allv = np.ones(n, dtype=bool)
    est = np.zeros(n, dtype=bool)
    for coef, s in parts:
        ok = np.isfinite(s.energy)
        energy += coef * np.where(ok, s.energy, 0.0)
        anyv |= ok
        allv &= ok
        est |= s.estimated
    energy[~anyv] = np.nan
    return Slots(edges, energy, (est | ~allv) & anyv)


def member_slots(
    storage: Any, members: Sequence[tuple[str, int]], edges: np.ndarray, energy: EnergyConfig, tz: str
) -> tuple[Slots, Slots]:
    """Import and export slots of a signed sum of circuits.

    A plain sum (a zone, ``a + b``) adds imports and exports separately. A difference (``main − subs``)
    is formed on net energy, import − export, per slot, and split again into its positive part (import)
    and negative part (export): a PV sub-circuit exporting then lowers the unmetered rest instead of
    being ignored because its import register stands still.
    """

    def parts(quantity: str) -> list[tuple[int, Slots]]:
        return [
            (c, fetch_slots(storage, SeriesKey(m, quantity, Phase.TOTAL), edges, energy, tz))
            for m, c in members
        ]

    imp, exp = combine(parts(IMPORT), edges), combine(parts(EXPORT), edges)
    if all(c > 0 for _, c in members):
        return imp, exp
    net = imp.energy - np.nan_to_num(exp.energy)
    est = imp.estimated | exp.estimated
    with np.errstate(invalid="ignore"):
        return Slots(edges, np.where(net > 0, net, np.where(np.isnan(net), np.nan, 0.0)), est), Slots(
            edges, np.where(net < 0, -net, np.where(np.isnan(net), np.nan, 0.0)), est
        )


def slot_length(energy: EnergyConfig) -> float:
    """Slot length [s]: 15 min, or the demand subinterval when that is shorter."""
    d = energy.demand
    sub = d.interval * 60.0 / (d.subintervals if d.method == "sliding" else 1)
    return float(math.gcd(int(sub), 900))


def build_intervals(
    report_edges: np.ndarray,
    imp: Slots,
    exp: Slots,
    *,
    schedule: TariffSchedule | TariffTimeline,
    co2: Co2Factor,
    energy: EnergyConfig,
    tz: str,
    interval: Interval,
    switch: SwitchInput | Mapping[str, SwitchInput] | None = None,
    fixed_charges: bool = True,
) -> list[dict[str, Any]]:
    """The report rows — pure. ``imp``/``exp`` slots may start before ``report_edges[0]`` (demand
    look-back); slots must tile the report edges.

    ``cost`` is the energy at each rate's price (less export at the export price) of the tariff in force
    at each slot's start; with ``fixed_charges`` (the supply point: a grid circuit) it also carries the
    standing charge, shared over each local day, and on ``month`` rows the demand charge on the month's
    maximum demand — both from the tariffs in force, pro rata over the part of the interval each was.
    Per-rate keys follow when more than one rate exists: ``energy_active_import_<rate>``,
    ``max_demand_<rate>``, ``max_demand_time_<rate>``.
    """
    slot_edges = imp.edges
    starts = slot_edges[:-1]
    n_int = len(report_edges) - 1
    group = np.searchsorted(report_edges, starts, side="right") - 1
    inside = (group >= 0) & (group < n_int) & (starts < report_edges[-1])
    g = np.where(inside, group, 0)
    timeline = schedule if isinstance(schedule, TariffTimeline) else TariffTimeline.single(schedule)
    rate = timeline.rate_index(starts, switch)
    n_rates = max(timeline.n_rates, 1)
    e_imp = np.where(np.isfinite(imp.energy), imp.energy, 0.0)
    e_exp = np.where(np.isfinite(exp.energy), exp.energy, 0.0)
    w = inside.astype(np.float64)
    imp_rate = split_by_rate(e_imp * w, rate, g, n_rates, n_int)
    exp_rate = split_by_rate(e_exp * w, rate, g, n_rates, n_int)
    has_imp = np.zeros(n_int, dtype=bool)
    np.logical_or.at(has_imp, g[inside], np.isfinite(imp.energy[inside]))
    has_exp = np.zeros(n_int, dtype=bool)
    np.logical_or.at(has_exp, g[inside], np.isfinite(exp.energy[inside]))
    est = np.zeros(n_int, dtype=bool)
    partial = inside & ~np.isfinite(imp.energy)
    np.logical_or.at(est, g[inside], (imp.estimated | exp.estimated)[inside])
    np.logical_or.at(est, g[partial], True)
    factor = co2.at(starts)
    co2_kg = np.zeros(n_int)
    np.add.at(co2_kg, g[inside], (e_imp * factor / 1000.0)[inside])
    cost = np.zeros(n_int)
    np.add.at(cost, g[inside], timeline.energy_cost(starts, rate, e_imp, e_exp)[inside])
    mds, mds_t = _max_demand(imp, report_edges, energy, rate, n_rates)
    md = mds[0]
    if fixed_charges:
        cost = cost + timeline.standing_charge(report_edges)
        if interval is Interval.MONTH:
            cost = cost + np.nan_to_num(md) / 1000.0 * timeline.demand_charge(report_edges)
    iso = _IsoCache(tz)
    edge_text = [iso(t) for t in report_edges.tolist()]
    multi = timeline.rate_ids if timeline.n_rates > 1 else []
    imp_total = _nums(imp_rate.sum(axis=0), has_imp)
    exp_total = _nums(exp_rate.sum(axis=0), has_exp)
    per_rate = [_nums(imp_rate[r], has_imp) for r in range(len(multi))]
    costs = _nums(cost, has_imp | has_exp)
    co2s = _nums(co2_kg, has_imp)
    md_all = [_nums(mds[r], np.isfinite(mds[r])) for r in range(mds.shape[0])]
    md_when = [[iso(t) if math.isfinite(t) else None for t in mds_t[r].tolist()] for r in range(mds.shape[0])]
    rows: list[dict[str, Any]] = []
    for k in range(n_int):
        row: dict[str, Any] = {
            "start": edge_text[k],
            "end": edge_text[k + 1],
            Q.ENERGY_ACTIVE_IMPORT: imp_total[k],
            Q.ENERGY_ACTIVE_EXPORT: exp_total[k],
        }
        for r, rid in enumerate(multi):
            row[f"energy_active_import_{rid}"] = per_rate[r][k]
        row[Q.COST] = costs[k]
        row[Q.CO2] = co2s[k]
        row["max_demand"] = md_all[0][k]
        row["max_demand_time"] = md_when[0][k]
        for r, rid in enumerate(multi):
            row[f"max_demand_{rid}"] = md_all[1 + r][k]
            row[f"max_demand_time_{rid}"] = md_when[1 + r][k]
        row["estimated"] = bool(est[k])
        rows.append(row)
    return rows


class _IsoCache:
    """Local ISO text of timestamps, memoised (report edges and window ends repeat)."""

    def __init__(self, tz: str) -> None:
        self.tz = tz
        self.cache: dict[float, str] = {}

    def __call__(self, ts: float) -> str:
        text = self.cache.get(ts)
        if text is None:
            text = self.cache[ts] = local_iso(ts, self.tz)
        return text


def _nums(values: np.ndarray, valid: np.ndarray) -> list[float | None]:
    """Values rounded to 1e-9 (float noise away, so hand-checked totals print exactly); None where
    not ``valid``."""
    rounded = np.round(np.asarray(values, dtype=np.float64), 9).tolist()
    return [v if ok else None for v, ok in zip(rounded, np.asarray(valid, dtype=bool).tolist(), strict=True)]


def _num(x: float) -> float:
    """Round away float noise (1e-9 Wh) so hand-checked totals print exactly."""
    return float(round(float(x), 9))


def _max_demand(
    imp: Slots, report_edges: np.ndarray, energy: EnergyConfig, slot_rate: np.ndarray, n_rates: int
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum demand per report interval: overall and per tariff rate, by the configured method.

    block / sliding: windows of the demand interval T ending on (sub)interval boundaries; thermal: the
    exponential response at every slot end (:func:`_thermal_windows`). A value's rate is the one in
    force during its last slot (the window's last subinterval), as the live meter does. Returns
    ``(value [W], end [s])`` arrays of shape (1 + n_rates, n_intervals): row 0 over all rates, row
    1 + r for rate r; NaN where no complete window ended in the interval.
    """
    if energy.demand.method == "thermal":
        demand, t_end, rate = _thermal_windows(imp, energy.demand.interval * 60.0, slot_rate)
    else:
        demand, t_end, rate = _block_windows(imp, energy, slot_rate)
    n_int = len(report_edges) - 1
    md = np.full((1 + n_rates, n_int), np.nan)
    md_t = np.full((1 + n_rates, n_int), np.nan)
    grp = np.searchsorted(report_edges, t_end, side="left") - 1  # a window ending on an edge is the earlier's
    for j in range(demand.size):  # in time order, so the first of equal maxima keeps its time
        gi = int(grp[j])
        if not 0 <= gi < n_int:
            continue
        for row in (0, 1 + int(rate[j])):
            if not (md[row, gi] >= demand[j]):
                md[row, gi], md_t[row, gi] = demand[j], t_end[j]
    return md, md_t


def _block_windows(
    imp: Slots, energy: EnergyConfig, slot_rate: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block or sliding demand [W] of every complete window, its end [s] and rate index."""
    d = energy.demand
    T = d.interval * 60.0
    step = T / d.subintervals if d.method == "sliding" else T
    edges = imp.edges
    e = np.where(np.isfinite(imp.energy), imp.energy, np.nan)
    cum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(e))])
    bad = np.concatenate([[0], np.cumsum(~np.isfinite(e))])
    ends_idx = np.flatnonzero(np.isclose(np.mod(edges, step), 0.0) | np.isclose(np.mod(edges, step), step))
    slot = float(edges[1] - edges[0]) if len(edges) > 1 else 900.0
    k = int(round(T / slot))
    ends_idx = ends_idx[ends_idx >= k]
    ends_idx = ends_idx[(bad[ends_idx] - bad[ends_idx - k]) == 0]
    demand = (cum[ends_idx] - cum[ends_idx - k]) * 3600.0 / T
    return demand, edges[ends_idx], slot_rate[ends_idx - 1]


def _thermal_windows(
    imp: Slots, interval: float, slot_rate: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thermal demand [W] at every slot end [s] with the rate of that slot.

    The response of a thermal (lagged) demand meter, a first-order lag that reaches 90 % of a step in
    the demand interval T [s] — the convention of thermal demand meters in ANSI C12.1 (the demand
    interval is the time to indicate 90 % of a constant load suddenly applied), τ = T / ln 10. Power is the slot's mean power, held
    over the slot, so the recursion over a slot of length h is exact:
    D_j = D_{j−1} + (P_j − D_{j−1}) · (1 − 10^(−h/T)). A response rises or falls monotonically within
    a slot, so its maximum lies on a slot end. The lag starts from rest (0 W) at the first slot with
    data and after a slot without data; a value counts once the last T of slots all have data (as a
    block window needs its whole interval). The report looks back 3 T (:func:`_slot_grid`), so what
    came before the look-back weighs 10⁻³ at the report start.
    """
    edges = imp.edges
    if len(edges) < 2:
        empty = np.empty(0)
        return empty, empty, np.empty(0, dtype=np.int64)
    h = float(edges[1] - edges[0])
    a = 1.0 - 10.0 ** (-h / interval)
    k = max(int(round(interval / h)), 1)
    power = (imp.energy * 3600.0 / h).tolist()
    out = np.full(len(power), np.nan)
    d, run = 0.0, 0
    for j, p in enumerate(power):  # a first-order recursion: each value depends on the previous one
        if p != p:  # NaN: no data in this slot
            d, run = 0.0, 0
            continue
        d += (p - d) * a
        run += 1
        if run >= k:
            out[j] = d
    ok = np.flatnonzero(np.isfinite(out))
    return out[ok], edges[1:][ok], slot_rate[ok]


def energy_report(
    storage: Any,
    config: Any,
    *,
    start: date,
    end: date,
    interval: Interval | str,
    circuit: str | None = None,
    zone: str | None = None,
    timezone: str | None = None,
    base_dirs: Sequence[Path | None] = (),
) -> dict[str, Any]:
    """``{"intervals": [...]}`` for a circuit (metered or virtual) or a zone; see the module doc.

    ``base_dirs``: folders where a relative ``energy.co2.file`` is looked up (site file, data folder).
    """
    interval = Interval(interval)
    if interval not in (Interval.MIN15, Interval.HOUR, Interval.DAY, Interval.MONTH):
        raise ReportError(f"interval {interval.value!r} is not offered; use 15min, hour, day or month")
    if (circuit is None) == (zone is None):
        raise ReportError("give exactly one of a circuit or a zone")
    energy = energy_of(config) if config is not None else EnergyConfig()
    tz = timezone or (config.site.timezone if config is not None else "UTC")
    report_edges = interval_edges(start, end, interval, tz)
    slot_edges = _slot_grid(report_edges, energy)
    t0 = float(slot_edges[0])
    members = _members(storage, config, energy, circuit=circuit, zone=zone)
    imp, exp = member_slots(storage, members, slot_edges, energy, tz)
    try:
        timeline = TariffTimeline.of(energy, tz)
    except HistoryError as exc:
        raise ReportError(f"energy.{'.'.join(map(str, exc.loc))}: {exc}") from None
    site_factor = config.site.co2_factor if config is not None else 0.0
    try:
        co2 = Co2Factor.from_settings(energy.co2, site_factor, base_dirs, tz)
    except HistoryError as exc:
        raise ReportError(f"energy.co2.{'.'.join(map(str, exc.loc))}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"energy.co2.file: {exc}") from None
    switch: dict[str, SwitchInput] = {}
    for point in timeline.switch_inputs:
        key = SeriesKey(point, Q.DIGITAL_INPUT, Phase.TOTAL)
        cols = storage.history_columns(key, t0 - 86400.0 * 31, float(slot_edges[-1]), "raw")
        switch[point] = (cols.ts, cols.last)

    grid = {c.id for c in config.circuits if c.purpose is Purpose.GRID} if config is not None else set()
    fixed = circuit is not None and circuit in grid
    rows = build_intervals(
        report_edges,
        imp,
        exp,
        schedule=timeline,
        co2=co2,
        energy=energy,
        tz=tz,
        interval=interval,
        switch=switch,
        fixed_charges=fixed,
    )
    return {"intervals": rows}


def _slot_grid(report_edges: np.ndarray, energy: EnergyConfig) -> np.ndarray:
    """Slot edges covering the report plus a look-back [s]: one demand interval (block, sliding),
    three for the thermal lag to settle to 0.1 %."""
    slot = slot_length(energy)
    look_back = 3 if energy.demand.method == "thermal" else 1
    t0 = float(report_edges[0]) - look_back * energy.demand.interval * 60.0
    t0 -= t0 % slot
    n_slots = int(math.ceil((float(report_edges[-1]) - t0) / slot))
    return t0 + slot * np.arange(n_slots + 1, dtype=np.float64)


def _per_interval(slots: Slots, report_edges: np.ndarray) -> np.ndarray:
    """Sum slot energies into report intervals [Wh]; NaN where no slot has data."""
    starts = slots.edges[:-1]
    g = np.searchsorted(report_edges, starts, side="right") - 1
    inside = (g >= 0) & (g < len(report_edges) - 1)
    n = len(report_edges) - 1
    out = np.zeros(n)
    has = np.zeros(n, dtype=bool)
    ok = inside & np.isfinite(slots.energy)
    np.add.at(out, g[ok], slots.energy[ok])
    has[g[ok]] = True
    out[~has] = np.nan
    return out


def _members(
    storage: Any, config: Any, energy: EnergyConfig, *, circuit: str | None, zone: str | None
) -> list[tuple[str, int]]:
    formulas = {v.id: v.formula for v in energy.virtual}
    try:
        if zone is not None:
            if config is None:
                raise ReportError("a zone report needs the site file (--config) that defines the zones")
            names = zone_members(config, zone)
            if not names:
                zones = sorted(
                    {c.zone for c in config.circuits if c.zone} | {v.zone for v in energy.virtual if v.zone}
                )
                raise UnknownTargetError(
                    f"no circuit is in zone {zone!r}; known zones: {', '.join(zones) or '(none)'}"
                )
            total: dict[str, int] = {}
            for name in names:
                for leaf, c in expand(name, formulas).items():
                    total[leaf] = total.get(leaf, 0) + c
            return [(k, v) for k, v in total.items() if v]
        coef = expand(circuit or "", formulas)
    except FormulaError as exc:
        raise ReportError(str(exc)) from None
    known = {c.id for c in config.circuits} if config is not None else set()
    stored = {k.circuit for k in storage.series()}
    for leaf in coef:
        if leaf not in known and leaf not in stored:
            every = sorted(known | stored | set(formulas))
            raise UnknownTargetError(
                f"unknown circuit {leaf!r}; known circuits: {', '.join(every) or '(none)'}"
            )
    return list(coef.items())


def to_csv(report: dict[str, Any]) -> str:
    """The report as CSV: one header row of the interval keys, one row per interval."""
    rows = report["intervals"]
    out = io.StringIO()
    if not rows:
        return ""
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {k: ("" if v is None else str(v).lower() if isinstance(v, bool) else v) for k, v in r.items()}
        )
    return out.getvalue()
