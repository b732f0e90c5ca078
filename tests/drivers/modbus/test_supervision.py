"""Bus supervision (issue 13): a module added to a running simulated line is found by the background
scan and raises "bus: new device"; a configured device that stops answering is "vanished"; garbled
answers from one address are an address conflict; the scan keeps to its share of the line's time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from meterhub.alarms.engine import AlarmEngine
from meterhub.alarms.model import AlarmEvent, EventKind
from meterhub.alarms.rules import system_alarms
from meterhub.alarms.system import SystemMonitor
from meterhub.config.loader import parse_config
from meterhub.config.schema import SiteConfig
from meterhub.drivers.base import DeviceStatus, SourceContext
from meterhub.drivers.modbus.errors import ModbusCrcError, ModbusTimeout
from meterhub.drivers.modbus.source import ModbusSource, link_for_bus
from meterhub.drivers.modbus.supervision import (
    CONFLICT_HOLD,
    BusEventKind,
    BusScanner,
    BusWatch,
)
from meterhub.drivers.modbus.transport import LineStats
from meterhub.errors import MeterhubError
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Function
from meterhub.sim.modbus_device import DictTable, ProfileDevice
from meterhub.sim.modbus_server import Framing, serve_devices
from meterhub.sim.physics import SiteModel

SITE = """
site: {{name: supervised line}}
buses:
  - id: line
    kind: modbus-rtu-over-tcp
    port: {port}
    timeout: 0.2
    retries: 0
    scan: {{enabled: true, share: 0.5, range: "1-4"}}
devices:
  - {{id: main, bus: line, unit: 1, profile: eastron-sdm630, poll_interval: 0.2}}
circuits:
  - {{id: grid, device: main, channels: [1, 2, 3], wiring: 3P4W}}
"""


def _sdm(model: SiteModel, name: str = "main") -> ProfileDevice:
    return ProfileDevice(name, get_profile("eastron-sdm630"), model)


class _Events:
    def __init__(self) -> None:
        self.events: list[AlarmEvent] = []

    def on_event(self, event: AlarmEvent) -> None:
        self.events.append(event)


def _alarms(cfg: SiteConfig, watch: BusWatch, tmp_path: Path) -> tuple[AlarmEngine, SystemMonitor, _Events]:
    ev = _Events()
    eng = AlarmEngine(system_alarms(cfg), clock=time.time, listeners=[ev])
    mon = SystemMonitor(cfg, eng, dict, tmp_path, time.time())
    mon.bus_state = lambda: {"line": watch}
    return eng, mon, ev


async def _until(cond, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def test_a_module_added_to_a_running_bus_appears_as_an_event_and_a_bus_alarm(tmp_path: Path) -> None:
    model = SiteModel.single_meter("main", rated_power=3000.0)
    devices = {1: _sdm(model)}

    async def go():  # type: ignore[no-untyped-def]
        # RTU over TCP: an absent unit is silent, as on RS485
        srv = await serve_devices(DictTable(devices), kind=Framing.RTU_OVER_TCP, port=0)
        cfg = parse_config(SITE.format(port=srv.port))
        status: dict[str, DeviceStatus] = {}
        src = ModbusSource(
            SourceContext(cfg, cfg.buses[0], cfg.devices, status, tmp_path), link=link_for_bus(cfg.buses[0])
        )
        eng, mon, ev = _alarms(cfg, src.watch, tmp_path)
        task = asyncio.create_task(src.run(lambda batch: None))
        try:
            await _until(lambda: src.scanner is not None and src.scanner.sweeps >= 1)
            assert src.watch.new == {}  # units 2-4 silent: nothing new yet
            mon.tick(time.time())
            eng.tick()
            assert ev.events == []
            # a seed-000 current module plugged into the running line at address 3 (it has a model code)
            devices[3] = ProfileDevice("plugged-in", get_profile("enertrek-m20"), model)
            await _until(lambda: 3 in src.watch.new)
            mon.tick(time.time())
            eng.tick()
            del devices[3]  # unplugged again: "gone", and the alarm clears
            await _until(lambda: 3 not in src.watch.new)
            mon.tick(time.time())
            eng.tick()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await src.close()
            await srv.close()
        return src, ev, status

    src, ev, status = asyncio.run(go())
    kinds = [(e.kind, e.unit) for e in src.watch.events]
    assert kinds == [(BusEventKind.NEW_DEVICE, 3), (BusEventKind.GONE, 3)]
    assert src.watch.events[0].message == (
        "a device that is not configured answers at address 3: enertrek-m20 (sure: its model code matches)"
    )
    assert [(e.kind, e.alarm_id) for e in ev.events] == [
        (EventKind.RAISED, "system:bus_new_device/line"),
        (EventKind.CLEARED, "system:bus_new_device/line"),
    ]
    assert ev.events[0].title == "bus: new device on line"
    assert ev.events[0].message.startswith("a device that is not configured answers at address 3 of bus line")
    assert status["main"].online  # polling went on while the scan probed
    assert src.scanner is not None and src.scanner.probes >= 6


def test_a_configured_device_that_stops_answering_vanishes_and_comes_back(tmp_path: Path) -> None:
    model = SiteModel.single_meter("main", rated_power=3000.0)
    main = _sdm(model)

    async def go():  # type: ignore[no-untyped-def]
        srv = await serve_devices({1: main}, kind=Framing.RTU_OVER_TCP, port=0)
        cfg = parse_config(SITE.format(port=srv.port).replace("enabled: true", "enabled: false"))
        src = ModbusSource(
            SourceContext(cfg, cfg.buses[0], cfg.devices, {}, tmp_path), link=link_for_bus(cfg.buses[0])
        )
        eng, mon, ev = _alarms(cfg, src.watch, tmp_path)
        task = asyncio.create_task(src.run(lambda batch: None))
        try:
            await _until(lambda: 1 in src.watch.seen)
            main.alive = False
            await _until(lambda: 1 in src.watch.vanished)
            mon.tick(time.time())
            eng.tick()
            main.alive = True
            await _until(lambda: 1 not in src.watch.vanished)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await src.close()
            await srv.close()
        return src, ev

    src, ev = asyncio.run(go())
    assert src.scanner is None
    assert [(e.kind, e.unit, e.device) for e in src.watch.events] == [
        (BusEventKind.VANISHED, 1, "main"),
        (BusEventKind.BACK, 1, "main"),
    ]
    assert [e.alarm_id for e in ev.events] == ["system:bus_vanished/line"]
    assert "address 1 of bus line" in ev.events[0].message


def test_a_found_device_without_a_model_code_is_only_likely(tmp_path: Path) -> None:
    model = SiteModel.single_meter("main", rated_power=3000.0)

    async def go() -> str:
        srv = await serve_devices({5: _sdm(model)}, kind=Framing.RTU_OVER_TCP, port=0)
        cfg = parse_config(SITE.format(port=srv.port))
        link = link_for_bus(cfg.buses[0])
        scanner = BusScanner(
            link,
            BusWatch("line", {}),
            [5],
            share=1.0,
            profiles=[get_profile("eastron-sdm630"), get_profile("enertrek-m20")],
        )
        try:
            return await scanner.identify(5)
        finally:
            await link.close()
            await srv.close()

    assert asyncio.run(go()) == "likely eastron-sdm630 (plausible values, no model code to be sure)"


class _Collided(DictTable):
    """Two devices at unit 1: every answer from it is garbled on the wire (the simulator's collision)."""

    def collided(self, unit: int) -> bool:
        return unit == 1


def test_garbled_answers_from_one_address_are_an_address_conflict(tmp_path: Path) -> None:
    model = SiteModel.single_meter("main", rated_power=3000.0)

    async def go():  # type: ignore[no-untyped-def]
        srv = await serve_devices(_Collided({1: _sdm(model)}), kind=Framing.RTU_OVER_TCP, port=0)
        cfg = parse_config(SITE.format(port=srv.port).replace("enabled: true", "enabled: false"))
        src = ModbusSource(
            SourceContext(cfg, cfg.buses[0], cfg.devices, {}, tmp_path), link=link_for_bus(cfg.buses[0])
        )
        eng, mon, ev = _alarms(cfg, src.watch, tmp_path)
        task = asyncio.create_task(src.run(lambda batch: None))
        try:
            await _until(lambda: 1 in src.watch.conflicts)
            mon.tick(time.time())
            eng.tick()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await src.close()
            await srv.close()
        return src, ev

    src, ev = asyncio.run(go())
    conflict = next(e for e in src.watch.events if e.kind is BusEventKind.CONFLICT)
    assert conflict.unit == 1 and conflict.device == "main"
    assert conflict.message.startswith("two devices at address 1 (main)? 2 unreadable answers within")
    assert [e.alarm_id for e in ev.events] == ["system:bus_conflict/line"]


def test_one_garbled_answer_is_noise_two_are_a_conflict_that_ends_after_the_hold() -> None:
    w = BusWatch("line", {5: "m5"}, clock=lambda: 0.0)
    w.garbled(5, "bad CRC", ts=100.0)
    assert w.conflicts == {}
    w.garbled(5, "bad CRC", ts=160.0)
    assert list(w.conflicts) == [5]
    w.expire(160.0 + CONFLICT_HOLD)  # not yet: exactly the hold
    assert list(w.conflicts) == [5]
    w.expire(161.0 + CONFLICT_HOLD)
    assert w.conflicts == {}
    assert [e.kind for e in w.events] == [BusEventKind.CONFLICT, BusEventKind.CONFLICT_CLEARED]
    # two identities at one address are a conflict at once
    w.conflict(5, "serial number read as 11, then as 22", ts=2000.0)
    assert w.conflicts[5][1] == "two devices at address 5 (m5)? serial number read as 11, then as 22"


class _FakeLink:
    """A line where each probe takes 0.1 s of (fake) time; unit 7 answers, the others are silent."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.stats = LineStats()
        self.endpoint = "fake://"

    async def read(self, function: Function, unit: int, start: int, count: int) -> list[int]:
        self.clock[0] += 0.1
        if unit == 7:
            return [0]
        if unit == 9:
            raise ModbusCrcError("unit 9: bad CRC")
        raise ModbusTimeout(f"no response from unit {unit}")


def test_the_scan_keeps_to_its_share_of_the_line_time() -> None:
    t = [0.0]
    pauses: list[float] = []

    def sleep(s: float) -> None:
        pauses.append(s)
        t[0] += s

    watch = BusWatch("line", {1: "main"}, clock=lambda: t[0])
    scanner = BusScanner(
        _FakeLink(t),  # type: ignore[arg-type]
        watch,
        range(1, 11),
        share=0.05,
        monotonic=lambda: t[0],
        sleep=sleep,
    )
    assert scanner.units == [2, 3, 4, 5, 6, 7, 8, 9, 10]  # the configured unit 1 is polled, not scanned

    async def sweep() -> None:
        for u in scanner.units:
            await scanner.step(u)

    asyncio.run(sweep())
    # 9 probes of 0.1 s, each followed by 0.1 · 0.95 / 0.05 = 1.9 s: 5 % of the 18 s
    assert scanner.busy == pytest.approx(0.9)
    assert pauses == pytest.approx([1.9] * 9)
    assert scanner.busy / t[0] == pytest.approx(0.05)
    assert list(watch.new) == [7, 9]  # a garbled answer is somebody too
    assert watch.scan == {"probes": 9, "sweeps": 0, "busy_s": 0.9}
    assert watch.conflicts == {}  # one garbled answer is noise


@pytest.mark.parametrize(
    ("scan", "error"),
    [
        ('{enabled: true, range: "0-5"}', "must lie within 1-247"),
        ('{enabled: true, range: "a-b"}', "is not N or N-M"),
        ("{enabled: true, share: 0.9}", "less than or equal to 0.5"),
    ],
)
def test_a_bad_scan_section_is_refused_at_its_field(scan: str, error: str) -> None:
    text = SITE.format(port=1502).replace('{enabled: true, share: 0.5, range: "1-4"}', scan)
    with pytest.raises(MeterhubError, match=error):
        parse_config(text)


def test_a_scan_on_a_bus_that_is_not_modbus_is_refused() -> None:
    text = """
site: {name: x}
buses:
  - {id: io, kind: io, scan: {enabled: true}}
"""
    with pytest.raises(MeterhubError, match="only a Modbus bus has a background scan"):
        parse_config(text)
