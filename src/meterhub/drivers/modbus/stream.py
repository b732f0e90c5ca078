"""One TCP connection carrying Modbus frames — Modbus TCP (MBAP), or RTU or ASCII frames through a
transparent RS485-to-Ethernet converter — one request at a time, on asyncio streams.

What arrives is matched to the request in flight, never taken on trust:

* bytes that arrive while no request is in flight (a late answer, a duplicated frame) are dropped
  before the next request is sent, and counted in :attr:`LineStats.discarded`;
* on Modbus TCP an answer must carry the request's transaction id; frames with another id are
  dropped and counted, and the wait goes on for the right one (Modbus Messaging on TCP/IP
  Implementation Guide V1.0b §3.1.3: the client matches answers by transaction id);
* on RTU and ASCII a frame from another unit is dropped the same way (on a shared line: a collision, or a
  device answering late);
* a frame that cannot be cut out of the stream (a bad MBAP header, an RTU function code without a
  known length, a CRC error, a frame cut off at the timeout) is a :class:`~.errors.ModbusFrameError`;
  the link then resynchronises — RTU by waiting for the line to fall silent (Modbus over Serial Line
  V1.02 §2.5.1.1: frames are delimited by silence), TCP by closing the connection, so the next
  request starts on a fresh one. One bad frame never makes a device unreadable for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from meterhub.drivers.modbus.ascii import ascii_adu, cut_ascii
from meterhub.drivers.modbus.errors import (
    LineStats,
    ModbusConnectionError,
    ModbusFrameError,
    no_response,
)
from meterhub.drivers.modbus.framing import READS, Request, check_answer, cut_rtu, cut_tcp, rtu_adu, tcp_adu

__all__ = ["StreamChannel"]

log = logging.getLogger("meterhub.modbus")

#: how long an RTU line must stay silent after a bad frame before the next request [s]
_RESYNC_SILENCE = 0.05


class StreamChannel:
    """Request/answer exchanges on one TCP connection (opened on first use, reopened after a loss).

    Parameters
    ----------
    host, port : the endpoint.
    rtu : True for RTU frames (RTU over TCP), False for Modbus TCP.
    ascii : True for Modbus ASCII frames (ASCII over TCP, Modbus over Serial Line V1.02 §2.5.2).
    timeout : how long to wait for an answer and for the connection. [s]
    stats : the line's counters (shared with the link).
    trace : called with (sending, bytes) for everything sent and received.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        rtu: bool,
        ascii: bool = False,
        timeout: float,
        stats: LineStats,
        trace: Callable[[bool, bytes], object],
    ) -> None:
        self.host, self.port, self.rtu, self.timeout = host, port, rtu, timeout
        self.ascii = ascii
        self.stats = stats
        self.trace = trace
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task[None] | None = None
        self._buf = bytearray()
        self._arrived = asyncio.Event()
        self._eof = False
        self._tid = 0

    @property
    def endpoint(self) -> str:
        scheme = "ascii+tcp" if self.ascii else "rtu+tcp" if self.rtu else "tcp"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._eof and not self._writer.is_closing()

    async def open(self) -> None:
        if self.connected:
            return
        await self.close()
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout
            )
        except (TimeoutError, OSError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "no answer"
            raise ModbusConnectionError(f"{self.endpoint}: cannot connect: {why}") from None
        self._eof = False
        self._buf.clear()
        self._arrived = asyncio.Event()  # of this connection's event loop
        self._pump = asyncio.get_running_loop().create_task(self._receive(), name=f"modbus:{self.endpoint}")

    async def _receive(self) -> None:
        reader = self._reader
        if reader is None:  # pragma: no cover - open() sets it first
            return
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                self.trace(False, data)
                self._buf += data
                self._arrived.set()
        except OSError:
            pass
        self._eof = True
        self._arrived.set()

    async def close(self) -> None:
        pump, writer = self._pump, self._writer
        self._pump = self._reader = self._writer = None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self._buf.clear()

    async def _wait(self, until: float) -> bool:
        """Wait for more bytes until the loop time ``until``; False when the time is up."""
        remaining = until - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        self._arrived.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), remaining)
        return True

    async def _resync(self) -> None:
        """After a bad frame: RTU waits for the line to fall silent and drops what came; TCP, whose
        framing cannot be recovered inside the stream, starts again on a new connection."""
        if self.rtu or self.ascii:
            loop = asyncio.get_running_loop()
            quiet_until = loop.time() + _RESYNC_SILENCE
            while await self._wait(quiet_until):
                if self._arrived.is_set():
                    quiet_until = loop.time() + _RESYNC_SILENCE
            self._buf.clear()
        else:
            await self.close()

    async def transact(self, req: Request) -> list[int]:
        """Send ``req`` and return the registers (or bits) of its answer; see the module docstring."""
        await self.open()
        writer = self._writer
        if writer is None:  # pragma: no cover - open() sets it
            raise ModbusConnectionError(f"{self.endpoint}: not connected")
        if self._buf:  # nothing is in flight: whatever is here answers no request
            self.stats.discarded += 1
            log.debug(
                "%s: dropped %d stray bytes: %s", self.endpoint, len(self._buf), self._buf[:32].hex(" ")
            )
            self._buf.clear()
        pdu = req.pdu()
        if self.ascii:
            adu = ascii_adu(req.unit, pdu)
        elif self.rtu:
            adu = rtu_adu(req.unit, pdu)
        else:
            self._tid = self._tid % 0xFFFF + 1
            adu = tcp_adu(self._tid, req.unit, pdu)
        self.trace(True, adu)
        try:
            writer.write(adu)
            await writer.drain()
        except OSError as exc:
            await self.close()
            raise ModbusConnectionError(f"{self.endpoint}: connection lost: {exc.strerror or exc}") from None
        try:
            return await self._answer(req)
        except ModbusFrameError:
            await self._resync()
            raise

    async def _answer(self, req: Request) -> list[int]:
        until = asyncio.get_running_loop().time() + self.timeout
        strays: list[str] = []
        while True:
            pdu = self._next_frame(req, strays)
            if pdu is not None:
                return check_answer(req, pdu)
            if self._eof:
                await self.close()
                raise ModbusConnectionError(f"{self.endpoint}: the peer closed the connection")
            if not await self._wait(until):
                break
        if self._buf:
            got = bytes(self._buf[:32]).hex(" ")
            raise ModbusFrameError(
                f"unit {req.unit}: cut-off frame: {len(self._buf)} byte(s) and no more within "
                f"{self.timeout:g} s: {got}"
            )
        raise no_response(req.unit, self.timeout, "; ".join(strays))

    def _next_frame(self, req: Request, strays: list[str]) -> bytes | None:
        """The PDU answering ``req`` from the bytes received so far, dropping frames that answer
        something else; None while it has not arrived."""
        while True:
            if self.ascii:  # delimited frames: any length, cut without knowing the function code
                acut = cut_ascii(self._buf)
                if acut is None:
                    return None
                unit, pdu, n = acut
                del self._buf[:n]
                if unit == req.unit:
                    return pdu
                strays.append(f"a frame from unit {unit} dropped")
            elif self.rtu:
                buf = self._buf
                if len(buf) >= 3 and buf[0] == req.unit and buf[1] == req.function and req.function in READS:
                    # RTU has no length field: a wrong byte count would make us wait for bytes that
                    # never come (or swallow the next frame); judge it as soon as it is here
                    if buf[2] != req.data_bytes:
                        what = "bits" if req.function in (1, 2) else "registers"
                        raise ModbusFrameError(
                            f"unit {req.unit}: byte count {buf[2]} for {req.count} {what} asked "
                            f"({req.data_bytes} expected)"
                        )
                cut = cut_rtu(self._buf)
                if cut is None:
                    return None
                unit, pdu, n = cut
                del self._buf[:n]
                if unit == req.unit:
                    return pdu
                strays.append(f"a frame from unit {unit} dropped")
            else:
                tcut = cut_tcp(self._buf)
                if tcut is None:
                    return None
                tid, unit, pdu, n = tcut
                del self._buf[:n]
                if tid == self._tid:
                    if unit != req.unit:
                        raise ModbusFrameError(
                            f"unit {req.unit}: answer from unit {unit} to a request for unit {req.unit}"
                        )
                    return pdu
                strays.append(f"a frame with transaction id {tid} (not {self._tid}) dropped")
            self.stats.discarded += 1
