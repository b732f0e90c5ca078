"""The IEC 62056-21 :class:`~meterhub.drivers.base.Source`: one per ``kind: iec62056-21`` bus.

An optical port is point to point, so a bus carries one meter: its first enabled device (any further
device is shown offline with the reason). Every ``poll_interval`` seconds of that device the source
does one readout (:func:`.client.read_out`; the next one starts ``poll_interval`` after the previous
one started, or at once when a readout took longer), decodes the data sets by the device's OBIS
profile (:mod:`meterhub.profiles.obis`, units checked) and emits one batch: readings of every circuit
on the device (the Modbus driver's circuit mapping, :mod:`meterhub.drivers.modbus.mapping`: CT
polarity, totals and supply values as for any meter), or device-level readings when no circuit uses
it. The meter's serial number (C.1.0) goes to ``SourceContext.device_serial``.

A failed readout (timeout, BCC error, garbage, a closed connection) is retried ``bus.retries`` times,
then counted in the device's status with its message, and the link is closed and re-opened on the next
poll; the source never stops on one. Values the profile refuses (a unit that does not convert, a
value that is no number) are left out, counted (``refused_values``) and named in the status and the
log (once per code and reason).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from meterhub.config.schema import Bus, Circuit, Device
from meterhub.drivers.base import DeviceStatus, Emit, Source, SourceContext
from meterhub.drivers.iec62056.client import Readout, read_out
from meterhub.drivers.iec62056.errors import Iec62056Error, Iec62056Timeout
from meterhub.drivers.iec62056.link import Link, SerialLink, TcpLink
from meterhub.drivers.iec62056.protocol import obis_values
from meterhub.drivers.modbus.mapping import DeviceValues, circuit_readings, device_readings
from meterhub.model.quantities import SUPPLY_QUANTITIES, Q
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.profiles.obis import Mapped, ObisProfile, get_obis_profile
from meterhub.profiles.schema import ProfileError, ProfileKind

__all__ = ["Iec62056Source", "iec62056_sources", "link_for_bus", "readings_of"]

log = logging.getLogger("meterhub.iec62056")

_PHASES = (Phase.L1, Phase.L2, Phase.L3)


def link_for_bus(bus: Bus) -> Link:
    """The line a configured bus describes: its serial port, else TCP ``host:port``."""
    if bus.serial:
        return SerialLink(bus.serial)
    if bus.port is None:  # the schema refuses such a bus; guard for hand-built ones
        raise ValueError(f"bus {bus.id}: an iec62056-21 bus needs 'port' or 'serial'")
    return TcpLink(bus.host, bus.port)


def device_values(ts: float, mapped: list[Mapped]) -> DeviceValues:
    """A meter's mapped values arranged as the circuit mapping expects them: per-phase values on
    channel k = phase Lk (the phase voltage also as the supply's), the rest as system values."""
    channels: dict[int, dict[str, float]] = {}
    system: dict[tuple[str, Phase | None], float] = {}
    for m in mapped:
        if m.phase in _PHASES and (m.quantity not in SUPPLY_QUANTITIES or m.quantity == Q.VOLTAGE):
            k = _PHASES.index(m.phase) + 1
            channels.setdefault(k, {})[m.quantity] = m.value
            if m.quantity == Q.VOLTAGE:
                system[(m.quantity, m.phase)] = m.value
        else:
            system[(m.quantity, m.phase)] = m.value
    return DeviceValues(ProfileKind.METER, ts, channels, system, all_channels=frozenset(channels or {1}))


def readings_of(ts: float, device: Device, circuits: list[Circuit], mapped: list[Mapped]) -> list[Reading]:
    """Readings of a device's circuits (or of the device itself when no circuit uses it)."""
    dv = device_values(ts, mapped)
    if not circuits:
        return device_readings(ts, device.id, dv)
    out: list[Reading] = []
    for c in circuits:
        out.extend(circuit_readings(ts, c, dv))
    return out


def the_meter(
    ctx: SourceContext, one_per_bus: str
) -> tuple[Device | None, DeviceStatus | None, ObisProfile | None]:
    """The one enabled meter of an IEC 62056-21 or DLMS bus, its status and its OBIS profile (Nones when
    there is none or its profile is unknown). A second meter on the bus, or an unknown profile, is put
    in that device's status and logged; ``one_per_bus`` says why only one meter is read."""
    bus = ctx.bus
    chosen: tuple[Device | None, DeviceStatus | None, ObisProfile | None] = (None, None, None)
    enabled = [d for d in ctx.devices if d.enabled]
    for i, d in enumerate(enabled):
        st = ctx.status.get(d.id)
        if st is None:
            st = ctx.status[d.id] = DeviceStatus(d.id, d.name or d.id, d.profile, bus.id)
        if i > 0:
            st.last_error = f"bus {bus.id} already reads {enabled[0].id}: {one_per_bus}"
            log.error("device %s: %s", d.id, st.last_error)
            continue
        try:
            chosen = (d, st, get_obis_profile(d.profile))
        except ProfileError as exc:
            st.last_error = str(exc)
            log.error("device %s: %s; it stays offline", d.id, exc)
    return chosen


class Iec62056Source(Source):
    """Reads the meter of one IEC 62056-21 bus over ``link`` (injected: tests pass any Link)."""

    def __init__(
        self,
        ctx: SourceContext,
        *,
        link: Link,
        wall: Callable[[], float] = time.time,
    ) -> None:
        bus = ctx.bus
        self.name = f"iec62056-21:{bus.id}"
        self.ctx = ctx
        self.bus = bus
        self.link = link
        self.wall = wall
        self.device: Device | None = None
        self.profile: ObisProfile | None = None
        self.status: DeviceStatus | None = None
        self.refused = 0
        self.last: Readout | None = None
        self._logged: set[str] = set()
        self.device, self.status, self.profile = the_meter(
            ctx, "an IEC 62056-21 optical port is point to point (one meter per bus)"
        )
        if self.status is not None:
            self.status.extra_counters = self._counters
        self.circuits = [c for c in ctx.config.circuits if self.device and c.device == self.device.id]

    def _counters(self) -> Mapping[str, int]:
        return {"refused_values": self.refused}

    async def poll_once(self) -> list[Reading]:
        """One readout (with the bus's retries) → the batch; raises the last :class:`Iec62056Error`."""
        if self.device is None or self.profile is None or self.status is None:
            return []
        last: Iec62056Error | None = None
        for _ in range(self.bus.retries + 1):
            self.status.requests += 1
            try:
                r = await read_out(self.link, max_baud=self.bus.baud, timeout=max(self.bus.timeout, 0.2))
            except Iec62056Error as exc:
                last = exc
                await self.link.recover()  # start the next attempt from a clean line
                continue
            return self._readings(r)
        raise last or Iec62056Error(f"{self.link.endpoint}: no readout attempted")

    def _readings(self, r: Readout) -> list[Reading]:
        if self.device is None or self.profile is None or self.status is None:  # pragma: no cover
            return []
        ts = self.wall()
        self.last = r
        values, _ = obis_values(r.datasets)
        mapped, problems = self.profile.decode(values)
        self.refused += len(problems)
        for p in problems:
            key = p.split("(", 1)[0] + p.split("): ", 1)[-1]  # code and reason, not the value
            if key not in self._logged:
                self._logged.add(key)
                log.warning("device %s: %s", self.device.id, p)
        self.status.ok(ts)
        if problems:
            self.status.last_error = f"value refused: {problems[0]}"
        serial = self.profile.serial_number(values)
        if serial and self.ctx.device_serial is not None:
            self.ctx.device_serial(self.device.id, serial)
        return readings_of(ts, self.device, self.circuits, mapped)

    async def run(self, emit: Emit) -> None:
        if self.device is None or self.status is None:
            await asyncio.Event().wait()  # nothing to read: stay (the statuses say why)
            return
        interval = self.device.poll_interval
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            try:
                batch = await self.poll_once()
            except Iec62056Error as exc:
                self.status.failed(str(exc), timeout=isinstance(exc, Iec62056Timeout))
                log.warning("device %s: %s", self.device.id, exc)
            else:
                if batch:
                    emit(batch)
            await asyncio.sleep(max(0.0, start + interval - loop.time()))

    async def close(self) -> None:
        await self.link.close()


def iec62056_sources(ctx: SourceContext) -> list[Source]:
    """Source factory for ``kind: iec62056-21`` buses: one source on the bus's real line."""
    return [Iec62056Source(ctx, link=link_for_bus(ctx.bus))]
