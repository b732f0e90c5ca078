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
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from meterhub.central.alarms import site_conditions
from meterhub.central.config import DEFAULT_MAIN_CIRCUITS, CentralConfig
from meterhub.central.store import CentralStore
from meterhub.errors import InputError, NotFoundError
from meterhub.model.quantities import Q

__all__ = ["FleetViews", "day_bounds"]

#: How far back the register value before a period is looked for [s].
LOOKBACK = 7 * 86400
_TOTAL = "total"


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

    def __init__(self, cfg: CentralConfig, store: CentralStore, clock: Any = time.time) -> None:
        self.cfg = cfg
        self.store = store
        self.clock = clock

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

    def _energy_kwh(self, start: int, end: int) -> dict[str, float]:
        main = self._main_series(Q.ENERGY_ACTIVE_IMPORT.value)
        ids = [s for v in main.values() for s in v]
        if not ids:
            return {}
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
        return {
            site: round(sum(delta.get(s, 0.0) for s in sids) / 1000.0, 3)
            for site, sids in main.items()
            if any(s in delta for s in sids)
        }

    def _peak_w(self, start: int, end: int) -> dict[str, float]:
        main = self._main_series(Q.ACTIVE_POWER.value)
        pairs = [(s, site) for site, v in main.items() for s in v]
        if not pairs:
            return {}
        rows = self.store.query(
            "SELECT site, max(total) FROM (SELECT m.site, p.ts, sum(p.value) AS total FROM fleet_points p "
            "JOIN unnest(%s::int8[], %s::text[]) AS m(series, site) ON m.series = p.series "
            "WHERE p.ts > %s AND p.ts <= %s GROUP BY m.site, p.ts) t GROUP BY site",
            ([p[0] for p in pairs], [p[1] for p in pairs], start, end),
        )
        return {site: round(float(v), 1) for site, v in rows if v is not None}

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
        """The stored points of one series in ``(start, end]`` [Unix s], at most 10 000."""
        if end <= start:
            raise InputError(f"history: end {end} must be after start {start}")
        rows = self.store.query(
            "SELECT id, unit FROM fleet_series WHERE site = %s AND circuit = %s AND quantity = %s AND phase = %s",
            (site_id, circuit, quantity, "" if phase == "none" else phase),
        )
        if not rows:
            raise NotFoundError(f"site {site_id!r} has no series {circuit}/{quantity}/{phase}")
        sid, unit = rows[0]
        pts = self.store.query(
            "SELECT ts, value, quality FROM fleet_points WHERE series = %s AND ts > %s AND ts <= %s "
            "ORDER BY ts LIMIT 10000",
            (sid, start, end),
        )
        return {
            "site": site_id,
            "circuit": circuit,
            "quantity": quantity,
            "phase": phase,
            "unit": unit,
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
        """Per site over ``(start, end]`` (default: today): kWh, kWh/m² (with a floor area in central.yaml)
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
            out.append(
                {
                    "id": s["id"],
                    "name": s["name"],
                    "status": s["status"],
                    "energy_kwh": kwh,
                    "floor_area_m2": area,
                    "kwh_per_m2": round(kwh / area, 4) if kwh is not None and area else None,
                    "peak_demand_w": peak.get(s["id"]),
                }
            )
        out.sort(key=lambda r: (-(r["energy_kwh"] or -1.0), r["id"]))
        return {"start": _iso(start), "end": _iso(end), "sites": out}
