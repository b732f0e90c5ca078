"""Energy analysis for facility managers (issue 16): flow (Sankey), period comparison, rankings, heat map.

Everything here is computed from the **rollups** (:mod:`meterhub.storage.rollup`), not from raw values,
so a year of 100 circuits is a few hundred thousand buckets:

* energy per bucket [Wh] is the increase of the cumulative register (``energy_active_import`` /
  ``energy_active_export``) from the last value of the previous bucket to the last value of this one
  (the rollup columns ``last``; before the period, the last value before it, or the first value when the
  series begins inside the period). A step belongs to the bucket of its later reading: a register read
  every 15 min puts the step 23:45 → 00:00 into the 00:00 bucket. A register going backwards (reset,
  replacement) adds 0, never a negative amount, as the rollup ``delta`` does;
* buckets are hours (UTC-aligned 1 h rollups, which are local hours in every zone whose offset is a
  whole number of hours), or quarter hours in zones such as Asia/Kolkata (+05:30); when the prices and
  the CO2 factor are the same all through every local day of the period (a flat tariff, changes at
  midnight) the day rollups give the same totals from 24 × fewer rows and are used instead; otherwise
  (time of use) the hours of each local day are grouped into runs at the same prices and CO2 factor —
  a day and tariff band, 23 or 25 hours on DST days — whose energy the database adds up from the
  rollup ``delta`` (:meth:`~meterhub.storage.base.Storage.delta_sums`: a few sums per day and series
  instead of 24 rows; equal to the hourly differences for a register that never goes backwards). Not
  for the heat map, the hourly series of a day comparison and the 15-minute peaks, which need buckets;
* cost is each bucket's energy at the rate and price in force at the bucket's start
  (:class:`~meterhub.energy.tariffs.TariffTimeline`, effective-dated), CO2 the energy times the CO2
  factor then (``site.co2_factor`` / ``energy.co2``) [kg]. Standing and demand charges are not
  energy flows and are left out (the energy report has them for the grid circuit).

Days, hours and months are the **site's** (``site.timezone``): a local day lasts 23 or 25 h on a DST
change, the heat map has no 02:00 on the spring day and sums both 02:00 hours on the autumn day.

Site balance follows :mod:`meterhub.energy.balance`: consumption = Σ grid import − Σ grid export +
Σ generation; the **unmetered** rest is consumption − Σ consumable circuits (the definition of the
``unmetered`` system alarm). Virtual circuits are left out of the flow (they re-count metered energy).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from meterhub.energy.config import HistoryError, energy_of
from meterhub.energy.reports import ReportError, UnknownTargetError
from meterhub.energy.tariffs import Co2Factor, SwitchInput, TariffTimeline
from meterhub.energy.timeutil import (
    Interval,
    interval_edges,
    local_date,
    local_datetime,
    local_iso,
    local_midnight,
)
from meterhub.energy.virtual import FormulaError, expand
from meterhub.model.quantities import Q
from meterhub.model.readings import SeriesKey
from meterhub.model.topology import Phase, Purpose

__all__ = [
    "Analysis",
    "PERIODS",
    "RANK_BY",
    "compare",
    "compare_csv",
    "flow",
    "flow_csv",
    "heatmap",
    "heatmap_csv",
    "period_bounds",
    "ranking",
    "ranking_csv",
    "rows_csv",
]

#: Comparison periods and the bucket their series is given in.
PERIODS: dict[str, Interval] = {
    "day": Interval.HOUR,
    "week": Interval.DAY,
    "month": Interval.DAY,
    "year": Interval.MONTH,
}

#: What a ranking can be ordered by: energy [kWh], cost [currency], CO2 [kg], peak 15-min demand [kW].
RANK_BY = ("energy", Q.COST, Q.CO2, "peak")


def _r(x: float, digits: int = 6) -> float:
    """Round away float noise so hand-checked values print exactly."""
    return float(round(float(x), digits)) + 0.0


@dataclass
class Analysis:
    """Bucket energies of one period [local days ``start`` ≤ day < ``end``] with cost and CO2.

    edges : bucket boundaries [s, UTC], N+1. Energies are [Wh] per bucket; missing buckets are 0
    (``covered`` says which leaf series had any bucket at all).
    """

    storage: Any
    config: Any
    start: date
    end: date
    base_dirs: list[Path | None] = field(default_factory=list)
    tz: str = ""
    hourly: bool = False
    edges: np.ndarray = field(init=False)
    resolution: str = field(init=False)
    #: buckets are runs of rollup buckets summed in the database (:meth:`_coarsen`)
    summed: bool = field(default=False, init=False)
    _cache: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ReportError(f"'to' ({self.end}) must be after 'from' ({self.start}); 'to' is exclusive")
        self.tz = self.tz or self.config.site.timezone
        self.energy = energy_of(self.config)
        try:
            self.timeline = TariffTimeline.of(self.energy, self.tz)
        except HistoryError as exc:
            raise ReportError(f"energy.{'.'.join(map(str, exc.loc))}: {exc}") from None
        try:
            co2 = Co2Factor.from_settings(
                self.energy.co2, self.config.site.co2_factor, self.base_dirs, self.tz
            )
        except HistoryError as exc:
            raise ReportError(f"energy.co2.{'.'.join(map(str, exc.loc))}: {exc}") from None
        except (OSError, ValueError) as exc:
            raise ReportError(f"energy.co2.file: {exc}") from None
        switch: dict[str, SwitchInput] = {}
        for point in self.timeline.switch_inputs:
            key = SeriesKey(point, Q.DIGITAL_INPUT, Phase.TOTAL)
            t0 = local_midnight(self.start, self.tz)
            cols = self.storage.history_columns(
                key, t0 - 86400.0 * 31, local_midnight(self.end, self.tz), "raw"
            )
            switch[point] = (cols.ts, cols.last)
        hours = interval_edges(self.start, self.end, Interval.HOUR, self.tz)
        if np.all(np.mod(hours, 3600.0) == 0.0):
            self._grid(hours, "1h", co2, switch)
        else:
            self._grid(interval_edges(self.start, self.end, Interval.MIN15, self.tz), "15min", co2, switch)
        if not self.hourly:
            self._coarsen(co2, switch)

    def _grid(
        self, edges: np.ndarray, resolution: str, co2: Co2Factor, switch: dict[str, SwitchInput]
    ) -> None:
        """Use buckets ``edges`` [s] of rollup ``resolution``; rates, prices and CO2 at bucket starts."""
        self.edges, self.resolution = edges, resolution
        self.starts = edges[:-1]
        self.factor = co2.at(self.starts)
        self.rate = self.timeline.rate_index(self.starts, switch)
        self.price_import, self.price_export = self.timeline.prices(self.starts, self.rate)
        self._cache.clear()

    def _coarsen(self, co2: Co2Factor, switch: dict[str, SwitchInput]) -> None:
        """Fewer, longer buckets with the same totals: runs of buckets within one local day whose
        import and export price and CO2 factor are the same (a day and tariff band). Where every local
        day is one run (a flat tariff, changes at midnight) the day rollups give them from 24 × fewer
        rows; otherwise the database sums the bucket deltas per run (:meth:`Storage.delta_sums`)."""
        days = interval_edges(self.start, self.end, Interval.DAY, self.tz)
        day = np.searchsorted(days, self.starts, side="right") - 1
        change = np.ones(len(self.starts), dtype=np.bool_)
        change[1:] = day[1:] != day[:-1]
        for arr in (self.price_import, self.price_export, self.factor):
            change[1:] = change[1:] | (arr[1:] != arr[:-1])
        first = np.flatnonzero(change)
        if len(first) == len(days) - 1 and not switch and self.storage.timezone == self.tz:
            self._grid(days, "1d", co2, switch)
            return
        # Constant within each run: the values at its first bucket hold for all of it.
        self.edges = np.append(self.edges[first], self.edges[-1])
        self.starts = self.edges[:-1]
        self.factor, self.rate = self.factor[first], self.rate[first]
        self.price_import, self.price_export = self.price_import[first], self.price_export[first]
        self.summed = True
        self._cache.clear()

    # -- energies -------------------------------------------------------------------------------
    def leaf(self, circuit: str, quantity: str) -> np.ndarray:
        """Energy per bucket of one metered register [Wh] (0 where no rollup bucket exists)."""
        hit = self._cache.get((circuit, quantity))
        if hit is not None:
            return hit
        if self.summed:
            return self._summed_leaf(circuit, quantity)
        out = np.zeros(len(self.starts))
        key = SeriesKey(circuit, quantity, Phase.TOTAL)
        t0, t1 = float(self.edges[0]), float(self.edges[-1])
        cols = self.storage.history_columns(key, t0, t1, self.resolution)
        if len(cols):
            before = self.storage.value_at(key, t0 - 1e-3)
            if before is not None:
                base = float(before[1])
            else:  # the series begins in the period: count from its first value
                first = int(np.searchsorted(self.edges, cols.ts[0], side="right"))
                end = float(self.edges[min(first, len(self.edges) - 1)])
                raw = self.storage.history_columns(key, float(cols.ts[0]), end, "raw")
                base = float(raw.last[0]) if len(raw) else np.nan
            step = np.diff(np.concatenate([[base], cols.last]))
            step = np.where(np.isfinite(step), np.maximum(step, 0.0), 0.0)  # a reset adds 0, never < 0
            i = np.searchsorted(self.edges, cols.ts, side="right") - 1
            ok = (i >= 0) & (i < len(out))
            np.add.at(out, i[ok], step[ok])
        self._cache[(circuit, quantity)] = out
        return out

    def _summed_leaf(self, circuit: str, quantity: str) -> np.ndarray:
        """Energy per run of buckets [Wh]: the rollup deltas summed in the database, fetched for the
        import and export registers of every circuit of the site in one call (a flow or a ranking
        needs nearly all of them). For a register that never goes backwards this equals the hourly
        difference of ``last`` values; at a reset it keeps the increase after the reset in its
        bucket, as the rollup ``delta`` does."""
        keys = [
            SeriesKey(c.id, q, Phase.TOTAL)
            for c in self.config.circuits
            for q in (Q.ENERGY_ACTIVE_IMPORT, Q.ENERGY_ACTIVE_EXPORT)
        ]
        key = SeriesKey(circuit, quantity, Phase.TOTAL)
        if key not in keys:
            keys.append(key)
        for k, wh in self.storage.delta_sums(keys, self.edges, self.resolution).items():
            self._cache[(k.circuit, k.quantity)] = wh
        return self._cache[(circuit, quantity)]

    def circuit(self, cid: str) -> tuple[np.ndarray, np.ndarray]:
        """Import and export per bucket [Wh] of a metered or virtual circuit (a difference is formed on
        net energy and split again, as :func:`meterhub.energy.reports.member_slots` does)."""
        formulas = {v.id: v.formula for v in self.energy.virtual}
        try:
            coef = expand(cid, formulas)
        except FormulaError as exc:
            raise ReportError(str(exc)) from None
        known = {c.id for c in self.config.circuits}
        for leaf in coef:
            if leaf not in known:
                every = sorted(known | set(formulas))
                raise UnknownTargetError(f"unknown circuit {leaf!r}; known circuits: {', '.join(every)}")
        imp = sum(
            (c * self.leaf(m, Q.ENERGY_ACTIVE_IMPORT) for m, c in coef.items()), np.zeros(len(self.starts))
        )
        exp = sum(
            (c * self.leaf(m, Q.ENERGY_ACTIVE_EXPORT) for m, c in coef.items()), np.zeros(len(self.starts))
        )
        if all(c > 0 for c in coef.values()):
            return imp, exp
        net = imp - exp
        return np.maximum(net, 0.0), np.maximum(-net, 0.0)

    def generation(self, cid: str) -> np.ndarray:
        """Generation of a renewable circuit [Wh]: its export, or its import when it has no export
        (an inverter metered as a load), as :mod:`meterhub.energy.balance` takes it."""
        gen = self.leaf(cid, Q.ENERGY_ACTIVE_EXPORT)
        return gen if gen.any() else self.leaf(cid, Q.ENERGY_ACTIVE_IMPORT)

    def value(self, wh: np.ndarray) -> np.ndarray:
        """Cost of energy per bucket at the import price then [currency]."""
        return np.asarray(wh * self.price_import / 1000.0, dtype=np.float64)

    def co2(self, wh: np.ndarray) -> np.ndarray:
        """CO2 per bucket [kg]."""
        return np.asarray(wh * self.factor / 1000.0, dtype=np.float64)

    def summary(self, wh: np.ndarray) -> dict[str, float]:
        """Totals of a bucket series: ``kwh`` [kWh], ``cost`` [currency], ``co2`` [kg]."""
        return {
            "kwh": _r(wh.sum() / 1000.0),
            Q.COST: _r(self.value(wh).sum()),
            Q.CO2: _r(self.co2(wh).sum()),
        }

    def by_purpose(self, purpose: Purpose) -> list[Any]:
        return [c for c in self.config.circuits if c.purpose is purpose]

    def site(self) -> dict[str, np.ndarray]:
        """Grid import, grid export, generation and consumption per bucket [Wh]."""
        zero = np.zeros(len(self.starts))
        imp = sum((self.leaf(c.id, Q.ENERGY_ACTIVE_IMPORT) for c in self.by_purpose(Purpose.GRID)), zero)
        exp = sum((self.leaf(c.id, Q.ENERGY_ACTIVE_EXPORT) for c in self.by_purpose(Purpose.GRID)), zero)
        gen = sum((self.generation(c.id) for c in self.by_purpose(Purpose.RENEWABLE)), zero)
        return {"import": imp, "export": exp, "generation": gen, "consumption": imp - exp + gen}

    def net_cost(self, site: dict[str, np.ndarray]) -> np.ndarray:
        """What the grid energy cost per bucket: import at the import price less export at the export
        price [currency]."""
        return np.asarray(
            (site["import"] * self.price_import - site["export"] * self.price_export) / 1000.0,
            dtype=np.float64,
        )

    def zones(self) -> dict[str, list[str]]:
        """Consumable circuits per zone ("" for circuits without one), in site-file order."""
        out: dict[str, list[str]] = {}
        for c in self.by_purpose(Purpose.CONSUMABLE):
            out.setdefault(c.zone or "", []).append(c.id)
        return out


def flow(
    storage: Any, config: Any, *, start: date, end: date, base_dirs: list[Path | None] | None = None
) -> dict[str, Any]:
    """The energy flow of a period as Sankey nodes and links.

    grid (import) and each renewable circuit → ``site`` → each zone → its circuits; ``site`` → the
    circuits without a zone, ``unmetered`` and ``export``. Every node and link has ``kwh``, ``cost``
    (energy at the import price in force; the export link at the export price) and ``co2`` [kg];
    link ``value`` is kWh (what the chart draws). A negative unmetered rest (sub-meters adding up to
    more than the site used) is drawn as 0 and reported in ``balance.unmetered_kwh``.
    """
    a = Analysis(storage, config, start, end, base_dirs or [])
    site = a.site()
    nodes: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []

    def node(nid: str, name: str, kind: str, wh: np.ndarray) -> None:
        nodes.append({"id": nid, "name": name, "kind": kind, **a.summary(wh)})

    def link(src: str, dst: str, wh: np.ndarray, cost: float | None = None) -> None:
        s = a.summary(wh)
        if cost is not None:
            s[Q.COST] = _r(cost)
        links.append({"source": src, "target": dst, "value": s["kwh"], **s})

    node("grid", "Grid", "grid", site["import"])
    link("grid", "site", site["import"])
    for c in a.by_purpose(Purpose.RENEWABLE):
        gen = a.generation(c.id)
        node(f"circuit:{c.id}", c.name or c.id, "renewable", gen)
        link(f"circuit:{c.id}", "site", gen)
    node("site", config.site.name or "Site", "site", site["import"] + site["generation"])
    metered = np.zeros(len(a.starts))
    for zone, members in a.zones().items():
        zone_wh = np.zeros(len(a.starts))
        for cid in members:
            imp, _ = a.circuit(cid)
            zone_wh = zone_wh + imp
            c = next(x for x in config.circuits if x.id == cid)
            node(f"circuit:{cid}", c.name or cid, "circuit", imp)
            link(f"zone:{zone}" if zone else "site", f"circuit:{cid}", imp)
        if zone:
            node(f"zone:{zone}", zone, "zone", zone_wh)
            link("site", f"zone:{zone}", zone_wh)
        metered = metered + zone_wh
    rest = site["consumption"] - metered
    rest_kwh = rest.sum() / 1000.0
    node("unmetered", "Unmetered", "unmetered", np.maximum(rest, 0.0) if rest_kwh > 0 else rest * 0.0)
    link("site", "unmetered", np.maximum(rest, 0.0) if rest_kwh > 0 else rest * 0.0)
    export_value = float((site["export"] * a.price_export).sum() / 1000.0)
    node("export", "Grid export", "export", site["export"])
    nodes[-1][Q.COST] = _r(export_value)
    link("site", "export", site["export"], cost=export_value)
    links = [x for x in links if x["value"] > 0]
    used = {x["source"] for x in links} | {x["target"] for x in links} | {"grid", "site"}
    nodes = [n for n in nodes if n["id"] in used]
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "timezone": a.tz,
        "currency": config.site.currency,
        "nodes": nodes,
        "links": links,
        "balance": {
            "grid_import_kwh": _r(site["import"].sum() / 1000.0),
            "grid_export_kwh": _r(site["export"].sum() / 1000.0),
            "generation_kwh": _r(site["generation"].sum() / 1000.0),
            "consumption_kwh": _r(site["consumption"].sum() / 1000.0),
            "metered_kwh": _r(metered.sum() / 1000.0),
            "unmetered_kwh": _r(rest_kwh),
            "grid_cost": _r(a.net_cost(site).sum()),
        },
    }


def period_bounds(period: str, at: date) -> tuple[date, date]:
    """Local days [start, end) of the day, ISO week (Monday first), month or year containing ``at``."""
    if period == "day":
        return at, at + timedelta(days=1)
    if period == "week":
        first = at - timedelta(days=at.weekday())
        return first, first + timedelta(days=7)
    if period == "month":
        first = at.replace(day=1)
        nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
        return first, nxt
    if period == "year":
        return date(at.year, 1, 1), date(at.year + 1, 1, 1)
    raise ReportError(f"period {period!r} is not one of {', '.join(PERIODS)}")


def _year_before(day: date) -> date:
    """The same date a year earlier (29 February → 28 February)."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


def compare(
    storage: Any,
    config: Any,
    *,
    period: str,
    at: date,
    base_dirs: list[Path | None] | None = None,
) -> dict[str, Any]:
    """This period against the previous one and the same one last year.

    ``periods``: ``this``, ``previous``, ``last_year`` with their days. ``total``: site consumption
    [kWh] and what the grid energy cost (import less export credit) per period. ``rows``: per zone and
    consumable circuit, kWh and cost per period. ``series``: per period the consumption per bucket
    (hours of a day, days of a week or month, months of a year) by offset from the period's start, so
    bucket k of each period overlay.
    """
    if period not in PERIODS:
        raise ReportError(f"period {period!r} is not one of {', '.join(PERIODS)}")
    cur = period_bounds(period, at)
    prev = period_bounds(period, cur[0] - timedelta(days=1))
    if period == "week":
        # the same weekdays last year: the week 52 weeks back
        ly = period_bounds(period, cur[0] - timedelta(weeks=52))
    else:
        ly = period_bounds(period, _year_before(cur[0]))
    bucket = PERIODS[period]
    out_periods: dict[str, Any] = {}
    rows: dict[str, dict[str, Any]] = {}
    series: dict[str, list[float]] = {}
    total: dict[str, Any] = {}
    for name, (s, e) in (("this", cur), ("previous", prev), ("last_year", ly)):
        a = Analysis(storage, config, s, e, base_dirs or [], hourly=period == "day")
        out_periods[name] = {"from": s.isoformat(), "to": e.isoformat()}
        site = a.site()
        total[name] = {"kwh": _r(site["consumption"].sum() / 1000.0), Q.COST: _r(a.net_cost(site).sum())}
        for zone, members in a.zones().items():
            zone_wh = np.zeros(len(a.starts))
            for cid in members:
                imp, _ = a.circuit(cid)
                zone_wh = zone_wh + imp
                c = next(x for x in config.circuits if x.id == cid)
                row = rows.setdefault(
                    f"circuit:{cid}", {"id": cid, "name": c.name or cid, "kind": "circuit", "zone": zone}
                )
                row[name] = {"kwh": _r(imp.sum() / 1000.0), Q.COST: _r(a.value(imp).sum())}
            if zone:
                row = rows.setdefault(
                    f"zone:{zone}", {"id": zone, "name": zone, "kind": "zone", "zone": zone}
                )
                row[name] = {"kwh": _r(zone_wh.sum() / 1000.0), Q.COST: _r(a.value(zone_wh).sum())}
        b_edges = interval_edges(s, e, bucket, a.tz)
        g = np.searchsorted(b_edges, a.starts, side="right") - 1
        per = np.zeros(len(b_edges) - 1)
        np.add.at(per, g, site["consumption"])
        series[name] = [_r(v / 1000.0) for v in per.tolist()]
    for row in rows.values():
        c, p, y = (row[k][Q.COST] for k in ("this", "previous", "last_year"))
        row["change_previous"] = _r(c - p, 6)
        row["change_last_year"] = _r(c - y, 6)
    return {
        "period": period,
        "bucket": bucket.value,
        "timezone": config.site.timezone,
        "currency": config.site.currency,
        "periods": out_periods,
        "total": total,
        "rows": list(rows.values()),
        "series": series,
    }


def ranking(
    storage: Any,
    config: Any,
    *,
    start: date,
    end: date,
    by: str = "energy",
    base_dirs: list[Path | None] | None = None,
) -> dict[str, Any]:
    """Consumable and virtual circuits and zones ranked by energy [kWh], cost, CO2 [kg] or peak demand
    (the highest 15-minute mean power [kW], from the 15-minute rollups: meaningful for registers read
    at least every 15 min; computed only for ``by="peak"``, else ``None``), highest first; ``share`` is
    the part of the total of its kind [0 … 1] (None for peaks, which do not add up)."""
    if by not in RANK_BY:
        raise ReportError(f"by={by!r} is not one of {', '.join(RANK_BY)}")
    a = Analysis(storage, config, start, end, base_dirs or [])
    q = Analysis(storage, config, start, end, base_dirs or [], hourly=True) if by == "peak" else None
    if q is not None and q.resolution != "15min":
        q.edges = interval_edges(start, end, Interval.MIN15, a.tz)
        q.starts = q.edges[:-1]
        q.resolution = "15min"
        q._cache.clear()
    key = {"energy": "kwh", Q.COST: Q.COST, Q.CO2: Q.CO2, "peak": "peak_kw"}[by]

    def peak(quarter_hours: np.ndarray) -> float | None:
        """The highest 15-min mean power [kW] of quarter-hour energies [Wh]."""
        return None if q is None else _r(quarter_hours.max(initial=0) * 4 / 1000.0)

    items: list[dict[str, Any]] = []
    zone_sum: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    ids = [(c.id, c.name or c.id, c.zone or "") for c in a.by_purpose(Purpose.CONSUMABLE)]
    ids += [(v.id, getattr(v, "name", "") or v.id, "") for v in a.energy.virtual]
    for cid, name, zone in ids:
        imp, _ = a.circuit(cid)
        imp15 = q.circuit(cid)[0] if q is not None else np.zeros(1)
        items.append(
            {
                "id": cid,
                "name": name,
                "kind": "circuit",
                **a.summary(imp),
                "peak_kw": peak(imp15),
            }
        )
        if zone:
            h, f = zone_sum.get(zone, (np.zeros(len(a.starts)), np.zeros(len(imp15))))
            zone_sum[zone] = (h + imp, f + imp15)
    for zone, (h, f) in zone_sum.items():
        items.append(
            {
                "id": zone,
                "name": zone,
                "kind": "zone",
                **a.summary(h),
                "peak_kw": peak(f),
            }
        )
    for kind in ("circuit", "zone"):
        total = sum(x[key] for x in items if x["kind"] == kind) if by != "peak" else 0.0
        for x in items:
            if x["kind"] == kind:
                x["share"] = _r(x[key] / total) if total else None
    items.sort(key=lambda x: (x["kind"] != "zone", -x[key], x["id"]))
    for kind in ("zone", "circuit"):
        for rank, x in enumerate((x for x in items if x["kind"] == kind), start=1):
            x["rank"] = rank
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "by": by,
        "timezone": a.tz,
        "currency": config.site.currency,
        "rows": items,
    }


def heatmap(storage: Any, config: Any, *, circuit: str, start: date, end: date) -> dict[str, Any]:
    """Energy [kWh] of a circuit by local hour (0 … 23) × local day in the site's time zone.

    ``values[d][h]``: kWh of hour h on day d; ``None`` for the hour that does not exist on the spring
    DST day; the autumn day's repeated hour holds both. ``cells``: ``[h, d, kWh]`` triples (ECharts).
    """
    if (end - start).days > 800:
        raise ReportError(f"a heat map spans at most 800 days; {start} … {end} is {(end - start).days}")
    a = Analysis(storage, config, start, end, hourly=True)
    imp, _ = a.circuit(circuit)
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days)]
    values: list[list[float | None]] = [[None] * 24 for _ in days]
    for t, wh in zip(a.starts.tolist(), imp.tolist(), strict=True):
        local = local_datetime(t, a.tz)
        d = (local.date() - start).days
        cur = values[d][local.hour]
        values[d][local.hour] = (cur or 0.0) + wh / 1000.0
    values = [[None if v is None else _r(v) for v in row] for row in values]
    cells = [[h, d, v] for d, row in enumerate(values) for h, v in enumerate(row) if v is not None]
    return {
        "circuit": circuit,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "timezone": a.tz,
        "days": days,
        "hours": list(range(24)),
        "values": values,
        "cells": cells,
        "max": _r(max((c[2] for c in cells), default=0.0)),
        "first": local_iso(float(a.edges[0]), a.tz),
        "last_day": local_date(float(a.edges[-1]) - 1, a.tz).isoformat(),
    }


def rows_csv(header: list[str], rows: list[list[Any]]) -> str:
    """CSV text: one header row, then the rows (None as an empty field)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if v is None else v for v in r])
    return out.getvalue()


def flow_csv(rep: dict[str, Any]) -> str:
    return rows_csv(
        ["source", "target", "kwh", Q.COST, "co2_kg"],
        [[x["source"], x["target"], x["kwh"], x[Q.COST], x[Q.CO2]] for x in rep["links"]],
    )


def compare_csv(rep: dict[str, Any]) -> str:
    head = ["kind", "id"]
    for p in ("this", "previous", "last_year"):
        head += [f"{p}_kwh", f"{p}_cost"]
    body = [
        ["total", "site"]
        + [rep["total"][p][k] for p in ("this", "previous", "last_year") for k in ("kwh", Q.COST)]
    ]
    for r in rep["rows"]:
        body.append(
            [r["kind"], r["id"]]
            + [r[p][k] for p in ("this", "previous", "last_year") for k in ("kwh", Q.COST)]
        )
    return rows_csv(head, body)


def ranking_csv(rep: dict[str, Any]) -> str:
    cols = ["rank", "kind", "id", "kwh", Q.COST, Q.CO2, "peak_kw", "share"]
    return rows_csv(cols, [[r[c] for c in cols] for r in rep["rows"]])


def heatmap_csv(rep: dict[str, Any]) -> str:
    return rows_csv(
        ["day", *[f"{h:02d}" for h in range(24)]],
        [[d, *row] for d, row in zip(rep["days"], rep["values"], strict=True)],
    )
