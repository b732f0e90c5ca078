"""The per-line scheduler: one request at a time, priorities, a dead device isolated with backoff,
exception codes and corrupted frames reported with device and register, never raised."""

from __future__ import annotations

import asyncio
import logging

import pytest

from meterhub.drivers.base import DeviceStatus
from meterhub.drivers.modbus.reader import DeviceReader
from meterhub.drivers.modbus.scheduler import LineScheduler, PolledDevice
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.profiles import get_profile
from meterhub.profiles.schema import parse_profile
from meterhub.sim.modbus_modules import ModuleBus
from meterhub.sim.modbus_server import Framing, ProfileDevice, serve_devices
from meterhub.sim.physics import SiteModel


class Monotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _polled(device_id: str, profile: str, unit: int, priority: int = 0) -> PolledDevice:
    p = get_profile(profile)
    return PolledDevice(
        DeviceReader(device_id, p, unit), DeviceStatus(device_id, device_id, profile, "bus"), 1.0, priority
    )


def test_due_devices_go_by_priority_then_voltage_unit_then_longest_waiting():
    devs = [
        _polled("m-late", "enertrek-m10", 2),
        _polled("vu", "enertrek-v10", 1),
        _polled("urgent", "enertrek-m10", 3, priority=5),
        _polled("m-early", "enertrek-m10", 4),
    ]
    devs[0].next_due, devs[3].next_due = 5.0, 1.0
    sched = LineScheduler(ModbusLink(TransportKind.TCP), devs)
    assert [d.id for d in sched.due(10.0)] == ["urgent", "vu", "m-early", "m-late"]


def test_a_dead_device_costs_at_most_one_timeout_per_cycle_and_backs_off():
    model = SiteModel.single_meter("a", rated_power=2000.0)
    dead = ProfileDevice("b", get_profile("eastron-sdm630"), model)
    devices = {
        1: ProfileDevice("a", get_profile("eastron-sdm630"), model),
        2: dead,
        3: ProfileDevice("c", get_profile("eastron-sdm630"), model),
    }
    dead.alive = False
    mono = Monotonic()

    async def go():
        # RTU over TCP: an absent unit is silent, exactly like on RS485
        srv = await serve_devices(devices, kind=Framing.RTU_OVER_TCP, port=0)
        link = ModbusLink(TransportKind.RTU_OVER_TCP, port=srv.port, timeout=0.5)
        polled = [_polled(n, "eastron-sdm630", u) for n, u in (("a", 1), ("b", 2), ("c", 3))]
        for p in polled:
            p.next_due = mono.t
        sched = LineScheduler(link, polled, retries=1, monotonic=mono, max_backoff=8.0)
        per_cycle = []
        try:
            for _cycle in range(10):
                before = link.stats.timeouts
                await sched.run_cycle()
                per_cycle.append(link.stats.timeouts - before)
                mono.t += 1.0
            dead.alive = True  # the device comes back
            for _cycle in range(8):
                await sched.run_cycle()
                mono.t += 1.0
        finally:
            await link.close()
            await srv.close()
        return polled, per_cycle

    (a, b, c), per_cycle = asyncio.run(go())
    assert max(per_cycle) == 1  # never more than one timeout in a cycle
    # retries=1: cycles 1 and 2 fail (offline after the 2nd), then backoff 1, 2, 4 s → probes at 3, 5, 9
    assert per_cycle == [1, 1, 1, 0, 1, 0, 0, 0, 1, 0]
    assert a.polls == c.polls == 18 and a.status.online and c.status.online
    assert a.status.errors == c.status.errors == 0
    assert b.status.timeouts == 5
    assert b.status.online  # back online after its next probe (at cycle 17)
    assert b.failures == 0


def test_exception_response_is_logged_with_device_and_register_and_other_blocks_still_read(caplog):
    reader_profile = parse_profile(
        """id: two-blocks
vendor: t
model: t
source: a test profile with two blocks
defaults: {max_gap: 0}
registers:
  - {quantity: voltage, phase: L1, address: 0}
  - {quantity: frequency, phase: total, address: 100}
"""
    )
    served = parse_profile(
        """id: one-block
vendor: t
model: t
source: a device that only has voltage
registers:
  - {quantity: voltage, phase: L1, address: 0}
"""
    )
    model = SiteModel.single_meter("m", rated_power=1000.0)

    async def go():
        srv = await serve_devices({7: ProfileDevice("m", served, model)}, kind=Framing.TCP, port=0)
        link = ModbusLink(TransportKind.TCP, port=srv.port, timeout=0.5)
        dev = PolledDevice(
            DeviceReader("meter-7", reader_profile, 7), DeviceStatus("meter-7", "", "two-blocks", "b"), 1.0
        )
        try:
            with caplog.at_level(logging.WARNING, logger="meterhub.modbus"):
                return await LineScheduler(link, [dev]).poll(dev), dev
        finally:
            await link.close()
            await srv.close()

    result, dev = asyncio.run(go())
    assert [p.quantity for p in result.values] == ["voltage"]
    assert dev.status.online and dev.status.errors == 1
    assert (
        "device meter-7 (unit 7, two-blocks) input registers 100…101: unit 7: exception 02 (illegal data address)"
        in caplog.text
    )


def test_block_over_a_hole_is_split_when_the_device_rejects_holes():
    p = get_profile("eastron-sdm630")
    model = SiteModel.single_meter("m", rated_power=5000.0)
    strict = ProfileDevice("m", p, model, reject_holes=True)

    async def go():
        srv = await serve_devices({1: strict}, kind=Framing.TCP, port=0)
        link = ModbusLink(TransportKind.TCP, port=srv.port, timeout=0.5)
        reader = DeviceReader("m", p, 1)
        try:
            first = await reader.read(link)
            n1 = link.stats.requests
            second = await reader.read(link)
            return first, second, n1, link.stats.requests - n1
        finally:
            await link.close()
            await srv.close()

    first, second, n1, n2 = asyncio.run(go())
    # nothing lost: 58 points, minus the 8 demand registers the model leaves NaN (not available)
    assert len(first.values) == len(second.values) == 50
    assert first.errors == second.errors == []
    assert n2 < n1  # the learned plan is kept: no failed block reads the second time
    assert n2 > 4  # but it needs more requests than the hole-bridging plan


def test_a_collision_on_the_line_is_a_frame_error_named_with_device_and_register(caplog):
    """Two modules at one address: the simulator garbles and cuts the answer, as a collision does."""
    model = SiteModel.single_meter("x", rated_power=1000.0)
    bus = ModuleBus(ProfileDevice("vu", get_profile("enertrek-v10"), model))
    bus.add(ProfileDevice("m1", get_profile("enertrek-m10"), model), 4)
    bus.add(ProfileDevice("m2", get_profile("enertrek-m10"), model), 4)

    async def go():
        srv = await serve_devices(bus, kind=Framing.RTU_OVER_TCP, port=0)
        link = ModbusLink(TransportKind.RTU_OVER_TCP, port=srv.port, timeout=0.5)
        dev = PolledDevice(
            DeviceReader("m1", get_profile("enertrek-m10"), 4),
            DeviceStatus("m1", "", "enertrek-m10", "b"),
            1.0,
        )
        vu = PolledDevice(
            DeviceReader("vu", get_profile("enertrek-v10"), 1),
            DeviceStatus("vu", "", "enertrek-v10", "b"),
            1.0,
        )
        try:
            with caplog.at_level(logging.WARNING, logger="meterhub.modbus"):
                sched = LineScheduler(link, [dev, vu], retries=0)
                bad = await sched.poll(dev)
                good = await sched.poll(vu)  # the line still works after the garbage
            return bad, good
        finally:
            await link.close()
            await srv.close()

    bad, good = asyncio.run(go())
    assert not bad.values and not bad.timed_out
    assert (
        "device m1 (unit 4, enertrek-m10) input registers 0…29: unit 4: cut-off frame: 64 byte(s) and no more "
        "within 0.5 s" in caplog.text
    )
    assert len(good.values) == 168


@pytest.mark.parametrize("kind", [TransportKind.TCP, TransportKind.RTU_OVER_TCP])
def test_connection_refused_is_an_error_not_a_crash(kind):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here once the socket closes
    dev = _polled("gone", "eastron-sdm630", 1)

    async def go():
        link = ModbusLink(kind, port=port, timeout=0.2)
        try:
            return await LineScheduler(link, [dev], retries=0).poll(dev)
        finally:
            await link.close()

    result = asyncio.run(go())
    assert result.timed_out and not result.values
    assert "cannot connect" in (dev.status.last_error or "")
    assert not dev.status.online


def test_cancelling_a_busy_source_always_stops_it():
    """The runtime stops sources by cancelling them; a cancellation arriving just as an answer does
    (asyncio.wait_for before 3.12 can swallow it) must still stop the line."""
    import random
    from pathlib import Path

    from meterhub.config.loader import parse_config
    from meterhub.drivers.base import SourceContext
    from meterhub.drivers.modbus.source import ModbusSource, link_for_bus
    from meterhub.sim.base import SimContext
    from meterhub.sim.modbus_server import modbus_simulator

    from .conftest import SMALL_SITE, free_port

    cfg = parse_config(SMALL_SITE.replace("PORT", str(free_port())).replace("timeout: 0.5", "timeout: 2.0"))
    cfg = cfg.model_copy(
        update={"devices": [d.model_copy(update={"poll_interval": 0.001}) for d in cfg.devices]}
    )
    model = SiteModel(cfg)
    rng = random.Random(7)

    async def go() -> int:
        sim = await modbus_simulator(SimContext(cfg, cfg.buses[0], cfg.devices, model))
        stopped = 0
        try:
            for _ in range(25):
                src = ModbusSource(
                    SourceContext(cfg, cfg.buses[0], cfg.devices, {}, Path(".")),
                    link=link_for_bus(cfg.buses[0]),
                )
                task = asyncio.create_task(src.run(lambda batch: None))
                await asyncio.sleep(rng.uniform(0.02, 0.2))
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=3.0)
                stopped += task in done
                await src.close()
        finally:
            await sim.close()
        return stopped

    assert asyncio.run(go()) == 25
