"""Protocol-true Modbus simulators: any profile, served by a real pymodbus server, values from the model.

Every register a profile maps is computed on request from :class:`meterhub.sim.physics.SiteModel`
and encoded exactly as the profile says (type, word/byte order, scale, unit), so the reader decodes
it back through the same profile — the round trip every profile is tested with. Identification
registers answer their profile value; writable points keep what was written (read-back works).

Importing this module registers the simulator for the three Modbus bus kinds. ``serve_devices``
serves a dict ``unit → SimDevice`` on TCP, RTU over TCP or a serial port.

Unknown unit ids: on a Modbus TCP endpoint the server answers exception 0B (gateway target device
failed to respond, Modbus Application Protocol V1.1b3 §7), as a TCP gateway does; on an RTU line
(serial or RTU over TCP) it stays silent, as an absent RS485 device does.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import zlib
from bisect import bisect_left
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice

from meterhub.config.schema import BusKind
from meterhub.drivers.modbus.codec import DataType, encode, is_float, register_count
from meterhub.drivers.modbus.mapping import REVERSED_NEGATE, REVERSED_SWAP, reversed_channels
from meterhub.drivers.modbus.profile import Function, Point, Profile, ProfileKind
from meterhub.drivers.modbus.transport import TransportKind
from meterhub.model.topology import Phase, Wiring
from meterhub.sim.base import SimContext, SimServer, register_simulator
from meterhub.sim.physics import SiteModel

if TYPE_CHECKING:
    from meterhub.config.schema import SiteConfig

__all__ = [
    "ModbusSimServer",
    "ProfileDevice",
    "SimBusContext",
    "ValueModel",
    "model_value",
    "modbus_simulator",
    "serve_devices",
    "wiring_for",
]

log = logging.getLogger("meterhub.sim.modbus")

_PHASES = (Phase.L1, Phase.L2, Phase.L3)
_FC_TABLE = {
    1: Function.COIL,
    5: Function.COIL,
    15: Function.COIL,
    2: Function.DISCRETE,
    3: Function.HOLDING,
    6: Function.HOLDING,
    16: Function.HOLDING,
    22: Function.HOLDING,
    23: Function.HOLDING,
    4: Function.INPUT,
}


def wiring_for(profile: Profile) -> Wiring:
    """The wiring a single simulated device of ``profile`` measures (``meterhub simulate ID``)."""
    n = profile.channels if profile.kind is not ProfileKind.METER else 3
    if profile.kind is ProfileKind.METER and all(
        e.phase in (None, Phase.L1, Phase.TOTAL) for e in profile.registers
    ):
        n = 1  # a single-phase meter
    return {1: Wiring.P1W2, 2: Wiring.P1W3}.get(n, Wiring.P3W4)


class ValueModel(Protocol):
    """Where a simulated device takes its values: the site's :class:`SiteModel`, or for IO modules
    :class:`meterhub.drivers.io.simulate.IOSimulation` (pulse counters, contacts, analog signals)."""

    config: SiteConfig

    def value(
        self, device_id: str, quantity: str, phase: Phase | None, channel: int | None = None
    ) -> float | None: ...


def model_value(model: SiteModel | ValueModel, device_id: str, p: Point) -> float | None:
    """The value the physical model gives for one profile point, in catalogue units."""
    q, ph, ch = p.quantity, p.phase, p.channel
    if p.order is not None:  # spectra: harmonics in % of the fundamental or in A / V
        if not isinstance(model, SiteModel):
            return None
        if q.startswith("harmonics_voltage"):
            sup = model.supply()
            idx = _PHASES.index(ph) if ph in _PHASES else 0
            frac = float(sup.harmonics_voltage[idx, p.order])
            u1 = float(sup.voltage[idx]) / math.sqrt(1 + (float(sup.thd_voltage[idx]) / 100) ** 2)
            return frac * 100.0 if q.endswith("_percent") else frac * u1
        if ch is None:
            return None
        try:
            state = model.channel(device_id, ch)
        except KeyError:
            return None
        frac = float(state.harmonics_current[p.order])
        i1 = state.current / math.sqrt(1 + (state.thd_current / 100) ** 2)
        return frac * 100.0 if q.endswith("_percent") else frac * i1
    if q in ("energy_reactive_import", "energy_reactive_export"):
        names = (
            ("energy_reactive_q1", "energy_reactive_q2")
            if q.endswith("import")
            else ("energy_reactive_q3", "energy_reactive_q4")
        )
        parts = [model.value(device_id, n, ph, ch) for n in names]
        if any(v is None for v in parts):
            return None
        return math.fsum(v for v in parts if v is not None)
    return model.value(device_id, q, ph, ch)


@dataclass
class ProfileDevice:
    """One simulated device: a profile at a unit id, its values from the model."""

    device_id: str
    profile: Profile
    model: SiteModel | ValueModel | None
    ident_overrides: dict[str, float] = field(default_factory=dict)
    alive: bool = True  # False: the device stops answering (tests of dead-device isolation)
    reject_holes: bool = False  # True: a read over an unmapped register gets exception 02, as some meters do
    requests: int = 0
    #: extra registers outside the profile (e.g. the V10 bus table): (table, address) → value or None
    extra: Callable[[Function, int], int | None] | None = None
    #: how often the device refreshes its measurement registers [s] (real meters: 0.1…1 s; Janitza UMG:
    #: every 200 ms); reads in between see the same image, and the model is not asked again
    refresh: float = 0.2

    def __post_init__(self) -> None:
        self._points: dict[Function, list[Point]] = {}
        for p in self.profile.points():
            self._points.setdefault(p.function, []).append(p)
        for pts in self._points.values():
            pts.sort(key=lambda p: p.address)
        self._starts = {fn: [p.address for p in pts] for fn, pts in self._points.items()}
        self.written: dict[tuple[Function, int], int] = {}
        self._image: dict[Point, list[int]] = {}
        self._image_t = -math.inf
        self._reversed: set[int] = set()
        if self.model is not None:
            for c in self.model.config.circuits:
                if c.device == self.device_id and c.reversed:
                    self._reversed |= reversed_channels(c)
        self._fixed: dict[tuple[Function, int], int] = {}
        for e in self.profile.identification:
            if e.name in self.ident_overrides:
                value = self.ident_overrides[e.name]
            elif e.value is not None:
                value = e.value
            elif e.name == "serial_number":
                value = float(zlib.crc32(self.device_id.encode()) % 100_000_000)  # stable per device
            else:
                continue  # a range check on a measured register: the model supplies it
            regs = encode(value, e.type, word_order=e.word_order or self.profile.defaults.word_order)
            for k, r in enumerate(regs):
                self._fixed[(e.function, e.address + k)] = r
        self._writable_addr = {
            (w.function, w.address + k)
            for w in self.profile.writable
            for k in range(1 if w.function is Function.COIL else _size(w.type))
        }

    def _value_regs(self, p: Point) -> list[int]:
        now = time.monotonic()
        if now - self._image_t >= self.refresh:
            self._image.clear()
            self._image_t = now
        regs = self._image.get(p)
        if regs is None:
            regs = self._image[p] = self._encode(p)
        return regs

    def _encode(self, p: Point) -> list[int]:
        value = model_value(self.model, self.device_id, p) if self.model is not None else None
        ch = (
            p.channel
            if p.channel is not None
            else (_PHASES.index(p.phase) + 1 if p.phase in _PHASES else None)
        )
        if ch in self._reversed and self.model is not None:
            # a CT mounted the wrong way round: the device measures −i (the gateway undoes it)
            if p.quantity in REVERSED_NEGATE and value is not None:
                value = -value
            elif p.quantity in REVERSED_SWAP:
                value = model_value(
                    self.model, self.device_id, replace(p, quantity=REVERSED_SWAP[p.quantity])
                )
            elif p.quantity == "angle_current" and value is not None:
                value = (value + 360.0) % 360.0 - 180.0
        if p.function.is_bit:
            return [int(bool(value))]
        if value is None:
            value = math.nan if is_float(p.dtype) else 0.0
        return encode(value, p.dtype, word_order=p.word_order, byte_order=p.byte_order, scale=p.factor)

    def registers(self, function: Function, address: int, count: int) -> list[int] | ExcCodes:
        """Image of ``count`` registers (bits) from ``address``; exception 02 if nothing is mapped there."""
        self.requests += 1
        end = address + count
        out = [0] * count
        mapped = False
        pts = self._points.get(function, [])
        starts = self._starts.get(function, [])
        i = max(0, bisect_left(starts, address) - 1)
        while i < len(pts) and pts[i].address < end:
            p = pts[i]
            i += 1
            if p.end <= address:
                continue
            mapped = True
            regs = self._value_regs(p)
            for k, r in enumerate(regs):
                a = p.address + k
                if address <= a < end:
                    out[a - address] = r
        for (fn, a), r in self._fixed.items():
            if fn is function and address <= a < end:
                out[a - address] = r
                mapped = True
        for (fn, a), r in self.written.items():
            if fn is function and address <= a < end:
                out[a - address] = r
                mapped = True
        if self.extra is not None:
            for a in range(address, end):
                v = self.extra(function, a)
                if v is not None:
                    out[a - address] = v
                    mapped = True
        if self.reject_holes and not all(self._is_mapped(function, a) for a in range(address, end)):
            return ExcCodes.ILLEGAL_ADDRESS
        if not mapped and not any(fn is function and address <= a < end for fn, a in self._writable_addr):
            return ExcCodes.ILLEGAL_ADDRESS
        return out

    def _is_mapped(self, function: Function, address: int) -> bool:
        if (function, address) in self._fixed or (function, address) in self._writable_addr:
            return True
        return any(p.address <= address < p.end for p in self._points.get(function, []))

    def write(self, function: Function, address: int, values: list[int]) -> ExcCodes | None:
        for k in range(len(values)):
            if (function, address + k) not in self._writable_addr:
                return ExcCodes.ILLEGAL_ADDRESS
        for k, v in enumerate(values):
            self.written[(function, address + k)] = int(v)
        return None


def _size(dtype: DataType) -> int:
    return register_count(dtype)


class DeviceTable(Protocol):
    """What a server needs to find the device at a unit id (a dict wrapper or a module bus)."""

    def get(self, unit: int) -> ProfileDevice | None: ...
    def collided(self, unit: int) -> bool: ...
    def units(self) -> list[int]: ...


class DictTable:
    """A fixed set of devices, one per unit id."""

    def __init__(self, devices: dict[int, ProfileDevice]) -> None:
        self.devices = devices

    def get(self, unit: int) -> ProfileDevice | None:
        return self.devices.get(unit)

    def collided(self, unit: int) -> bool:
        return False

    def units(self) -> list[int]:
        return sorted(self.devices)


class SimBusContext:
    """The datastore a pymodbus server calls: routes each request to the device at its unit id.

    A request to a unit where two devices collide is answered, then the outgoing frame is corrupted
    (:meth:`trace_packet`): what a master on a real RS485 line sees when two slaves talk at once.
    """

    def __init__(
        self,
        table: DeviceTable,
        *,
        on_request: Callable[[int], None] | None = None,
        line_baud: int | None = None,
    ):
        self.table = table
        self.on_request = on_request
        self.line_baud = line_baud
        self.wire_busy = 0.0  # [s] total simulated wire time of the exchanges served
        self._corrupt = 0

    def wire_time(self, request_bytes: int, response_bytes: int) -> float:
        """Time an RS485 line at ``line_baud`` is busy for one exchange: both frames at 10 bits per
        character (8N1) plus the 3.5-character silence after each (Modbus over Serial Line V1.02
        §2.5.1.1). [s]"""
        if not self.line_baud:
            return 0.0
        return (request_bytes + response_bytes + 7) * 10.0 / self.line_baud

    @property
    def devices(self) -> dict[int, ProfileDevice]:
        return {u: d for u in self.table.units() if (d := self.table.get(u)) is not None}

    def device_ids(self) -> list[int]:
        return self.table.units()

    def _device(self, unit: int) -> ProfileDevice:
        dev = self.table.get(unit)
        if dev is None or not dev.alive:
            raise NoSuchIdException(f"no device at unit {unit}")
        if self.table.collided(unit):
            self._corrupt += 1
        return dev

    def trace_packet(self, sending: bool, data: bytes) -> bytes:
        if sending and self._corrupt and len(data) > 4:
            self._corrupt -= 1
            # two answers on the wire at once: the CRC (RTU) no longer matches, the frame is cut short
            return data[:-3] + bytes([data[-3] ^ 0x5A, data[-2] ^ 0xA5])
        return data

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        dev = self._device(device_id)
        if self.on_request is not None:
            self.on_request(device_id)
        fn = _FC_TABLE.get(func_code)
        if fn is None:
            return ExcCodes.ILLEGAL_FUNCTION
        res = dev.registers(fn, address, count)
        if self.line_baud:  # a simulated RS485 line: the exchange takes its wire time
            data = (count + 7) // 8 if fn.is_bit else 2 * count
            busy = self.wire_time(8, 5 + data)
            await asyncio.sleep(busy)
            self.wire_busy += busy  # counted once the exchange is complete
        if isinstance(res, list) and fn.is_bit:
            return [bool(v) for v in res]
        return res

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        dev = self._device(device_id)
        fn = _FC_TABLE.get(func_code)
        if fn not in (Function.COIL, Function.HOLDING):
            return ExcCodes.ILLEGAL_FUNCTION
        return dev.write(fn, address, [int(v) for v in values])


class ModbusSimServer(SimServer):
    """A running pymodbus server serving simulated devices."""

    def __init__(self, server: ModbusTcpServer | ModbusSerialServer, context: SimBusContext, endpoint: str):
        self.server = server
        self.context = context
        self.endpoint = endpoint

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    async def close(self) -> None:
        with suppress(Exception):
            await self.server.shutdown()


def _placeholder() -> SimDevice:
    return SimDevice(0, simdata=[SimData(0)])


async def serve_devices(
    devices: dict[int, ProfileDevice] | DeviceTable,
    *,
    kind: TransportKind = TransportKind.TCP,
    host: str = "127.0.0.1",
    port: int = 0,
    serial: str | None = None,
    baud: int = 9600,
    parity: str = "N",
    stopbits: int = 1,
    line_baud: int | None = None,
) -> ModbusSimServer:
    """Start serving ``devices`` (unit id → device); ``port=0`` picks a free loopback port.

    ``line_baud`` makes every exchange take the wire time of an RS485 line at that baud rate (to
    simulate a slow RTU line behind an RS485-to-Ethernet converter).
    """
    context = SimBusContext(DictTable(devices) if isinstance(devices, dict) else devices, line_baud=line_baud)
    server: ModbusTcpServer | ModbusSerialServer
    if kind is TransportKind.RTU:
        if not serial:
            raise ValueError("a serial simulator needs a device path")
        server = ModbusSerialServer(
            _placeholder(),
            framer=FramerType.RTU,
            port=serial,
            baudrate=baud,
            parity=parity,
            stopbits=stopbits,
            ignore_missing_devices=True,
        )
    else:
        framer = FramerType.SOCKET if kind is TransportKind.TCP else FramerType.RTU
        server = ModbusTcpServer(
            _placeholder(),
            framer=framer,
            address=(host, port),
            ignore_missing_devices=kind is not TransportKind.TCP,
            trace_packet=context.trace_packet,
        )
    server.context = context  # type: ignore[assignment]  # our datastore (same async interface)
    await server.serve_forever(background=True)
    if kind is TransportKind.RTU:
        endpoint = f"serial://{serial}"
    else:
        listener = server.transport
        sockets = getattr(listener, "sockets", None)
        bound = sockets[0].getsockname()[1] if sockets else port
        scheme = "tcp" if kind is TransportKind.TCP else "rtu+tcp"
        endpoint = f"{scheme}://{host}:{bound}"
    log.info("simulating %d Modbus device(s) on %s", len(context.device_ids()), endpoint)
    return ModbusSimServer(server, context, endpoint)


_KIND = {
    BusKind.MODBUS_TCP: TransportKind.TCP,
    BusKind.MODBUS_RTU: TransportKind.RTU,
    BusKind.MODBUS_RTU_OVER_TCP: TransportKind.RTU_OVER_TCP,
}


def table_for(ctx: SimContext) -> DeviceTable:
    """A module bus when the bus carries a seed-000 voltage unit, else one device per unit id."""
    devices = devices_for(ctx)
    vu = next(
        (u for u, d in devices.items() if d.profile.kind is ProfileKind.VOLTAGE_UNIT and d.profile.bus_power),
        None,
    )
    if vu is None:
        return DictTable(devices)
    from meterhub.sim.modbus_modules import ModuleBus

    bus = ModuleBus(devices.pop(vu))
    if vu != 1:
        bus.slots.pop(1)
        bus.slots[vu] = [bus.voltage_unit]
    for u, d in devices.items():
        bus.add(d, u, check=False)
    return bus


def devices_for(ctx: SimContext) -> dict[int, ProfileDevice]:
    """The simulated devices of a configured bus (profiles that cannot load are skipped, logged).

    Meters and metering modules take their values from the site model; IO modules and pulse
    concentrators from :class:`~meterhub.drivers.io.simulate.IOSimulation` of the site's ``io``
    section, on the same clock (so their counters grow and their contacts change).
    """
    from meterhub.profiles import ProfileError, get_profile

    out: dict[int, ProfileDevice] = {}
    io_sim: ValueModel | None = None
    for d in ctx.devices:
        try:
            profile = get_profile(d.profile)
        except ProfileError as exc:
            log.error("simulator: device %s: %s", d.id, exc)
            continue
        unit = d.unit if d.unit is not None else profile.defaults.unit
        if unit in out:
            log.error("simulator: device %s: unit %d is already used by %s", d.id, unit, out[unit].device_id)
            continue
        model: SiteModel | ValueModel = ctx.model
        if profile.kind in (ProfileKind.IO, ProfileKind.CONCENTRATOR):
            if io_sim is None:
                io_sim = _io_simulation(ctx)
            model = io_sim
        out[unit] = ProfileDevice(d.id, profile, model)
    return out


def _io_simulation(ctx: SimContext) -> ValueModel:
    from meterhub.drivers.io.simulate import IOSimulation

    try:
        return IOSimulation(ctx.config, clock=ctx.model.clock)
    except ValueError as exc:  # an invalid io section (pydantic): the site check reports where
        log.error("simulator: the io section is invalid; IO modules serve no inputs: %s", exc)
        return IOSimulation(ctx.config.model_copy(update={"io": None}), clock=ctx.model.clock)


async def modbus_simulator(ctx: SimContext) -> SimServer:
    """Simulator factory for the Modbus bus kinds: serve the bus's devices where the bus points."""
    bus = ctx.bus
    return await serve_devices(
        table_for(ctx),
        kind=_KIND[bus.kind],
        host=bus.host,
        port=bus.port or 0,
        serial=bus.serial,
        baud=bus.baud,
        parity=bus.parity,
        stopbits=bus.stopbits,
    )


for _kind in _KIND:
    register_simulator(_kind, modbus_simulator)
