"""The fleet's views on central's database: site list with status, per-site drill-down and history,
portfolio totals and comparisons. Pure reads (:class:`~meterhub.central.store.CentralStore.query`);
the web routes (:mod:`meterhub.central.api`) only translate HTTP.

A site's **main series** stand for the whole site: the ``energy_active_import`` and ``active_power``
(phase total) of its ``main_circuit`` (central.yaml), else of the first of main, grid, incomer it
publishes, else the sum over all its circuits (right for a site that publishes only its incomers; a site
that publishes sub-circuits too must name its main circuit).

Energy of a period ``(start, end]`` is the register's last value at or before ``end`` minus its last value
at or before ``start`` (looked up to 7 days back; else its first value in the period) — registers never go
backwards (DESIGN.md). **Peak demand** is the highest interval-mean active power in the period [W], at the
gateway's publish interval (60 s by default; not a 15-min billing demand).

**Rollups** (:mod:`meterhub.central.rollups`): a period is read as raw edges (under an hour at each end, and
everything after the rollups' boundary), whole hours from ``fleet_rollup_1h`` and whole UTC days from
``fleet_rollup_1d``. Energy is then the sum of the pieces: an edge's last value minus the last before it,
a bucket's ``delta`` — equal to the register difference above for a register that never goes backwards.
Peak demand takes the buckets' ``hi`` for a site with one main power series (raw points for a site that
sums several). ``FleetViews(use_rollups=False)`` reads raw points only (the benchmark's baseline).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from meterhub.central.alarms import site_conditions
from meterhub.central.config import DEFAULT_MAIN_CIRCUITS, CentralConfig
from meterhub.central.rollups import DAY, HOUR
from meterhub.central.store import CentralStore
from meterhub.errors import InputError, NotFoundError
from meterhub.model.quantities import Q

__all__ = ["FleetViews", "day_bounds"]

#: How far back the register value before a period is looked for [s].
LOOKBACK = 7 * 86400
#: History spans up to this read raw points (10 000 one-minute points is just under 7 days) [s].
RAW_SPAN = 7 * 86400
_TOTAL = "total"


@dataclass(frozen=True)
class _Pieces:
    """A period cut for reading: raw-point edges, whole hours, whole UTC days; each ``(s, e]`` [Unix s]."""

    raw: list[tuple[int, int]]
    hours: list[tuple[int, int]]
    days: list[tuple[int, int]]


def day_bounds(tz: str, now: float) -> tuple[int, int]:
    """Today's ``(start, end)`` in zone ``tz`` [Unix s]."""
    zone = ZoneInfo(tz)
    d = datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
    nxt = (d + timedelta(days=1, hours=2)).replace(hour=0)  # DST-safe next midnight
    return int(d.timestamp()), int(nxt.timestamp())


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, ZoneInfo("UTC")).isoformat().replace("+00:00", "Z")


class FleetViews:
    """Read models of the fleet for the API. ``clock``: Unix seconds (injected by tests)."""

    def __init__(
        self, cfg: CentralConfig, store: CentralStore, clock: Any = time.time, *, use_rollups: bool = True
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.clock = clock
        #: False: every view reads raw points only (the benchmark's baseline)
        self.use_rollups = use_rollups

    # -- helpers --------------------------------------------------------------------------------
    def _main_series(self, quantity: str) -> dict[str, list[int]]:
        """site → the series ids standing for the site for ``quantity`` (phase total)."""
        rows = self.store.query(
            "SELECT id, site, circuit FROM fleet_series WHERE quantity = %s AND phase = %s",
            (quantity, _TOTAL),
        )
        by_site: dict[str, dict[str, int]] = defaultdict(dict)
        for sid, site, circuit in rows:
            by_site[site][circuit] = int(sid)
        out: dict[str, list[int]] = {}
        for site, circuits in by_site.items():
            conf = self.cfg.site(site)
            wanted = conf.main_circuit if conf is not None else None
            if wanted is not None:
                out[site] = [circuits[wanted]] if wanted in circuits else []
                continue
            main = next((c for c in DEFAULT_MAIN_CIRCUITS if c in circuits), None)
            out[site] = [circuits[main]] if main is not None else list(circuits.values())
        return out

    # -- periods: raw edges, whole hours and whole UTC days from the rollups ----------------------
    def _through(self) -> int | None:
        """The rollups' boundary [Unix s] (None: no rollups, or they are switched off)."""
        if not self.use_rollups:
            return None
        rows = self.store.query("SELECT value FROM fleet_meta WHERE key = 'rollup_through'")
        return int(rows[0][0]) if rows else None

    def _pieces(self, start: int, end: int) -> _Pieces:
        """Cut ``(start, end]`` into raw edges, whole hours and whole UTC days (``(s, e]`` each, [Unix s]);
        the rollups serve the hours and days up to their boundary, raw points the rest."""
        through = self._through()
        a = -(-start // HOUR) * HOUR
        b = min(end // HOUR * HOUR, through) if through is not None else a
        if b <= a:
            return _Pieces(raw=[(start, end)], hours=[], days=[])
        raw = [p for p in ((start, a), (b, end)) if p[1] > p[0]]
        da, db = -(-a // DAY) * DAY, b // DAY * DAY
        if db > da:
            hours = [p for p in ((a, da), (db, b)) if p[1] > p[0]]
            return _Pieces(raw=raw, hours=hours, days=[(da, db)])
        return _Pieces(raw=raw, hours=[(a, b)], days=[])

    def _energy_kwh(self, start: int, end: int) -> dict[str, float]:
        """site → energy imported in ``(start, end]`` [kWh]."""
        main = self._main_series(Q.ENERGY_ACTIVE_IMPORT.value)
        ids = [s for v in main.values() for s in v]
        if not ids:
            return {}
        if self.use_rollups:
            delta = self._energy_pieces(ids, self._pieces(start, end))
        else:
            delta = self._energy_raw(ids, start, end)
        return {
            site: round(sum(delta.get(s, 0.0) for s in sids) / 1000.0, 3)
            for site, sids in main.items()
            if any(s in delta for s in sids)
        }

    def _energy_raw(self, ids: list[int], start: int, end: int) -> dict[int, float]:
        """series → energy of ``(start, end]`` from raw points in one scan [Wh] (the views before rollups;
        kept for ``use_rollups=False``, the benchmark's baseline)."""
        rows = self.store.query(
            "SELECT series, max(value) FILTER (WHERE ts > %s), max(value) FILTER (WHERE ts <= %s), "
            "min(value) FILTER (WHERE ts > %s) FROM fleet_points WHERE series = ANY(%s) AND ts > %s AND ts <= %s "
            "GROUP BY series",
            (start, start, start, ids, start - LOOKBACK, end),
        )
        delta: dict[int, float] = {}
        for sid, last, before, first in rows:
            if last is None:
                continue
            base = before if before is not None else first
            delta[int(sid)] = max(0.0, float(last) - float(base))
        return delta

    def _energy_pieces(self, ids: list[int], pieces: _Pieces) -> dict[int, float]:
        """series → energy [Wh]: each raw edge as last value in it minus the last before it (index
        look-ups), plus the rollups' ``delta`` of the whole hours and days."""
        delta: dict[int, float] = {}
        for s, e in pieces.raw:
            rows = self.store.query(
                "SELECT d.id, "
                "(SELECT value FROM fleet_points p WHERE p.series = d.id AND p.ts > %s AND p.ts <= %s "
                " ORDER BY p.ts DESC LIMIT 1), "
                "(SELECT value FROM fleet_points p WHERE p.series = d.id AND p.ts > %s AND p.ts <= %s "
                " ORDER BY p.ts DESC LIMIT 1), "
                "(SELECT value FROM fleet_points p WHERE p.series = d.id AND p.ts > %s AND p.ts <= %s "
                " ORDER BY p.ts LIMIT 1) "
                "FROM unnest(%s::int8[]) AS d(id)",
                (s, e, s - LOOKBACK, s, s, e, ids),
            )
            for sid, last, before, first in rows:
                if last is None:
                    continue
                base = before if before is not None else first
                delta[int(sid)] = delta.get(int(sid), 0.0) + max(0.0, float(last) - float(base))
        for table, spans in (("fleet_rollup_1h", pieces.hours), ("fleet_rollup_1d", pieces.days)):
            for s, e in spans:
                rows = self.store.query(
                    f"SELECT series, sum(delta) FROM {table} WHERE series = ANY(%s) AND bucket >= %s "
                    "AND bucket < %s GROUP BY series",
                    (ids, s, e),
                )
                for sid, d in rows:
                    delta[int(sid)] = delta.get(int(sid), 0.0) + float(d)
        return delta

    def _peak_w(self, start: int, end: int) -> dict[str, float]:
        """site → highest interval-mean power in ``(start, end]`` [W]. A site with one main power series
        takes it from the rollups' ``hi`` and raw edges; a site summing several reads raw points (the
        peak of a sum is not the sum of the peaks)."""
        main = self._main_series(Q.ACTIVE_POWER.value)
        single = {site: v[0] for site, v in main.items() if len(v) == 1} if self.use_rollups else {}
        pairs = [(s, site) for site, v in main.items() if site not in single for s in v]
        out: dict[str, float] = {}
        if pairs:
            rows = self.store.query(
                "SELECT site, max(total) FROM (SELECT m.site, p.ts, sum(p.value) AS total FROM fleet_points p "
                "JOIN unnest(%s::int8[], %s::text[]) AS m(series, site) ON m.series = p.series "
                "WHERE p.ts > %s AND p.ts <= %s GROUP BY m.site, p.ts) t GROUP BY site",
                ([p[0] for p in pairs], [p[1] for p in pairs], start, end),
            )
            out.update({site: round(float(v), 1) for site, v in rows if v is not None})
        if single:
            ids = list(single.values())
            pieces = self._pieces(start, end)
            hi: dict[int, float] = {}
            # a bucket b holds (b, b + width]: the whole buckets of (s, e] are s <= b < e
            spans = [("value", "fleet_points WHERE ts > %s AND ts <= %s", s, e) for s, e in pieces.raw]
            spans += [
                ("hi", "fleet_rollup_1h WHERE bucket >= %s AND bucket < %s", s, e) for s, e in pieces.hours
            ]
            spans += [
                ("hi", "fleet_rollup_1d WHERE bucket >= %s AND bucket < %s", s, e) for s, e in pieces.days
            ]
            for col, where, s, e in spans:
                rows = self.store.query(
                    f"SELECT series, max({col}) FROM {where} AND series = ANY(%s) GROUP BY series",
                    (s, e, ids),
                )
                for sid, v in rows:
                    if v is not None:
                        hi[int(sid)] = max(hi.get(int(sid), float(v)), float(v))
            out.update({site: round(hi[sid], 1) for site, sid in single.items() if sid in hi})
        return out

    def _power_now(self, since: int) -> dict[str, float]:
        main = self._main_series(Q.ACTIVE_POWER.value)
        pairs = [(s, site) for site, v in main.items() for s in v]
        if not pairs:
            return {}
        rows = self.store.query(
            "SELECT DISTINCT ON (p.series) m.site, p.value FROM fleet_points p "
            "JOIN unnest(%s::int8[], %s::text[]) AS m(series, site) ON m.series = p.series "
            "WHERE p.ts > %s ORDER BY p.series, p.ts DESC",
            ([p[0] for p in pairs], [p[1] for p in pairs], since),
        )
        out: dict[str, float] = defaultdict(float)
        for site, v in rows:
            out[site] += float(v)
        return {k: round(v, 1) for k, v in out.items()}

    def _status(self, last_seen: float | None, gateway_status: str | None, now: float) -> str:
        if last_seen is None:
            return "never_seen"
        if gateway_status == "offline":
            return "offline"
        return "online" if now - last_seen <= self.cfg.silent_after else "silent"

    def _alarms(
        self,
        last_seen: float | None,
        gateway_status: str | None,
        status_at: float | None,
        now: float,
        devices_offline: list[str] | None = None,
        devices_at: float | None = None,
    ) -> list[dict[str, Any]]:
        """The fleet alarms of one site now, each ``{"kind", "since", "message"}`` (and ``"device"`` for
        ``device_offline``), by :func:`meterhub.central.alarms.site_conditions` — the conditions the
        evaluator raises and clears (docs/fleet.md, "Alarms"):

        * ``gateway_offline`` — the gateway's status topic ``<root>/<site>/status`` says ``offline`` (a clean
          stop, or the broker published its last will when its connection broke; docs/publish.md);
          ``since``: when central stored that change (``status_at``, Unix s);
        * ``site_silent`` — no message for longer than ``silent_after`` [s] (``since``: when it became
          silent, the last message plus ``silent_after``);
        * ``device_offline`` — the gateway's diagnostic state lists the device as offline (``since``: when
          central stored that list).
        """
        out: list[dict[str, Any]] = []
        for c in site_conditions(
            last_seen=last_seen,
            gateway_status=gateway_status,
            status_at=status_at,
            devices_offline=devices_offline,
            devices_at=devices_at,
            now=now,
            silent_after=self.cfg.silent_after,
        ):
            item: dict[str, Any] = {"kind": c.kind, "since": _iso(c.since), "message": c.message}
            if c.subject:
                item["device"] = c.subject
            out.append(item)
        return out

    # -- views ----------------------------------------------------------------------------------
    def sites(self, search: str | None = None) -> list[dict[str, Any]]:
        """Every site central has heard of or is configured with, sorted by id."""
        now = self.clock()
        day0, day1 = day_bounds(self.cfg.timezone, now)
        energy = self._energy_kwh(day0, day1)
        power = self._power_now(int(now) - 3 * 3600)
        rows = self.store.query(
            "SELECT s.id, s.name, s.first_seen, s.last_seen, s.last_ts, s.messages, s.refused, s.last_refusal, "
            "s.backlog, s.backlog_at, s.gateway_status, "
            "(SELECT count(*) FROM fleet_circuits c WHERE c.site = s.id), s.gateway_status_at, "
            "s.devices_offline, s.devices_at FROM fleet_sites s"
        )
        known = {r[0]: r for r in rows}
        ids = sorted(set(known) | {s.id for s in self.cfg.sites})
        out = []
        for sid in ids:
            conf = self.cfg.site(sid)
            r = known.get(sid)
            name = (conf.name if conf and conf.name else None) or (r[1] if r and r[1] else sid)
            if search and search.lower() not in f"{sid} {name}".lower():
                continue
            last_seen = r[3] if r else None
            out.append(
                {
                    "id": sid,
                    "name": name,
                    "status": self._status(last_seen, r[10] if r else None, now),
                    "alarms": self._alarms(
                        last_seen, r[10] if r else None, r[12] if r else None, now, *(r[13:15] if r else ())
                    ),
                    "last_seen": _iso(last_seen),
                    "age_s": round(now - last_seen, 1) if last_seen is not None else None,
                    "last_data": _iso(r[4]) if r and r[4] is not None else None,
                    "backlog": r[8] if r else None,
                    "backlog_at": _iso(r[9]) if r else None,
                    "messages": r[5] if r else 0,
                    "refused": r[6] if r else 0,
                    "last_refusal": r[7] if r else None,
                    "circuits": r[11] if r else 0,
                    "configured": conf is not None,
                    "floor_area_m2": conf.floor_area_m2 if conf else None,
                    "energy_today_kwh": energy.get(sid),
                    "power_w": power.get(sid),
                }
            )
        return out

    def site(self, site_id: str) -> dict[str, Any]:
        """One site with its circuits and the latest value of every series."""
        match = [s for s in self.sites() if s["id"] == site_id]
        if not match:
            raise NotFoundError(f"site {site_id!r} is unknown to central (not configured, never published)")
        circuits = self.store.query(
            "SELECT circuit, name, zone, interval, last_ts FROM fleet_circuits WHERE site = %s ORDER BY circuit",
            (site_id,),
        )
        latest = self.store.query(
            "SELECT s.circuit, s.quantity, s.phase, s.unit, l.ts, l.value, l.quality FROM fleet_series s "
            "CROSS JOIN LATERAL (SELECT ts, value, quality FROM fleet_points p WHERE p.series = s.id "
            "ORDER BY ts DESC LIMIT 1) l WHERE s.site = %s ORDER BY s.circuit, s.quantity, s.phase",
            (site_id,),
        )
        values: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for circuit, q, ph, unit, ts, v, quality in latest:
            values[circuit].append(
                {
                    "quantity": q,
                    "phase": ph or None,
                    "unit": unit,
                    "value": v,
                    "ts": _iso(ts),
                    "quality": quality,
                }
            )
        return {
            **match[0],
            "circuits_list": [
                {
                    "id": c,
                    "name": n,
                    "zone": z,
                    "interval": i,
                    "last_data": _iso(ts),
                    "values": values.get(c, []),
                }
                for c, n, z, i, ts in circuits
            ],
        }

    def history(
        self, site_id: str, circuit: str, quantity: str, phase: str, start: int, end: int
    ) -> dict[str, Any]:
        """The stored points of one series in ``(start, end]`` [Unix s], at most 10 000; a span longer than
        :data:`RAW_SPAN` gives the hourly rollups instead (daily past 10 000 hours), each point at its
        bucket's end with ``value`` the mean and ``min``, ``max``, ``last``, ``count`` — up to the rollups'
        boundary (the last hour or so is not in them yet)."""
        if end <= start:
            raise InputError(f"history: end {end} must be after start {start}")
        rows = self.store.query(
            "SELECT id, unit FROM fleet_series WHERE site = %s AND circuit = %s AND quantity = %s AND phase = %s",
            (site_id, circuit, quantity, "" if phase == "none" else phase),
        )
        if not rows:
            raise NotFoundError(f"site {site_id!r} has no series {circuit}/{quantity}/{phase}")
        sid, unit = rows[0]
        base = {"site": site_id, "circuit": circuit, "quantity": quantity, "phase": phase, "unit": unit}
        through = self._through() if end - start > RAW_SPAN else None
        if through is not None:
            width, table = (
                (HOUR, "fleet_rollup_1h") if (end - start) / HOUR <= 10_000 else (DAY, "fleet_rollup_1d")
            )
            agg = self.store.query(
                f"SELECT bucket, total / n, lo, hi, last, n, quality FROM {table} WHERE series = %s "
                "AND bucket >= %s AND bucket < %s ORDER BY bucket LIMIT 10000",
                (sid, start // width * width, end),
            )
            return {
                **base,
                "resolution": "1h" if width == HOUR else "1d",
                "through": _iso(through),
                "points": [
                    {
                        "ts": _iso(b + width),
                        "value": v,
                        "min": lo,
                        "max": hi,
                        "last": last,
                        "count": n,
                        "quality": q,
                    }
                    for b, v, lo, hi, last, n, q in agg
                ],
            }
        pts = self.store.query(
            "SELECT ts, value, quality FROM fleet_points WHERE series = %s AND ts > %s AND ts <= %s "
            "ORDER BY ts LIMIT 10000",
            (sid, start, end),
        )
        return {
            **base,
            "resolution": "raw",
            "points": [{"ts": _iso(ts), "value": v, "quality": q} for ts, v, q in pts],
        }

    def totals(self) -> dict[str, Any]:
        """Portfolio totals: sites by status, energy today [kWh], power now [W], open fleet alarms."""
        sites = self.sites()
        alarms = 0
        by_status: dict[str, int] = defaultdict(int)
        for s in sites:
            by_status[s["status"]] += 1
            alarms += len(s["alarms"])
        return {
            "sites": len(sites),
            "by_status": dict(by_status),
            "energy_today_kwh": round(sum(s["energy_today_kwh"] or 0.0 for s in sites), 3),
            "power_w": round(sum(s["power_w"] or 0.0 for s in sites), 1),
            "backlog": sum(s["backlog"] or 0 for s in sites),
            "alarms": alarms,
        }

    def compare(self, start: int | None, end: int | None) -> dict[str, Any]:
        """Per site over ``(start, end]`` (default: today): kWh, kWh/m² (with a floor area in central.yaml),
        cost (with a ``tariff``: kWh × price, in its currency), CO2 [kg] (with ``co2_g_per_kwh``: kWh × factor)
        and peak demand [W], sorted by kWh, highest first."""
        now = self.clock()
        d0, d1 = day_bounds(self.cfg.timezone, now)
        start = d0 if start is None else start
        end = d1 if end is None else end
        if end <= start:
            raise InputError(f"compare: end {end} must be after start {start}")
        energy = self._energy_kwh(start, end)
        peak = self._peak_w(start, end)
        out = []
        for s in self.sites():
            kwh = energy.get(s["id"])
            area = s["floor_area_m2"]
            tariff = self.cfg.tariff_of(s["id"])
            co2 = self.cfg.co2_of(s["id"])
            out.append(
                {
                    "id": s["id"],
                    "name": s["name"],
                    "status": s["status"],
                    "energy_kwh": kwh,
                    "floor_area_m2": area,
                    "kwh_per_m2": round(kwh / area, 4) if kwh is not None and area else None,
                    "peak_demand_w": peak.get(s["id"]),
                    Q.COST.value: round(kwh * tariff.price_per_kwh, 2)
                    if kwh is not None and tariff
                    else None,
                    "currency": tariff.currency if tariff else None,
                    "price_per_kwh": tariff.price_per_kwh if tariff else None,
                    "co2_kg": round(kwh * co2 / 1000.0, 3) if kwh is not None and co2 is not None else None,
                    "co2_g_per_kwh": co2,
                }
            )
        out.sort(key=lambda r: (-(r["energy_kwh"] or -1.0), r["id"]))
        return {"start": _iso(start), "end": _iso(end), "sites": out}
