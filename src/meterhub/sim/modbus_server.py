"""Protocol-true Modbus simulators: any profile, served by a real pymodbus server, values from the model.

The devices (:class:`~meterhub.sim.modbus_device.ProfileDevice`) compute and encode their registers
from the profile alone; this module puts them on a line. Importing it registers the simulator for the
three Modbus bus kinds. ``serve_devices`` serves a dict ``unit → ProfileDevice`` (or a module bus,
:mod:`.modbus_modules`) on TCP, RTU over TCP or a serial port.

Unknown unit ids: on a Modbus TCP endpoint the server answers exception 0B (gateway target device
failed to respond, Modbus Application Protocol V1.1b3 §7), as a TCP gateway does; on an RTU line
(serial or RTU over TCP) it stays silent, as an absent RS485 device does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from enum import StrEnum

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice

from meterhub.config.io import RelayPoint
from meterhub.config.schema import BusKind
from meterhub.model.quantities import Q
from meterhub.profiles import ProfileError, get_profile
from meterhub.profiles.schema import Function, ProfileKind
from meterhub.sim.base import SimContext, SimServer, register_simulator
from meterhub.sim.io import IOSimulation
from meterhub.sim.modbus_device import (
    DeviceTable,
    DictTable,
    ProfileDevice,
    ValueModel,
    model_value,
    wiring_for,
)
from meterhub.sim.modbus_modules import ModuleBus
from meterhub.sim.physics import SiteModel

__all__ = [
    "Framing",
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


class Framing(StrEnum):
    """How a simulated line carries its frames (the values match the driver's transport kinds)."""

    TCP = "tcp"  # Modbus TCP: MBAP header (Modbus Messaging on TCP/IP Implementation Guide V1.0b)
    RTU = "rtu"  # RTU frames on a serial port (Modbus over Serial Line V1.02 §2.5.1)
    RTU_OVER_TCP = "rtu-over-tcp"  # RTU frames through a transparent RS485-to-Ethernet converter
    ASCII = "ascii"  # ASCII frames on a serial port (Modbus over Serial Line V1.02 §2.5.2)
    ASCII_OVER_TCP = "ascii-over-tcp"  # ASCII frames through a transparent serial-to-Ethernet converter


_SERIAL = (Framing.RTU, Framing.ASCII)
_ASCII = (Framing.ASCII, Framing.ASCII_OVER_TCP)


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
        if dev is None or not dev.alive or dev.faulted_offline():
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
    kind: Framing | str = Framing.TCP,
    host: str = "127.0.0.1",
    port: int = 0,
    serial: str | None = None,
    baud: int = 9600,
    parity: str = "N",
    stopbits: int = 1,
    bytesize: int | None = None,
    line_baud: int | None = None,
) -> ModbusSimServer:
    """Start serving ``devices`` (unit id → device); ``port=0`` picks a free loopback port.

    ``line_baud`` makes every exchange take the wire time of an RS485 line at that baud rate (to
    simulate a slow RTU line behind an RS485-to-Ethernet converter). ``kind`` is a :class:`Framing`
    or its value (``"tcp"``, ``"rtu"``, ``"rtu-over-tcp"``).
    """
    kind = Framing(kind)
    context = SimBusContext(DictTable(devices) if isinstance(devices, dict) else devices, line_baud=line_baud)
    server: ModbusTcpServer | ModbusSerialServer
    if kind in _SERIAL:
        if not serial:
            raise ValueError("a serial simulator needs a device path")
        server = ModbusSerialServer(
            _placeholder(),
            framer=FramerType.ASCII if kind is Framing.ASCII else FramerType.RTU,
            port=serial,
            baudrate=baud,
            parity=parity,
            stopbits=stopbits,
            bytesize=bytesize or (7 if kind is Framing.ASCII else 8),
            ignore_missing_devices=True,
        )
    else:
        framer = {Framing.TCP: FramerType.SOCKET, Framing.ASCII_OVER_TCP: FramerType.ASCII}.get(
            kind, FramerType.RTU
        )
        server = ModbusTcpServer(
            _placeholder(),
            framer=framer,
            address=(host, port),
            ignore_missing_devices=kind is not Framing.TCP,
            trace_packet=context.trace_packet,
        )
    server.context = context  # type: ignore[assignment]  # our datastore (same async interface)
    await server.serve_forever(background=True)
    if kind in _SERIAL:
        endpoint = f"serial://{serial}"
    else:
        listener = server.transport
        sockets = getattr(listener, "sockets", None)
        bound = sockets[0].getsockname()[1] if sockets else port
        scheme = {Framing.TCP: "tcp", Framing.ASCII_OVER_TCP: "ascii+tcp"}.get(kind, "rtu+tcp")
        endpoint = f"{scheme}://{host}:{bound}"
    log.info("simulating %d Modbus device(s) on %s", len(context.device_ids()), endpoint)
    return ModbusSimServer(server, context, endpoint)


_KIND = {
    BusKind.MODBUS_TCP: Framing.TCP,
    BusKind.MODBUS_RTU: Framing.RTU,
    BusKind.MODBUS_RTU_OVER_TCP: Framing.RTU_OVER_TCP,
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
    concentrators from :class:`~meterhub.sim.io.IOSimulation` of the site's ``io``
    section, on the same clock (so their counters grow and their contacts change).
    """
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
    _gate_loads(ctx, {d.device_id: d for d in out.values()})
    return out


def _gate_loads(ctx: SimContext, devices: dict[str, ProfileDevice]) -> None:
    """Loads with ``enable: <relay point>`` draw power only while that relay (on this bus) is energised."""
    sim, points = ctx.config.simulation, {p.id: p for p in (ctx.config.io.points if ctx.config.io else [])}
    for circuit, spec in sim.loads.items() if sim is not None else ():
        p = points.get(spec.enable) if spec.enable is not None else None
        dev = devices.get(p.device) if isinstance(p, RelayPoint) else None
        if not isinstance(p, RelayPoint) or dev is None:
            continue

        def energised(dev: ProfileDevice = dev, p: RelayPoint = p) -> bool:
            coil = dev.coil(Q.RELAY_OUTPUT, p.channel)
            return (coil == 0) if p.inverted else (coil != 0)

        try:
            ctx.model.gate(circuit, energised)
        except KeyError as exc:
            log.error("simulator: load %s: %s", circuit, exc)


def _io_simulation(ctx: SimContext) -> ValueModel:
    try:
        sim = IOSimulation(ctx.config, clock=ctx.model.clock)
        ctx.model.followers.append(sim.reconfigure)  # points added in the UI are served at once
        return sim
    except ValueError as exc:  # an invalid io section (pydantic): the site check reports where
        log.error("simulator: the io section is invalid; IO modules serve no inputs: %s", exc)
        return IOSimulation(ctx.config.model_copy(update={"io": None}), clock=ctx.model.clock)


async def modbus_simulator(ctx: SimContext) -> SimServer:
    """Simulator factory for the Modbus bus kinds: serve the bus's devices where the bus points."""
    bus = ctx.bus
    kind = _KIND[bus.kind]
    if bus.framing == "ascii":
        kind = {Framing.RTU: Framing.ASCII, Framing.RTU_OVER_TCP: Framing.ASCII_OVER_TCP}[kind]
    return await serve_devices(
        table_for(ctx),
        kind=kind,
        host=bus.host,
        port=bus.port or 0,
        serial=bus.serial,
        baud=bus.baud,
        parity=bus.parity,
        stopbits=bus.stopbits,
        bytesize=bus.bytesize,
    )


for _kind in _KIND:
    register_simulator(_kind, modbus_simulator)
