"""Demand limiting on the demo site's loads, in simulated time: the 15-min demand stays under the target.

The site's loads are the demo's load models (pure functions of time, :mod:`meterhub.sim.loads`); the grid
import register integrates their sum each second, and the energy stage's own demand meter
(:class:`meterhub.energy.demand.DemandMeter`, 15 min sliding in 3) predicts the running window, as the
gateway does. The EV charger's enable relay cuts its load, as :meth:`meterhub.sim.physics.SiteModel.gate`
does in the simulator. Every switch goes through the audited control path.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

from meterhub.alarms.control import ControlService
from meterhub.alarms.demand_limit import DemandLimiter
from meterhub.checks import load_site, parse_site
from meterhub.config.schema import SiteConfig
from meterhub.drivers.io.relay import RelayChange
from meterhub.energy.demand import DemandMeter
from meterhub.model.audit import AuditEntry
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.sim.loads import make_load
from meterhub.sim.physics import SiteModel

DEMO = Path(__file__).parents[2] / "examples" / "demo-site.yaml"
T0 = 1_800_000_000.0  # a whole multiple of 900 s: windows start with the run [s]


class Relays:
    """The outputs of the test: relay states the loads follow (a contactor in the EV charger's supply)."""

    def __init__(self, clock: Any) -> None:
        self.state: dict[str, bool] = {}
        self.clock = clock
        self.switches = 0

    async def switch(self, point: str, energised: bool) -> RelayChange:
        self.state[point] = energised
        self.switches += 1
        return RelayChange(self.clock(), point, energised)

    async def pulse(self, point: str, duration: float | None = None) -> tuple[RelayChange, RelayChange]:
        raise AssertionError("no pulses here")

    async def set_analog(self, point: str, value: float) -> Reading:
        raise AssertionError("no analog outputs here")


class Audit(list[AuditEntry]):
    def record(self, entry: AuditEntry) -> None:
        self.append(entry)


def simulate(cfg: SiteConfig, seconds: int, *, limit: bool) -> dict[str, Any]:
    """Run the site for ``seconds`` [s] of simulated time at 1 s steps; the closed 15-min windows [W]."""
    sim = cfg.simulation
    assert sim is not None and sim.start_hour is not None
    loads = {
        c.id: make_load(sim.loads[c.id], len(c.supply_phases), seed=i + 1)
        for i, c in enumerate(cfg.circuits)
        if sim.loads[c.id].model != "supply"
    }
    now = [T0]
    relays = Relays(lambda: now[0])
    audit = Audit()
    service = ControlService(cfg, lambda: relays, audit, clock=lambda: now[0])
    limiter = DemandLimiter(cfg, service) if limit else None
    meter = DemandMeter(interval=900.0, subintervals=3, method="sliding")
    energy = 0.0
    windows: list[float] = []
    ev_on_power: list[float] = []

    async def run() -> None:
        nonlocal energy
        for k in range(seconds + 1):
            t = now[0] = T0 + k
            hour = sim.start_hour + k / 3600.0
            powers = {cid: m.total_power(t, hour) for cid, m in loads.items()}
            if relays.state.get("ev-enable", True) is False:  # the enable contact open: no charging
                powers["ev-charger"] = 0.0
            grid = sum(powers.values())
            energy += max(grid, 0.0) / 3600.0  # import register [Wh], 1 s at this power
            batch = [
                Reading(t, "grid", Q.ACTIVE_POWER, Phase.TOTAL, grid),
                Reading(t, "ev-charger", Q.ACTIVE_POWER, Phase.TOTAL, powers["ev-charger"]),
            ]
            for w in meter.feed(t, energy):
                if math.isfinite(w.demand):
                    windows.append(w.demand)
                    batch.append(Reading(w.end, "grid", Q.DEMAND_ACTIVE_IMPORT, Phase.TOTAL, w.demand))
            p = meter.predicted()
            if p is not None and k % 5 == 0:  # the energy stage emits a prediction every 5 s
                batch.append(Reading(t, "grid", Q.DEMAND_ACTIVE_IMPORT_PREDICTED, Phase.TOTAL, p))
            if limiter is not None:
                limiter.observe(batch)
                limiter.tick(t)
                await service.drain()
            if relays.state.get("ev-enable", True):
                ev_on_power.append(powers["ev-charger"])

    asyncio.run(run())
    return {
        "windows": windows,
        "audit": audit,
        "switches": relays.switches,
        "limiter": limiter,
        "ev_energy": sum(ev_on_power) / 3600.0,
    }


def test_the_demo_site_stays_under_its_54_kw_target_while_the_ev_charger_ramps():
    cfg = load_site(DEMO)
    free = simulate(cfg, 3600, limit=False)
    held = simulate(cfg, 3600, limit=True)
    assert max(free["windows"]) > 55_000  # the uncontrolled site goes over the target
    assert max(held["windows"]) <= 54_000  # every 15-min window (sliding, every 5 min) stays under it
    assert len(held["windows"]) == len(free["windows"]) == 10  # 15-min windows ending each 5 min
    audit: list[AuditEntry] = held["audit"]
    assert held["switches"] == len(audit) > 0  # every switch is in the audit log, and nothing else is
    assert {(e.actor, e.action, e.target, e.extra["result"], e.extra["confirmed"]) for e in audit} == {
        ("demand-limit", "relay.switch", "ev-enable", "done", True)
    }
    assert [e.after for e in audit][:2] == [False, True]  # shed, then restored
    # each says why: the prediction (or, while the first windows fill, the mean power) against the target
    assert all("kW, target 54.0 kW" in (e.comment or "") for e in audit), [e.comment for e in audit]
    assert any((e.comment or "").startswith("predicted ") for e in audit)
    assert held["ev_energy"] > 0.3 * free["ev_energy"]  # it still charges: paused, not stopped


def test_a_load_is_not_shed_again_before_its_minimum_on_time():
    cfg = load_site(DEMO)
    held = simulate(cfg, 3600, limit=True)
    audit: list[AuditEntry] = held["audit"]
    for on, off in zip(audit[1::2], audit[2::2], strict=False):  # restore → the next shed
        assert off.ts - on.ts >= 60
    for off, on in zip(audit[0::2], audit[1::2], strict=False):  # shed → the next restore
        assert on.ts - off.ts >= 60


def _limiter(extra: str) -> tuple[DemandLimiter, list[float]]:
    text = DEMO.read_text(encoding="utf-8")
    text = text.replace("    target_kw: 54\n", extra)
    path = DEMO.parent / "unused.yaml"
    cfg = parse_site(text, str(path))
    now = [T0]
    service = ControlService(cfg, lambda: Relays(lambda: now[0]), Audit(), clock=lambda: now[0])
    return DemandLimiter(cfg, service), now


def test_the_capacity_tariff_target_is_the_months_peak_so_far_never_below_the_floor():
    limiter, now = _limiter("    from_capacity_tariff: true\n    floor_kw: 30\n")
    jan = T0  # 2027-01-15 08:00 UTC; the site's time zone is Europe/Berlin
    now[0] = jan
    assert limiter.target(jan) == 30_000  # nothing measured this month: the floor
    limiter.observe([Reading(jan, "grid", Q.DEMAND_ACTIVE_IMPORT, Phase.TOTAL, 42_000.0)])
    limiter.observe([Reading(jan + 900, "grid", Q.DEMAND_ACTIVE_IMPORT, Phase.TOTAL, 38_000.0)])
    assert limiter.target(jan + 900) == 42_000  # the highest 15-min demand of the month so far
    next_month = jan + 40 * 86400
    assert limiter.target(next_month) == 30_000  # a new month starts again from the floor


def test_a_load_off_for_its_max_off_time_is_restored_whatever_the_demand():
    limiter, now = _limiter("    target_kw: 5\n")  # far below the site: it would stay shed
    service = limiter.service
    t = T0
    now[0] = t
    limiter.observe([Reading(t, "grid", Q.DEMAND_ACTIVE_IMPORT_PREDICTED, Phase.TOTAL, 50_000.0)])
    limiter.tick(t)
    asyncio.run(service.drain())
    assert service.state("ev-enable") == 0.0
    assert limiter.status()["loads"][0]["shed"] is True
    now[0] = t + 1800  # max_off of the demo's EV charger
    limiter.observe([Reading(t + 1800, "grid", Q.DEMAND_ACTIVE_IMPORT_PREDICTED, Phase.TOTAL, 50_000.0)])
    limiter.tick(t + 1800)
    asyncio.run(service.drain())
    assert service.state("ev-enable") == 1.0
    assert limiter.counters == {"shed": 1, "restored": 1, "over_target": 0}


def test_without_a_fresh_prediction_the_limiter_does_nothing_and_says_so():
    limiter, now = _limiter("    target_kw: 5\n")
    limiter.observe([Reading(T0, "grid", Q.DEMAND_ACTIVE_IMPORT_PREDICTED, Phase.TOTAL, 50_000.0)])
    now[0] = T0 + 60
    limiter.tick(T0 + 60)
    assert limiter.service.pending() == 0
    assert limiter.health().state.value == "degraded"
    assert limiter.health().message == "no predicted demand or power of grid in the last 30 s; not acting"


def test_a_relay_gated_load_in_the_simulator_draws_nothing_while_released():
    cfg = load_site(DEMO)
    t = [T0 + 300.0]  # inside a charging session of the demo's EV model
    model = SiteModel(cfg, clock=lambda: t[0])
    enabled = [True]
    model.gate("ev-charger", lambda: enabled[0])
    on = sum(ch.active_power for ch in model.circuit("ev-charger"))
    enabled[0] = False
    t[0] += 1.0
    off = [ch.active_power for ch in model.circuit("ev-charger")]
    grid_drop = on - sum(ch.active_power for ch in model.circuit("ev-charger"))
    assert on > 1000 and off == [0.0, 0.0, 0.0] and grid_drop == on


def test_a_load_found_off_after_a_restart_is_restored_when_the_demand_allows():
    limiter, now = _limiter("    target_kw: 54\n")
    service = limiter.service
    now[0] = T0
    # the module kept the charger's enable relay released across a gateway restart
    service.observe([Reading(T0 - 600, "ev-enable", Q.RELAY_OUTPUT, Phase.TOTAL, 0.0)])
    limiter.observe([Reading(T0, "grid", Q.DEMAND_ACTIVE_IMPORT_PREDICTED, Phase.TOTAL, 30_000.0)])
    limiter.tick(T0)
    asyncio.run(service.drain())
    assert service.state("ev-enable") == 1.0
    assert limiter.counters["restored"] == 1


def test_the_months_peak_is_seeded_from_the_energy_stages_maxima():
    limiter, now = _limiter("    from_capacity_tariff: true\n    floor_kw: 30\n")
    limiter.seed_maxima(
        {
            "grid/demand_active_import": {"peak": [45_000.0, T0], "offpeak": [41_000.0, T0 - 3600]},
            "ev-charger/demand_active_import": {"peak": [99_000.0, T0]},  # not the main
        }
    )
    assert limiter.target(T0 + 60) == 45_000
    limiter.seed_maxima({"grid/demand_active_import": {"peak": [80_000.0, T0 - 40 * 86400]}})  # last month
    assert limiter.target(T0 + 60) == 45_000
