"""Transports: one Modbus line (TCP, RTU over serial, RTU over TCP) on the pymodbus async clients.

Library errors become our own typed errors at this boundary (STYLE.md §7): a :class:`ModbusTimeout`
(no answer — the device is silent, or a CRC error made the frame unreadable), a
:class:`ModbusExceptionResponse` (the device answered with an exception code, Modbus Application
Protocol V1.1b3 §7), a :class:`ModbusFrameError` (a wrong or short answer) or a
:class:`ModbusConnectionError` (the TCP endpoint or the serial port is not there).

pymodbus' own retries are off (``retries=0``) and its "close after N silent requests" is disabled:
the scheduler decides about retries and a silent device must not take its whole line down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from struct import error as struct_error
from typing import Protocol

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from meterhub.profiles.schema import Function

__all__ = [
    "EXCEPTION_NAMES",
    "LineStats",
    "ModbusConnectionError",
    "ModbusError",
    "ModbusExceptionResponse",
    "ModbusFrameError",
    "ModbusLink",
    "ModbusTimeout",
    "RegisterLink",
    "TransportKind",
    "exception_response",
    "no_response",
]

log = logging.getLogger("meterhub.modbus")

#: Modbus Application Protocol V1.1b3 §7 exception codes.
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class TransportKind(StrEnum):
    TCP = "tcp"  # Modbus TCP (MBAP header, Modbus Messaging on TCP/IP Implementation Guide V1.0b)
    RTU = "rtu"  # RTU frames on a local serial port (Modbus over Serial Line V1.02 §2.5.1)
    RTU_OVER_TCP = "rtu-over-tcp"  # RTU frames through a transparent RS485-to-Ethernet converter


class ModbusError(Exception):
    """Base of our Modbus errors."""


class ModbusTimeout(ModbusError):
    """No (valid) answer within the timeout."""


class ModbusExceptionResponse(ModbusError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class ModbusFrameError(ModbusError):
    """An answer that does not fit the request (wrong unit, short data)."""


class ModbusConnectionError(ModbusError):
    """The endpoint cannot be reached."""


@dataclass
class LineStats:
    """Counters of one line: requests sent and bytes on the wire (both directions)."""

    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    timeouts: int = 0
    errors: int = 0

    @property
    def bytes(self) -> int:
        return self.bytes_sent + self.bytes_received

    def as_dict(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "bytes": self.bytes,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "timeouts": self.timeouts,
            "errors": self.errors,
        }


def no_response(unit: int, timeout: float) -> ModbusTimeout:
    """The error of a request that got no answer (every link words it the same way)."""
    return ModbusTimeout(f"no response from unit {unit} within {timeout:g} s")


def exception_response(unit: int, code: int) -> ModbusExceptionResponse:
    """The error of an exception response ``code`` (Modbus Application Protocol V1.1b3 §7)."""
    name = EXCEPTION_NAMES.get(code, "unknown exception")
    return ModbusExceptionResponse(code, f"unit {unit}: exception {code:02X} ({name})")


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
    stats: LineStats = field(default_factory=LineStats)

    def __post_init__(self) -> None:
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._lock = asyncio.Lock()
        self._rx = bytearray()  # bytes received during the request in flight
        self.last_sent = b""  # the last frame on the wire (diagnostics, golden-frame tests)

    @property
    def last_received(self) -> bytes:
        """The bytes received for the last request (diagnostics, golden-frame tests)."""
        return bytes(self._rx)

    @property
    def endpoint(self) -> str:
        if self.kind is TransportKind.RTU:
            return f"serial://{self.serial}?{self.baud}{self.parity}{self.stopbits}"
        scheme = "tcp" if self.kind is TransportKind.TCP else "rtu+tcp"
        return f"{scheme}://{self.host}:{self.port}"

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self.stats.bytes_sent += len(data)
            self.last_sent = data
        else:
            self.stats.bytes_received += len(data)
            self._rx += data
        return data

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        common = {"timeout": self.timeout, "retries": 0, "trace_packet": self._trace}
        if self.kind is TransportKind.RTU:
            if not self.serial:
                raise ModbusConnectionError("a serial line needs a device path")
            return AsyncModbusSerialClient(
                self.serial,
                framer=FramerType.RTU,
                baudrate=self.baud,
                parity=self.parity,
                stopbits=self.stopbits,
                bytesize=8,
                reconnect_delay=0,
                **common,  # type: ignore[arg-type]
            )
        framer = FramerType.SOCKET if self.kind is TransportKind.TCP else FramerType.RTU
        return AsyncModbusTcpClient(self.host, port=self.port, framer=framer, reconnect_delay=0, **common)  # type: ignore[arg-type]

    async def connect(self) -> None:
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
        if self._client is not None:
            self._client.close()
            self._client = None

    async def read(self, function: Function, unit: int, start: int, count: int) -> list[int]:
        """Read ``count`` registers (or bits, as 0/1) of ``function`` from ``unit``.

        Raises one of the :class:`ModbusError` subclasses; never a library exception.
        """
        async with self._lock:
            client = self._client
            if client is None or not client.connected:
                await self.connect()
                client = self._client
                if client is None:  # pragma: no cover - connect() sets it
                    raise ModbusConnectionError(self.endpoint)
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
            except ModbusIOException as exc:
                text = str(exc)
                if "No response" in text and self._rx:
                    # bytes came back but no valid frame: a CRC error, a short frame or a collision
                    self.stats.errors += 1
                    raise ModbusFrameError(
                        f"unit {unit}: invalid frame (CRC error or short frame): {bytes(self._rx[:32]).hex(' ')}"
                    ) from None
                if "No response" in text:
                    self.stats.timeouts += 1
                    raise no_response(unit, self.timeout) from None
                self.stats.errors += 1
                raise ModbusFrameError(f"unit {unit}: bad answer: {text}") from None
            except ConnectionException as exc:
                self.stats.errors += 1
                await self.close()
                raise ModbusConnectionError(f"{self.endpoint}: {exc}") from None
            except (ModbusException, OSError, ValueError, struct_error) as exc:
                self.stats.errors += 1
                raise ModbusFrameError(f"unit {unit}: {type(exc).__name__}: {exc}") from None
            if rr.isError():
                self.stats.errors += 1
                raise exception_response(unit, int(getattr(rr, "exception_code", 0) or 0))
            values = [int(b) for b in rr.bits[:count]] if function.is_bit else list(rr.registers)
            if len(values) < count:
                self.stats.errors += 1
                raise ModbusFrameError(f"unit {unit}: short answer: {len(values)} of {count} values")
            return values

    async def write(self, function: Function, unit: int, address: int, values: Sequence[int]) -> None:
        """Write registers (FC 16, or FC 06 for one) or one/more coils (FC 05/15)."""
        async with self._lock:
            await self.connect()
            client = self._client
            if client is None:  # pragma: no cover
                raise ModbusConnectionError(self.endpoint)
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
            if rr.isError():
                raise exception_response(unit, int(getattr(rr, "exception_code", 0) or 0))
