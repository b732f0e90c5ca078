"""How APDUs reach the meter: HDLC (over TCP, a serial port, or the optical port after the mode E
switch) or the TCP wrapper (port 4059).

Both give :class:`ApduTransport`: ``connect()``, ``exchange(apdu) -> apdu``, ``disconnect()``.

* :class:`HdlcTransport` (Green Book §8.4): SNRM → UA (negotiated information field length and window,
  window 1 is all this client uses), then I frames numbered N(S)/N(R) modulo 8 with the LLC header;
  an APDU longer than the peer's information field is sent in segments (S bit set on all but the
  last, each acknowledged by an RR), and a segmented answer is collected by sending RR after each
  segment; DISC → UA (or DM) at the end. Frames with a bad FCS/HCS are errors, never accepted.
* :class:`WrapperTransport` (Green Book §7.3.3.4, IEC 62056-47): an 8-byte header — version 0x0001,
  source wPort (client SAP), destination wPort (server SAP), APDU length — in front of each APDU.
"""

from __future__ import annotations

import abc
import contextlib

from meterhub.drivers.dlms import hdlc
from meterhub.drivers.dlms.errors import DlmsFrameError, DlmsLinkError, DlmsTimeout
from meterhub.drivers.iec62056.errors import Iec62056LinkError, Iec62056Timeout
from meterhub.drivers.iec62056.link import Link

__all__ = ["ApduTransport", "HdlcTransport", "WrapperTransport"]

WRAPPER_VERSION = 1
WRAPPER_PORT = 4059


class ApduTransport(abc.ABC):
    """Carries whole APDUs to one logical device and back."""

    endpoint: str
    #: APDU bytes sent and received, and bytes on the wire in each direction [bytes]
    apdu_bytes: int = 0

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def exchange(self, apdu: bytes) -> bytes: ...

    @abc.abstractmethod
    async def disconnect(self) -> None: ...

    @property
    @abc.abstractmethod
    def wire_bytes(self) -> int:
        """Bytes on the wire in both directions so far."""


async def _read(link: Link, timeout: float, what: str) -> bytes:
    try:
        return await link.read(timeout)
    except Iec62056Timeout:
        raise DlmsTimeout(f"{link.endpoint}: no {what} within {timeout:g} s") from None
    except Iec62056LinkError as exc:
        raise DlmsLinkError(str(exc)) from None


async def _write(link: Link, data: bytes) -> None:
    try:
        await link.write(data)
    except Iec62056LinkError as exc:
        raise DlmsLinkError(str(exc)) from None


class HdlcTransport(ApduTransport):
    """The HDLC data link layer of a client (window 1)."""

    def __init__(
        self,
        link: Link,
        *,
        client_sap: int = 0x10,
        server_logical: int = 1,
        server_physical: int | None = None,
        address_size: int = 1,
        timeout: float = 2.0,
        max_info: int = 128,
    ) -> None:
        self.link = link
        self.endpoint = link.endpoint
        self.src = hdlc.client_address(client_sap)
        self.dst = hdlc.server_address(server_logical, server_physical, address_size)
        self.timeout = timeout
        self.wanted = hdlc.HdlcParameters(max_info, max_info, 1, 1)
        self.params = hdlc.HdlcParameters()
        self.ns = 0
        self.nr = 0
        self._buf = bytearray()
        self.frames_sent = 0
        self.frames_received = 0

    @property
    def wire_bytes(self) -> int:
        return self.link.stats.sent + self.link.stats.received

    async def _send(self, control: int, info: bytes = b"", *, segmented: bool = False) -> None:
        self.frames_sent += 1
        await _write(self.link, hdlc.encode_frame(self.dst, self.src, control, info, segmented=segmented))

    async def _receive(self, what: str) -> hdlc.Frame:
        while True:
            raws = hdlc.split_frames(self._buf, limit=1)
            if raws:
                frame = hdlc.decode_frame(raws[0])
                if frame.dst != self.src or frame.src != self.dst:
                    continue  # a frame for another client on a shared line
                self.frames_received += 1
                return frame
            self._buf += await _read(self.link, self.timeout, what)

    async def connect(self) -> None:
        """SNRM → UA: (re)start the link with sequence numbers at 0."""
        self._buf.clear()
        await self.link.open()
        await self._send(hdlc.SNRM, self.wanted.encode())
        frame = await self._receive("UA to SNRM")
        if frame.control == hdlc.DM:
            raise DlmsLinkError(f"{self.endpoint}: the meter refused the HDLC connection (DM)")
        if frame.control != hdlc.UA:
            raise DlmsFrameError(f"{self.endpoint}: expected UA to SNRM, got control 0x{frame.control:02X}")
        self.params = hdlc.parse_parameters(frame.info)
        self.ns = self.nr = 0

    async def exchange(self, apdu: bytes) -> bytes:
        """Send one APDU in I frames (segmented to the peer's maximum) and collect the answer."""
        data = hdlc.LLC_REQUEST + apdu
        size = max(16, min(self.params.max_info_rx, self.wanted.max_info_tx))
        chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        for k, chunk in enumerate(chunks):
            last = k == len(chunks) - 1
            await self._send(hdlc.i_control(self.ns, self.nr), chunk, segmented=not last)
            self.ns = (self.ns + 1) & 7
            if not last:
                ack = await self._receive("RR to a segment")
                if not ack.is_rr:
                    raise DlmsFrameError(
                        f"{self.endpoint}: expected RR to a segment, got 0x{ack.control:02X}"
                    )
        answer = bytearray()
        while True:
            frame = await self._receive("I frame with the answer")
            if not frame.is_i:
                if frame.control in (hdlc.DM, hdlc.FRMR) or frame.kind == hdlc.DISC:
                    raise DlmsLinkError(
                        f"{self.endpoint}: the meter ended the link (control 0x{frame.control:02X})"
                    )
                continue  # an RR without data: keep waiting
            if frame.ns != self.nr:
                raise DlmsFrameError(
                    f"{self.endpoint}: I frame out of sequence (N(S) {frame.ns}, expected {self.nr})"
                )
            self.nr = (self.nr + 1) & 7
            answer += frame.info
            if not frame.segmented:
                break
            await self._send(hdlc.rr_control(self.nr))
        if answer[:3] != hdlc.LLC_RESPONSE:
            raise DlmsFrameError(f"{self.endpoint}: answer without the LLC header E6 E7 00")
        out = bytes(answer[3:])
        self.apdu_bytes += len(apdu) + len(out)
        return out

    async def disconnect(self) -> None:
        """DISC → UA/DM; errors are ignored (the link is going away anyway)."""
        with contextlib.suppress(Exception):
            await self._send(hdlc.DISC)
            await self._receive("UA to DISC")


class WrapperTransport(ApduTransport):
    """The TCP/UDP wrapper (Green Book §7.3.3.4): 8-byte header per APDU, on a TCP link."""

    def __init__(
        self, link: Link, *, client_sap: int = 0x10, server_sap: int = 1, timeout: float = 2.0
    ) -> None:
        self.link = link
        self.endpoint = link.endpoint
        self.client_sap, self.server_sap = client_sap, server_sap
        self.timeout = timeout
        self._buf = bytearray()

    @property
    def wire_bytes(self) -> int:
        return self.link.stats.sent + self.link.stats.received

    async def connect(self) -> None:
        self._buf.clear()
        await self.link.open()

    async def exchange(self, apdu: bytes) -> bytes:
        header = (
            WRAPPER_VERSION.to_bytes(2, "big")
            + self.client_sap.to_bytes(2, "big")
            + self.server_sap.to_bytes(2, "big")
            + len(apdu).to_bytes(2, "big")
        )
        await _write(self.link, header + apdu)
        while True:
            if len(self._buf) >= 8:
                version = int.from_bytes(self._buf[0:2], "big")
                src = int.from_bytes(self._buf[2:4], "big")
                dst = int.from_bytes(self._buf[4:6], "big")
                n = int.from_bytes(self._buf[6:8], "big")
                if version != WRAPPER_VERSION:
                    self._buf.clear()
                    raise DlmsFrameError(f"{self.endpoint}: wrapper version {version} (1 expected)")
                if len(self._buf) >= 8 + n:
                    out = bytes(self._buf[8 : 8 + n])
                    del self._buf[: 8 + n]
                    if (src, dst) != (self.server_sap, self.client_sap):
                        continue  # for another association on the same connection
                    self.apdu_bytes += len(apdu) + len(out)
                    return out
            self._buf += await _read(self.link, self.timeout, "wrapper answer")

    async def disconnect(self) -> None:
        await self.link.close()
