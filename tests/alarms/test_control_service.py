"""The one audited control path against a simulated DIO-4/2 on Modbus TCP, through a running gateway.

Each action is checked on the device with an independent second Modbus master, and in the audit entries
(a list-backed auditor, as the durable audit log receives them).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from meterhub.alarms.control import ControlService, LoggingAuditor
from meterhub.alarms.model import AlarmEvent, AlarmState, EventKind, Severity
from meterhub.checks import parse_site
from meterhub.config.control import Action
from meterhub.drivers.io.errors import IOPointError
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.errors import ConflictError, NotFoundError
from meterhub.model.audit import AuditEntry
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Function
from meterhub.runtime import Gateway
from meterhub.sim.modbus_server import ModbusSimServer, ProfileDevice, serve_devices
from meterhub.storage import open_storage

SITE = """\
site: {name: control}
buses: [{id: rs485, kind: modbus-tcp, port: PORT, timeout: 1}]
devices:
  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10, poll_interval: 5}
  - {id: dio1, bus: rs485, unit: 6, profile: enertrek-dio-4-2, poll_interval: 5}
  - {id: aio1, bus: rs485, unit: 7, profile: enertrek-aio-2-2, poll_interval: 5}
io:
  points:
    - {id: fan, kind: relay, device: dio1, channel: 1}
    - {id: heater, kind: relay, device: dio1, channel: 2}
    - {id: valve, kind: analog-out, device: aio1, channel: 1, signal: 4-20mA, range: [0, 100], unit: "%"}
    - {id: door, kind: digital, device: dio1, channel: 1, function: door}
control:
  override: 600
  outputs: [{point: fan, min_on: 60, min_off: 30}]
  interlocks: [{point: heater, requires: fan, state: on}]
  linkage:
    - {id: hot, when: {alarm: "system:device_offline", state: active}, then: {point: fan, action: on}}
    - {id: cool, when: {alarm: "system:device_offline", state: cleared}, then: {point: fan, action: off}}
    - {id: door-valve, when: {input: door, state: on}, then: {point: valve, action: set, value: 25}}
"""


class ListAuditor:
    """The audit log of the tests: every entry in a list."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    def brief(self) -> list[tuple[str, str, str, Any, Any, str]]:
        return [(e.actor, e.action, e.target, e.before, e.after, e.extra["result"]) for e in self.entries]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Clock:
    """Wall time plus a shift the test advances (minimum times, overrides)."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


Scenario = Callable[
    [Gateway, ControlService, ListAuditor, ModbusLink, Clock, ModbusSimServer], Awaitable[Any]
]


def run(tmp_path: Path, scenario: Scenario) -> Any:
    port = free_port()
    cfg = parse_site(SITE.replace("PORT", str(port)))
    clock = Clock()

    async def go() -> Any:
        sim = await serve_devices(
            {
                unit: ProfileDevice(dev, get_profile(pid), None)
                for unit, dev, pid in (
                    (1, "vu", "enertrek-v10"),
                    (6, "dio1", "enertrek-dio-4-2"),
                    (7, "aio1", "enertrek-aio-2-2"),
                )
            },
            port=port,
        )
        gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path), clock=clock)
        audit = ListAuditor()
        gw.control.auditor = audit
        probe = ModbusLink(TransportKind.TCP, port=port, timeout=3.0)  # an independent second master
        await gw.start()
        try:
            return await scenario(gw, gw.control, audit, probe, clock, sim)
        finally:
            await probe.close()
            await gw.stop()
            await sim.close()

    return asyncio.run(go())


def test_a_users_switch_is_confirmed_audited_and_holds_against_automatic_actions(tmp_path: Path):
    async def scenario(gw, svc, audit, probe, clock, sim):
        res = await svc.command("fan", Action.ON, actor="alice", comment="commissioning")
        coils = await probe.read(Function.COIL, 6, 0, 2)
        clock.shift += 120  # past the fan's minimum on time: only the override holds it now
        held = await svc.command("fan", Action.OFF, actor="rule:cool")
        clock.shift += 600  # the override ran out
        later = await svc.command("fan", Action.OFF, actor="rule:cool")
        return res, coils, held, later, audit.entries, await probe.read(Function.COIL, 6, 0, 1)

    res, coils, held, later, entries, final = run(tmp_path, scenario)
    assert (res.result, res.before, res.after, res.confirmed) == ("done", None, True, True)
    assert coils == [1, 0]
    assert held.result == "refused" and held.reason.startswith("manual override by alice until ")
    assert (later.result, later.before, later.after) == ("done", True, False)
    assert final == [0]
    assert [(e.actor, e.action, e.target, e.before, e.after, e.extra) for e in entries] == [
        ("alice", "relay.switch", "fan", None, True, {"result": "done", "confirmed": True}),
        (
            "rule:cool",
            "relay.switch",
            "fan",
            True,
            True,
            {"result": "refused", "confirmed": False, "reason": held.reason},
        ),
        ("rule:cool", "relay.switch", "fan", True, False, {"result": "done", "confirmed": True}),
    ]
    assert entries[0].comment == "commissioning"


def test_minimum_on_time_holds_an_output_unless_a_user_forces_it(tmp_path: Path):
    async def scenario(gw, svc, audit, probe, clock, sim):
        svc.section = svc.section.model_copy(update={"override": 0.0})  # no override: only the min times
        await svc.command("fan", Action.ON, actor="rule:hot")
        clock.shift += 20
        early = await svc.command("fan", Action.OFF, actor="rule:cool")
        with_user = await svc.command("fan", Action.OFF, actor="alice", automatic=False)
        forced = await svc.command("fan", Action.OFF, actor="alice", automatic=False, force=True)
        clock.shift += 10  # 10 s off < min_off 30 s
        again = await svc.command("fan", Action.ON, actor="rule:hot")
        clock.shift += 25
        later = await svc.command("fan", Action.ON, actor="rule:hot")
        return early, with_user, forced, again, later, await probe.read(Function.COIL, 6, 0, 1)

    early, with_user, forced, again, later, coil = run(tmp_path, scenario)
    assert (early.result, early.reason) == ("refused", "minimum on time 60 s: 40 s left")
    assert (with_user.result, with_user.reason) == ("refused", "minimum on time 60 s: 40 s left")
    assert (forced.result, forced.after) == ("done", False)
    assert (again.result, again.reason) == ("refused", "minimum off time 30 s: 20 s left")
    assert (later.result, later.after, coil) == ("done", True, [1])


def test_an_interlock_refuses_to_switch_until_the_required_point_is_in_its_state(tmp_path: Path):
    async def scenario(gw, svc, audit, probe, clock, sim):
        unknown = await svc.command("heater", Action.ON, actor="alice", force=True)
        await svc.command("fan", Action.OFF, actor="alice")
        off = await svc.command("heater", Action.ON, actor="alice", force=True)
        await svc.command("fan", Action.ON, actor="alice", force=True)
        ok = await svc.command("heater", Action.ON, actor="alice")
        return unknown, off, ok, await probe.read(Function.COIL, 6, 0, 2)

    unknown, off, ok, coils = run(tmp_path, scenario)
    assert unknown.reason == "interlock: the state of 'fan' is not known yet (needs on)"
    assert off.reason == "interlock: 'fan' must be on for 'heater' to switch on"
    assert ok.result == "done" and coils == [1, 1]


def test_an_action_that_does_not_fit_the_point_is_refused_before_anything_is_written(tmp_path: Path):
    async def scenario(gw, svc, audit, probe, clock, sim):
        out = []
        for point, action in (
            ("nope", Action.ON),
            ("door", Action.ON),
            ("valve", Action.ON),
            ("fan", Action.SET),
        ):
            try:
                await svc.command(point, action, 1.0, actor="alice")
            except (NotFoundError, ConflictError) as exc:
                out.append(f"{type(exc).__name__}: {exc}")
        return out, audit.entries

    out, entries = run(tmp_path, scenario)
    assert out == [
        "NotFoundError: cannot drive 'nope': no such point; output points: fan, heater, valve",
        "NotFoundError: cannot drive 'door': it is a digital point; output points: fan, heater, valve",
        "ConflictError: output 'valve' is an analog output; its action is 'set' with a value",
        "ConflictError: output 'fan' is a relay; it is switched on or off, or pulsed",
    ]
    assert entries == []


def test_alarm_and_input_linkage_queue_their_actions_and_the_queue_carries_them_out(tmp_path: Path):
    def event(seq: int, kind: EventKind, state: AlarmState) -> AlarmEvent:
        return AlarmEvent(
            seq,
            "system:device_offline/aio1",
            "system:device_offline",
            kind,
            state,
            Severity.HIGH,
            "aio1",
            None,
            None,
            None,
            None,
            None,
            1_800_000_000.0 + seq,
            "aio1 offline",
            "device aio1 does not answer",
        )

    async def scenario(gw, svc, audit, probe, clock, sim):
        assert svc in gw.alarms.engine.listeners  # the gateway hands the alarm engine's events to it
        svc.on_event(event(1, EventKind.RAISED, AlarmState.UNACK_ACTIVE))  # returns at once: queued
        queued = svc.pending()
        await asyncio.wait_for(svc.idle(), 10)
        fan_on = await probe.read(Function.COIL, 6, 0, 1)
        clock.shift += 120
        svc.on_event(event(2, EventKind.ACKNOWLEDGED, AlarmState.ACK_ACTIVE))  # no linkage for an ack
        svc.on_event(event(3, EventKind.CLEARED, AlarmState.NORMAL))
        # the door opens: the digital input's first value is a state, the change is the edge
        t = clock()
        for active in (0.0, 1.0):
            for point, active_ in svc.observe([Reading(t, "door", Q.DIGITAL_INPUT, Phase.TOTAL, active)]):
                svc.on_input(point, active_)
        await asyncio.wait_for(svc.idle(), 10)
        return (
            queued,
            fan_on,
            audit.brief(),
            await probe.read(Function.COIL, 6, 0, 1),
            await probe.read(Function.HOLDING, 7, 0, 1),
        )

    queued, fan_on, entries, fan_off, valve = run(tmp_path, scenario)
    assert queued == 1 and fan_on == [1] and fan_off == [0]
    assert entries == [
        ("rule:hot", "relay.switch", "fan", None, True, "done"),
        ("rule:cool", "relay.switch", "fan", True, False, "done"),
        ("rule:door-valve", "analog.set", "valve", None, 25.0, "done"),
    ]
    assert valve == [8000]  # 25 % of 4–20 mA = 8 mA, in µA


def test_a_device_that_does_not_answer_is_a_failed_audited_action(tmp_path: Path):
    async def scenario(gw, svc, audit, probe, clock, sim):
        sim.context.table.get(6).alive = False
        auto = await svc.command("fan", Action.ON, actor="rule:hot")
        with pytest.raises(IOPointError):
            await svc.command("fan", Action.ON, actor="alice")
        return auto, audit.entries, svc.health()

    auto, entries, health = run(tmp_path, scenario)
    assert auto.result == "failed" and not auto.confirmed
    assert [(e.actor, e.extra["result"], e.extra["confirmed"]) for e in entries] == [
        ("rule:hot", "failed", False),
        ("alice", "failed", False),
    ]
    assert all("fan" in e.extra["reason"] for e in entries)
    assert health.state.value == "degraded" and health.message.startswith("last failure: fan:")


def test_the_logging_auditor_keeps_the_last_entries():
    a = LoggingAuditor(keep=2)
    for k in range(3):
        a.record(
            AuditEntry(
                ts=float(k), actor="alice", action="relay.switch", target="fan", before=False, after=True
            )
        )
    assert [e.ts for e in a.entries] == [1.0, 2.0]


def test_a_poll_older_than_the_last_confirmed_state_does_not_undo_it():
    cfg = parse_site(SITE.replace("PORT", "1502"))
    svc = ControlService(cfg, lambda: None, LoggingAuditor())  # type: ignore[arg-type, return-value]
    svc.observe([Reading(100.0, "fan", Q.RELAY_OUTPUT, Phase.TOTAL, 1.0)])  # confirmed at 100 s
    svc.observe([Reading(99.5, "fan", Q.RELAY_OUTPUT, Phase.TOTAL, 0.0)])  # polled just before, queued
    svc.observe([Reading(101.0, "door", Q.DIGITAL_INPUT, Phase.TOTAL, 1.0, Quality.INVALID)])  # not GOOD
    assert (svc.state("fan"), svc.since("fan"), svc.state("door")) == (1.0, 100.0, None)
