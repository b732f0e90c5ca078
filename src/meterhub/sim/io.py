"""Simulated IO: a Linux 1-wire folder of DS18B20 probes, and the values IO modules serve.

**1-wire.**
:func:`format_w1_slave` encodes a temperature exactly as the kernel reports it (12-bit scratchpad,
Maxim CRC-8, ``t=`` in m°C truncated toward zero), or a CRC failure or the 85 °C power-on value.
:class:`W1Simulator` keeps a folder of probes up to date for ``meterhub demo`` and tests: every
configured probe of a bus of kind ``io`` gets a slowly varying temperature; the gateway's 1-wire source
reads the same folder (``io.w1_root``). It refuses to write under ``/sys``.

**IO modules.** :class:`IOSimulation` gives the raw register values a DIO-4/2, AIO-2/2 or pulse
concentrator shows for the site's configured points, as deterministic functions of time: pulse
counters that integrate a daily-varying consumption exactly (and roll over at their width), contact
states of breakers, doors and run feedback, and analog signals. The Modbus simulator
(:func:`meterhub.sim.modbus_server.devices_for`) asks it through :meth:`IOSimulation.value` (same shape
as ``SiteModel.value``) for every IO module and pulse concentrator of a simulated site. Outputs are
not simulated here — a simulator serves what was written to them; before the first write an analog
output shows the low end of its signal (4 mA or 0 V), as a module does after power-up.

The simulator keeps its own copies of the few hardware facts it needs (the CRC-8 of the DS18B20
scratchpad, the electrical span of each analog signal, the pulse-weight units) instead of calling the
IO drivers, so a driver bug cannot be hidden by the simulator making the same one. It reads the site's
``io`` section through its schema (``IOSection``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from meterhub.config.io import (
    AnalogInPoint,
    AnalogOutPoint,
    AnalogSignal,
    Contact,
    DigitalFunction,
    DigitalPoint,
    IOPoint,
    IOSection,
    Medium,
    PulsePoint,
    PulseUnit,
    TemperaturePoint,
)
from meterhub.config.schema import BusKind, SiteConfig
from meterhub.model.quantities import Q
from meterhub.sim.base import SimContext, SimServer, register_simulator

__all__ = [
    "IO_QUANTITIES",
    "IOSimulation",
    "W1Simulator",
    "format_w1_slave",
    "probe_temperature",
    "w1_simulator",
]

log = logging.getLogger("meterhub.sim.w1")

_TH, _TL, _CONFIG_12BIT = 0x4B, 0x46, 0x7F  # DS18B20 power-on alarm limits and 12-bit resolution


def _crc8(data: bytes) -> int:
    """The DS18B20's CRC-8 (polynomial x⁸ + x⁵ + x⁴ + 1, bit-reflected, initial value 0; Maxim
    Application Note 27), computed the table-less way: shift each bit in, least significant first."""
    crc = 0
    for byte in data:
        for bit in range(8):
            mix = (crc ^ (byte >> bit)) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C  # 0x31 (x⁸+x⁵+x⁴+1 without x⁸) bit-reversed
    return crc


#: Electrical span (low, high) of each analog signal [mA or V] (seed 000 AIO-2/2, seed 004).
_SPAN: dict[AnalogSignal, tuple[float, float]] = {
    AnalogSignal.MA_4_20: (4.0, 20.0),
    AnalogSignal.MA_0_20: (0.0, 20.0),
    AnalogSignal.V_0_10: (0.0, 10.0),
    AnalogSignal.V_0_30: (0.0, 30.0),
}
#: Pulse-weight unit → the catalogue unit of the metered quantity (Wh, m³).
_PER_UNIT: dict[PulseUnit, float] = {
    PulseUnit.KWH: 1000.0,
    PulseUnit.WH: 1.0,
    PulseUnit.M3: 1.0,
    PulseUnit.L: 0.001,
}


def _signal(value: float, signal: AnalogSignal, lo: float, hi: float) -> float:
    """The current [mA] or voltage [V] a transmitter sends for ``value`` on a range ``lo``…``hi``
    [engineering unit], linear over the signal's span and pegged at its ends."""
    s_lo, s_hi = _SPAN[signal]
    s = s_lo + (value - lo) / (hi - lo) * (s_hi - s_lo)
    return min(max(s, s_lo), s_hi)


def format_w1_slave(celsius: float, *, crc_error: bool = False, power_on: bool = False) -> str:
    """The ``w1_slave`` text of a DS18B20 reading ``celsius`` [°C] (resolution 1/16 °C).

    ``crc_error`` corrupts the CRC byte (the kernel then says ``NO``); ``power_on`` gives the
    scratchpad of a sensor that has not converted yet (0550h = 85 °C).
    """
    raw = 0x0550 if power_on else round(celsius * 16)
    if not -0x8000 <= raw <= 0x7FFF:
        raise ValueError(f"{celsius} °C does not fit the DS18B20 temperature register")
    word = raw & 0xFFFF
    pad = bytearray([word & 0xFF, word >> 8, _TH, _TL, _CONFIG_12BIT, 0xFF, 0x0C, 0x10])
    crc = _crc8(bytes(pad))
    shown = crc ^ 0xFF if crc_error else crc
    pad.append(shown)
    text = " ".join(f"{b:02x}" for b in pad)
    milli = int(raw * 1000 / 16)  # the kernel's integer arithmetic truncates toward zero
    verdict = "NO" if crc_error else "YES"
    return f"{text} : crc={crc:02x} {verdict}\n{text} t={milli}\n"


def probe_temperature(sensor: str, ts: float) -> float:
    """A deterministic, plausible temperature for probe ``sensor`` at ``ts`` [s] → [°C].

    Each probe has its own level (15…65 °C, from its id) and a daily swing of ±3 K.
    """
    h = int.from_bytes(hashlib.sha256(sensor.encode()).digest()[:4], "big")
    level = 15.0 + 50.0 * (h % 1000) / 1000.0
    phase = 2 * math.pi * ((h >> 10) % 360) / 360.0
    return level + 3.0 * math.sin(2 * math.pi * ts / 86400.0 + phase)


class W1Simulator(SimServer):
    """Keeps ``<root>/<sensor>/w1_slave`` files current for a set of probes."""

    def __init__(
        self,
        root: str | Path,
        sensors: Iterable[str],
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root)
        if self.root.resolve().is_relative_to("/sys"):
            raise ValueError(f"refusing to simulate 1-wire probes inside {self.root} (a real sysfs)")
        self.sensors = sorted(set(sensors))
        self.interval = interval
        self.clock = clock
        self.endpoint = f"w1://{self.root}"
        self._task: asyncio.Task[None] | None = None

    def write_all(self) -> None:
        """Write every probe's file for the current time (atomically: write, then rename)."""
        now = self.clock()
        for sensor in self.sensors:
            d = self.root / sensor
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / "w1_slave.tmp"
            tmp.write_text(format_w1_slave(probe_temperature(sensor, now)), encoding="ascii")
            os.replace(tmp, d / "w1_slave")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.write_all()
            except OSError as exc:
                log.error("1-wire simulator cannot write %s: %s", self.root, exc)

    def start(self) -> None:
        self.write_all()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="sim:w1")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


#: Raw module quantities :class:`IOSimulation` answers for.
IO_QUANTITIES = frozenset({Q.PULSE_COUNT, Q.DIGITAL_INPUT, Q.ANALOG_INPUT, Q.ANALOG_OUTPUT})
_DAY = 86400.0
_EPOCH = 1_700_000_000.0  # counters count from here, so they agree across restarts [s]
#: Mean consumption rate per medium: [W] for electricity, [m³/h] for volumes.
_MEAN_RATE = {Medium.ELECTRICITY: 2000.0, Medium.GAS: 1.5, Medium.WATER: 0.3, Medium.OIL: 0.05}


def _unit_hash(text: str) -> float:
    """A number in [0, 1) fixed by ``text``."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") / 2**32


class IOSimulation:
    """Raw values of the site's IO module points at time ``clock()`` [s]."""

    def __init__(self, config: SiteConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config  # the site, as SiteModel has it (a simulator may look at its circuits)
        self.clock = clock
        self._points: dict[tuple[str, str, int], IOPoint] = {}
        self.reconfigure(config)

    def reconfigure(self, config: SiteConfig) -> None:
        """Serve the points of ``config``'s io section: a meter wired to an input the site file now names
        counts there. What is wired to an input already stays (a changed pulse weight in the site file
        does not change the meter on the input, nor its counter)."""
        points: dict[tuple[str, str, int], IOPoint] = {}
        raw_of = {
            "pulse": Q.PULSE_COUNT,
            "digital": Q.DIGITAL_INPUT,
            "analog-in": Q.ANALOG_INPUT,
            "analog-out": Q.ANALOG_OUTPUT,
        }
        for p in (config.io or IOSection()).points:
            if isinstance(p, PulsePoint | DigitalPoint | AnalogInPoint | AnalogOutPoint):
                key = (p.device, raw_of[p.kind], p.channel)
                points[key] = self._points.get(key, p)
        self._points = points

    def value(
        self, device_id: str, quantity: str, phase: object = None, channel: int | None = None
    ) -> float | None:
        """The raw value of ``quantity`` on ``channel`` of ``device_id``; None if no point is configured."""
        if channel is None:
            return None
        p = self._points.get((device_id, quantity, channel))
        now = self.clock()
        if isinstance(p, PulsePoint):
            return float(self.pulse_count(p, now))
        if isinstance(p, DigitalPoint):
            return float(self.contact_closed(p, now))
        if isinstance(p, AnalogInPoint):
            return self.analog_signal(p, now)
        if isinstance(p, AnalogOutPoint):  # not written yet: the module drives its minimum
            return _signal(p.range[0], p.signal, p.range[0], p.range[1])
        return None

    @staticmethod
    def consumption(p: PulsePoint, ts: float) -> float:
        """Metered quantity since the epoch at ``ts`` [s], in the catalogue unit (Wh or m³).

        The rate is ``mean · (1 + ½ sin(2π t/day + φ))``, integrated in closed form, so it never
        decreases and does not depend on how often it is asked for.
        """
        k = _unit_hash(p.id)
        mean = _MEAN_RATE[p.medium] * (0.5 + k) / 3600.0  # per second
        phi = 2 * math.pi * k
        w = 2 * math.pi / _DAY
        t = ts - _EPOCH
        return mean * (t + 0.5 / w * (math.cos(phi) - math.cos(w * t + phi)))

    def pulse_count(self, p: PulsePoint, ts: float) -> int:
        """The device counter: whole pulses of the consumption, modulo the counter width."""
        per_pulse = p.weight * _PER_UNIT[p.unit]
        return int(self.consumption(p, ts) // per_pulse) % (1 << p.counter_bits)

    @staticmethod
    def contact_closed(p: DigitalPoint, ts: float) -> bool:
        """Contact state: breakers closed and not tripped, a door open 2 min an hour, equipment
        running 40 min an hour, no fault, a generic input on 10 min of every 20."""
        minute = ((ts + 3600 * _unit_hash(p.id)) % 3600) / 60
        active = {
            DigitalFunction.BREAKER_OF: True,
            DigitalFunction.BREAKER_SD: False,
            DigitalFunction.DOOR: minute < 2,
            DigitalFunction.RUN: minute < 40,
            DigitalFunction.FAULT: False,
            DigitalFunction.GENERIC: minute % 20 < 10,
        }[p.function]
        return active if p.contact is Contact.NO else not active

    @staticmethod
    def analog_signal(p: AnalogInPoint, ts: float) -> float:
        """A signal [mA or V] for an engineering value swinging ±30 % of the range about its middle."""
        lo, hi = p.range
        k = _unit_hash(p.id)
        value = (lo + hi) / 2 + 0.3 * (hi - lo) * math.sin(2 * math.pi * (ts / 3600 + k))
        return _signal(value, p.signal, lo, hi)


async def w1_simulator(ctx: SimContext) -> SimServer:
    """Simulator factory for buses of kind ``io``: the probes of the bus's devices and the unnamed ones of
    ``simulation.w1_probes``, under ``io.w1_root``."""
    section = ctx.config.io or IOSection()
    ids = {d.id for d in ctx.devices}
    sensors = [p.sensor for p in section.points if isinstance(p, TemperaturePoint) and p.device in ids]
    # probes wired to the bus but not named yet (simulation.w1_probes): what 1-wire discovery finds
    sensors += ctx.config.simulation.w1_probes if ctx.config.simulation is not None else []
    sim = W1Simulator(section.w1_folder(ctx.data_dir), sensors)
    sim.start()
    log.info("simulating %d 1-wire probe(s) in %s", len(sensors), sim.root)
    return sim


register_simulator(BusKind.IO, w1_simulator)
