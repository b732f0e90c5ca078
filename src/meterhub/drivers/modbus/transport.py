"""Transports: one Modbus line — Modbus TCP, RTU or ASCII over TCP, RTU or ASCII on a local serial port.

The TCP framings run on meterhub's own framer (:mod:`.framing`, :mod:`.ascii`, :mod:`.stream`): it matches every
answer to the request in flight (transaction id, unit, function, byte count), drops stray and
duplicated frames, and resynchronises after a bad one. A local serial port uses pymodbus' serial
client (its RTU or ASCII framer) (``retries=0``, its "close after N silent requests" off: the scheduler decides about retries,
and a silent device must not take its whole line down).

Library and socket errors become our own typed errors at this boundary (STYLE.md §7,
:mod:`.errors`): a caller only ever sees a :class:`ModbusError`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from meterhub.drivers.modbus.errors import (
    EXCEPTION_NAMES,
    LineStats,
    ModbusConnectionError,
    ModbusCrcError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusTimeout,
    exception_response,
    no_response,
)
from meterhub.drivers.modbus.framing import Request
from meterhub.drivers.modbus.stream import StreamChannel
from meterhub.profiles.schema import Function

__all__ = [
    "EXCEPTION_NAMES",
    "LineStats",
    "ModbusConnectionError",
    "ModbusCrcError",
    "ModbusError",
    "ModbusExceptionResponse",
    "ModbusFrameError",
    "ModbusLink",
    "ModbusTimeout",
    "RegisterLink",
    "SERIAL_KINDS",
    "TransportKind",
    "WIRE_TIME",
    "exception_response",
    "no_response",
    "with_framing",
]

log = logging.getLogger("meterhub.modbus")
# pymodbus logs an ERROR line for every silent request of the serial client; we report each failure
# as a typed error here and log per device state change (scheduler), so its own lines are noise
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

_READ_CODE = {Function.COIL: 1, Function.DISCRETE: 2, Function.HOLDING: 3, Function.INPUT: 4}


class TransportKind(StrEnum):
    TCP = "tcp"  # Modbus TCP (MBAP header, Modbus Messaging on TCP/IP Implementation Guide V1.0b)
    RTU = "rtu"  # RTU frames on a local serial port (Modbus over Serial Line V1.02 §2.5.1)
    RTU_OVER_TCP = "rtu-over-tcp"  # RTU frames through a transparent RS485-to-Ethernet converter
    ASCII = "ascii"  # ASCII frames on a local serial port (Modbus over Serial Line V1.02 §2.5.2)
    ASCII_OVER_TCP = "ascii-over-tcp"  # ASCII frames through a transparent serial-to-Ethernet converter


#: The kinds on a local serial port (pymodbus' serial client); the others run on :mod:`.stream`.
SERIAL_KINDS = frozenset((TransportKind.RTU, TransportKind.ASCII))
_ASCII_OF = {TransportKind.RTU: TransportKind.ASCII, TransportKind.RTU_OVER_TCP: TransportKind.ASCII_OVER_TCP}


def with_framing(kind: TransportKind, framing: str) -> TransportKind:
    """The transport of a serial line (RTU, RTU over TCP) with the bus's ``framing`` (``rtu`` or ``ascii``)."""
    return _ASCII_OF.get(kind, kind) if framing == "ascii" else kind


class RegisterLink(Protocol):
    """What the reader, the scheduler and the source need of a line: register reads and writes, one at a
    time, raising only :class:`ModbusError` subclasses, with counters. :class:`ModbusLink` is the real
    one (TCP, RTU, RTU over TCP); :class:`meterhub.drivers.modbus.memory.MemoryLink` an in-memory one for
    tests (pymodbus' ``NullModem`` role). A :class:`~meterhub.drivers.modbus.source.ModbusSource` gets
    its link from its factory."""

    stats: LineStats

    @property
    def endpoint(self) -> str:
        """Where the line goes, for messages, e.g. ``tcp://10.0.0.5:502``."""
        ...

    async def read(self, function: Function, unit: int, start: int, count: int) -> list[int]:
        """``count`` registers (or bits as 0/1) of ``function`` from ``unit`` at ``start``."""
        ...

    async def write(self, function: Function, unit: int, address: int, values: Sequence[int]) -> None:
        """Write registers or coils from ``address``."""
        ...

    async def close(self) -> None:
        """Release the line (a later request opens it again)."""
        ...


def _write_request(function: Function, unit: int, address: int, values: Sequence[int]) -> Request:
    """The request writing ``values``: FC 05/06 for one coil/register, FC 15/16 for more."""
    if function is Function.COIL:
        if len(values) == 1:
            return Request(unit, 5, address, 1, b"\xff\x00" if values[0] else b"\x00\x00")
        packed = bytearray((len(values) + 7) // 8)
        for i, v in enumerate(values):
            if v:
                packed[i // 8] |= 1 << (i % 8)
        return Request(unit, 15, address, len(values), bytes(packed))
    if function is Function.HOLDING:
        try:
            data = struct.pack(f">{len(values)}H", *(int(v) for v in values))
        except struct.error:
            raise ModbusFrameError(
                f"unit {unit}: register values {list(values)} are not all 0…65535"
            ) from None
        if len(values) == 1:
            return Request(unit, 6, address, 1, data)
        return Request(unit, 16, address, len(values), data)
    raise ModbusFrameError(f"{function.value} points cannot be written")


#: Set to a list in a task (and the tasks it starts) to have the time each request of it held the line
#: appended to it [s] (the Modbus gateway measures its share of the line's time with it).
WIRE_TIME: ContextVar[list[float] | None] = ContextVar("modbus_wire_time", default=None)


@dataclass
class ModbusLink:
    """One master on one line. Requests are serialised: one in flight at a time."""

    kind: TransportKind
    host: str = "127.0.0.1"
    port: int = 502
    serial: str | None = None
    baud: int = 9600
    parity: str = "N"
    stopbits: int = 1
    timeout: float = 1.0
    #: data bits of a serial line; None: 8 for RTU, 7 for ASCII (Modbus over Serial Line V1.02 §2.5)
    bytesize: int | None = None
    stats: LineStats = field(default_factory=LineStats)

    def __post_init__(self) -> None:
        #: called with (function, unit, start, values) after every successful read — polling's and
        #: anyone else's on this line (the Modbus gateway keeps its answer cache with it)
        self.observers: list[Callable[[Function, int, int, list[int]], None]] = []
        self._client: AsyncModbusSerialClient | None = None
        self._stream: StreamChannel | None = None
        self._lock = asyncio.Lock()
        self._rx = bytearray()  # bytes received during the request in flight
        self.last_sent = b""  # the last frame on the wire (diagnostics, golden-frame tests)

    @property
    def last_received(self) -> bytes:
        """The bytes received for the last request (diagnostics, golden-frame tests)."""
        return bytes(self._rx)

    @property
    def endpoint(self) -> str:
        if self.kind in SERIAL_KINDS:
            ascii = "&ascii" if self.kind is TransportKind.ASCII else ""
            return f"serial://{self.serial}?{self.baud}{self.parity}{self.stopbits}{ascii}"
        scheme = {TransportKind.TCP: "tcp", TransportKind.ASCII_OVER_TCP: "ascii+tcp"}.get(
            self.kind, "rtu+tcp"
        )
        return f"{scheme}://{self.host}:{self.port}"

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self.stats.bytes_sent += len(data)
            self.last_sent = data
        else:
            self.stats.bytes_received += len(data)
            self._rx += data
        return data

    # -- TCP and RTU over TCP: our own framer ---------------------------------------------------
    def _channel(self) -> StreamChannel:
        if self._stream is None:
            self._stream = StreamChannel(
                self.host,
                self.port,
                rtu=self.kind is TransportKind.RTU_OVER_TCP,
                ascii=self.kind is TransportKind.ASCII_OVER_TCP,
                timeout=self.timeout,
                stats=self.stats,
                trace=self._trace,
            )
        return self._stream

    async def _exchange(self, req: Request) -> list[int]:
        """One exchange on the stream, counted: a timeout in ``timeouts``, any other failure in
        ``errors``. Only :class:`ModbusError` leaves here."""
        self.stats.requests += 1
        self._rx.clear()
        try:
            return await self._channel().transact(req)
        except ModbusTimeout:
            self.stats.timeouts += 1
            raise
        except ModbusError:
            self.stats.errors += 1
            raise
        except (OSError, ValueError, struct.error) as exc:  # never a library or socket exception upward
            self.stats.errors += 1
            await self.close()
            raise ModbusFrameError(f"unit {req.unit}: {type(exc).__name__}: {exc}") from None

    # -- RTU on a serial port: pymodbus ---------------------------------------------------------
    def _make_client(self) -> AsyncModbusSerialClient:
        if not self.serial:
            raise ModbusConnectionError("a serial line needs a device path")
        ascii = self.kind is TransportKind.ASCII
        return AsyncModbusSerialClient(
            self.serial,
            framer=FramerType.ASCII if ascii else FramerType.RTU,
            baudrate=self.baud,
            parity=self.parity,
            stopbits=self.stopbits,
            bytesize=self.bytesize or (7 if ascii else 8),
            reconnect_delay=0,
            timeout=self.timeout,
            retries=0,
            trace_packet=self._trace,
        )

    async def connect(self) -> None:
        """Open the line now (otherwise the first request does)."""
        if self.kind not in SERIAL_KINDS:
            await self._channel().open()
            return
        if self._client is not None and self._client.connected:
            return
        if self._client is not None:
            self._client.close()
        self._client = self._make_client()
        self._client.set_max_no_responses(1 << 30)
        try:
            ok = await self._client.connect()
        except (OSError, ModbusException) as exc:
            raise ModbusConnectionError(f"{self.endpoint}: cannot connect: {exc}") from None
        if not ok:
            raise ModbusConnectionError(f"{self.endpoint}: cannot connect")

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.close()
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _serial_client(self) -> AsyncModbusSerialClient:
        client = self._client
        if client is None or not client.connected:
            await self.connect()
            client = self._client
            if client is None:  # pragma: no cover - connect() sets it
                raise ModbusConnectionError(self.endpoint)
        return client

    async def read(self, function: Function, unit: int, start: int, count: int) -> list[int]:
        """Read ``count`` registers (or bits, as 0/1) of ``function`` from ``unit``.

        Raises one of the :class:`ModbusError` subclasses; never a library exception.
        """
        async with self._lock:
            t0 = time.monotonic()
            try:
                return await self._read_locked(function, unit, start, count)
            finally:
                self._held(time.monotonic() - t0)

    async def _read_locked(self, function: Function, unit: int, start: int, count: int) -> list[int]:
        if self.kind not in SERIAL_KINDS:
            values = await self._exchange(Request(unit, _READ_CODE[function], start, count))
            self._observed(function, unit, start, values)
            return values
        client = await self._serial_client()
        if function is Function.INPUT:
            call = client.read_input_registers
        elif function is Function.HOLDING:
            call = client.read_holding_registers
        elif function is Function.COIL:
            call = client.read_coils
        else:
            call = client.read_discrete_inputs
        self.stats.requests += 1
        self._rx.clear()
        try:
            rr = await call(start, count=count, device_id=unit)
        except ModbusIOException:
            if self._rx:
                # bytes came back but no valid frame: a CRC error, a cut-off frame or a collision
                self.stats.errors += 1
                raise ModbusFrameError(
                    f"unit {unit}: unreadable answer (bad CRC or cut-off frame): {bytes(self._rx[:32]).hex(' ')}"
                ) from None
            self.stats.timeouts += 1
            raise no_response(unit, self.timeout) from None
        except ConnectionException as exc:
            self.stats.errors += 1
            await self.close()
            raise ModbusConnectionError(f"{self.endpoint}: {exc}") from None
        except (ModbusException, OSError, ValueError, struct.error) as exc:
            self.stats.errors += 1
            raise ModbusFrameError(f"unit {unit}: {type(exc).__name__}: {exc}") from None
        if rr.isError():
            self.stats.errors += 1
            raise exception_response(unit, int(getattr(rr, "exception_code", 0) or 0))
        values = [int(b) for b in rr.bits[:count]] if function.is_bit else list(rr.registers)
        if len(values) < count:
            self.stats.errors += 1
            raise ModbusFrameError(f"unit {unit}: short answer: {len(values)} of {count} values")
        self._observed(function, unit, start, values)
        return values

    def _held(self, seconds: float) -> None:
        """Count ``seconds`` the line was held by one request (and tell :data:`WIRE_TIME`'s list)."""
        self.stats.busy += seconds
        spent = WIRE_TIME.get()
        if spent is not None:
            spent.append(seconds)

    def _observed(self, function: Function, unit: int, start: int, values: list[int]) -> None:
        for observe in self.observers:
            try:
                observe(function, unit, start, values)
            except Exception:  # an observer's bug must not fail the read
                log.exception("%s: a read observer failed", self.endpoint)

    async def write(self, function: Function, unit: int, address: int, values: Sequence[int]) -> None:
        """Write registers (FC 16, or FC 06 for one) or one/more coils (FC 05/15)."""
        async with self._lock:
            t0 = time.monotonic()
            try:
                return await self._write_locked(function, unit, address, values)
            finally:
                self._held(time.monotonic() - t0)

    async def _write_locked(self, function: Function, unit: int, address: int, values: Sequence[int]) -> None:
        if self.kind not in SERIAL_KINDS:
            await self._exchange(_write_request(function, unit, address, values))
            return
        client = await self._serial_client()
        self.stats.requests += 1
        try:
            if function is Function.COIL:
                if len(values) == 1:
                    rr = await client.write_coil(address, bool(values[0]), device_id=unit)
                else:
                    rr = await client.write_coils(address, [bool(v) for v in values], device_id=unit)
            elif function is Function.HOLDING:
                if len(values) == 1:
                    rr = await client.write_register(address, int(values[0]), device_id=unit)
                else:
                    rr = await client.write_registers(address, [int(v) for v in values], device_id=unit)
            else:
                raise ModbusFrameError(f"{function.value} points cannot be written")
        except ModbusIOException:
            self.stats.timeouts += 1
            raise no_response(unit, self.timeout) from None
        except ConnectionException as exc:
            await self.close()
            raise ModbusConnectionError(f"{self.endpoint}: {exc}") from None
        except (ModbusException, OSError, ValueError, struct.error) as exc:
            self.stats.errors += 1
            raise ModbusFrameError(f"unit {unit}: {type(exc).__name__}: {exc}") from None
        if rr.isError():
            raise exception_response(unit, int(getattr(rr, "exception_code", 0) or 0))
