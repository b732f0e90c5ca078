"""meterhub's Modbus server for a BMS, SCADA, EMS or inverter: SunSpec meters and a flat map — a bus sink.

The sink keeps the latest reading of every series of the served circuits (its own drop-oldest
subscription: only the latest values matter), invalid ones included so that a value the energy
stage refused is served as "not implemented" at once rather than as the last good number. A pymodbus
server (Modbus TCP and/or an RTU slave on a serial line) answers from register images built from
those readings:

* each served circuit at its own unit id: SunSpec "SunS" at 40000, common model 1, meter model
  201-204 or 211-214, end marker (:mod:`meterhub.publish.sunspec`);
* the flat map at ``flat_map_unit`` (:mod:`meterhub.publish.modbus_map`, docs/modbus-map.md).

An image is rebuilt only when a reading of its circuit arrived or one of its values went stale since
it was built, so a busy client costs a dictionary lookup and a slice per request.

Registers are read-only (Modbus Application Protocol V1.1b3 §7): function codes 3 and 4 are answered.
The only writable points are the coils of ``modbus_server.relays`` at the flat map's unit (FC 1, 5,
15): each write goes through the runtime's output control (:meth:`set_control`; written on the line
that polls the module, confirmed by read-back) and is logged on the ``meterhub.audit`` logger. Every
other function code, writes included, gets exception 01 (illegal function); a register range
outside a model or block 02 (illegal data address); a count outside 1…125 03 (illegal data value,
§6.3/§6.4). An unknown unit id gets 0B (gateway target device failed to respond) on TCP and silence
on an RTU line, as an absent RS485 device.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, ReadInputRegistersRequest
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice

import meterhub
from meterhub.bus import Batch, Overflow, SinkContext, Subscription
from meterhub.config.modbus_server import MIN_STALE_AFTER, ModbusServerConfig, served_circuits
from meterhub.config.schema import SiteConfig
from meterhub.drivers.io.relay import RelayChange
from meterhub.drivers.modbus.errors import ModbusTimeout
from meterhub.errors import ConfigurationError
from meterhub.model.health import Health, HealthState
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase, Wiring
from meterhub.publish import modbus_map
from meterhub.publish.sunspec import (
    BASE,
    Identity,
    Point,
    meter_model_id,
    meter_points,
    render_device,
)

__all__ = [
    "MAX_COUNT",
    "check_bind",
    "placeholder_device",
    "read_pdus",
    "MODBUS_SERVER_QUEUE",
    "ModbusServerSink",
    "RegisterStore",
    "modbus_server_sink",
]

log = logging.getLogger("meterhub.publish.modbus_server")
#: Every relay a Modbus client switches is logged here (the audit logger, as the web API's actions).
audit = logging.getLogger("meterhub.audit")
_ON = {True: "energised", False: "released"}


class RelaySwitch(Protocol):
    """What switches a relay point (:class:`meterhub.drivers.io.control.OutputControl`)."""

    async def switch(self, point_id: str, energised: bool) -> RelayChange: ...


#: Batches the sink may hold before dropping the oldest (as the live cache: a minute of 100 devices).
MODBUS_SERVER_QUEUE = 6000
#: Largest register count of one read (Modbus Application Protocol V1.1b3 §6.3: 1 to 125).
MAX_COUNT = 125
_READ_CODES = frozenset((3, 4))

_Series = dict[tuple[str, Phase], Reading]


class _Circuit:
    """One circuit as the server sees it: its latest readings, how old they may be, its images."""

    def __init__(self, circuit_id: str, supply: Sequence[Phase], stale_after: float) -> None:
        self.id = circuit_id
        self.supply = tuple(supply)
        self.stale_after = stale_after
        self.latest: _Series = {}

    def lookup(self, now: float, expiry: list[float]) -> Callable[[str, Phase], float | None]:
        """A lookup of current values; ``expiry[0]`` becomes the earliest time one of them goes stale."""

        def get(quantity: str, phase: Phase) -> float | None:
            r = self.latest.get((quantity, phase))
            if r is None or r.quality is Quality.INVALID:
                return None
            until = r.ts + self.stale_after
            if until <= now:
                return None
            if until < expiry[0]:
                expiry[0] = until
            return r.value

        return get


class _Unit:
    """What one unit id serves: images of one or more register ranges, rebuilt on demand."""

    def __init__(self, unit: int, build: Callable[[float], list[tuple[int, list[int], float]]]) -> None:
        self.unit = unit
        self._build = build
        self._ranges: list[tuple[int, list[int]]] = []
        self._expires = 0.0
        self.dirty = True

    def ranges(self, now: float) -> list[tuple[int, list[int]]]:
        if self.dirty or now >= self._expires:
            built = self._build(now)
            self._ranges = [(start, regs) for start, regs, _ in built]
            self._expires = min((exp for _, _, exp in built), default=float("inf"))
            self.dirty = False
        return self._ranges


class RegisterStore:
    """The register images of every served unit, kept from the readings (no I/O: testable alone).

    ``config`` : the site; ``section`` : its ``modbus_server:``; ``clock`` : [s since the epoch, UTC].
    Circuits that cannot be served (unknown, DC) are left out with an error in the log and in
    :attr:`problems` (the site check refuses them in a site file; this guards a configuration built
    in code).
    """

    def __init__(self, config: SiteConfig, section: ModbusServerConfig, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.problems: list[str] = []
        self.circuits: dict[str, _Circuit] = {}
        self.units: dict[int, _Unit] = {}
        self.sunspec: dict[int, str] = {}  # unit → circuit id
        devices = {d.id: d for d in config.devices}
        by_id = {c.id: c for c in config.circuits}
        for c in config.circuits:
            device = devices.get(c.device)
            poll = device.poll_interval if device is not None else 1.0
            stale = section.stale_after or max(3 * poll, MIN_STALE_AFTER)
            # SunSpec phases A, B, C: a single or split-phase circuit's own supply phases (a 1P2W circuit
            # on L2 has its values as phase A); a three-phase circuit's L1, L2, L3 whatever its channels.
            three = c.wiring in (Wiring.P3W4, Wiring.P3W3)
            supply = (Phase.L1, Phase.L2, Phase.L3) if three else c.supply_phases
            self.circuits[c.id] = _Circuit(c.id, supply, stale)
        served = served_circuits(section, [(c.id, c.wiring) for c in config.circuits])
        ac = sum(1 for c in config.circuits if c.wiring is not Wiring.DC)
        if section.circuits is None and len(served) < ac:
            self.problems.append(
                f"modbus_server: {ac} AC circuits but {len(served)} free unit ids; the last "
                f"{ac - len(served)} are not served as SunSpec (list the ones to serve in 'circuits:')"
            )
        for entry in served:
            circuit = by_id.get(entry.circuit)
            if circuit is None:
                self.problems.append(f"modbus_server: unknown circuit {entry.circuit!r}; not served")
                continue
            if circuit.wiring is Wiring.DC or entry.unit in self.units:
                why = "is DC" if circuit.wiring is Wiring.DC else f"has unit {entry.unit}, already used"
                self.problems.append(f"modbus_server: circuit {entry.circuit!r} {why}; not served")
                continue
            floating = (entry.encoding or section.encoding) == "float"
            model = meter_model_id(circuit.wiring, floating=floating)
            identity = Identity(
                manufacturer=section.manufacturer,
                model=(circuit.name or circuit.id),
                options=circuit.wiring.value,
                version=meterhub.__version__,
                serial=circuit.id,
                unit=entry.unit,
            )
            self.units[entry.unit] = _Unit(
                entry.unit,
                self._sunspec_builder(self.circuits[circuit.id], identity, model, meter_points(model)),
            )
            self.sunspec[entry.unit] = circuit.id
        self.flat_unit = section.flat_map_unit
        #: coil n of the flat map's unit → relay point id; their latest state readings
        self.relays: list[str] = []
        self.relay_state: dict[str, Reading] = {}
        if self.flat_unit is not None and self.flat_unit not in self.units:
            flat = [c.id for c in config.circuits][: modbus_map.MAX_CIRCUITS]
            if len(config.circuits) > modbus_map.MAX_CIRCUITS:
                self.problems.append(
                    f"modbus_server: the flat map holds the first {modbus_map.MAX_CIRCUITS} circuits; "
                    f"{len(config.circuits) - modbus_map.MAX_CIRCUITS} more are served as SunSpec only"
                )
            self.units[self.flat_unit] = _Unit(self.flat_unit, self._flat_builder(flat))
        elif self.flat_unit is not None:
            self.problems.append(
                f"modbus_server: flat_map_unit {self.flat_unit} is used by a circuit; no flat map"
            )
        if section.relays and self.flat_unit in self.units and self.flat_unit not in self.sunspec:
            self.relays = list(section.relays)
        elif section.relays:
            self.problems.append("modbus_server: relays need the flat map's unit; their coils are not served")
        self._relay_ids = frozenset(self.relays)
        for p in self.problems:
            log.error("%s", p)
        self._flat_circuits = set(self.circuits) if self.flat_unit in self.units else set()
        self._watchers: dict[str, list[_Unit]] = {}
        for unit, cid in self.sunspec.items():
            self._watchers.setdefault(cid, []).append(self.units[unit])
        if self.flat_unit is not None and self.flat_unit in self.units and self.flat_unit not in self.sunspec:
            for cid in self.circuits:
                self._watchers.setdefault(cid, []).append(self.units[self.flat_unit])

    def _sunspec_builder(
        self, circuit: _Circuit, identity: Identity, model: int, points: Sequence[Point]
    ) -> Callable[[float], list[tuple[int, list[int], float]]]:
        def build(now: float) -> list[tuple[int, list[int], float]]:
            expiry = [float("inf")]
            regs = render_device(identity, model, points, circuit.lookup(now, expiry), circuit.supply)
            return [(BASE, regs, expiry[0])]

        return build

    def _flat_builder(self, circuit_ids: list[str]) -> Callable[[float], list[tuple[int, list[int], float]]]:
        unit_of = {cid: u for u, cid in self.sunspec.items()}

        def build(now: float) -> list[tuple[int, list[int], float]]:
            out = [(0, modbus_map.render_header(len(circuit_ids)), float("inf"))]
            for n, cid in enumerate(circuit_ids, start=1):
                expiry = [float("inf")]
                c = self.circuits[cid]
                regs = modbus_map.render_block(cid, unit_of.get(cid, 0), c.lookup(now, expiry))
                out.append((modbus_map.BLOCK * n, regs, expiry[0]))
            return out

        return build

    # -- readings -------------------------------------------------------------------------------
    def update(self, batch: Batch) -> None:
        """Keep each reading as the latest of its series (INVALID too: it is served as not implemented)."""
        touched: set[str] = set()
        circuits = self.circuits
        relays = self._relay_ids
        for r in batch:
            c = circuits.get(r.circuit)
            if c is None or r.phase is None:
                if relays and r.circuit in relays and r.quantity == Q.RELAY_OUTPUT:
                    self.relay_state[r.circuit] = r
                continue
            key = (r.quantity, r.phase)
            old = c.latest.get(key)
            if old is None or r.ts >= old.ts:
                c.latest[key] = r
                touched.add(r.circuit)
        for cid in touched:
            for unit in self._watchers.get(cid, ()):
                unit.dirty = True

    # -- requests -------------------------------------------------------------------------------
    def read_coils(self, unit: int, address: int, count: int) -> list[bool] | ExcCodes:
        """Coils ``address`` … of ``unit``: the relays' last known states (FC 1), 02 outside them,
        04 for a relay whose state is not known yet."""
        if unit not in self.units:
            raise NoSuchIdException(f"no device at unit {unit}")
        if unit != self.flat_unit or not self.relays:
            return ExcCodes.ILLEGAL_FUNCTION
        if not 1 <= count <= 2000:
            return ExcCodes.ILLEGAL_VALUE
        if address + count > len(self.relays):
            return ExcCodes.ILLEGAL_ADDRESS
        out: list[bool] = []
        for point in self.relays[address : address + count]:
            r = self.relay_state.get(point)
            if r is None or r.quality is Quality.INVALID:
                return ExcCodes.DEVICE_FAILURE
            out.append(bool(r.value))
        return out

    def read(self, unit: int, address: int, count: int) -> list[int] | ExcCodes:
        """Registers ``address`` … ``address + count - 1`` of ``unit``, or the Modbus exception code.

        Raises :class:`NoSuchIdException` for a unit that is not served (the server answers 0B on TCP,
        nothing on RTU)."""
        served = self.units.get(unit)
        if served is None:
            raise NoSuchIdException(f"no device at unit {unit}")
        if not 1 <= count <= MAX_COUNT:
            return ExcCodes.ILLEGAL_VALUE
        for start, regs in served.ranges(self.clock()):
            if start <= address and address + count <= start + len(regs):
                return regs[address - start : address - start + count]
        return ExcCodes.ILLEGAL_ADDRESS


class _Datastore:
    """The datastore a pymodbus server calls (its async interface), answering from a :class:`RegisterStore`."""

    def __init__(self, store: RegisterStore) -> None:
        self.store = store
        self.requests = 0
        self.exceptions = 0
        #: switches relays (meterhub's output control on the running lines); None: coils are read-only
        self.control: Callable[[], RelaySwitch] | None = None

    def device_ids(self) -> list[int]:
        return list(self.store.units)

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        self.requests += 1
        if func_code in (1, 5):  # coils: the relays of modbus_server.relays (5: a write's echo)
            coils = self.store.read_coils(device_id, address, count)
            if isinstance(coils, ExcCodes):
                self.exceptions += 1
            return coils
        if func_code not in _READ_CODES:  # discrete inputs: none here
            self.exceptions += 1
            return ExcCodes.ILLEGAL_FUNCTION
        res = self.store.read(device_id, address, count)
        if isinstance(res, ExcCodes):
            self.exceptions += 1
        return res

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        self.requests += 1
        store = self.store
        if device_id not in store.units:
            raise NoSuchIdException(f"no device at unit {device_id}")
        if func_code not in (5, 15) or device_id != store.flat_unit or not store.relays:
            self.exceptions += 1
            return ExcCodes.ILLEGAL_FUNCTION  # registers are read-only; coils only where relays are
        if address + len(values) > len(store.relays):
            self.exceptions += 1
            return ExcCodes.ILLEGAL_ADDRESS
        if self.control is None:
            self.exceptions += 1
            return ExcCodes.DEVICE_FAILURE
        control = self.control()
        for i, v in enumerate(values):
            point, on = store.relays[address + i], bool(v)
            try:
                change = await control.switch(point, on)
            except ModbusTimeout:
                audit.warning("modbus_server: relay %s %s by a Modbus client: no answer", point, _ON[on])
                self.exceptions += 1
                return ExcCodes.GATEWAY_NO_RESPONSE
            except Exception as exc:  # IOPointError, OutputWriteError, ReadbackMismatch, ModbusError …
                audit.warning("modbus_server: relay %s %s by a Modbus client failed: %s", point, _ON[on], exc)
                self.exceptions += 1
                return ExcCodes.DEVICE_FAILURE
            store.relay_state[point] = change.reading()
            audit.info(
                "modbus_server: relay %s %s by a Modbus client (unit %d, coil %d); confirmed by read-back",
                point,
                _ON[change.energised],
                device_id,
                address + i,
            )
        return None


class _ReadHolding(ReadHoldingRegistersRequest):
    """FC 3 decoded with any count, so that a count outside 1…125 reaches the datastore and gets
    exception 03 (Modbus Application Protocol V1.1b3 §6.3) instead of pymodbus's generic 0x80/01."""

    def decode(self, data: bytes) -> None:
        self.address, self.count = struct.unpack(">HH", data[:4])


class _ReadInput(ReadInputRegistersRequest):
    """FC 4 decoded with any count (see :class:`_ReadHolding`; §6.4)."""

    def decode(self, data: bytes) -> None:
        self.address, self.count = struct.unpack(">HH", data[:4])


def placeholder_device() -> SimDevice:
    """The device a pymodbus server is built with before its datastore is replaced by ours."""
    return SimDevice(0, simdata=[SimData(0)])


def read_pdus() -> list[type[ModbusPDU]]:
    """The read requests (FC 3 and 4) decoded with any count, for a server's ``custom_pdu``."""
    return [_ReadHolding, _ReadInput]


def check_bind(host: str, port: int, where: str = "modbus_server.tcp") -> None:
    """Raise a :class:`ConfigurationError` naming why ``host:port`` (of ``where``) cannot be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            reason = (
                "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            )
            raise ConfigurationError(f"{where}: port {host}:{port} {reason}") from None


def _endpoints(section: ModbusServerConfig | None) -> tuple[object, object] | None:
    return (section.tcp, section.rtu) if section is not None else None


class ModbusServerSink:
    """The ``modbus_server`` sink: keeps the register images and runs the pymodbus server(s).

    ``section`` None or disabled: subscribed to nothing, serves nothing (health says so).
    """

    name = "modbus_server"

    def __init__(
        self,
        subscription: Subscription,
        config: SiteConfig,
        section: ModbusServerConfig | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sub = subscription
        self.section = section if section is not None and section.enabled else None
        self.store: RegisterStore | None = (
            RegisterStore(config, self.section, clock) if self.section is not None else None
        )
        self._datastore = _Datastore(self.store) if self.store is not None else None
        self._servers: list[ModbusTcpServer | ModbusSerialServer] = []
        #: Where the server listens, e.g. ``tcp://127.0.0.1:1502``, ``rtu:///dev/ttyUSB1`` (set by start).
        self.endpoints: list[str] = []

    @property
    def subscription(self) -> Subscription:
        return self._sub

    def set_control(self, control: Callable[[], RelaySwitch]) -> None:
        """Let Modbus clients switch the configured relays through ``control()`` (the runtime's output
        control on its running lines); without it the relays' coils are read-only (exception 04)."""
        if self._datastore is not None:
            self._datastore.control = control

    async def start(self) -> None:
        """Listen on the configured TCP port and serial line; a port or line that cannot be opened is
        a :class:`ConfigurationError` naming it."""
        if self.section is None or self._datastore is None:
            return
        try:
            if self.section.tcp is not None:
                await self._start_tcp(self.section.tcp.host, self.section.tcp.port)
            if self.section.rtu is not None:
                await self._start_rtu()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "Modbus server: %d SunSpec circuit(s)%s on %s",
            len(self.store.sunspec) if self.store else 0,
            f", flat map at unit {self.section.flat_map_unit}" if self.section.flat_map_unit else "",
            ", ".join(self.endpoints),
        )

    async def _start_tcp(self, host: str, port: int) -> None:
        check_bind(host, port)
        server = ModbusTcpServer(
            placeholder_device(),
            framer=FramerType.SOCKET,
            address=(host, port),
            custom_pdu=read_pdus(),
        )
        server.context = self._datastore  # type: ignore[assignment]  # same async interface
        try:
            await server.serve_forever(background=True)
        except RuntimeError:
            raise ConfigurationError(f"modbus_server.tcp: cannot listen on {host}:{port}") from None
        self._servers.append(server)
        sockets = getattr(server.transport, "sockets", None)
        bound = sockets[0].getsockname()[1] if sockets else port
        self.endpoints.append(f"tcp://{host}:{bound}")

    async def _start_rtu(self) -> None:
        rtu = self.section.rtu if self.section is not None else None
        if rtu is None:
            return
        if not os.path.exists(rtu.device):
            raise ConfigurationError(f"modbus_server.rtu: serial port {rtu.device} does not exist")
        server = ModbusSerialServer(
            placeholder_device(),
            framer=FramerType.RTU,
            port=rtu.device,
            baudrate=rtu.baud,
            parity=rtu.parity,
            stopbits=rtu.stopbits,
            ignore_missing_devices=True,  # an absent RS485 address stays silent
            custom_pdu=read_pdus(),
        )
        server.context = self._datastore  # type: ignore[assignment]
        try:
            await server.serve_forever(background=True)
        except Exception as exc:  # pyserial: SerialException, termios.error (e.g. parity a pty lacks)
            raise ConfigurationError(
                f"modbus_server.rtu: cannot open serial port {rtu.device} at {rtu.baud} baud, parity "
                f"{rtu.parity}, {rtu.stopbits} stop bit(s): {exc}"
            ) from None
        self._servers.append(server)
        self.endpoints.append(
            f"rtu://{rtu.device}?baud={rtu.baud}&parity={rtu.parity}&stopbits={rtu.stopbits}"
        )

    def reconfigure(self, config: SiteConfig) -> None:
        """Serve the circuits of a changed site (the configuration was applied again): the images are
        rebuilt, the latest readings of circuits that remain are kept. Listeners cannot move while
        running: a changed ``tcp``/``rtu`` (or a section added or removed) applies at the next start,
        and says so in the log."""
        section = (
            config.modbus_server
            if config.modbus_server is not None and config.modbus_server.enabled
            else None
        )
        if _endpoints(section) != _endpoints(self.section):
            log.warning("modbus_server: its endpoints changed; restart meterhub to apply them")
        if section is None or self.store is None or self._datastore is None:
            return
        latest = {cid: c.latest for cid, c in self.store.circuits.items()}
        store = RegisterStore(config, section, self.store.clock)
        for cid, c in store.circuits.items():
            c.latest = latest.get(cid, {})
        self.section, self.store = section, store
        self._datastore.store = store

    async def deliver(self, batch: Batch) -> None:
        if self.store is not None:
            self.store.update(batch)

    async def stop(self) -> None:
        """Close every listener (a client waiting for an answer gets none)."""
        servers, self._servers = self._servers, []
        for server in servers:
            with contextlib.suppress(Exception):
                await server.shutdown()
        await asyncio.sleep(0)

    def health(self) -> Health:
        if self.section is None or self._datastore is None or self.store is None:
            return Health(HealthState.OK, "not configured", {})
        st = self._sub.stats
        counters = {
            "requests": self._datastore.requests,
            "exceptions": self._datastore.exceptions,
            "units": len(self.store.units),
            "delivered": st.delivered,
            "dropped": st.dropped,
        }
        where = ", ".join(self.endpoints) or "nowhere yet"
        if self.store.problems:
            return Health(HealthState.DEGRADED, "; ".join(self.store.problems), counters)
        if self._sub.pending >= self._sub.maxsize:
            return Health(HealthState.DEGRADED, "falling behind: dropping the oldest batches", counters)
        return Health(HealthState.OK, f"serving {len(self.store.units)} unit(s) on {where}", counters)


def modbus_server_sink(ctx: SinkContext) -> ModbusServerSink:
    """The sink of ``modbus_server:`` (subscribed only when the section is present and enabled)."""
    section = ctx.config.modbus_server
    sub = ctx.bus.subscribe("modbus_server", maxsize=MODBUS_SERVER_QUEUE, overflow=Overflow.DROP_OLDEST)
    if section is None or not section.enabled:
        ctx.bus.unsubscribe(sub)
    return ModbusServerSink(sub, ctx.config, section, ctx.clock)
