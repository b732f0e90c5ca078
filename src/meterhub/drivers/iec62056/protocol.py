"""IEC 62056-21 messages (pure: bytes in, values out, no I/O).

The direct local data exchange of IEC 62056-21:2002 (formerly IEC 61107), as used on the optical port
of seed 002's meter (Appendix 1.9: "Optical, 9600 bps, IEC62056-21 E-mode"):

* request (sign-on) ``/?Address!CR LF`` (§6.3.1);
* identification ``/XXXZ Ident CR LF`` (§6.3.2): manufacturer XXX (3 letters, a lower-case third
  letter means a 20 ms reaction time), baud rate character Z, optional escape sequences ``\\W``
  (``\\2``: the meter offers protocol mode E, HDLC, §6.4.5), identification text;
* acknowledgement / option select ``ACK V Z Y CR LF`` (§6.3.3): V protocol control (0 normal,
  2 binary HDLC of mode E), Z baud rate, Y mode control (0 data readout, 1 programming, 2 binary HDLC);
* data message ``STX data-block ! CR LF ETX BCC`` (§6.3.4), BCC the XOR of every character after
  STX up to and including ETX (§6.3.4 note, ISO 1155);
* data sets ``address(value*unit)`` (§6.5), several per line, a data set may carry several values in
  brackets (a maximum demand and its time).

Baud rate characters (§6.3.14): mode B ``A``…``F`` = 600…19 200 bd; modes C and E ``0``…``6`` = 300…
19 200 bd; any other character: mode A (no baud rate change). The character format is 7E1 throughout
(§6.3.14: 1 start bit, 7 data bits, even parity, 1 stop bit = 10 bits per character).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import reduce

from meterhub.drivers.iec62056.errors import BccError, FrameError
from meterhub.profiles.obis import ObisCode, ObisValue

__all__ = [
    "ACK",
    "BAUD_B",
    "BAUD_C",
    "BITS_PER_CHAR",
    "ETX",
    "NAK",
    "SOH",
    "STX",
    "DataSet",
    "Identification",
    "Mode",
    "OptionSelect",
    "bcc",
    "data_message",
    "obis_values",
    "option_select",
    "parse_data_message",
    "parse_identification",
    "parse_option_select",
    "sign_on",
]

SOH, STX, ETX, ACK, NAK = 0x01, 0x02, 0x03, 0x06, 0x15
CRLF = b"\r\n"
#: 1 start + 7 data + parity + 1 stop bit (§6.3.14) [bit]
BITS_PER_CHAR = 10
#: Mode B baud rate characters (§6.3.14) [bd]
BAUD_B = {"A": 600, "B": 1200, "C": 2400, "D": 4800, "E": 9600, "F": 19200}
#: Mode C / E baud rate characters (§6.3.14) [bd]
BAUD_C = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
_ADDRESS = re.compile(r"^[0-9A-Za-z ]{0,32}$")


class Mode(StrEnum):
    """Protocol mode, as the identification's baud rate character tells it (§6.3.14)."""

    A = "A"  # data at 300 bd right after the identification
    B = "B"  # the meter switches to the identification's rate and sends the data
    C = "C"  # the client acknowledges with an option select, then both switch


def bcc(data: bytes) -> int:
    """Block check character: XOR of ``data`` (everything after STX, ETX included) (§6.3.4)."""
    return reduce(lambda x, y: x ^ y, data, 0)


def sign_on(address: str = "") -> bytes:
    """The request message ``/?Address!CR LF`` (§6.3.1); the address (device address, up to 32
    characters) is empty for a point-to-point optical port."""
    if not _ADDRESS.match(address):
        raise ValueError(f"device address {address!r}: up to 32 letters, digits or spaces")
    return b"/?" + address.encode("ascii") + b"!" + CRLF


@dataclass(frozen=True, slots=True)
class Identification:
    """The meter's identification message (§6.3.2).

    manufacturer : three-letter FLAG id. baud_char : the baud rate character Z. ident : the text after
    it. mode_e : the meter offers protocol mode E (escape ``\\2``).
    """

    manufacturer: str
    baud_char: str
    ident: str
    mode_e: bool = False

    @property
    def mode(self) -> Mode:
        if self.baud_char in BAUD_C:
            return Mode.C
        if self.baud_char in BAUD_B:
            return Mode.B
        return Mode.A

    @property
    def baud(self) -> int:
        """The highest rate the meter offers [bd] (300 in mode A)."""
        return BAUD_C.get(self.baud_char) or BAUD_B.get(self.baud_char) or 300

    def encode(self) -> bytes:
        esc = "\\2" if self.mode_e else ""
        return f"/{self.manufacturer}{self.baud_char}{esc}{self.ident}".encode("ascii") + CRLF


def parse_identification(line: bytes) -> Identification:
    """Decode ``/XXXZ[\\W]Ident CR LF``; :class:`FrameError` for anything else."""
    text = line.rstrip(b"\r\n")
    try:
        s = text.decode("ascii")
    except UnicodeDecodeError:
        raise FrameError(f"identification is not ASCII: {_show(line)}") from None
    if len(s) < 5 or s[0] != "/" or not s[1:4].isalpha() or not s[4].isprintable() or s[4] in "/!":
        raise FrameError(f"not an identification message (/XXXZ Ident): {_show(line)}")
    rest = s[5:]
    mode_e = False
    while len(rest) >= 2 and rest[0] == "\\":
        mode_e = mode_e or rest[1] == "2"
        rest = rest[2:]
    if not rest.isprintable() or len(rest) > 16 + 2:
        raise FrameError(f"identification text is not printable or too long: {_show(line)}")
    return Identification(s[1:4], s[4], rest, mode_e)


@dataclass(frozen=True, slots=True)
class OptionSelect:
    """``ACK V Z Y CR LF`` (§6.3.3): protocol control V, baud rate character Z, mode control Y."""

    protocol: str
    baud_char: str
    mode: str

    @property
    def is_readout(self) -> bool:
        return self.protocol == "0" and self.mode == "0"

    @property
    def is_mode_e(self) -> bool:
        """The switch to binary HDLC (protocol mode E, §6.4.5): V = 2 and Y = 2."""
        return self.protocol == "2" and self.mode == "2"


def option_select(baud_char: str, *, protocol: str = "0", mode: str = "0") -> bytes:
    """The acknowledgement / option select message; ``protocol=mode="2"`` switches to HDLC (mode E)."""
    return bytes([ACK]) + f"{protocol}{baud_char}{mode}".encode("ascii") + CRLF


def parse_option_select(msg: bytes) -> OptionSelect:
    """Decode ``ACK V Z Y CR LF``; :class:`FrameError` for anything else."""
    if len(msg) != 6 or msg[0] != ACK or msg[4:] != CRLF:
        raise FrameError(f"not an option select message (ACK V Z Y CR LF): {_show(msg)}")
    v, z, y = (chr(b) for b in msg[1:4])
    return OptionSelect(v, z, y)


@dataclass(frozen=True, slots=True)
class DataSet:
    """One data set ``address(value*unit)(value*unit)…`` (§6.5): values with their units (or None)."""

    address: str
    values: tuple[tuple[str, str | None], ...]


_DATASET = re.compile(r"([^()\r\n]*)((?:\([^()\r\n]*\))+)")
_VALUE = re.compile(r"\(([^()]*)\)")


def data_message(lines: list[str]) -> bytes:
    """``STX line CR LF … ! CR LF ETX BCC`` (§6.3.4) from data lines (each without CR LF)."""
    body = "".join(line + "\r\n" for line in lines).encode("ascii") + b"!\r\n" + bytes([ETX])
    return bytes([STX]) + body + bytes([bcc(body)])


def parse_data_message(frame: bytes) -> list[DataSet]:
    """The data sets of a whole data message (STX … ETX BCC).

    :class:`BccError` when the block check character does not match (a corrupted character on the
    line), :class:`FrameError` for a message that is not one (no STX/ETX, no end line ``!``, a line
    that is no data set).
    """
    if len(frame) < 3 or frame[0] != STX or frame[-2] != ETX:
        raise FrameError(f"not a data message (STX … ETX BCC): {_show(frame)}")
    body = frame[1:-1]
    got, want = frame[-1], bcc(body)
    if got != want:
        raise BccError(f"block check character 0x{got:02X} does not match the data (0x{want:02X})")
    try:
        text = body[:-1].decode("ascii")
    except UnicodeDecodeError:
        raise FrameError(f"data block is not ASCII: {_show(frame)}") from None
    lines = text.split("\r\n")
    if len(lines) < 2 or lines[-1] != "" or lines[-2] != "!":
        raise FrameError("data block does not end with the end line '!' CR LF")
    sets: list[DataSet] = []
    for n, line in enumerate(lines[:-2], start=1):
        if not line:
            continue
        pos = 0
        for m in _DATASET.finditer(line):
            if m.start() != pos:
                break
            values = tuple(_split_value(v) for v in _VALUE.findall(m.group(2)))
            sets.append(DataSet(m.group(1).strip(), values))
            pos = m.end()
        if pos != len(line):
            raise FrameError(f"data line {n} is not 'address(value*unit)': {line[:60]!r}")
    return sets


def _split_value(text: str) -> tuple[str, str | None]:
    value, sep, unit = text.partition("*")
    return value, (unit if sep else None)


def obis_values(sets: list[DataSet]) -> tuple[list[ObisValue], list[str]]:
    """The data sets whose address is an OBIS code, first value each, and a note for each other one
    (manufacturer-specific addresses are kept out, not an error)."""
    out: list[ObisValue] = []
    skipped: list[str] = []
    for ds in sets:
        try:
            code = ObisCode.parse(ds.address)
        except ValueError:
            skipped.append(ds.address)
            continue
        if ds.values:
            value, unit = ds.values[0]
            out.append(ObisValue(code, value, unit))
    return out, skipped


def _show(data: bytes, limit: int = 40) -> str:
    """Bytes for an error message: printable ASCII as is, the rest as escapes, cut at ``limit``."""
    cut = data[:limit]
    return repr(cut)[1:] + ("…" if len(data) > limit else "")
