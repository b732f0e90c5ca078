"""Wire format of the ADC board's sample stream (version 1) — framing layer.

A stream of frames over TCP, all little-endian::

    offset size  field
    0      4     magic  b"MHWF"
    4      1     version = 1
    5      1     sample format: 1 = int16, 2 = float32
    6      2     C, channel count (uint16, 1…256)
    8      4     sequence number (uint32), +1 per frame, wraps
    12     4     B, samples per channel in this frame (uint32, 1…65536)
    16     8     index of the frame's first sample since the stream started (uint64)
    24     8     fs, sampling rate [Hz] (float64)
    32     8     time of the first sample, Unix seconds UTC (float64)
    40     4·C   per-channel scale (float32): physical value = raw × scale
    40+4C  B·C·w samples, sample-major (s0c0, s0c1 … s0cC−1, s1c0 …), w = 2 (int16) or 4 (float32)
    end    4     CRC-32 (zlib) of every preceding byte of the frame

Resume request (client → board), sent once right after connecting, 20 bytes little-endian::

    offset size  field
    0      4     magic  b"MHRQ"
    4      1     version = 1
    5      3     reserved, zero
    8      8     index of the first sample wanted (uint64); 2⁶⁴ − 1 = live, from the next frame on
    16     4     CRC-32 (zlib) of bytes 0…15

The board keeps at least the last 10 s of frames; it answers a request by sending, in order, every
buffered frame that ends after the wanted sample, then the live stream. A frame may therefore start
before the wanted sample (the client drops what it already has); a wanted sample older than the buffer
gives a gap, which the client sees from the frames' ``first sample`` indices. A client that sends nothing
gets the live stream after one second.

:func:`encode_frame` and :func:`decode_frame` are pure, as are :func:`encode_request` and
:func:`decode_request`; :class:`FrameReader` reads frames from an ``asyncio.StreamReader``,
resynchronising on the magic after garbage. A frame that fails its checks raises :class:`FrameError`
(a :class:`~meterhub.errors.DeviceError`) carrying its sequence number when the header was readable.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from meterhub.errors import DeviceError

__all__ = [
    "FORMAT_FLOAT32",
    "FORMAT_INT16",
    "HEADER",
    "LIVE",
    "MAGIC",
    "REQUEST",
    "REQUEST_MAGIC",
    "VERSION",
    "Frame",
    "FrameError",
    "FrameReader",
    "decode_frame",
    "decode_request",
    "encode_frame",
    "encode_request",
]

MAGIC = b"MHWF"
VERSION = 1
FORMAT_INT16 = 1
FORMAT_FLOAT32 = 2
HEADER = struct.Struct("<4sBBHIIQdd")  # 40 bytes
_WIDTH = {FORMAT_INT16: 2, FORMAT_FLOAT32: 4}
REQUEST_MAGIC = b"MHRQ"
REQUEST = struct.Struct("<4sB3xQ")  # 16 bytes, then the CRC-32
LIVE = (1 << 64) - 1
"""The wanted sample of a resume request that asks for the live stream only."""
MAX_CHANNELS = 256
MAX_BLOCK = 65536

F64 = NDArray[np.float64]


class FrameError(DeviceError):
    """A malformed frame; ``sequence`` is its sequence number when the header could be read."""

    def __init__(self, message: str, sequence: int | None = None) -> None:
        super().__init__(message if sequence is None else f"frame {sequence}: {message}")
        self.sequence = sequence


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame.

    sequence : frame counter; first_sample : index of the first sample in the stream;
    fs : sampling rate [Hz]; t0 : Unix time of the first sample [s];
    samples : (channels, block) physical values at the board's terminals [V or A]
    """

    sequence: int
    first_sample: int
    fs: float
    t0: float
    samples: F64

    @property
    def block(self) -> int:
        return int(self.samples.shape[1])


def encode_frame(
    sequence: int, first_sample: int, fs: float, t0: float, samples: F64, fmt: int = FORMAT_INT16
) -> bytes:
    """Encode ``samples`` (channels, block) as one frame; int16 uses a per-channel scale of peak/32000."""
    c, b = samples.shape
    if fmt == FORMAT_INT16:
        peak = np.max(np.abs(samples), axis=1)
        scale = np.where(peak > 0, peak / 32000.0, 1.0).astype(np.float32)
        raw: NDArray[np.generic] = np.round(samples / scale.astype(np.float64)[:, None]).astype("<i2")
    elif fmt == FORMAT_FLOAT32:
        scale = np.ones(c, dtype=np.float32)
        raw = samples.astype("<f4")
    else:
        raise ValueError(f"unknown sample format {fmt}")
    head = HEADER.pack(MAGIC, VERSION, fmt, c, sequence & 0xFFFFFFFF, b, first_sample, fs, t0)
    body = head + scale.astype("<f4").tobytes() + np.ascontiguousarray(raw.T).tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def encode_request(first_sample: int | None) -> bytes:
    """The resume request for samples from index ``first_sample`` on (None: the live stream)."""
    wanted = LIVE if first_sample is None else int(first_sample)
    if not 0 <= wanted <= LIVE:
        raise ValueError(f"sample index {first_sample} outside 0…2⁶⁴−1")
    body = REQUEST.pack(REQUEST_MAGIC, VERSION, wanted)
    return body + struct.pack("<I", zlib.crc32(body))


def decode_request(data: bytes) -> int | None:
    """The wanted sample index of a resume request (None: live); :class:`FrameError` when malformed."""
    if len(data) != REQUEST.size + 4:
        raise FrameError(f"resume request of {len(data)} bytes, expected {REQUEST.size + 4}")
    magic, version, wanted = REQUEST.unpack(data[: REQUEST.size])
    if magic != REQUEST_MAGIC or version != VERSION:
        raise FrameError(f"not a version {VERSION} resume request (magic {magic!r}, version {version})")
    if zlib.crc32(data[: REQUEST.size]) != struct.unpack("<I", data[REQUEST.size :])[0]:
        raise FrameError("resume request: CRC mismatch")
    return None if wanted == LIVE else int(wanted)


def _check_header(head: bytes) -> tuple[int, int, int, int, int, float, float, int]:
    magic, version, fmt, c, seq, b, first, fs, t0 = HEADER.unpack(head)
    if magic != MAGIC:
        raise FrameError(f"bad magic {magic!r}")
    if version != VERSION:
        raise FrameError(f"unsupported version {version}", seq)
    if fmt not in _WIDTH:
        raise FrameError(f"unknown sample format {fmt}", seq)
    if not 1 <= c <= MAX_CHANNELS or not 1 <= b <= MAX_BLOCK:
        raise FrameError(f"implausible size: {c} channels × {b} samples", seq)
    if not (np.isfinite(fs) and fs > 0):
        raise FrameError(f"bad sampling rate {fs}", seq)
    if not np.isfinite(t0):
        raise FrameError(f"bad time stamp {t0}", seq)
    rest = 4 * c + b * c * _WIDTH[fmt] + 4
    return fmt, c, seq, b, first, fs, t0, rest


def decode_frame(data: bytes) -> Frame:
    """Decode one complete frame (header to CRC)."""
    if len(data) < HEADER.size:
        raise FrameError(f"short frame ({len(data)} bytes)")
    fmt, c, seq, b, first, fs, t0, rest = _check_header(data[: HEADER.size])
    if len(data) != HEADER.size + rest:
        raise FrameError(f"length {len(data)} bytes, header says {HEADER.size + rest}", seq)
    return _decode_body(data[: HEADER.size], data[HEADER.size :], fmt, c, seq, b, first, fs, t0)


def _decode_body(
    head: bytes, body: bytes, fmt: int, c: int, seq: int, b: int, first: int, fs: float, t0: float
) -> Frame:
    (crc,) = struct.unpack("<I", body[-4:])
    if zlib.crc32(body[:-4], zlib.crc32(head)) != crc:
        raise FrameError("CRC mismatch", seq)
    scale = np.frombuffer(body, dtype="<f4", count=c).astype(np.float64)
    if not np.all(np.isfinite(scale)):
        raise FrameError("non-finite channel scale", seq)
    dtype = "<i2" if fmt == FORMAT_INT16 else "<f4"
    raw = np.frombuffer(body, dtype=dtype, count=b * c, offset=4 * c).reshape(b, c)
    samples = raw.T.astype(np.float64) * scale[:, None]
    if fmt == FORMAT_FLOAT32 and not np.all(np.isfinite(samples)):
        raise FrameError("non-finite sample", seq)
    return Frame(seq, first, fs, t0, samples)


class FrameReader:
    """Reads frames from a stream; after a bad header it resynchronises on the next magic.

    :meth:`next` raises :class:`FrameError` for a malformed frame (the following call continues with
    the next one) and ``asyncio.IncompleteReadError`` at end of stream.
    """

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self._head: bytes | None = None

    async def next(self) -> Frame:
        head = self._head if self._head is not None else await self.reader.readexactly(HEADER.size)
        self._head = None
        try:
            fmt, c, seq, b, first, fs, t0, rest = _check_header(head)
        except FrameError:
            await self._resync(head[1:])
            raise
        body = await self.reader.readexactly(rest)
        return _decode_body(head, body, fmt, c, seq, b, first, fs, t0)

    async def _resync(self, seen: bytes) -> None:
        """Skip to the next magic (which may start inside ``seen``) and keep the header found."""
        k = seen.find(MAGIC)
        if k >= 0:
            buf = seen[k:]
        else:
            while True:
                try:
                    await self.reader.readuntil(MAGIC)
                    break
                except asyncio.LimitOverrunError as exc:
                    await self.reader.readexactly(max(1, exc.consumed - len(MAGIC)))
            buf = MAGIC
        if len(buf) < HEADER.size:
            buf += await self.reader.readexactly(HEADER.size - len(buf))
        self._head = buf[: HEADER.size]
