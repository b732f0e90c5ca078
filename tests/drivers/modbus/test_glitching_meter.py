"""A glitching SDM630 over 10 minutes, end to end: the Modbus source reads a malicious in-memory device,
the energy stage guards its registers (issue 10, "Done when", first bullet).

The device answers 600 polls at 1 s (a fake clock: the test runs in about a second). Its true import
register is a float32 kWh counter driven by a load that changes every 20–60 s between 0.5 and 9 kW;
on a pseudo-random one poll in eight it answers instead with all zeros, word-swapped floats, 3.4e38
everywhere, NaN everywhere, or the previous poll's frames again (a duplicated, stale answer). Its
serial-number register glitches the same way when it is read.

Counted energy must be ≤ true + one poll interval and ≥ true − the quarantined polls' energy; the live
cache (which skips INVALID readings) never shows a register above the truth; the device status names
the all-NaN answers and the quarantined steps. The figures are printed for the closing note (``-s``).
"""

from __future__ import annotations

import asyncio
import random
import struct
from pathlib import Path

from meterhub.config.loader import parse_config
from meterhub.drivers.base import DeviceStatus, SourceContext
from meterhub.drivers.modbus.errors import exception_response
from meterhub.drivers.modbus.memory import MemoryLink
from meterhub.drivers.modbus.source import ModbusSource
from meterhub.energy.pipeline import EnergyPipeline
from meterhub.live import LiveCache
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Function
from meterhub.sim.modbus_device import ProfileDevice
from meterhub.sim.physics import SiteModel

SITE = """
site: {name: glitch, timezone: Europe/Berlin, nominal_voltage: 230}
buses: [{id: b, kind: modbus-tcp, port: 1502, retries: 2}]
devices:
  - {id: sdm, bus: b, unit: 1, profile: eastron-sdm630, poll_interval: 1}
circuits:
  - {id: office, device: sdm, channels: [1, 2, 3], wiring: 3P4W, ct: {kind: direct}}
"""
T0 = 1_780_300_800.0  # 2026-06-01T08:00:00Z
POLLS = 600
E0 = 20_000.0  # [kWh] at the start
IMPORT = 0x0048  # 30073 total import [kWh], float32
SERIAL = 0xFC00  # holding 464513, uint32
KEY = SeriesKey("office", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL)
KINDS = ("zeros", "swap", "max", "nan", "duplicate")


def f32(x: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", x))
    return [hi, lo]


def f32_value(x: float) -> float:
    """``x`` as the meter's float32 holds it."""
    return float(struct.unpack(">f", struct.pack(">f", x))[0])


class GlitchingLink(MemoryLink):
    """A MemoryLink whose answers are spoiled as ``mode`` says (for every request while it is set)."""

    def __init__(self) -> None:
        super().__init__()
        self.mode: str | None = None
        self.previous: dict[tuple[Function, int, int, int], list[int]] = {}
        self.current: dict[tuple[Function, int, int, int], list[int]] = {}

    def next_poll(self, mode: str | None) -> None:
        self.previous, self.current, self.mode = self.current, {}, mode

    async def read(self, function: Function, unit: int, start: int, count: int) -> list[int]:
        regs = await super().read(function, unit, start, count)
        key = (function, unit, start, count)
        if self.mode is None:
            self.current[key] = regs
            return regs
        if self.mode == "zeros":
            return [0] * count
        if self.mode == "swap":  # the two words of every float swapped
            return [
                regs[i + 1 - 2 * (i % 2)] if i + 1 - 2 * (i % 2) < count else regs[i] for i in range(count)
            ]
        if self.mode == "max":  # 3.4e38 (float32 maximum) in every float
            return [0x7F7F if i % 2 == 0 else 0xFFFF for i in range(count)]
        if self.mode == "nan":
            return [0x7FC0 if i % 2 == 0 else 0x0000 for i in range(count)]
        return self.previous.get(key, regs)  # "duplicate": the last poll's answer again


def image(link: GlitchingLink, kwh: float, power: float) -> None:
    """Every float register of the SDM630 profile: plausible values for a balanced load of ``power``."""
    values = {
        Q.VOLTAGE: 230.0,
        Q.CURRENT: power / 3 / 230.0,
        Q.ACTIVE_POWER: power / 3,
        Q.FREQUENCY: 50.0,
        Q.POWER_FACTOR: 1.0,
        Q.APPARENT_POWER: power / 3,
    }
    for p in get_profile("eastron-sdm630").points():
        link.set(1, p.function, p.address, f32(values.get(p.quantity, 0.0)))
    for a in range(0x0000, 0x0180):  # holes the planner bridges read as zeros
        link.images[1].setdefault((Function.INPUT, a), 0)
    link.set(1, Function.INPUT, IMPORT, f32(kwh))
    link.set(1, Function.HOLDING, SERIAL, [0x00BC, 0x614E])  # 12 345 678


def test_a_glitching_meter_over_ten_minutes_counts_no_more_than_the_truth_plus_one_poll(
    tmp_path: Path,
) -> None:
    rng = random.Random(10)
    cfg = parse_config(SITE)
    clock = [T0]
    energy = EnergyPipeline(cfg, None, clock=lambda: clock[0])
    status: dict[str, DeviceStatus] = {}
    link = GlitchingLink()
    ctx = SourceContext(cfg, cfg.buses[0], cfg.devices, status, tmp_path, device_serial=energy.device_serial)
    src = ModbusSource(ctx, link=link, wall=lambda: clock[0])
    live = LiveCache()
    emitted: list[Reading] = []

    def emit(batch: list[Reading]) -> None:
        out = energy.process(batch)
        emitted.extend(out)
        live.update(out)

    src._emit = emit  # the source's run() sets this; the test drives the scheduler itself

    # the truth: a load changing every 20–60 s, integrated into a float32 kWh register
    true_kwh = [E0]
    power, change_at = 3000.0, 0
    powers: list[float] = []
    for k in range(1, POLLS + 1):
        if k >= change_at:
            power, change_at = rng.uniform(500.0, 9000.0), k + rng.randint(20, 60)
        powers.append(power)
        true_kwh.append(true_kwh[-1] + power / 3600.0 / 1000.0)
    served = [f32_value(x) for x in true_kwh]  # what the meter's register holds [kWh]
    # glitches: one poll in eight, never the first (the baseline) nor the last five (nothing left pending)
    glitch = {k: rng.choice(KINDS) for k in range(1, POLLS - 5) if rng.random() < 1 / 8}

    async def drive() -> int:
        above = 0
        for k in range(POLLS + 1):
            clock[0] = T0 + k
            image(link, served[k], powers[max(k - 1, 0)])
            link.next_poll(glitch.get(k))
            await src.scheduler.poll(src.polled[0])
            shown = live.get(KEY)
            if (
                shown is not None
                and shown.value - served[0] * 1000.0 > (served[k] - served[0]) * 1000.0 + 1e-6
            ):
                above += 1
        return above

    shown_above_truth = asyncio.run(drive())

    counted_points = [r for r in emitted if r.key == KEY and r.quality < Quality.INVALID]
    assert all(b.value >= a.value for a, b in zip(counted_points, counted_points[1:], strict=False))
    counted = counted_points[-1].value - counted_points[0].value  # [Wh]
    true = (served[-1] - served[0]) * 1000.0  # [Wh]
    # the energy of the polls that were not counted: the interval before each glitch poll [Wh]
    quarantined_energy = sum((served[k] - served[k - 1]) * 1000.0 for k in glitch)
    one_poll = max(powers) * 1.0 / 3600.0  # [Wh]
    by_kind = {kind: sum(1 for v in glitch.values() if v == kind) for kind in KINDS}
    print(
        f"\nglitching SDM630, {POLLS} polls at 1 s: true {true:.2f} Wh, counted {counted:.2f} Wh "
        f"(difference {counted - true:+.3f} Wh), {len(glitch)} glitch polls {by_kind} carrying "
        f"{quarantined_energy:.2f} Wh; bound true + one poll = {true + one_poll:.2f} Wh, "
        f"true − quarantined = {true - quarantined_energy:.2f} Wh"
    )
    assert len(glitch) >= 60 and all(by_kind.values())
    assert true - quarantined_energy <= counted <= true + one_poll
    assert shown_above_truth == 0  # no invalid register reading reached the live cache
    assert energy.register_status()[KEY].confirmed == ()  # no glitch passed for a reset or a new meter
    # the serial number was read (twice: a new one is confirmed by a second read) and kept
    assert energy.serial("sdm") == "12345678"
    data = energy.data_status()["sdm"]
    assert data.refused >= by_kind["nan"] * 30  # every value of an all-NaN answer is refused
    assert data.quarantined >= 1
    assert any("all values NaN" in m or "not a number" in m for m in data.messages)
    assert any(m.startswith("register energy_active_import total quarantined") for m in data.messages)


def test_a_garbled_serial_number_read_is_not_taken_for_a_new_meter(tmp_path: Path) -> None:
    """The serial number is handed on only when two reads agree: a zeros answer to one of them (a
    glitch) would otherwise arm the register guard to accept the next glitch as a new meter."""
    cfg = parse_config(SITE)
    serials: list[tuple[str, str]] = []
    link = GlitchingLink()
    image(link, E0, 3000.0)
    ctx = SourceContext(
        cfg, cfg.buses[0], cfg.devices, {}, tmp_path, device_serial=lambda d, s: serials.append((d, s))
    )
    src = ModbusSource(ctx, link=link, wall=lambda: T0)

    reads = 0
    original = link.read

    async def read(function: Function, unit: int, start: int, count: int) -> list[int]:
        nonlocal reads
        regs = await original(function, unit, start, count)
        if function is Function.HOLDING and start == SERIAL:
            reads += 1
            if reads == 2:
                return [0, 0]
        return regs

    link.read = read  # type: ignore[method-assign]
    asyncio.run(src.scheduler.poll(src.polled[0]))
    assert reads == 2 and serials == []  # 12345678 then 0: nothing handed on
    # a minute later (IDENTIFY_RETRY) both reads agree
    src.scheduler.wall = lambda: T0 + 60.0
    asyncio.run(src.scheduler.poll(src.polled[0]))
    assert reads == 4 and serials == [("sdm", "12345678")]


SDM120_SITE = """
site: {name: t, timezone: Europe/Berlin}
buses: [{id: b, kind: modbus-tcp, port: 1502, retries: 0}]
devices:
  - {id: sdm, bus: b, unit: 1, profile: eastron-sdm120, poll_interval: 1}
circuits:
  - {id: pump, device: sdm, channels: [1], wiring: 1P2W, phases: [L2]}
"""


def test_an_sdm120_serving_nan_for_everything_is_online_with_all_values_nan(tmp_path: Path) -> None:
    """The issue's SDM120 on L2: every register NaN. The device answers (online), its readings go on
    as NaN and INVALID (never to the live cache), and the device's data status says so."""
    cfg = parse_config(SDM120_SITE)
    t = 1_780_300_923.0  # 2026-06-01 10:02:03 in Berlin
    energy = EnergyPipeline(cfg, None, clock=lambda: t)
    status: dict[str, DeviceStatus] = {}
    link = MemoryLink()
    for p in get_profile("eastron-sdm120").points():
        link.set(1, p.function, p.address, [0x7FC0, 0x0000])
    for a in range(0x0000, 0x0180):
        link.images[1].setdefault((Function.INPUT, a), 0)
    src = ModbusSource(
        SourceContext(cfg, cfg.buses[0], cfg.devices, status, tmp_path), link=link, wall=lambda: t
    )
    out: list[Reading] = []
    src._emit = lambda batch: out.extend(energy.process(list(batch)))
    asyncio.run(src.scheduler.poll(src.polled[0]))
    assert status["sdm"].online
    assert out and all(r.circuit == "pump" and r.quality is Quality.INVALID for r in out)
    assert {(r.quantity, r.phase) for r in out} >= {
        (Q.VOLTAGE, Phase.L2),
        (Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL),
    }
    live = LiveCache()
    live.update(out)
    assert len(live) == 0
    data = energy.data_status()["sdm"]
    assert data.state.value == "error" and data.message == "all values NaN since 10:02:03"
    assert data.refused == len(out)


class SimulatorLink(MemoryLink):
    """A line to meterhub's own device simulators (the demo's ProfileDevice), in memory."""

    def __init__(self, devices: dict[int, ProfileDevice]) -> None:
        super().__init__()
        self.devices = devices

    async def read(self, function: Function, unit: int, start: int, count: int) -> list[int]:
        self.requests.append((function, unit, start, count))
        self.stats.requests += 1
        regs = self.devices[unit].registers(function, start, count)
        if not isinstance(regs, list):
            raise exception_response(unit, int(regs))
        return regs


def test_the_simulated_sdm120_on_l2_shows_all_values_nan_except_the_frequency(tmp_path: Path) -> None:
    """The issue's finding: the demo's simulator serves an SDM120 wired to L2 with NaN for everything
    but the frequency; the device looked plainly online and its circuit showed dashes. Now its data
    status is an error naming it."""
    cfg = parse_config(SDM120_SITE)
    t = 1_780_300_923.0  # 2026-06-01 10:02:03 in Berlin
    sim = ProfileDevice("sdm", get_profile("eastron-sdm120"), SiteModel(cfg))
    energy = EnergyPipeline(cfg, None, clock=lambda: t)
    status: dict[str, DeviceStatus] = {}
    src = ModbusSource(
        SourceContext(cfg, cfg.buses[0], cfg.devices, status, tmp_path),
        link=SimulatorLink({1: sim}),
        wall=lambda: t,
    )
    out: list[Reading] = []
    src._emit = lambda batch: out.extend(energy.process(list(batch)))
    asyncio.run(src.scheduler.poll(src.polled[0]))
    assert status["sdm"].online
    good = [(r.quantity, r.phase) for r in out if r.quality is not Quality.INVALID]
    assert good == [(Q.FREQUENCY, Phase.TOTAL)]
    assert len(out) > 10  # voltage, current, powers, PF, energies … as NaN, INVALID
    data = energy.data_status()["sdm"]
    assert data.state.value == "error"
    assert data.message == "all values NaN except the frequency since 10:02:03"
