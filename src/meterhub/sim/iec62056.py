"""The optical port of a simulated seed 002 meter: IEC 62056-21 readout in mode A, B or C, and the
mode E switch, over TCP (as an optical bridge would carry it) and on a serial port or pty (7E1).

The meter's values come from the physical model (:class:`meterhub.sim.physics.SiteModel`, one
single-phase circuit): energy registers 1.8.0 / 2.8.0 (and absolute, net, reactive) in kWh with 1 Wh
resolution, instantaneous U, I, P, S, PF and f, the clock (0.9.1 time, 0.9.2 date) and the serial
number (C.1.0). The messages are built here from IEC 62056-21:2002 §6.3 directly — not with the
driver's code (``sim`` and ``drivers`` are siblings) — so the gateway's reader is checked against a
second implementation.

Session (§6.4, Figure 6): idle at 300 bd until a request ``/?[address]!CR LF``; answer with the
identification; mode A sends the data at once, mode B switches to its rate first; mode C waits up to
:data:`ACK_WAIT` for ``ACK V Z Y CR LF``: V = Y = 0 switches to rate Z and sends the data, V = Y = 2
(mode E) switches to rate Z and hands the line to the HDLC server when there is one (``hdlc``),
anything else (programming mode) is not offered: the meter returns to idle. ``corrupt`` flips one
character of the next data message (a test hook for noisy lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import termios
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import reduce
from typing import Any

from meterhub.config.schema import BusKind
from meterhub.model.quantities import Q
from meterhub.model.topology import Phase, Wiring
from meterhub.sim.base import SimContext, SimServer, TcpSessionServer, register_simulator
from meterhub.sim.physics import SiteModel

__all__ = [
    "ACK_WAIT",
    "IecMeter",
    "IecSerialServer",
    "IecTcpServer",
    "iec_simulator",
    "serve_iec_serial",
    "serve_iec_tcp",
]

log = logging.getLogger("meterhub.sim.iec62056")

#: How long the meter waits for the option select after its identification (mode C) [s]
ACK_WAIT = 3.0
_STX, _ETX, _ACK = b"\x02", b"\x03", 0x06
_BAUD_C = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
_BAUD_B = {"A": 600, "B": 1200, "C": 2400, "D": 4800, "E": 9600, "F": 19200}
#: The identification's rate character per mode (§6.3.14): "Z" is none of B's or C's, so mode A.
_Z = {"A": "Z", "B": "E", "C": "5"}

#: Handed the line after a mode E switch: (read, write) coroutines of the session.
HdlcHandler = Callable[
    [Callable[[float], Awaitable[bytes]], Callable[[bytes], Awaitable[None]]], Awaitable[None]
]


class IecMeter:
    """What the simulated meter says: identification and data lines from the physical model.

    mode : "A", "B" or "C" (C offers mode E with ``\\2``, as seed 002's port does).
    serial : the serial number in C.1.0 and 0.0.0.
    base_kwh : register values when the model's registers are zero (a meter is not new) [kWh].
    """

    def __init__(
        self,
        model: SiteModel | None = None,
        *,
        device_id: str = "meter",
        mode: str = "C",
        serial: str = "20260002",
        base_kwh: tuple[float, float] = (12345.678, 23.456),
        wall: Callable[[], float] = time.time,
    ) -> None:
        if mode not in ("A", "B", "C"):
            raise ValueError(f"mode {mode!r}: A, B or C")
        self.model = model or SiteModel.single_meter(device_id, Wiring.P1W2, 7_000.0, model="kitchen")
        self.device_id = device_id
        self.mode = mode
        self.serial = serial
        self.base_kwh = base_kwh
        self.wall = wall
        self.corrupt = 0  # data messages still to corrupt (one character each)
        self.readouts = 0

    @property
    def baud_char(self) -> str:
        """Z of the identification: mode A "Z" (no rate character), B "E" (9600 bd), C "5" (9600 bd)."""
        return _Z[self.mode]

    def identification(self) -> bytes:
        esc = "\\2" if self.mode == "C" else ""  # mode E offered, as on seed 002's optical port
        return f"/MHB{self.baud_char}{esc}MH-1P-IEC-SIM\r\n".encode("ascii")

    def values(self) -> dict[str, float]:
        """The model's values [SI units; energy in Wh] — what the data lines show, for tests."""
        v: dict[str, float] = {}
        for q in (
            Q.VOLTAGE,
            Q.CURRENT,
            Q.ACTIVE_POWER,
            Q.APPARENT_POWER,
            Q.POWER_FACTOR,
            Q.FREQUENCY,
            Q.ENERGY_ACTIVE_IMPORT,
            Q.ENERGY_ACTIVE_EXPORT,
            Q.ENERGY_REACTIVE_Q1,
            Q.ENERGY_REACTIVE_Q2,
            Q.ENERGY_REACTIVE_Q3,
            Q.ENERGY_REACTIVE_Q4,
        ):
            x = self.model.value(self.device_id, q, Phase.TOTAL)
            v[q] = float("nan") if x is None else x
        v[Q.ENERGY_ACTIVE_IMPORT] += self.base_kwh[0] * 1000
        v[Q.ENERGY_ACTIVE_EXPORT] += self.base_kwh[1] * 1000
        return v

    def data_lines(self) -> list[str]:
        """The data block's lines (IEC 62056-21 §6.5, OBIS codes of IEC 62056-61 in reduced form)."""
        v = self.values()
        imp, exp = v[Q.ENERGY_ACTIVE_IMPORT], v[Q.ENERGY_ACTIVE_EXPORT]
        r_imp = v[Q.ENERGY_REACTIVE_Q1] + v[Q.ENERGY_REACTIVE_Q2]
        r_exp = v[Q.ENERGY_REACTIVE_Q3] + v[Q.ENERGY_REACTIVE_Q4]
        p = v[Q.ACTIVE_POWER]
        now = datetime.fromtimestamp(self.wall(), UTC)

        def kwh(wh: float) -> str:
            return f"{math.floor(wh) / 1000:010.3f}"

        return [
            f"0.0.0({self.serial})",
            f"C.1.0({self.serial})",
            f"0.9.1({now:%H%M%S})",
            f"0.9.2({now:%y%m%d})",
            f"1.8.0({kwh(imp)}*kWh)",
            f"2.8.0({kwh(exp)}*kWh)",
            f"15.8.0({kwh(imp + exp)}*kWh)",
            f"16.8.0({kwh(imp - exp)}*kWh)",
            f"3.8.0({kwh(r_imp)}*kvarh)",
            f"4.8.0({kwh(r_exp)}*kvarh)",
            f"32.7.0({v[Q.VOLTAGE]:05.1f}*V)",
            f"31.7.0({v[Q.CURRENT]:06.2f}*A)",
            f"16.7.0({p / 1000:07.3f}*kW)",
            f"1.7.0({max(p, 0.0) / 1000:06.3f}*kW)2.7.0({max(-p, 0.0) / 1000:06.3f}*kW)",
            f"9.7.0({v[Q.APPARENT_POWER] / 1000:06.3f}*kVA)",
            f"13.7.0({v[Q.POWER_FACTOR]:.3f})",
            f"14.7.0({v[Q.FREQUENCY]:.2f}*Hz)",
            "F.F(00000000)",
        ]

    def data_message(self) -> bytes:
        body = "".join(line + "\r\n" for line in self.data_lines()).encode("ascii") + b"!\r\n" + _ETX
        frame = bytearray(_STX + body + bytes([reduce(lambda a, b: a ^ b, body, 0)]))
        if self.corrupt > 0:
            self.corrupt -= 1
            frame[10] ^= 0x01  # one bit flipped by noise: the BCC no longer matches
        self.readouts += 1
        return bytes(frame)


class _Session:
    """One conversation on one line: the §6.4 state machine over read/write/set_baud callables."""

    def __init__(
        self,
        meter: IecMeter,
        read: Callable[[float], Awaitable[bytes]],
        write: Callable[[bytes], Awaitable[None]],
        set_baud: Callable[[int], Awaitable[None]],
        hdlc: HdlcHandler | None,
    ) -> None:
        self.meter, self.read, self.write, self.set_baud, self.hdlc = meter, read, write, set_baud, hdlc
        self.buf = bytearray()

    async def _line(self, timeout: float | None) -> bytes | None:
        while b"\n" not in self.buf:
            chunk = await self.read(timeout if timeout is not None else 3600.0)
            if not chunk:
                return None
            self.buf += chunk
            if len(self.buf) > 4096:  # garbage without a line end: forget it
                del self.buf[:-64]
        i = self.buf.index(b"\n")
        line = bytes(b & 0x7F for b in self.buf[: i + 1])  # 7 data bits (a port left at 8 shows parity)
        del self.buf[: i + 1]
        return line

    async def run(self) -> None:
        m = self.meter
        while True:
            await self.set_baud(300)
            line = await self._line(None)
            if line is None:
                return
            start = line.find(b"/?")
            if start < 0 or not line.endswith(b"!\r\n"):
                continue  # not a request: the meter stays idle (noise on the optical port)
            await self.write(m.identification())
            if m.mode == "A":
                await self.write(m.data_message())
                continue
            if m.mode == "B":
                await self.set_baud(_BAUD_B[m.baud_char])
                await self.write(m.data_message())
                continue
            try:
                ack = await asyncio.wait_for(self._line(ACK_WAIT), ACK_WAIT)
            except TimeoutError:
                continue  # no option select: back to idle (§6.4.4)
            if ack is None:
                return
            i = ack.find(bytes([_ACK]))
            msg = ack[i:] if i >= 0 else b""
            if len(msg) != 6 or chr(msg[2]) not in _BAUD_C:
                continue
            v, z, y = chr(msg[1]), chr(msg[2]), chr(msg[3])
            if v == "0" and y == "0":
                await self.set_baud(_BAUD_C[z])
                await self.write(m.data_message())
            elif v == "2" and y == "2":
                await self.set_baud(_BAUD_C[z])
                if self.hdlc is None:
                    log.info("mode E switch at %s bd: no HDLC server in this emulator", _BAUD_C[z])
                    return
                await self.hdlc(self._read_after_switch, self.write)
                return
            # programming mode (Y = 1) is not offered: back to idle

    async def _read_after_switch(self, timeout: float) -> bytes:
        if self.buf:
            data = bytes(self.buf)
            self.buf.clear()
            return data
        return await self.read(timeout)


class IecTcpServer(TcpSessionServer):
    """The optical port on a TCP endpoint (one session per connection)."""

    def __init__(self, meter: IecMeter, hdlc: HdlcHandler | None = None) -> None:
        super().__init__()
        self.meter, self.hdlc = meter, hdlc

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def read(timeout: float) -> bytes:
            try:
                return await asyncio.wait_for(reader.read(4096), timeout)
            except TimeoutError:
                raise
            except OSError:
                return b""

        async def write(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        async def set_baud(baud: int) -> None:
            return None  # the bridge's business

        try:
            await _Session(self.meter, read, write, set_baud, self.hdlc).run()
        except (OSError, TimeoutError):
            pass


class IecSerialServer(SimServer):
    """The optical port on a serial device or pty (7E1, pyserial, non-blocking)."""

    def __init__(self, meter: IecMeter, port: str, hdlc: HdlcHandler | None = None) -> None:
        self.meter, self.port, self.hdlc = meter, port, hdlc
        self.endpoint = f"serial://{port}"
        self.binary = False  # 8N1 after a mode E switch (IEC 62056-21 §6.4.5)
        self._ser: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> IecSerialServer:
        import serial  # lazy: pyserial loads only when a serial port is simulated

        self._ser = serial.Serial(
            self.port, 300, bytesize=serial.SEVENBITS, parity=serial.PARITY_EVEN, timeout=0
        )
        self._task = asyncio.create_task(self._serve(), name=f"iec-sim {self.port}")
        return self

    async def _read(self, timeout: float) -> bytes:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self._ser.fileno()
        loop.add_reader(fd, _wake, ready)
        try:
            await asyncio.wait_for(ready, timeout)
        finally:
            loop.remove_reader(fd)
        return bytes(self._ser.read(4096))  # 7-bit masking is the session's (lines only, not HDLC)

    async def _write(self, data: bytes) -> None:
        self._ser.write(data)
        await asyncio.to_thread(self._ser.flush)

    async def _set_baud(self, baud: int) -> None:
        if self._ser.baudrate != baud:
            try:
                self._ser.baudrate = baud
            except termios.error as exc:  # not an OSError; a pty refuses some changes (EINVAL)
                log.warning("%s: cannot set %s bd: %s", self.endpoint, baud, exc)

    def _binary(self, on: bool) -> None:
        self.binary = on
        with contextlib.suppress(OSError, ValueError, termios.error):
            self._ser.bytesize, self._ser.parity = (8, "N") if on else (7, "E")

    async def _hdlc(
        self, read: Callable[[float], Awaitable[bytes]], write: Callable[[bytes], Awaitable[None]]
    ) -> None:
        if self.hdlc is None:  # pragma: no cover - only passed when there is one
            return
        self._binary(True)
        try:
            await self.hdlc(read, write)
        finally:
            self._binary(False)

    async def _serve(self) -> None:
        while True:
            try:
                hdlc = self._hdlc if self.hdlc is not None else None
                await _Session(self.meter, self._read, self._write, self._set_baud, hdlc).run()
            except TimeoutError:
                continue
            except (OSError, termios.error) as exc:
                log.warning("%s: %s", self.endpoint, exc)
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._ser is not None:
            self._ser.close()
            self._ser = None


async def serve_iec_tcp(
    meter: IecMeter, host: str = "127.0.0.1", port: int = 0, hdlc: HdlcHandler | None = None
) -> IecTcpServer:
    """Serve ``meter``'s optical port on ``host:port`` (port 0: a free one, see ``.endpoint``)."""
    return await IecTcpServer(meter, hdlc).start(host, port)


async def serve_iec_serial(meter: IecMeter, port: str, hdlc: HdlcHandler | None = None) -> IecSerialServer:
    """Serve ``meter``'s optical port on a serial device or pty."""
    return await IecSerialServer(meter, port, hdlc).start()


def _wake(ready: asyncio.Future[None]) -> None:
    """``add_reader`` callback: the descriptor is readable."""
    if not ready.done():
        ready.set_result(None)


async def iec_simulator(ctx: SimContext) -> SimServer:
    """Simulator factory for ``kind: iec62056-21`` buses (``meterhub demo``): the bus's first device
    as seed 002's optical port, values from the site's physical model, where the bus points."""
    bus = ctx.bus
    device = next((d for d in ctx.devices if d.enabled), None)
    if device is None:
        raise ValueError(f"bus {bus.id}: no device to simulate")
    meter = IecMeter(ctx.model, device_id=device.id, wall=ctx.model.clock)
    if bus.serial:
        return await serve_iec_serial(meter, bus.serial)
    return await serve_iec_tcp(meter, bus.host, bus.port or 0)


register_simulator(BusKind.IEC62056_21, iec_simulator)
