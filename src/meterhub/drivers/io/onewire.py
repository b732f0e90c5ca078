"""DS18B20 temperature probes through the Linux 1-wire sysfs (seed 001 "Temperature probes", seed 004).

The kernel's w1 subsystem lists every slave it finds as ``<root>/<family>-<serial>/`` (root
``/sys/bus/w1/devices``); the w1_therm driver's ``w1_slave`` file triggers a conversion and reports the
9-byte scratchpad twice (Linux Documentation/w1/slaves/w1_therm.rst)::

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125

The first line ends with the kernel's CRC verdict, the second with the temperature in m°C.
:func:`parse_w1_slave` rejects a failed CRC (also checked here: Maxim AN27 CRC-8, x⁸+x⁵+x⁴+1, over
bytes 0…7), the all-zero scratchpad of a bus glitch, and the 85 °C power-on reset value (DS18B20
datasheet: temperature register 0550h until the first conversion). A probe is identified by its
unique 64-bit ROM id (family code ``28`` for DS18B20, ``10`` DS18S20, ``22`` DS1822, ``3b`` MAX31850).

:class:`OneWireSource` is the :class:`~meterhub.drivers.base.Source` for a device with profile
``linux-w1`` on a bus of kind ``io``: it reads that device's temperature points at their poll interval
in a worker thread (a real conversion blocks for up to 750 ms) and emits ``temperature`` [°C].
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meterhub.drivers.base import DeviceStatus, Emit, Source
from meterhub.drivers.io.config import TemperaturePoint
from meterhub.drivers.io.errors import (
    OneWireError,
    ProbeCrcError,
    ProbeFormatError,
    ProbeMissing,
    ProbePowerOnValue,
)
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase

__all__ = [
    "FAMILIES",
    "ONEWIRE_PROFILE",
    "OneWireSource",
    "ProbeSample",
    "crc8_maxim",
    "discover",
    "parse_w1_slave",
    "read_probe",
]

log = logging.getLogger("meterhub.io")

#: The profile id a device uses for the local Linux 1-wire master.
ONEWIRE_PROFILE = "linux-w1"
#: 1-wire family codes of the temperature sensors the w1_therm driver reads.
FAMILIES = {"10": "DS18S20", "22": "DS1822", "28": "DS18B20", "3b": "MAX31850"}
_ID = re.compile(r"^(10|22|28|3b)-[0-9a-f]{12}$")
_LINE1 = re.compile(r"^((?:[0-9a-f]{2} ){9}): crc=([0-9a-f]{2}) (YES|NO)$")
_LINE2 = re.compile(r"^((?:[0-9a-f]{2} ){9})t=(-?\d+)$")
_POWER_ON_MILLI = 85000  # m°C
_LIMITS = (-55.0, 125.0)  # DS18B20 datasheet operating range [°C]


def crc8_maxim(data: bytes) -> int:
    """Dallas/Maxim 1-wire CRC-8 (polynomial x⁸+x⁵+x⁴+1, reflected 0x8C, initial 0; Maxim AN27)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1
    return crc


@dataclass(frozen=True, slots=True)
class ProbeSample:
    """One good probe reading: w1 id, temperature [°C] and the scratchpad bytes."""

    sensor: str
    temperature: float
    scratchpad: bytes


def parse_w1_slave(text: str, sensor: str) -> ProbeSample:
    """Parse a ``w1_slave`` file of probe ``sensor``; raise a :class:`OneWireError` subclass if bad."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if len(lines) != 2:
        raise ProbeFormatError(sensor, f"w1_slave has {len(lines)} line(s), expected 2: {text.strip()!r}")
    m1, m2 = _LINE1.match(lines[0]), _LINE2.match(lines[1])
    if m1 is None or m2 is None:
        raise ProbeFormatError(sensor, f"w1_slave is not in the w1_therm format: {text.strip()!r}")
    pad = bytes.fromhex(m1.group(1))
    if m1.group(3) != "YES":
        raise ProbeCrcError(
            sensor, f"kernel reports a CRC error (crc={m1.group(2)}, scratchpad {pad.hex(' ')})"
        )
    if crc8_maxim(pad[:8]) != pad[8]:
        raise ProbeCrcError(
            sensor, f"scratchpad CRC {crc8_maxim(pad[:8]):02x} does not match byte 8 {pad[8]:02x}"
        )
    if not any(pad):
        raise ProbeCrcError(sensor, "all-zero scratchpad (bus short or glitch)")
    milli = int(m2.group(2))
    if milli == _POWER_ON_MILLI:
        raise ProbePowerOnValue(sensor, "85 °C power-on reset value: the conversion did not run")
    celsius = milli / 1000.0
    if not _LIMITS[0] <= celsius <= _LIMITS[1]:
        raise ProbeFormatError(sensor, f"{celsius:g} °C is outside the sensor range −55…125 °C")
    return ProbeSample(sensor, celsius, pad)


def discover(root: str | Path) -> list[str]:
    """Ids of the temperature probes present under the w1 sysfs ``root``, sorted."""
    base = Path(root)
    try:
        names = [p.name for p in base.iterdir()]
    except OSError:
        return []
    return sorted(n for n in names if _ID.match(n))


def read_probe(root: str | Path, sensor: str) -> ProbeSample:
    """Read and parse ``<root>/<sensor>/w1_slave`` (blocking: the kernel converts while we read)."""
    if not _ID.match(sensor):
        raise ProbeFormatError(sensor, "not a w1 temperature probe id (family 10, 22, 28 or 3b)")
    path = Path(root) / sensor / "w1_slave"
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        raise ProbeMissing(sensor, f"not found under {root} (unplugged, or wrong id)") from None
    except OSError as exc:
        raise ProbeMissing(sensor, f"cannot read {path}: {exc.strerror}") from None
    return parse_w1_slave(text, sensor)


class OneWireSource(Source):
    """Poll the temperature points of one 1-wire master device."""

    def __init__(
        self,
        *,
        device: str,
        points: list[TemperaturePoint],
        root: str | Path,
        interval: float,
        status: DeviceStatus | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.name = f"io/{device}"
        self.device = device
        self.points = list(points)
        self.root = Path(root)
        self.interval = interval
        self.status = status
        self.clock = clock
        self.sleep = sleep
        self._errors: dict[str, str] = {}  # last error per probe, to log changes only

    def _interval(self, p: TemperaturePoint) -> float:
        return p.poll_interval or self.interval

    async def poll(self, points: list[TemperaturePoint]) -> list[Reading]:
        """Read ``points`` once; return readings of the good ones (bad ones are logged and counted)."""
        out: list[Reading] = []
        for p in points:
            if self.status is not None:
                self.status.requests += 1
            try:
                sample = await asyncio.to_thread(read_probe, self.root, p.sensor)
            except OneWireError as exc:
                self._failed(p, exc)
                continue
            ts = self.clock()
            if self.status is not None:
                self.status.ok(ts)
            if self._errors.pop(p.sensor, None) is not None:
                log.info("1-wire probe %s (point %s) reads again", p.sensor, p.id)
            value = sample.temperature + p.offset
            out.append(Reading(ts, p.id, Q.TEMPERATURE, Phase.TOTAL, value, Quality.GOOD))
        return out

    def _failed(self, p: TemperaturePoint, exc: OneWireError) -> None:
        message = f"device {self.device} point {p.id}: {exc}"
        if self.status is not None:
            self.status.failed(message)
        if self._errors.get(p.sensor) != str(exc):
            log.warning("%s", message)
        self._errors[p.sensor] = str(exc)

    async def run(self, emit: Emit) -> None:
        due = {p.id: self.clock() for p in self.points}
        while True:
            now = self.clock()
            ready = [p for p in self.points if due[p.id] <= now]
            if ready:
                readings = await self.poll(ready)
                if readings:
                    emit(readings)
                for p in ready:
                    # keep the cadence; after a long stall, restart it from now instead of bursting
                    nxt = due[p.id] + self._interval(p)
                    due[p.id] = nxt if nxt > now else now + self._interval(p)
            wait = min(due.values(), default=now + self.interval) - self.clock()
            await self.sleep(max(wait, 0.01))
