"""The IEC 62056-21 readout procedure (modes A, B, C) and the switch to mode E, over a :class:`Link`.

Readout (IEC 62056-21:2002 §6.4.1–6.4.4, Figure 6 flow):

1. at 300 bd, send the request ``/?Address!CR LF``;
2. read the identification ``/XXXZ…`` (lines before it — the echo of an optical head, noise — are
   skipped, within the timeout);
3. mode A: the data follows at 300 bd; mode B: the meter switches to the identification's rate and
   sends; mode C: send ``ACK 0 Z 0 CR LF`` with Z the lower of the meter's and our highest rate, then
   both switch;
4. read the data message ``STX … ! CR LF ETX BCC`` (bytes before STX — the echo of our ACK — skipped;
   at most :data:`MAX_MESSAGE` bytes) and check its BCC. The meter returns to 300 bd afterwards.

Mode E (§6.4.5, seed 002's optical port): the same sign-on; an identification with ``\\2`` offers it
and ``ACK 2 Z 2 CR LF`` switches both sides to binary HDLC at rate Z (:func:`switch_to_mode_e`; the
HDLC client takes the link from there, at 8N1).

Every wait is bounded by ``timeout`` of silence (the reaction time t_r ≤ 1.5 s of §6.3.14, plus the
time a message takes on the line); a data message is read until ETX + BCC with ``timeout`` as the
inter-character limit, so a long readout at 300 bd is not cut off while a dead line is noticed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from meterhub.drivers.iec62056.errors import FrameError, Iec62056Timeout
from meterhub.drivers.iec62056.link import Link
from meterhub.drivers.iec62056.protocol import (
    BAUD_C,
    BITS_PER_CHAR,
    ETX,
    STX,
    DataSet,
    Identification,
    Mode,
    option_select,
    parse_data_message,
    parse_identification,
    sign_on,
)

__all__ = ["MAX_MESSAGE", "Readout", "read_out", "switch_to_mode_e"]

#: The longest message accepted before it is called garbage [bytes].
MAX_MESSAGE = 65536
#: Baud rate after a sign-on (§6.4) [bd]
INITIAL_BAUD = 300


@dataclass
class Readout:
    """One readout: the identification, the data sets, the rate the data came at and what it cost.

    baud : [bd] · duration : sign-on to BCC [s] · sent, received : bytes on the wire [bytes].
    """

    identification: Identification
    datasets: list[DataSet]
    baud: int
    duration: float
    sent: int
    received: int
    raw: bytes = field(default=b"", repr=False)

    def line_time(self) -> float:
        """What these bytes need on a 7E1 line [s]: requests and identification at 300 bd, the data
        message at :attr:`baud` (the physical limit a readout cannot beat)."""
        at_300 = self.sent + self.received - len(self.raw)
        return line_time(at_300, INITIAL_BAUD) + line_time(len(self.raw), self.baud)


class _Reader:
    """Buffers what a link delivers so messages can be cut out of it."""

    def __init__(self, link: Link, timeout: float) -> None:
        self.link = link
        self.timeout = timeout
        self.buf = bytearray()

    async def more(self, what: str) -> None:
        try:
            self.buf += await self.link.read(self.timeout)
        except Iec62056Timeout:
            got = f"; got {bytes(self.buf[:40])!r}" if self.buf else ""
            raise Iec62056Timeout(f"{self.link.endpoint}: no {what} within {self.timeout:g} s{got}") from None
        if len(self.buf) > MAX_MESSAGE:
            raise FrameError(f"{self.link.endpoint}: {len(self.buf)} bytes without a complete {what}")

    async def line(self, what: str) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            await self.more(what)

    async def identification(self, request: bytes) -> Identification:
        while True:
            line = await self.line("identification message")
            start = line.find(b"/")
            if start < 0 or line[start:] == request:
                continue  # noise, or the echo of our own request (half-duplex optical heads echo)
            return parse_identification(line[start:])

    async def data_message(self) -> bytes:
        while True:
            i = self.buf.find(bytes([STX]))
            if i >= 0:
                del self.buf[:i]
                j = self.buf.find(bytes([ETX]))
                if j >= 0 and len(self.buf) > j + 1:
                    frame = bytes(self.buf[: j + 2])
                    del self.buf[: j + 2]
                    return frame
            await self.more("data message (STX … ETX BCC)")


async def _sign_on(link: Link, reader: _Reader, address: str) -> Identification:
    await link.set_baud(INITIAL_BAUD)
    await link.discard_input()
    request = sign_on(address)
    link.stats.requests += 1
    await link.write(request)
    return await reader.identification(request)


async def read_out(link: Link, *, address: str = "", max_baud: int = 19200, timeout: float = 1.5) -> Readout:
    """One data readout in the mode the meter's identification announces (A, B or C).

    Parameters
    ----------
    link : the line (opened on first use).
    address : the device address of the request (empty on a point-to-point optical port).
    max_baud : the highest rate to switch to in mode C [bd].
    timeout : silence after which a missing answer is an error (reaction and inter-character) [s].
    """
    t0 = time.monotonic()
    sent0, recv0 = link.stats.sent, link.stats.received
    reader = _Reader(link, timeout)
    try:
        ident = await _sign_on(link, reader, address)
        baud = INITIAL_BAUD
        if ident.mode is Mode.C:
            rates = [c for c, b in BAUD_C.items() if b <= min(ident.baud, max_baud)]
            z = max(rates, key=lambda c: BAUD_C[c]) if rates else "0"
            await link.write(option_select(z))
            baud = BAUD_C[z]
            await link.set_baud(baud)
        elif ident.mode is Mode.B:
            baud = ident.baud
            await link.set_baud(baud)
        frame = await reader.data_message()
        datasets = parse_data_message(frame)
    except FrameError as exc:  # the message names the bytes; the caller needs the line too
        raise type(exc)(f"{link.endpoint}: {exc}") from None
    finally:
        await link.set_baud(INITIAL_BAUD)  # the meter is back at 300 bd after a readout (§6.4)
    return Readout(
        ident,
        datasets,
        baud,
        time.monotonic() - t0,
        link.stats.sent - sent0,
        link.stats.received - recv0,
        frame,
    )


async def switch_to_mode_e(
    link: Link, *, address: str = "", max_baud: int = 9600, timeout: float = 1.5
) -> Identification:
    """Sign on and switch the meter to binary HDLC (protocol mode E, §6.4.5) at the highest common
    rate; the link is left at that rate for the HDLC client. :class:`FrameError` when the meter's
    identification does not offer mode E."""
    reader = _Reader(link, timeout)
    try:
        ident = await _sign_on(link, reader, address)
    except FrameError as exc:
        raise type(exc)(f"{link.endpoint}: {exc}") from None
    if not ident.mode_e:
        raise FrameError(
            f"{link.endpoint}: the meter ({ident.manufacturer} {ident.ident}) does not offer mode E "
            "(no \\2 in its identification)"
        )
    rates = [c for c, b in BAUD_C.items() if b <= min(ident.baud, max_baud)]
    z = max(rates, key=lambda c: BAUD_C[c]) if rates else "0"
    await link.write(option_select(z, protocol="2", mode="2"))
    await link.set_baud(BAUD_C[z])
    await link.set_binary()
    return ident


def line_time(n_bytes: int, baud: int) -> float:
    """Time ``n_bytes`` take on a 7E1 line at ``baud`` [s] (10 bits per character, §6.3.14)."""
    return n_bytes * BITS_PER_CHAR / baud
