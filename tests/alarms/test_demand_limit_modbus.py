"""Demand limiting end to end over Modbus TCP: a reduced demo site whose EV charger ramps up and charges,
its load cut by an enable relay on the DIO module; the gateway's own 1-min demand stays under the target.

Everything is real: the site's simulators (the physical model, the incomer meter, the module bus with the
EV charger's metering module and the DIO), the gateway polling them, the energy stage predicting demand,
the control sink switching the relay through the audited path, and the simulated charger following it.
"""

from __future__ import annotations

import asyncio
import math
import socket
from pathlib import Path
from typing import Any

import pytest

from meterhub.checks import parse_site
from meterhub.model.audit import AuditEntry
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading
from meterhub.runtime import Gateway
from meterhub.runtime.demo import start_simulators
from meterhub.sim.loads import make_load
from meterhub.storage import open_storage

SITE = """\
site: {name: EV demand limit, timezone: Europe/Berlin}
buses:
  - {id: panel, kind: modbus-tcp, port: PANEL, timeout: 0.5}
  - {id: incomer, kind: modbus-tcp, port: INCOMER, timeout: 0.5}
devices:
  - {id: incomer-meter, bus: incomer, unit: 1, profile: eastron-sdm630, poll_interval: 0.5}
  - {id: vu, bus: panel, unit: 1, profile: enertrek-v10, poll_interval: 1}
  - {id: m-base, bus: panel, unit: 4, profile: enertrek-m30, poll_interval: 1}
  - {id: m-ev, bus: panel, unit: 5, profile: enertrek-e21, poll_interval: 0.5}
  - {id: dio, bus: panel, unit: 13, profile: enertrek-dio-4-2, poll_interval: 0.5}
circuits:
  - {id: grid, device: incomer-meter, channels: [1, 2, 3], wiring: 3P4W, ct: {kind: adapter-5a, ratio: 400/5},
     purpose: grid}
  - {id: base, device: m-base, channels: [1, 2, 3], wiring: 3P4W, voltage_reference: vu}
  - {id: ev-charger, device: m-ev, channels: [1, 2, 3], wiring: 3P4W, ct: {kind: voltage-output, ratio: 100/0.333},
     voltage_reference: vu}
io:
  points:
    - {id: ev-enable, kind: relay, device: dio, channel: 2, inverted: true}
energy:
  demand: {interval: 1, method: block}
control:
  demand_limit:
    target_kw: 12
    margin_kw: 1
    settle: 2
    loads: [{point: ev-enable, circuit: ev-charger, power_kw: 11, priority: 1, min_on: 5, min_off: 5}]
simulation:
  start_hour: 11
  loads:
    grid: {model: supply, rated_power: 1}
    base: {model: constant, rated_power: 6000, power_factor: 0.9}
    ev-charger: {model: ev, rated_power: 11000, power_factor: 0.99, period: 300, enable: ev-enable}
"""
TARGET = 12_000.0  # [W]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_one_minute_demand_stays_under_the_target_while_the_ev_charger_charges(tmp_path: Path):
    text = SITE.replace("PANEL", str(free_port())).replace("INCOMER", str(free_port()))
    cfg = parse_site(text, "ev-limit.yaml")

    class Audit(list[AuditEntry]):
        def record(self, entry: AuditEntry) -> None:
            self.append(entry)

    async def go() -> tuple[list[Reading], Audit, float, list[float]]:
        sims, model = await start_simulators(cfg, tmp_path)
        gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path))
        audit = Audit()
        gw.control.auditor = audit
        sub = gw.bus.subscribe("test", maxsize=100_000)
        await gw.start()
        windows: list[Reading] = []
        try:
            while len(windows) < 2:  # two closed 1-min windows (the first partial one is never closed)
                batch = await asyncio.wait_for(sub.get(), 90)
                windows += [r for r in batch if r.circuit == "grid" and r.quantity == Q.DEMAND_ACTIVE_IMPORT]
        finally:
            await gw.stop()
            for s in sims:
                await s.close()
        # what the same minutes would have drawn with the charger uncontrolled (the loads are pure
        # functions of time): base + EV charger [W]
        sim = cfg.simulation
        assert sim is not None and sim.start_hour is not None
        ev = make_load(sim.loads["ev-charger"], 3, seed=3)
        base = make_load(sim.loads["base"], 3, seed=2)
        free = [
            sum(ev.total_power(t, 11.0) + base.total_power(t, 11.0) for t in range(int(w.ts) - 60, int(w.ts)))
            / 60.0
            for w in windows
        ]
        return windows, audit, model.clock(), free

    windows, audit, _, free = asyncio.run(go())
    demands = [w.value for w in windows]
    assert all(math.isfinite(d) for d in demands)
    assert max(demands) <= TARGET, demands
    assert max(free) > TARGET, free  # uncontrolled, at least one of these minutes would have gone over
    assert audit, "the limiter never switched"
    assert {(e.actor, e.action, e.target, e.extra["result"], e.extra["confirmed"]) for e in audit} == {
        ("demand-limit", "relay.switch", "ev-enable", "done", True)
    }
    assert audit[0].after is False  # the first action sheds the charger
    summary: dict[str, Any] = {"demands": demands, "free": free, "switches": len(audit)}
    print(summary)
