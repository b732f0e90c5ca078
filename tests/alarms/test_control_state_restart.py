"""Control keeps what a restart would forget (``DATA/control-state.sqlite``): a user's manual override
still holds against automatic actions after a restart, and an output's minimum on time counts from when it
really switched, not from the restart. Two services one after the other on the same data folder (a
restart), their outputs a stand-in that holds what it is told; the clock is a number the test moves."""

from __future__ import annotations

import asyncio
from pathlib import Path

from meterhub.alarms.control import STATE_FILE, ControlService
from meterhub.alarms.statefile import StateFile
from meterhub.checks import parse_site
from meterhub.config.control import Action
from meterhub.drivers.io.relay import RelayChange
from meterhub.model.audit import AuditEntry
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase

T0 = 1_765_000_000.0  # 2025-12-06 05:46:40 UTC

SITE = """\
site: {name: control restart, timezone: UTC}
buses: [{id: rs485, kind: modbus-tcp, port: 1502, timeout: 1}]
devices:
  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10, poll_interval: 5}
  - {id: dio1, bus: rs485, unit: 6, profile: enertrek-dio-4-2, poll_interval: 5}
io:
  points:
    - {id: fan, kind: relay, device: dio1, channel: 1}
    - {id: pump, kind: relay, device: dio1, channel: 2}
control:
  override: 600
  outputs: [{point: fan, min_on: 60, min_off: 30}]
"""


class Relays:
    async def switch(self, point: str, energised: bool) -> RelayChange:
        return RelayChange(0.0, point, energised)


class Audit(list[AuditEntry]):
    def record(self, entry: AuditEntry) -> None:
        self.append(entry)


def service(data: Path, now: list[float], audit: Audit) -> ControlService:
    cfg = parse_site(SITE, "site.yaml")
    state = StateFile(data / STATE_FILE, "control state")
    return ControlService(cfg, lambda: Relays(), audit, clock=lambda: now[0], state=state)  # type: ignore[arg-type, return-value]


def relay(point: str, on: bool, ts: float) -> Reading:
    return Reading(ts, point, Q.RELAY_OUTPUT, Phase.TOTAL, 1.0 if on else 0.0, Quality.GOOD)


def test_override_and_minimum_on_time_hold_across_a_restart(tmp_path: Path):
    now = [T0]
    audit = Audit()

    async def before() -> None:
        svc = service(tmp_path, now, audit)
        await svc.command("pump", Action.ON, actor="alice", automatic=False)  # holds it for 600 s
        await svc.command("fan", Action.ON, actor="rule:hot")  # automatic: no override, min_on 60 s
        assert svc.state_file is not None
        svc.state_file.close()

    asyncio.run(before())
    now[0] = T0 + 40  # the gateway restarts 40 s later
    svc = service(tmp_path, now, audit)
    svc.observe([relay("fan", True, now[0]), relay("pump", True, now[0])])  # the first poll after it
    assert svc.override("pump") == ("alice", T0 + 600)
    assert svc.since("fan") == T0  # the real switch time, not the first poll after the restart
    assert svc.blocked("pump", Action.OFF) == "manual override by alice until 05:56:40 UTC"
    # 60 s minimum on time, 40 s of it gone before the restart
    assert svc.blocked("fan", Action.OFF) == "minimum on time 60 s: 20 s left"

    async def after() -> list[str]:
        out = []
        now[0] = T0 + 61  # min_on passed (it would hold until T0 + 100 if counted from the restart)
        out.append((await svc.command("fan", Action.OFF, actor="rule:hot")).result)
        out.append((await svc.command("pump", Action.OFF, actor="rule:dry")).result)  # override holds
        now[0] = T0 + 600
        out.append((await svc.command("pump", Action.OFF, actor="rule:dry")).result)
        return out

    assert asyncio.run(after()) == ["done", "refused", "done"]
    assert svc.state_file is not None
    svc.state_file.close()
    # a third start knows the last changes of both
    again = service(tmp_path, now, audit)
    assert (again.state("fan"), again.since("fan")) == (0.0, T0 + 61)
    assert (again.state("pump"), again.override("pump")) == (0.0, None)


def test_a_state_file_that_cannot_be_opened_is_a_degraded_health_not_a_crash(tmp_path: Path):
    (tmp_path / STATE_FILE).mkdir()  # a folder where the file should be
    svc = service(tmp_path, [T0], Audit())
    h = svc.health()
    assert h.state.value == "degraded" and "control-state.sqlite" in h.message, h
