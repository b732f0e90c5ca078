"""HDLC frames of the DLMS/COSEM three-layer profile (pure: bytes in, frames out, no I/O).

IEC 62056-46 (DLMS UA Green Book Ed. 9 §8.4, "HDLC-based data link layer"):

``7E | A0 SL LL | dst address | src address | control | [HCS | information] | FCS | 7E``

* frame format field: type 3 (``0xA``), segmentation bit S (more segments of the same APDU follow),
  11-bit frame length (everything between the flags);
* addresses: 1, 2 or 4 bytes, 7 bits per byte shifted left, bit 0 set on the last byte; a server
  address is an upper (logical device) and a lower (physical) part, 1 or 2 bytes each (§8.4.2.2);
  a client address is one byte (its SAP: 0x10 public client);
* control (§8.4.3.3): I ``RRR P SSS 0``, RR ``RRR P 0001``, RNR ``RRR P 0101``, SNRM ``0x93``, DISC
  ``0x53``, UA ``0x73``, DM ``0x1F``, FRMR ``0x97``, UI ``0x13`` (P/F bit set);
* HCS over the header, FCS over header and information: CRC-16/X.25 (ISO/IEC 13239: polynomial
  0x1021 reflected, initial 0xFFFF, final XOR 0xFFFF), least significant byte first;
* the information field of an I frame starts with the LLC header ``E6 E6 00`` (client → server) or
  ``E6 E7 00`` (server → client) (IEC 62056-46 §6.2 / Green Book §8.4.5);
* the UA answering SNRM may carry the negotiated parameters ``81 80 len 05 … 06 … 07 … 08 …``
  (maximum information field length transmit/receive, window size transmit/receive; defaults 128
  bytes and 1, §8.4.5.3.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from meterhub.drivers.dlms.errors import DlmsFrameError

__all__ = [
    "DISC",
    "DM",
    "FLAG",
    "FRMR",
    "LLC_REQUEST",
    "LLC_RESPONSE",
    "SNRM",
    "UA",
    "UI",
    "Frame",
    "HdlcParameters",
    "client_address",
    "crc16",
    "decode_frame",
    "encode_frame",
    "i_control",
    "parse_parameters",
    "rr_control",
    "server_address",
    "split_frames",
]

FLAG = 0x7E
SNRM, DISC, UA, DM, FRMR, UI = 0x93, 0x53, 0x73, 0x1F, 0x97, 0x13
LLC_REQUEST = b"\xe6\xe6\x00"
LLC_RESPONSE = b"\xe6\xe7\x00"
_MAX_FRAME = 2047  # 11-bit length field [bytes]


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x8408 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/X.25 of ``data`` (HCS and FCS, ISO/IEC 13239 §4.2.5.3), as an integer."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFF


def _fcs_bytes(data: bytes) -> bytes:
    return crc16(data).to_bytes(2, "little")


def client_address(sap: int) -> bytes:
    """A client address: its SAP in one byte (§8.4.2.2; 0x10 = public client)."""
    if not 0 <= sap <= 0x7F:
        raise ValueError(f"client SAP {sap}: 0…127")
    return bytes([(sap << 1) | 1])


def server_address(logical: int, physical: int | None = None, size: int = 1) -> bytes:
    """A server address: ``size`` = 1 (logical only), 2 or 4 bytes (upper and lower part each 1 or 2
    bytes of 7 bits), §8.4.2.2."""
    if size == 1:
        if physical not in (None, 0) or not 0 <= logical <= 0x7F:
            raise ValueError("a 1-byte server address holds a logical address 0…127 only")
        return bytes([(logical << 1) | 1])
    phys = physical or 0
    if size == 2:
        if not (0 <= logical <= 0x7F and 0 <= phys <= 0x7F):
            raise ValueError("a 2-byte server address holds logical and physical addresses 0…127")
        return bytes([logical << 1, (phys << 1) | 1])
    if size == 4:
        if not (0 <= logical <= 0x3FFF and 0 <= phys <= 0x3FFF):
            raise ValueError("a 4-byte server address holds logical and physical addresses 0…16383")
        return bytes([(logical >> 7) << 1, (logical & 0x7F) << 1, (phys >> 7) << 1, ((phys & 0x7F) << 1) | 1])
    raise ValueError(f"address size {size}: 1, 2 or 4 bytes")


def i_control(ns: int, nr: int, poll: bool = True) -> int:
    """Control byte of an I frame with send sequence ``ns`` and receive sequence ``nr`` (0…7)."""
    return ((nr & 7) << 5) | (0x10 if poll else 0) | ((ns & 7) << 1)


def rr_control(nr: int, poll: bool = True) -> int:
    """Control byte of an RR (receive ready) frame acknowledging up to ``nr`` − 1."""
    return ((nr & 7) << 5) | (0x10 if poll else 0) | 0x01


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: raw address bytes, control byte, information field, segmentation bit."""

    dst: bytes
    src: bytes
    control: int
    info: bytes = b""
    segmented: bool = False

    @property
    def is_i(self) -> bool:
        return self.control & 0x01 == 0

    @property
    def is_rr(self) -> bool:
        return self.control & 0x0F == 0x01

    @property
    def ns(self) -> int:
        return (self.control >> 1) & 7

    @property
    def nr(self) -> int:
        return (self.control >> 5) & 7

    @property
    def kind(self) -> int:
        """The control byte with its sequence numbers masked (U frames: the whole byte)."""
        if self.is_i:
            return 0x00
        if self.control & 0x03 == 0x01:
            return self.control & 0x0F
        return self.control


def encode_frame(
    dst: bytes, src: bytes, control: int, info: bytes = b"", *, segmented: bool = False
) -> bytes:
    """One frame, flags included; HCS only when there is an information field."""
    length = 2 + len(dst) + len(src) + 1 + (2 + len(info) if info else 0) + 2
    if length > _MAX_FRAME:
        raise ValueError(f"HDLC frame of {length} bytes exceeds the 11-bit length field")
    fmt = (0xA000 | (0x0800 if segmented else 0) | length).to_bytes(2, "big")
    header = fmt + dst + src + bytes([control])
    body = header + (_fcs_bytes(header) + info if info else b"")
    return bytes([FLAG]) + body + _fcs_bytes(body) + bytes([FLAG])


def _address(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    start = pos
    while pos < end:
        if data[pos] & 1:
            addr = data[start : pos + 1]
            if len(addr) not in (1, 2, 4):
                raise DlmsFrameError(f"HDLC address of {len(addr)} bytes (1, 2 or 4 expected)")
            return addr, pos + 1
        pos += 1
    raise DlmsFrameError("HDLC address without its last byte (bit 0 set)")


def decode_frame(raw: bytes) -> Frame:
    """Decode one frame (with or without its flags); :class:`DlmsFrameError` names what is wrong."""
    data = raw[1:-1] if raw[:1] == bytes([FLAG]) and raw[-1:] == bytes([FLAG]) else raw
    if len(data) < 7:
        raise DlmsFrameError(f"HDLC frame too short ({len(data)} bytes): {data.hex(' ')}")
    fmt = int.from_bytes(data[:2], "big")
    if fmt >> 12 != 0xA:
        raise DlmsFrameError(f"not an HDLC frame of format type 3 (0x{fmt:04X})")
    length = fmt & 0x07FF
    if length != len(data):
        raise DlmsFrameError(f"HDLC length field says {length} bytes, the frame has {len(data)}")
    if crc16(data[:-2]) != int.from_bytes(data[-2:], "little"):
        raise DlmsFrameError("HDLC frame check sequence (FCS) does not match: a corrupted frame")
    dst, pos = _address(data, 2, len(data) - 2)
    src, pos = _address(data, pos, len(data) - 2)
    control = data[pos]
    pos += 1
    info = b""
    if pos < len(data) - 2:
        if len(data) - 2 - pos < 2:
            raise DlmsFrameError("HDLC frame with a cut-off header check sequence")
        if crc16(data[:pos]) != int.from_bytes(data[pos : pos + 2], "little"):
            raise DlmsFrameError("HDLC header check sequence (HCS) does not match: a corrupted header")
        info = bytes(data[pos + 2 : -2])
    return Frame(bytes(dst), bytes(src), control, info, bool(fmt & 0x0800))


def split_frames(buf: bytearray, limit: int | None = None) -> list[bytes]:
    """Cut complete frames (flags included) out of ``buf``, dropping bytes outside frames.

    A frame starts at a flag followed by a format byte 0xA?; its length field says where it ends. What
    is left (an incomplete frame) stays in ``buf`` for the next call.
    """
    out: list[bytes] = []
    while limit is None or len(out) < limit:
        i = buf.find(bytes([FLAG]))
        if i < 0:
            buf.clear()
            return out
        del buf[:i]
        # skip repeated flags (one flag may close a frame and open the next)
        while len(buf) >= 2 and buf[1] == FLAG:
            del buf[:1]
        if len(buf) < 3:
            return out
        if buf[1] >> 4 != 0xA:
            del buf[:1]  # noise that happens to hold 0x7E
            continue
        length = ((buf[1] & 0x07) << 8) | buf[2]
        if len(buf) < length + 2:
            j = _complete_frame_after(buf)
            if j is None:
                return out  # wait for the rest
            del buf[:j]  # a noise "frame start" claimed more than is coming: a whole frame follows it
            continue
        if buf[length + 1] != FLAG:
            del buf[:1]
            continue
        out.append(bytes(buf[: length + 2]))
        del buf[: length + 1]  # keep the closing flag: it may open the next frame
    return out


def _complete_frame_after(buf: bytearray) -> int | None:
    """Where a later, complete frame with a valid FCS starts in ``buf`` (after position 0), or None."""
    j = buf.find(bytes([FLAG]), 1)
    while j >= 0 and j + 3 <= len(buf):
        if buf[j + 1] >> 4 == 0xA:
            n = ((buf[j + 1] & 0x07) << 8) | buf[j + 2]
            end = j + n + 1
            if end < len(buf) and buf[end] == FLAG and n >= 7:
                body = bytes(buf[j + 1 : end])
                if crc16(body[:-2]) == int.from_bytes(body[-2:], "little"):
                    return j
        j = buf.find(bytes([FLAG]), j + 1)
    return None


@dataclass(frozen=True, slots=True)
class HdlcParameters:
    """Negotiated link parameters (§8.4.5.3.2): maximum information field lengths [bytes] and windows."""

    max_info_tx: int = 128
    max_info_rx: int = 128
    window_tx: int = 1
    window_rx: int = 1

    def encode(self) -> bytes:
        def p(tag: int, v: int, size: int) -> bytes:
            return bytes([tag, size]) + v.to_bytes(size, "big")

        body = (
            p(0x05, self.max_info_tx, 1 if self.max_info_tx < 256 else 2)
            + p(0x06, self.max_info_rx, 1 if self.max_info_rx < 256 else 2)
            + p(0x07, self.window_tx, 4)
            + p(0x08, self.window_rx, 4)
        )
        return bytes([0x81, 0x80, len(body)]) + body


def parse_parameters(info: bytes) -> HdlcParameters:
    """The parameters of a UA (or SNRM) information field; defaults where absent."""
    if not info:
        return HdlcParameters()
    if len(info) < 3 or info[0] != 0x81 or info[1] != 0x80 or info[2] != len(info) - 3:
        raise DlmsFrameError(f"HDLC parameter field not understood: {info.hex(' ')}")
    values = {0x05: 128, 0x06: 128, 0x07: 1, 0x08: 1}
    pos = 3
    while pos + 2 <= len(info):
        tag, size = info[pos], info[pos + 1]
        values[tag] = int.from_bytes(info[pos + 2 : pos + 2 + size], "big")
        pos += 2 + size
    return HdlcParameters(values[0x05], values[0x06], values[0x07], values[0x08])
