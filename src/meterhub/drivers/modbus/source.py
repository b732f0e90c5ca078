"""The Modbus :class:`~meterhub.drivers.base.Source`: one per bus (one line, one scheduler).

Poll once, fan out (STYLE.md §7): each device read becomes readings for every circuit on that
device (:mod:`.mapping`), plus device-level readings for voltage units and for meters that no
circuit uses. Harmonic spectra a device reports become circuit spectra (:mod:`.spectra`) handed to
``SourceContext.publish_spectra``, the live cache, as the waveform source's are. An IO module or pulse concentrator with points in the site's ``io:`` section gets its
meaning from :class:`meterhub.drivers.io.processor.IODevice` instead (pulse weight and unit, NO/NC
and function of inputs, analog ranges); its readings are keyed by point id, and its pulse totals are
persisted under the data folder on close and, as registers the gateway computes, with every storage
flush (the source implements :class:`~meterhub.drivers.base.ComputesRegisters` for its IO devices).

Cumulative registers (energy, counters) are passed on as the device gives them: whether a smaller value
is a glitch, a reset or a replaced meter is decided in one place, :mod:`meterhub.energy.registers`.
To help it, the source reads a device's serial number (the profile's ``serial_number`` identification
register) when the device first answers, again after it was offline, and every
:data:`IDENTIFY_EVERY` seconds, and hands it to ``SourceContext.device_serial``: a changed serial
number is a new meter.

A float register that reads NaN means "not available" and is left out. When *every* value of a poll is
NaN (but perhaps the frequency, which a meter reads from its supply whatever its channels see), though,
the device answers but measures nothing usable: the source then emits the device's readings with value
NaN and quality INVALID, so the energy stage records "all values NaN" in the device's status instead of
the device looking plainly online.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence

from meterhub.config.schema import Bus, BusKind, Circuit, Device
from meterhub.drivers.base import DeviceStatus, Emit, Source, SourceContext
from meterhub.drivers.io.processor import IODevice, io_devices
from meterhub.drivers.modbus.codec import CodecError, decode, register_count
from meterhub.drivers.modbus.errors import ModbusError
from meterhub.drivers.modbus.mapping import DeviceValues, circuit_readings, device_readings, placer
from meterhub.drivers.modbus.reader import DeviceRead, DeviceReader
from meterhub.drivers.modbus.scheduler import LineScheduler, PolledDevice
from meterhub.drivers.modbus.spectra import circuit_spectra
from meterhub.drivers.modbus.supervision import BusScanner, BusWatch, WatchedLink
from meterhub.drivers.modbus.transport import ModbusLink, RegisterLink, TransportKind, with_framing
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading, SeriesKey, Spectrum
from meterhub.profiles import all_profiles, get_profile
from meterhub.profiles.schema import IdentEntry, Point, ProfileError, ProfileKind
from meterhub.profiles.transformers import circuit_ratios

__all__ = ["IDENTIFY_EVERY", "ModbusSource", "link_for_bus", "modbus_sources"]

log = logging.getLogger("meterhub.modbus")

#: A device that stays online has its serial number read again after this long [s] (one request).
IDENTIFY_EVERY = 3600.0
#: ... and after this long when two reads of it disagreed [s].
IDENTIFY_RETRY = 60.0

_TRANSPORT = {
    BusKind.MODBUS_TCP: TransportKind.TCP,
    BusKind.MODBUS_RTU: TransportKind.RTU,
    BusKind.MODBUS_RTU_OVER_TCP: TransportKind.RTU_OVER_TCP,
}


def link_for_bus(bus: Bus) -> ModbusLink:
    """The real line a configured Modbus bus describes (TCP, RTU or ASCII on a serial port or over TCP)."""
    return ModbusLink(
        with_framing(_TRANSPORT[bus.kind], bus.modbus_framing),
        host=bus.host,
        port=bus.port or 502,
        serial=bus.serial,
        baud=bus.baud,
        parity=bus.parity,
        stopbits=bus.stopbits,
        timeout=bus.timeout,
        bytesize=bus.bytesize,
    )


class ModbusSource(Source):
    """Reads every enabled device of one Modbus bus over ``link`` (injected: :func:`modbus_sources`
    gives it the bus's real line, tests an in-memory one)."""

    def __init__(
        self, ctx: SourceContext, *, link: RegisterLink, wall: Callable[[], float] = time.time
    ) -> None:
        bus = ctx.bus
        self.name = f"modbus:{bus.id}"
        self.ctx = ctx
        self.link = link
        self.polled: list[PolledDevice] = []
        self.circuits: dict[str, list[Circuit]] = {}
        self.latest: dict[str, DeviceValues] = {}
        self._channels: dict[str, tuple[int, ...]] = {}  # device id → its channels
        self._devices: dict[str, Device] = {d.id: d for d in ctx.devices}
        self._ratios: dict[str, tuple[float, float]] = {}  # circuit → (CT, VT) ratio meterhub applies
        self._emit: Emit | None = None
        self._spectra: list[Spectrum] = []  # spectra of the result being fanned out
        self._pending: deque[tuple[PolledDevice, DeviceRead, float]] | None = None  # results to fan out
        self._serial_entry: dict[str, IdentEntry] = {}  # device id → its serial number register
        self._identified: dict[str, float] = {}  # device id → when its serial number was last read [s]
        self._serials: dict[str, str] = {}  # device id → the serial number last handed on
        for d in ctx.devices:
            if not d.enabled:
                continue
            status = ctx.status.get(d.id)
            try:
                profile = get_profile(d.profile)
            except ProfileError as exc:
                log.error("device %s: %s; it stays offline", d.id, exc)
                if status is not None:
                    status.last_error = str(exc)
                continue
            if status is None:
                status = DeviceStatus(d.id, d.name or d.id, d.profile, bus.id)
                ctx.status[d.id] = status
            reader = DeviceReader(d.id, profile, d.unit if d.unit is not None else profile.defaults.unit)
            self.polled.append(PolledDevice(reader, status, d.poll_interval, d.priority))
            self.circuits[d.id] = [c for c in ctx.config.circuits if c.device == d.id]
            serial = next((e for e in profile.identification if e.name == "serial_number"), None)
            if serial is not None:
                self._serial_entry[d.id] = serial
            for c in self.circuits[d.id]:
                self._ratios[c.id] = circuit_ratios(profile, c)
        #: bus supervision (drivers/modbus/supervision.py): polling and serial reads go through
        #: ``_watched`` so that garbled answers reach the watch; the optional background scan
        self.watch = BusWatch(bus.id, {p.reader.unit: p.id for p in self.polled}, clock=wall)
        self._watched = WatchedLink(self.link, self.watch)
        scan = bus.scan
        self.scanner = (
            BusScanner(self.link, self.watch, scan.units, share=scan.share, profiles=all_profiles())
            if scan is not None and scan.enabled
            else None
        )
        self.io = _io_devices(ctx, [p.id for p in self.polled])
        self._vu_on_bus = [p.id for p in self.polled if p.reader.profile.kind is ProfileKind.VOLTAGE_UNIT]
        self.scheduler = LineScheduler(
            self._watched, self.polled, retries=bus.retries, on_result=self._on_result, wall=wall
        )

    # -- fan out ------------------------------------------------------------------------------
    def _vref(self, circuit: Circuit, now: float) -> DeviceValues | None:
        ref = circuit.voltage_reference
        if ref is None and len(self._vu_on_bus) == 1:
            ref = self._vu_on_bus[0]
        if ref is None:
            return None
        dv = self.latest.get(ref)
        if dv is None:
            return None
        interval = self._devices[ref].poll_interval if ref in self._devices else 1.0
        if now - dv.ts > max(3 * interval, 5.0):
            return None  # stale: better no voltage than an old one
        return dv

    def readings_for(self, dev: PolledDevice, result: DeviceRead, ts: float) -> list[Reading]:
        io = self.io.get(dev.id)
        if io is not None:  # an IO module: the io section gives its raw values their meaning
            return io.process_points(ts, result.values).readings
        profile = dev.reader.profile
        channels = self._channels.get(dev.id)
        if channels is None:
            channels = self._channels[dev.id] = tuple(
                range(1, profile.channels + 1) if profile.channels else profile.point_channels()
            )
        placed = dev.reader.tagged_items(result, placer(profile.kind))
        if placed is not None:  # straight from the registers, without the dict keyed by point
            dv = DeviceValues.from_placed(profile.kind, ts, placed, channels)
        else:
            dv = DeviceValues.from_points(profile.kind, ts, result.values, channels)
        nan_answer = _nan_answer(result, placed)
        if nan_answer is not None:  # nothing measured: its readings go on as NaN, INVALID (module docstring)
            dv = DeviceValues.from_points(profile.kind, ts, nan_answer, channels)
        if profile.kind is ProfileKind.METER and not dv.all_channels:
            dv.all_channels = frozenset({1, 2, 3} & set(dv.channels))
        self.latest[dev.id] = dv
        out: list[Reading] = []
        circuits = self.circuits.get(dev.id, [])
        want_spectra = self.ctx.publish_spectra is not None
        for c in circuits:
            vref = self._vref(c, ts)
            ratios = self._ratios.get(c.id, (1.0, 1.0))
            rs = circuit_readings(ts, c, dv, vref, ratios=ratios)
            out.extend(rs)
            if want_spectra and (dv.spectra or (vref is not None and vref.spectra)):
                self._spectra.extend(circuit_spectra(ts, c, dv, vref, rs, ratios=ratios))
        if profile.kind is ProfileKind.VOLTAGE_UNIT or (profile.kind is ProfileKind.METER and not circuits):
            out.extend(device_readings(ts, dev.id, dv))
        if nan_answer is not None:
            self._spectra = []
            self.latest.pop(dev.id, None)  # no voltage to lend to other circuits
            return [
                r
                if math.isfinite(r.value)
                else Reading(r.ts, r.circuit, r.quantity, r.phase, r.value, Quality.INVALID)
                for r in out
            ]
        return out

    def _fan_out(self, dev: PolledDevice, result: DeviceRead, ts: float) -> None:
        if not result.any_ok:
            return
        try:
            readings = self.readings_for(dev, result, ts)
        except Exception:  # a bug in mapping must not stop the line
            log.exception("device %s: cannot turn its values into readings", dev.id)
            self._spectra = []
            return
        if readings and self._emit is not None:
            self._emit(readings)
        spectra, self._spectra = self._spectra, []
        if spectra and self.ctx.publish_spectra is not None:
            self.ctx.publish_spectra(spectra)  # the live cache only: 51 values per phase are not stored

    def _on_result(self, dev: PolledDevice, result: DeviceRead, ts: float) -> Awaitable[None] | None:
        self._fan_out_later(dev, result, ts)
        if result.any_ok:
            self.watch.answered(dev.reader.unit, ts)
        elif not dev.status.online and dev.failures == self.scheduler.retries + 1:
            self.watch.silent(dev.reader.unit, ts, dev.status.last_error or "")
        if not dev.status.online:
            self._identified.pop(dev.id, None)  # read the serial number again when it is back
            return None
        last = self._identified.get(dev.id)
        if (
            result.any_ok
            and self.ctx.device_serial is not None
            and dev.id in self._serial_entry
            and (last is None or ts - last >= IDENTIFY_EVERY or ts < last)
        ):
            self._identified[dev.id] = ts
            return self._identify(dev, ts)  # awaited by the scheduler: the line's next request waits for it
        return None

    async def _identify(self, dev: PolledDevice, ts: float) -> None:
        """Read the serial number of ``dev`` and hand it to ``SourceContext.device_serial``.

        A serial number other than the one handed on before is read a second time and handed on only
        when both reads agree: a garbled answer (zeros, swapped words) must not pass for a new meter,
        whose registers the energy stage would then accept without waiting."""
        serial = await self._read_serial(dev)
        if serial is None or serial == self._serials.get(dev.id):
            return
        again = await self._read_serial(dev)
        if again != serial:
            log.warning(
                "device %s: serial number read as %s, then as %s; ignored until two reads agree",
                dev.id,
                serial,
                again,
            )
            self._identified[dev.id] = ts - IDENTIFY_EVERY + IDENTIFY_RETRY  # try again in a minute
            if serial is not None and again is not None:  # two identities answer at this address
                self.watch.conflict(dev.reader.unit, f"serial number read as {serial}, then as {again}", ts)
            return
        self._serials[dev.id] = serial
        callback = self.ctx.device_serial
        if callback is not None:
            try:
                callback(dev.id, serial)
            except Exception:  # the energy stage must not stop the line
                log.exception("device %s: serial number %s not taken by the energy stage", dev.id, serial)

    async def _read_serial(self, dev: PolledDevice) -> str | None:
        entry = self._serial_entry[dev.id]
        profile = dev.reader.profile
        count = 1 if entry.function.is_bit else register_count(entry.type)
        dev.status.requests += 1
        try:
            regs = await self._watched.read(entry.function, dev.reader.unit, entry.address, count)
            value = decode(regs, entry.type, word_order=entry.word_order or profile.defaults.word_order)
        except (ModbusError, CodecError) as exc:
            log.warning(
                "device %s: serial number (%s register %d) not read: %s; a replaced meter is recognised "
                "by its registers only",
                dev.id,
                entry.function.value,
                entry.address,
                exc,
            )
            return None
        if not math.isfinite(value):
            log.warning("device %s: serial number register reads %r; ignored", dev.id, value)
            return None
        return str(int(value)) if value == int(value) else repr(value)

    def _fan_out_later(self, dev: PolledDevice, result: DeviceRead, ts: float) -> None:
        # Decoding and fan-out run as a loop callback, i.e. while the line carries the next request.
        # A plain callback, not a queue and a worker task: no future and no task step per result. The
        # backlog stays short: the poller needs another loop iteration for its next answer, and every
        # iteration runs the callback that drains it.
        pending = self._pending
        if pending is None:  # not running (tests call the scheduler directly): fan out now
            self._fan_out(dev, result, ts)
            return
        pending.append((dev, result, ts))
        if len(pending) == 1:
            asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        pending = self._pending
        while pending:
            self._fan_out(*pending.popleft())

    # -- Source -------------------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        self._emit = emit
        if not self.polled:
            log.warning("bus %s has no readable device", self.ctx.bus.id)
        self._pending = deque()
        scan = asyncio.create_task(self._scan(), name=f"scan:{self.ctx.bus.id}") if self.scanner else None
        try:
            await self.scheduler.run_forever()
        finally:
            if scan is not None:
                scan.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scan
            self._drain()  # what was read is not lost
            self._pending = None

    async def _scan(self) -> None:
        """The background scan; a failure of it is logged and ends it, never the polling."""
        if self.scanner is None:
            return
        try:
            await self.scanner.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("bus %s: the background scan failed; polling goes on without it", self.ctx.bus.id)

    # -- registers computed by the IO devices (ComputesRegisters) -------------------------------
    def computed_series(self) -> list[SeriesKey]:
        return [k for io in self.io.values() for k in io.computed_series()]

    def computed_registers(self) -> dict[SeriesKey, float]:
        return {k: v for io in self.io.values() for k, v in io.computed_registers().items()}

    def seed_registers(self, registers: Mapping[SeriesKey, float]) -> None:
        for io in self.io.values():
            io.seed_registers(registers)

    async def close(self) -> None:
        for io in self.io.values():
            io.close()  # persist pulse totals and run hours
        await self.link.close()


def _nan_answer(
    result: DeviceRead, placed: Sequence[tuple[object, Point, float]] | None
) -> dict[Point, float] | None:
    """Every point of ``result`` with NaN for those that were not a number, when the answer measured
    nothing — no value but the frequency (a meter reports the frequency of its supply whatever its
    channels see); None for an answer with a measured value (NaN registers are then "not available"
    and left out)."""
    got: dict[Point, float] = {p: v for _, p, v in placed} if placed is not None else result.values
    if any(p.quantity != Q.FREQUENCY for p in got):
        return None
    points = [p for block, _ in result.raw for p in block.points]
    if len(points) == len(got):
        return None  # nothing was NaN
    return {p: got.get(p, math.nan) for p in points}


def _io_devices(ctx: SourceContext, device_ids: list[str]) -> dict[str, IODevice]:
    """The IO processors of this bus's devices (none when the ``io`` section cannot be used)."""
    try:
        return io_devices(ctx.config, ctx.data_dir, devices=device_ids)
    except ValueError as exc:  # pydantic's ValidationError; the site loader reports it with file:line
        log.error("bus %s: the io section is invalid, IO points are not read: %s", ctx.bus.id, exc)
        return {}


def modbus_sources(ctx: SourceContext) -> Sequence[Source]:
    """Source factory for the Modbus bus kinds: one source (one scheduler, one line) per bus."""
    return [ModbusSource(ctx, link=link_for_bus(ctx.bus))]
