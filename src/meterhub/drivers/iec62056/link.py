"""The line under IEC 62056-21: a TCP connection (an optical head or bridge) or a local serial port.

Both give the same small interface, :class:`Link` — write bytes, read what arrives within a timeout,
change the baud rate — so the readout procedure (:mod:`.client`) is written once and tests inject
either. A serial port runs 7E1 (IEC 62056-21 §6.3.14) with pyserial, non-blocking, watched by the
event loop (``add_reader``), so a cancelled read never leaves a thread behind; over TCP the baud rate
is the bridge's business and :meth:`Link.set_baud` only records it. Every OS or pyserial error becomes
an :class:`~.errors.Iec62056LinkError` here.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import termios
from dataclasses import dataclass
from typing import Any

from meterhub.drivers.iec62056.errors import Iec62056LinkError, Iec62056Timeout

__all__ = ["Link", "LinkStats", "SerialLink", "TcpLink"]


@dataclass
class LinkStats:
    """Bytes on the wire in each direction, and messages sent [count]."""

    sent: int = 0
    received: int = 0
    requests: int = 0


class Link(abc.ABC):
    """A byte stream to one meter; opened on first use, re-opened after :meth:`close`."""

    endpoint: str
    baud: int = 300

    def __init__(self) -> None:
        self.stats = LinkStats()

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect (idempotent)."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Send ``data`` and wait until it has left (so a baud rate change after it is safe)."""

    @abc.abstractmethod
    async def read(self, timeout: float) -> bytes:
        """At least one byte, or :class:`Iec62056Timeout` after ``timeout`` [s] of silence."""

    async def set_baud(self, baud: int) -> None:
        """Change the line's rate [bd] (both sides change at once in modes B, C and E)."""
        self.baud = baud

    async def discard_input(self) -> None:  # noqa: B027 - optional hook
        """Drop what arrived unasked (echo, noise) before a new request."""

    async def set_binary(self) -> None:  # noqa: B027 - optional hook
        """Switch the character format to 8N1 (binary HDLC after the mode E switch, IEC 62056-21
        §6.4.5; a serial port only)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connection or port."""

    async def recover(self) -> None:
        """Start the next exchange from a clean line after a failed one (default: reconnect)."""
        await self.close()


class TcpLink(Link):
    """IEC 62056-21 over a TCP connection (transparent optical head or serial bridge)."""

    def __init__(self, host: str, port: int, *, connect_timeout: float = 3.0) -> None:
        super().__init__()
        self.host, self.port = host, port
        self.endpoint = f"tcp://{host}:{port}"
        self.connect_timeout = connect_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        if self._writer is not None:
            return
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.connect_timeout
            )
        except TimeoutError:
            raise Iec62056LinkError(
                f"{self.endpoint}: no connection within {self.connect_timeout:g} s"
            ) from None
        except OSError as exc:
            raise Iec62056LinkError(f"{self.endpoint}: {exc.strerror or exc}") from None

    async def write(self, data: bytes) -> None:
        await self.open()
        if self._writer is None:  # pragma: no cover - open() sets it or raises
            raise Iec62056LinkError(f"{self.endpoint}: not connected")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            await self.close()
            raise Iec62056LinkError(f"{self.endpoint}: {exc.strerror or exc}") from None
        self.stats.sent += len(data)

    async def read(self, timeout: float) -> bytes:
        await self.open()
        if self._reader is None:  # pragma: no cover - open() sets it or raises
            raise Iec62056LinkError(f"{self.endpoint}: not connected")
        try:
            data = await asyncio.wait_for(self._reader.read(4096), timeout)
        except TimeoutError:
            raise Iec62056Timeout(f"{self.endpoint}: no answer within {timeout:g} s") from None
        except OSError as exc:
            await self.close()
            raise Iec62056LinkError(f"{self.endpoint}: {exc.strerror or exc}") from None
        if not data:
            await self.close()
            raise Iec62056LinkError(f"{self.endpoint}: the peer closed the connection")
        self.stats.received += len(data)
        return data

    async def discard_input(self) -> None:
        if self._reader is None:
            return
        with contextlib.suppress(TimeoutError):
            while True:
                data = await asyncio.wait_for(self._reader.read(4096), 0.0001)
                if not data:
                    await self.close()
                    return

    async def close(self) -> None:
        w, self._writer, self._reader = self._writer, None, None
        if w is not None:
            w.close()
            with contextlib.suppress(OSError, asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(w.wait_closed(), 1.0)


class SerialLink(Link):
    """IEC 62056-21 on a local serial port (an optical head on USB, or a pty), 7E1, pyserial."""

    def __init__(self, port: str, *, binary: bool = False, baud: int = 300) -> None:
        super().__init__()
        self.port = port
        self.endpoint = f"serial://{port}"
        self.binary = binary  # 8N1 (HDLC) instead of 7E1 (IEC 62056-21 readout)
        self.baud = baud
        self._ser: Any = None

    async def open(self) -> None:
        if self._ser is not None:
            return
        try:
            import serial  # lazy: pyserial loads only for a gateway with a serial IEC 62056-21 line

            self._ser = serial.Serial(
                self.port,
                self.baud,
                bytesize=serial.EIGHTBITS if self.binary else serial.SEVENBITS,
                parity=serial.PARITY_NONE if self.binary else serial.PARITY_EVEN,
                stopbits=serial.STOPBITS_ONE,
                timeout=0,
            )
        except (OSError, ValueError) as exc:  # serial.SerialException is an OSError
            raise Iec62056LinkError(f"{self.endpoint}: {exc}") from None

    async def write(self, data: bytes) -> None:
        await self.open()
        try:
            self._ser.write(data)
            await asyncio.to_thread(self._ser.flush)  # tcdrain: 6 characters take 0.2 s at 300 bd
        except (OSError, ValueError) as exc:
            await self.close()
            raise Iec62056LinkError(f"{self.endpoint}: {exc}") from None
        self.stats.sent += len(data)

    async def read(self, timeout: float) -> bytes:
        await self.open()
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self._ser.fileno()
        loop.add_reader(fd, _wake, ready)
        try:
            await asyncio.wait_for(ready, timeout)
        except TimeoutError:
            raise Iec62056Timeout(f"{self.endpoint}: no answer within {timeout:g} s") from None
        finally:
            loop.remove_reader(fd)
        try:
            data: bytes = self._ser.read(4096)
        except (OSError, ValueError) as exc:
            await self.close()
            raise Iec62056LinkError(f"{self.endpoint}: {exc}") from None
        if not data:
            await self.close()
            raise Iec62056LinkError(f"{self.endpoint}: the port was closed (no data though readable)")
        self.stats.received += len(data)
        if self.binary:
            return bytes(data)
        return bytes(b & 0x7F for b in data)  # 7 data bits: a port left at 8 bits shows the parity bit

    async def set_baud(self, baud: int) -> None:
        await super().set_baud(baud)
        if self._ser is not None and self._ser.baudrate != baud:
            try:
                self._ser.baudrate = baud
            except (OSError, ValueError, termios.error) as exc:
                if not self._is_pty():
                    raise Iec62056LinkError(f"{self.endpoint}: cannot set {baud} bd: {exc}") from None

    async def set_binary(self) -> None:
        self.binary = True
        if self._ser is not None:
            try:
                self._ser.bytesize = 8
                self._ser.parity = "N"
            except (OSError, ValueError, termios.error) as exc:
                if not self._is_pty():
                    raise Iec62056LinkError(f"{self.endpoint}: cannot switch to 8N1: {exc}") from None

    def _is_pty(self) -> bool:
        """A pseudo-terminal (socat, tests) takes line settings loosely: Linux answers some changes of
        rate or character format with EINVAL although bytes pass unchanged."""
        return os.path.realpath(self.port).startswith(("/dev/pts/", "/dev/ptmx"))

    async def discard_input(self) -> None:
        if self._ser is not None:
            with contextlib.suppress(OSError, ValueError):
                self._ser.reset_input_buffer()

    async def recover(self) -> None:
        """Drop what is left of a failed exchange; the port stays open (a USB head or a pty pair may
        not survive being closed and reopened at once)."""
        await self.discard_input()

    async def close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            with contextlib.suppress(OSError, ValueError):
                ser.close()


def _wake(ready: asyncio.Future[None]) -> None:
    """``add_reader`` callback: the descriptor is readable."""
    if not ready.done():
        ready.set_result(None)
