"""ModbusSource end to end on an in-memory line (no socket): the link is injected, the registers are
encoded by hand, and the readings and device counters are checked exactly."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from meterhub.config.loader import parse_config
from meterhub.drivers.base import DeviceStatus, SourceContext
from meterhub.drivers.modbus.memory import Fault, MemoryLink
from meterhub.drivers.modbus.source import ModbusSource
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Function

SITE = """
site: {name: t}
buses: [{id: b, kind: modbus-tcp, port: 1502, retries: 0}]
devices:
  - {id: sdm, bus: b, unit: 1, profile: eastron-sdm120, poll_interval: 60}
circuits:
  - {id: pump, device: sdm, channels: [1], wiring: 1P2W, phases: [L1]}
"""
NOW = 1_700_000_000.0
NAN = 0x7FC0  # first register of a float32 quiet NaN ("not available")


def _f32(x: float) -> list[int]:
    """A float32 as an Eastron register pair: IEEE 754 big-endian, high word first."""
    hi, lo = struct.unpack(">HH", struct.pack(">f", x))
    return [hi, lo]


def _sdm120_image(link: MemoryLink) -> None:
    """Every input register the SDM120 profile reads is "not available", except five values."""
    for p in get_profile("eastron-sdm120").points():
        link.set(1, p.function, p.address, [NAN, 0])
    link.set(1, Function.INPUT, 0x0000, _f32(230.0))  # 30001 voltage [V]
    link.set(1, Function.INPUT, 0x0006, _f32(5.0))  # 30007 current [A]
    link.set(1, Function.INPUT, 0x000C, _f32(1150.0))  # 30013 active power [W]
    link.set(1, Function.INPUT, 0x0046, _f32(50.0))  # 30071 frequency [Hz]
    link.set(1, Function.INPUT, 0x0048, _f32(12.5))  # 30073 import active energy [kWh]
    # the planner bridges the holes between mapped registers (max_gap 16): they read as zeros
    for a in range(0x0000, 0x005C):
        link.images[1].setdefault((Function.INPUT, a), 0)


async def _run(
    link: MemoryLink, extra_polls: int, tmp_path: Path
) -> tuple[list[list[Reading]], DeviceStatus]:
    cfg = parse_config(SITE)
    status: dict[str, DeviceStatus] = {}
    src = ModbusSource(
        SourceContext(cfg, cfg.buses[0], cfg.devices, status, tmp_path), link=link, wall=lambda: NOW
    )
    batches: list[list[Reading]] = []
    task = asyncio.create_task(src.run(lambda batch: batches.append(list(batch))))
    try:
        await asyncio.sleep(0.01)  # the first poll runs at start; its fan-out on the next loop turn
        for _ in range(extra_polls):
            await src.scheduler.poll(src.polled[0])
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await src.close()
    return batches, status["sdm"]


def _values(batch: list[Reading]) -> dict[tuple[str, Phase | None], float]:
    assert all(r.circuit == "pump" and r.quality is Quality.GOOD and r.ts == NOW for r in batch)
    return {(r.quantity, r.phase): r.value for r in batch}


#: What the five registers give for a one-phase circuit: the L1 values, and totals equal to them
#: (a single phase: the sum and the mean of one value are that value).
EXPECTED = {
    (Q.VOLTAGE, Phase.L1): 230.0,
    (Q.VOLTAGE, Phase.TOTAL): 230.0,
    (Q.CURRENT, Phase.L1): 5.0,
    (Q.CURRENT, Phase.TOTAL): 5.0,
    (Q.ACTIVE_POWER, Phase.L1): 1150.0,
    (Q.ACTIVE_POWER, Phase.TOTAL): 1150.0,
    (Q.FREQUENCY, Phase.TOTAL): 50.0,
    (Q.ENERGY_ACTIVE_IMPORT, Phase.L1): 12_500.0,  # 12.5 kWh in Wh
    (Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL): 12_500.0,
}


def test_a_good_poll_gives_the_hand_encoded_values_and_counts_one_request_per_block(tmp_path: Path) -> None:
    link = MemoryLink()
    _sdm120_image(link)
    batches, st = asyncio.run(_run(link, 0, tmp_path))
    assert len(batches) == 1
    assert _values(batches[0]) == EXPECTED
    blocks = len(link.requests)
    assert blocks == 2  # 0x0000…0x0025 and 0x0046…0x005B: the 32-register hole is not bridged
    assert (st.online, st.last_seen, st.requests, st.errors, st.timeouts, st.last_error) == (
        True,
        NOW,
        blocks,
        0,
        0,
        None,
    )
    assert link.stats.requests == blocks and link.stats.errors == 0


def test_an_exception_response_fails_the_block_names_it_and_the_next_poll_recovers(tmp_path: Path) -> None:
    link = MemoryLink()
    _sdm120_image(link)
    link.script(Fault.exception_code(4))  # the first block: server device failure
    batches, st = asyncio.run(_run(link, 1, tmp_path))
    # first poll: block 1 refused, block 2 read — the energy still arrives; the frequency does not, as
    # a meter's supply values are shown only with its voltage (which was in the refused block)
    first = _values(batches[0])
    assert first == {
        (Q.ENERGY_ACTIVE_IMPORT, Phase.L1): 12_500.0,
        (Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL): 12_500.0,
    }
    assert _values(batches[1]) == EXPECTED
    assert st.errors == 1 and st.timeouts == 0 and st.requests == 4 and st.online
    assert st.last_error == (
        "device sdm (unit 1, eastron-sdm120) input registers 0…37: unit 1: exception 04 (server device failure)"
    )


def test_a_timeout_takes_the_device_offline_without_readings_and_one_answer_brings_it_back(
    tmp_path: Path,
) -> None:
    link = MemoryLink()
    _sdm120_image(link)
    link.script(Fault.silence())
    batches, st = asyncio.run(_run(link, 1, tmp_path))
    # the silent first poll stops at its first block (one timeout per silent poll) and emits nothing
    assert link.requests[0] == (Function.INPUT, 1, 0, 38)
    assert len(link.requests) == 1 + 2
    assert len(batches) == 1 and _values(batches[0]) == EXPECTED
    assert (st.online, st.requests, st.errors, st.timeouts) == (True, 3, 1, 1)
    assert st.last_error == (
        "device sdm (unit 1, eastron-sdm120) input registers 0…37: no response from unit 1 within 1 s"
    )
    assert link.stats.timeouts == 1
