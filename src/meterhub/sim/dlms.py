"""A simulated seed 002 DLMS/COSEM meter: a server over HDLC (TCP, a serial port or pty, or the optical
port after the mode E switch) and over the TCP wrapper, with seed 002's objects over the physical model.

Built from the DLMS UA Green Book Ed. 9 (§8.4 HDLC, §7.3.3.4 wrapper, §9.3–9.4 xDLMS and ACSE) and the
Blue Book (interface classes) directly — not with the driver's code (``sim`` and ``drivers`` are
siblings): the gateway's client is checked against a second implementation, and both against gurux-dlms
in the tests.

Objects (logical names, Blue Book / IEC 62056-6-1 OBIS):

=====================  =====  ============================================================================
0.0.42.0.0.255         1      COSEM logical device name (octet-string)
0.0.96.1.0.255         1      serial number (octet-string, seed 002 "Meter Series Number")
1.0.0.2.0.255          1      firmware version (visible-string)
0.0.1.0.0.255          8      clock: time (date-time, UTC, deviation 0), time zone, status
1.0.1.8.0.255 …        3      energy registers A+, A−, |A|, net, R+, R− [Wh, varh], scaler 0
1.0.32.7.0.255 …       3      instantaneous U [V] (scaler −1), I [A] (−2), P [W] (0), S [VA] (0), PF (−3),
                              f [Hz] (−2)
1.0.99.1.0.255         7      load profile: clock, A+, A−, R+, R−, U, I, P every 15 min (capture_period
                              900 s), the last :data:`PROFILE_DAYS` days, read whole or by range
=====================  =====  ============================================================================

Associations (seed 002 "LLS (2 level: admin and reader)"): client SAP 0x10 public (no security: the
logical device name, serial number and clock only), 0x11 reader (LLS, :data:`READER_PASSWORD`: every
attribute), 0x01 admin (LLS, :data:`ADMIN_PASSWORD`). A wrong password is refused in the AARE with
diagnostic 13 "authentication failure"; an LLS client without one with 14 "authentication required".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from meterhub.config.schema import BusKind, LoadSpec
from meterhub.sim.base import SimContext, SimServer, TcpSessionServer, register_simulator
from meterhub.sim.iec62056 import IecMeter, serve_iec_serial, serve_iec_tcp
from meterhub.sim.loads import LoadModel, make_load

__all__ = [
    "ADMIN_PASSWORD",
    "CLIENTS",
    "PROFILE_DAYS",
    "READER_PASSWORD",
    "DlmsMeter",
    "DlmsTcpServer",
    "hdlc_session",
    "DlmsSerialServer",
    "dlms_simulator",
    "serve_dlms_serial",
    "serve_dlms_tcp",
]

log = logging.getLogger("meterhub.sim.dlms")

READER_PASSWORD = b"22222222"
ADMIN_PASSWORD = b"11111111"
#: client SAP → (role, LLS password or None for no security)
CLIENTS: dict[int, tuple[str, bytes | None]] = {
    0x10: ("public", None),
    0x11: ("reader", READER_PASSWORD),
    0x01: ("admin", ADMIN_PASSWORD),
}
PROFILE_DAYS = 40
PROFILE_PERIOD = 900  # [s]
SERVER_MAX_PDU = 1024  # [bytes] what this meter receives at most, and the size of its data blocks
_PUBLIC_OBJECTS = {
    "0.0.42.0.0.255",
    "0.0.96.1.0.255",
    "0.0.1.0.0.255",
    "0.0.40.0.0.255",
}  # what the public client reads
# conformance this meter offers (Green Book §9.4.6.1): block-transfer-with-get (11),
# multiple-references (14), get (19), set (20), selective-access (21), action (23)
_CONFORMANCE = sum(1 << (23 - bit) for bit in (11, 14, 19, 20, 21, 23))
#: Event logs (Profile generic, IEC 62056-6-1 group 99.98): log → (event code object, period between
#: simulated events [s], codes cycled). The codes are this emulator's own (seed 002 lists its logs'
#: capture objects but not its codes): power quality 1 sag begin, 2 sag end, 3 swell begin, 4 swell
#: end; alarms 1 cover opened, 2 magnetic field, 3 clock battery low; standard events 1 power down,
#: 2 power up, 3 clock adjusted, 4 parameters changed. The power-quality log has events
#: in pairs (a sag, then a swell one period later), each ending PQ_DURATION after it began, and captures
#: the voltage 1.0.32.7.0.255 with each entry: at a begin the level that started it (90 % / 110 % of
#: 230 V), at an end the event's extreme (residual 138.0 V of a sag, 264.5 V peak of a swell).
EVENT_LOGS: dict[str, tuple[str, int, tuple[int, ...]]] = {
    "0.0.99.98.4.255": ("0.0.96.11.4.255", 2 * 86400 + 3600, (1, 2, 3, 4)),
    "0.0.99.98.1.255": ("0.0.96.11.1.255", 9 * 86400 + 7200, (1, 2, 3)),
    "0.0.99.98.0.255": ("0.0.96.11.0.255", 5 * 86400 + 5400, (1, 2, 3, 4)),
}
PQ_LOG = "0.0.99.98.4.255"
PQ_DURATION = 0.5  # [s]
#: event code → voltage captured with it [V] (see EVENT_LOGS)
PQ_VOLTAGE = {1: 207.0, 2: 138.0, 3: 253.0, 4: 264.5}
ASSOCIATION_LN = "0.0.40.0.0.255"
MAX_DEMAND = "1.0.1.6.0.255"
#: Demand register (class 5) of active energy import: current average D = 4 (IEC 62056-6-1), block
#: demand over one period of PROFILE_PERIOD (number_of_periods 1).
DEMAND = "1.0.1.4.0.255"
BILLING = "0.0.98.1.0.255"
LOAD_PROFILE = "1.0.99.1.0.255"
CLOCK_LN = "0.0.1.0.0.255"


# -- A-XDR, the server's own (encode what it answers, decode what a client may send) ---------------
def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82]) + n.to_bytes(2, "big")


def _octets(b: bytes) -> bytes:
    return b"\x09" + _len(len(b)) + b


def _struct(*items: bytes) -> bytes:
    return b"\x02" + _len(len(items)) + b"".join(items)


def _array(items: list[bytes]) -> bytes:
    return b"\x01" + _len(len(items)) + b"".join(items)


def _u32(v: int) -> bytes:
    return b"\x06" + max(0, min(v, 0xFFFFFFFF)).to_bytes(4, "big")


def _i32(v: int) -> bytes:
    return b"\x05" + struct.pack(">i", max(-(2**31), min(v, 2**31 - 1)))


def _u16(v: int) -> bytes:
    return b"\x12" + max(0, min(v, 0xFFFF)).to_bytes(2, "big")


def _i16(v: int) -> bytes:
    return b"\x10" + struct.pack(">h", max(-32768, min(v, 32767)))


def _i8(v: int) -> bytes:
    return b"\x0f" + struct.pack(">b", v)


def _enum(v: int) -> bytes:
    return bytes([0x16, v])


def _datetime(t: float) -> bytes:
    d = datetime.fromtimestamp(t, UTC)
    return (
        d.year.to_bytes(2, "big")
        + bytes([d.month, d.day, d.isoweekday(), d.hour, d.minute, d.second, d.microsecond // 10_000])
        + b"\x00\x00"  # deviation 0: the meter keeps UTC
        + b"\x00"
    )


def _parse_datetime(raw: bytes) -> float | None:
    if len(raw) != 12 or raw[0:2] == b"\xff\xff":
        return None
    y = int.from_bytes(raw[0:2], "big")
    dev = struct.unpack(">h", raw[9:11])[0]
    dev = 0 if dev == -0x8000 else dev
    d = datetime(y, raw[2], raw[3], raw[5], raw[6], raw[7] if raw[7] != 0xFF else 0, tzinfo=UTC)
    return d.timestamp() + dev * 60  # deviation = UTC − local time [min] (Blue Book §4.1.6.1)


def _decode(data: bytes, pos: int) -> tuple[object, int]:
    """The subset of Data a client sends in selective access parameters."""
    tag = data[pos]
    pos += 1
    if tag in (1, 2):
        n = data[pos]
        pos += 1
        items = []
        for _ in range(n):
            v, pos = _decode(data, pos)
            items.append(v)
        return items, pos
    if tag == 9:
        n = data[pos]
        return bytes(data[pos + 1 : pos + 1 + n]), pos + 1 + n
    sizes = {0: 0, 3: 1, 5: 4, 6: 4, 15: 1, 16: 2, 17: 1, 18: 2, 22: 1, 20: 8, 21: 8}
    if tag not in sizes:
        raise ValueError(f"data tag {tag}")
    n = sizes[tag]
    return int.from_bytes(data[pos : pos + n], "big", signed=tag in (5, 15, 16, 20)), pos + n


# -- the meter ---------------------------------------------------------------------------------------
@dataclass
class _Column:
    class_id: int
    obis: str
    attribute: int
    encode: Callable[[float, float], bytes]  # (interval end t [s], cumulative import energy [Wh]) → Data


def _ln(text: str) -> bytes:
    return bytes(int(p) for p in text.split("."))


@dataclass
class DlmsMeter:
    """The object model and the physical model behind it (one single-phase load)."""

    serial: str = "20260002"
    wall: Callable[[], float] = time.time
    load: LoadModel = field(
        default_factory=lambda: make_load(LoadSpec(model="kitchen", rated_power=7000.0), 1, 1)
    )
    base_wh: float = 12_345_678.0  # register value at the start of the profile [Wh]
    voltage: float = 230.0

    def __post_init__(self) -> None:
        self.t_start = float(
            math.floor((self.wall() - PROFILE_DAYS * 86400) / PROFILE_PERIOD) * PROFILE_PERIOD
        )
        self._energy: list[float] = [self.base_wh]  # import register at t_start + k·period [Wh]
        self.gets = 0
        self.clock_offset = 0.0  # the meter's clock minus true time [s] (set and shifted by the admin)
        self.md_reset_at = self.t_start  # maximum demand counts from here [s]
        self.billing_commands: list[float] = []  # times of billing snapshots by command [s]

    def now(self) -> float:
        """The meter's clock [s since the epoch]."""
        return self.wall() + self.clock_offset

    def max_demand(self, since: float, until: float) -> tuple[float, float]:
        """(largest 15-min demand [W], end of its interval [s]) of the intervals ending in (since, until]."""
        k0 = max(1, math.ceil((since - self.t_start) / PROFILE_PERIOD + 1e-9))
        k1 = math.floor((until - self.t_start) / PROFILE_PERIOD)
        best, at = 0.0, since
        for k in range(k0, k1 + 1):
            t = self.t_start + k * PROFILE_PERIOD
            d = (self.energy_at(t) - self.energy_at(t - PROFILE_PERIOD)) * 3600.0 / PROFILE_PERIOD
            if d > best:
                best, at = d, t
        return best, at

    def billing_times(self) -> list[float]:
        """Automatic snapshots at 00:00 UTC on the 1st of each month (seed 002 billing date 1, hour 0)
        since the profile starts, and those by command, in order [s]."""
        out = list(self.billing_commands)
        d = datetime.fromtimestamp(self.t_start, UTC)
        month = datetime(d.year, d.month, 1, tzinfo=UTC)
        while True:
            month = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
            if month.timestamp() > self.wall():
                break
            out.append(month.timestamp())
        return sorted(out)

    def billing_entries(self, start: float | None = None, end: float | None = None) -> list[bytes]:
        """Billing history: clock, A+, A−, maximum demand of the billing period and its time (entries
        captured within [start, end] when given)."""
        out = []
        prev: float = self.t_start
        for t in self.billing_times():
            if (start is not None and t < start) or (end is not None and t > end):
                prev = t
                continue
            md, at = self.max_demand(prev, t)
            out.append(
                _struct(
                    _octets(_datetime(t)),
                    _u32(round(self.energy_at(t))),
                    _u32(0),
                    _u32(round(md)),
                    _octets(_datetime(at)),
                )
            )
            prev = t
        return out

    # physics: power as the load model gives it, energy integrated per interval at its middle
    def power(self, t: float) -> float:
        hour = (t % 86400) / 3600.0
        return float(self.load.total_power(t, hour))

    def energy_at(self, t: float) -> float:
        """Import register at ``t`` [Wh]: whole intervals at their mid power, the part interval pro rata."""
        k = int((t - self.t_start) // PROFILE_PERIOD)
        if k < 0:
            return self.base_wh
        while len(self._energy) <= k:
            j = len(self._energy) - 1
            mid = self.t_start + (j + 0.5) * PROFILE_PERIOD
            self._energy.append(self._energy[-1] + self.power(mid) * PROFILE_PERIOD / 3600.0)
        t_k = self.t_start + k * PROFILE_PERIOD
        return self._energy[k] + self.power(t_k + PROFILE_PERIOD / 2) * (t - t_k) / 3600.0

    def values(self, t: float | None = None) -> dict[str, float]:
        """What the registers hold at ``t`` (now), in their units [Wh, V, A, W, VA, -, Hz]."""
        t = self.wall() if t is None else t
        p = self.power(t)
        u = self.voltage + 2.0 * math.sin(2 * math.pi * t / 97.0)
        pf = 0.95
        return {
            "1.0.1.8.0.255": self.energy_at(t),
            "1.0.2.8.0.255": 0.0,
            "1.0.15.8.0.255": self.energy_at(t),
            "1.0.16.8.0.255": self.energy_at(t),
            "1.0.3.8.0.255": self.energy_at(t) * math.tan(math.acos(pf)),
            "1.0.4.8.0.255": 0.0,
            "1.0.32.7.0.255": u,
            "1.0.31.7.0.255": p / (u * pf),
            "1.0.16.7.0.255": p,
            "1.0.9.7.0.255": p / pf,
            "1.0.13.7.0.255": pf,
            "1.0.14.7.0.255": 50.0 + 0.02 * math.sin(2 * math.pi * t / 61.0),
        }

    # registers: logical name → (unit code, scaler, encoder of the raw value)
    REGISTERS: ClassVar[dict[str, tuple[int, int, Callable[[int], bytes]]]] = {
        "1.0.1.8.0.255": (30, 0, _u32),
        "1.0.2.8.0.255": (30, 0, _u32),
        "1.0.15.8.0.255": (30, 0, _u32),
        "1.0.16.8.0.255": (30, 0, _i32),
        "1.0.3.8.0.255": (32, 0, _u32),
        "1.0.4.8.0.255": (32, 0, _u32),
        "1.0.32.7.0.255": (35, -1, _u16),
        "1.0.31.7.0.255": (33, -2, _u16),
        "1.0.16.7.0.255": (27, 0, _i32),
        "1.0.9.7.0.255": (28, 0, _u32),
        "1.0.13.7.0.255": (255, -3, _i16),
        "1.0.14.7.0.255": (44, -2, _u16),
    }

    def register_raw(self, obis: str, t: float | None = None) -> bytes:
        unit, scaler, enc = self.REGISTERS[obis]
        return enc(round(self.values(t)[obis] / 10.0**scaler))

    def columns(self) -> list[_Column]:
        """The load profile's capture objects (8, as issue 14's benchmark asks)."""

        def reg(obis: str) -> _Column:
            def encode(t: float, _e: float) -> bytes:
                return self.register_raw(obis, t)

            return _Column(3, obis, 2, encode)

        return [
            _Column(8, "0.0.1.0.0.255", 2, lambda t, _e: _octets(_datetime(t))),
            reg("1.0.1.8.0.255"),
            reg("1.0.2.8.0.255"),
            reg("1.0.3.8.0.255"),
            reg("1.0.4.8.0.255"),
            reg("1.0.32.7.0.255"),
            reg("1.0.31.7.0.255"),
            reg("1.0.16.7.0.255"),
        ]

    def profile_entries(self, start: float | None = None, end: float | None = None) -> list[bytes]:
        """Entries of the load profile (interval ends within [start, end], every one when None)."""
        now = self.wall()
        last = math.floor(now / PROFILE_PERIOD) * PROFILE_PERIOD
        first = self.t_start + PROFILE_PERIOD
        lo = first if start is None else max(first, math.ceil(start / PROFILE_PERIOD) * PROFILE_PERIOD)
        hi = last if end is None else min(last, math.floor(end / PROFILE_PERIOD) * PROFILE_PERIOD)
        cols = self.columns()
        out = []
        t = lo
        while t <= hi:
            e = self.energy_at(t)
            out.append(_struct(*(c.encode(t, e) for c in cols)))
            t += PROFILE_PERIOD
        return out

    # the GET service: (class, logical name, attribute, access) → Data or a data-access-result
    def get(
        self, role: str, class_id: int, ln: str, attr: int, access: tuple[int, bytes] | None
    ) -> bytes | int:
        self.gets += 1
        if role == "public" and ln not in _PUBLIC_OBJECTS:
            return 3  # read-write-denied
        if attr == 1:
            return _octets(_ln(ln)) if self._exists(class_id, ln) else 4
        if class_id == 1 and ln == "0.0.42.0.0.255" and attr == 2:
            return _octets(b"MHB" + self.serial.encode())
        if class_id == 1 and ln == "0.0.96.1.0.255" and attr == 2:
            return _octets(self.serial.encode())
        if class_id == 1 and ln == "1.0.0.2.0.255" and attr == 2:
            return b"\x0a" + _len(6) + b"MH-1.0"
        if class_id == 8 and ln == "0.0.1.0.0.255":
            return {2: _octets(_datetime(self.now())), 3: _i16(0), 4: b"\x11\x00"}.get(attr, 4)
        if class_id == 3 and ln in self.REGISTERS:
            unit, scaler, _ = self.REGISTERS[ln]
            if attr == 2:
                return self.register_raw(ln)
            if attr == 3:
                return _struct(_i8(scaler), _enum(unit))
            return 4
        if class_id == 4 and ln == MAX_DEMAND:
            md, at = self.max_demand(self.md_reset_at, self.wall())
            return {
                2: _u32(round(md)),
                3: _struct(_i8(0), _enum(27)),
                4: _u16(0),
                5: _octets(_datetime(at)),
            }.get(attr, 4)
        if class_id == 5 and ln == DEMAND:
            return self._demand_register(attr)
        if class_id == 7 and ln in EVENT_LOGS:
            code_ln, _, _ = EVENT_LOGS[ln]
            if attr == 3:
                cols = [(8, CLOCK_LN, 2), (1, code_ln, 2)]
                if ln == PQ_LOG:
                    cols.append((3, "1.0.32.7.0.255", 2))
                return _array([_struct(_u16(c), _octets(_ln(o)), _i8(a), _u16(0)) for c, o, a in cols])
            if attr == 4:
                return _u32(0)  # captured when an event happens
            if attr == 7:
                return _u32(len(self.events(ln, None, None)))
            if attr == 2:
                start = end = None
                if access is not None:
                    try:
                        parsed, _ = _decode(access[1], 0)
                    except (ValueError, IndexError):
                        return 12
                    if access[0] != 1 or not isinstance(parsed, list) or len(parsed) != 4:
                        return 13
                    start = _parse_datetime(parsed[1]) if isinstance(parsed[1], bytes) else None
                    end = _parse_datetime(parsed[2]) if isinstance(parsed[2], bytes) else None
                return _array(
                    [
                        _struct(
                            _octets(_datetime(t)),
                            b"\x11" + bytes([c]),
                            *([_u16(round(PQ_VOLTAGE[c] * 10))] if ln == PQ_LOG else []),
                        )
                        for t, c in self.events(ln, start, end)
                    ]
                )
            return 4
        if class_id == 15 and ln == ASSOCIATION_LN and attr == 2:
            return _array(
                [
                    _struct(_u16(c), b"\x11\x00", _octets(_ln(o)), _struct(_array([]), _array([])))
                    for c, o in sorted(self._objects())
                ]
            )
        if class_id == 7 and ln == BILLING:
            if attr == 2:
                if access is None:
                    return _array(self.billing_entries())
                rng = self._range(access)
                if isinstance(rng, int):
                    return rng
                return _array(self.billing_entries(*rng))
            if attr == 3:
                cols = [
                    (8, CLOCK_LN, 2),
                    (3, "1.0.1.8.0.255", 2),
                    (3, "1.0.2.8.0.255", 2),
                    (4, MAX_DEMAND, 2),
                    (4, MAX_DEMAND, 5),
                ]
                return _array([_struct(_u16(c), _octets(_ln(o)), _i8(a), _u16(0)) for c, o, a in cols])
            if attr == 4:
                return _u32(0)  # captured by the billing schedule and by command, not periodically
            if attr == 7:
                return _u32(len(self.billing_times()))
            return 4
        if class_id == 7 and ln == "1.0.99.1.0.255":
            if attr == 3:
                return _array(
                    [
                        _struct(_u16(c.class_id), _octets(_ln(c.obis)), _i8(c.attribute), _u16(0))
                        for c in self.columns()
                    ]
                )
            if attr == 4:
                return _u32(PROFILE_PERIOD)
            if attr == 7:
                return _u32(len(self.profile_entries()))
            if attr == 2:
                if access is None:
                    return _array(self.profile_entries())
                selector, params = access
                if selector != 1:
                    return 13  # scope-of-access-violated: only range access is offered
                try:
                    parsed, _ = _decode(params, 0)
                except (ValueError, IndexError):
                    return 12  # type-unmatched
                if not isinstance(parsed, list) or len(parsed) != 4:
                    return 12
                frm, to = parsed[1], parsed[2]
                start = _parse_datetime(frm) if isinstance(frm, bytes) else None
                end = _parse_datetime(to) if isinstance(to, bytes) else None
                return _array(self.profile_entries(start, end))
            return 4
        return 4  # object-undefined

    def demand(self, t: float | None = None) -> tuple[float, float, float, float]:
        """The demand register at ``t`` (now): (current average [W], last average [W], capture time
        [s], start of the current period [s]). Blue Book §4.3.4 (class 5): the current average is the
        energy since the period's start over number_of_periods × period (so it rises through the
        period); the last average is the whole of the last closed period, captured at its end."""
        t = self.wall() if t is None else t
        start = math.floor(t / PROFILE_PERIOD) * PROFILE_PERIOD
        current = (self.energy_at(t) - self.energy_at(start)) * 3600.0 / PROFILE_PERIOD
        last = (self.energy_at(start) - self.energy_at(start - PROFILE_PERIOD)) * 3600.0 / PROFILE_PERIOD
        return current, last, start, start

    def _demand_register(self, attr: int) -> bytes | int:
        current, last, capture, start = self.demand()
        return {
            2: _u32(round(current)),
            3: _u32(round(last)),
            4: _struct(_i8(0), _enum(27)),  # W
            5: b"\x11\x00",  # status: unsigned 0 (no flags)
            6: _octets(_datetime(capture)),
            7: _octets(_datetime(start)),
            8: _u32(PROFILE_PERIOD),
            9: _u16(1),
        }.get(attr, 4)

    @staticmethod
    def _range(access: tuple[int, bytes]) -> tuple[float | None, float | None] | int:
        """(from, to) [s] of a selective access by range (selector 1), or a data-access-result."""
        if access[0] != 1:
            return 13  # scope-of-access-violated: only range access is offered
        try:
            parsed, _ = _decode(access[1], 0)
        except (ValueError, IndexError):
            return 12  # type-unmatched
        if not isinstance(parsed, list) or len(parsed) != 4:
            return 12
        frm, to = parsed[1], parsed[2]
        return (
            _parse_datetime(frm) if isinstance(frm, bytes) else None,
            _parse_datetime(to) if isinstance(to, bytes) else None,
        )

    def events(self, log: str, start: float | None, end: float | None) -> list[tuple[float, int]]:
        """(time, code) of the simulated events of ``log`` within [start, end] (all when None)."""
        _, period, codes = EVENT_LOGS[log]
        lo = self.t_start if start is None else max(start, self.t_start)
        hi = self.wall() if end is None else min(end, self.wall())
        k = max(0, math.ceil((lo - self.t_start - (PQ_DURATION if log == PQ_LOG else 0.0)) / period))
        out = []
        while self.t_start + k * period <= hi:
            t = self.t_start + k * period
            if log == PQ_LOG:  # a begin, and its end PQ_DURATION later
                begin = 1 if k % 2 == 0 else 3
                out += [e for e in ((t, begin), (t + PQ_DURATION, begin + 1)) if lo <= e[0] <= hi]
            else:
                out.append((t, codes[k % len(codes)]))
            k += 1
        return out

    def _objects(self) -> set[tuple[int, str]]:
        """Every object of the logical device (the association's object list, class 15)."""
        objs = {
            (1, "0.0.42.0.0.255"),
            (1, "0.0.96.1.0.255"),
            (1, "1.0.0.2.0.255"),
            (8, CLOCK_LN),
            (7, LOAD_PROFILE),
            (7, BILLING),
            (4, MAX_DEMAND),
            (5, DEMAND),
            (15, ASSOCIATION_LN),
        }
        objs |= {(7, ln) for ln in EVENT_LOGS} | {(3, ln) for ln in self.REGISTERS}
        return objs

    def set(self, role: str, class_id: int, ln: str, attr: int, value: bytes) -> int:
        """SET (admin only, seed 002 "Administrator: Set\\Get\\Action"): the clock's time."""
        if role != "admin":
            return 3  # read-write-denied
        if class_id == 8 and ln == CLOCK_LN and attr == 2:
            if len(value) != 14 or value[0] != 0x09 or value[1] != 12:
                return 12  # type-unmatched
            t = _parse_datetime(value[2:])
            if t is None:
                return 12
            self.clock_offset = t - self.wall()
            return 0
        return 3 if self._exists(class_id, ln) else 4

    def action(self, role: str, class_id: int, ln: str, method: int, parameter: bytes | None) -> int:
        """ACTION: maximum demand reset (reader and admin, seed 002 "Reader: Get\\MD reset"); clock
        shift_time and the billing command (admin)."""
        if class_id == 4 and ln == MAX_DEMAND and method == 1:
            if role not in ("reader", "admin"):
                return 3
            self.md_reset_at = self.wall()
            return 0
        if role != "admin":
            return 3
        if class_id == 8 and ln == CLOCK_LN and method == 6:
            if parameter is None or len(parameter) != 3 or parameter[0] != 0x10:
                return 12
            shift = struct.unpack(">h", parameter[1:3])[0]
            if not -900 <= shift <= 900:
                return 12
            self.clock_offset += shift
            return 0
        if class_id == 7 and ln == BILLING and method == 2:
            self.billing_commands.append(self.wall())
            return 0
        return 4

    def _exists(self, class_id: int, ln: str) -> bool:
        return (class_id, ln) in self._objects()


# -- the application layer: one association ------------------------------------------------------------
class _Association:
    """ACSE and xDLMS of one client (AARQ/AARE, GET normal / next / with list with block transfer, RLRQ)."""

    def __init__(self, meter: DlmsMeter, client_sap: int) -> None:
        self.meter = meter
        self.client_sap = client_sap
        self.role: str | None = None
        self.client_max_pdu = SERVER_MAX_PDU
        self._pending: tuple[int, bytes, int] | None = None  # invoke, data still to send, block number

    def handle(self, apdu: bytes) -> bytes:
        if not apdu:
            return b""
        tag = apdu[0]
        if tag == 0x60:
            return self._aarq(apdu)
        if tag == 0x62:
            self.role = None
            return b"\x63\x03\x80\x01\x00"
        if self.role is None:
            return b"\xd8\x01\x01"  # exception-response: service not allowed (no association)
        try:
            if tag == 0xC0 and len(apdu) >= 3:
                return self._get(apdu)
            if tag == 0xC1 and len(apdu) >= 3 and apdu[1] == 1:  # SET-Request-Normal
                class_id, ln, attr, _access, pos = self._descriptor(apdu, 3)
                result = self.meter.set(self.role, class_id, ln, attr, bytes(apdu[pos:]))
                return bytes([0xC5, 0x01, apdu[2], result])
            if tag == 0xC3 and len(apdu) >= 13 and apdu[1] == 1:  # ACTION-Request-Normal
                class_id = int.from_bytes(apdu[3:5], "big")
                ln = ".".join(str(b) for b in apdu[5:11])
                parameter = bytes(apdu[13:]) if apdu[12] == 1 else None  # method id at 11, then the flag
                result = self.meter.action(self.role, class_id, ln, apdu[11], parameter)
                return bytes([0xC7, 0x01, apdu[2], result, 0x00])
        except (IndexError, ValueError):
            return b"\xd8\x02\x02"  # exception-response: operation not possible
        return b"\xd8\x02\x01"  # service-not-supported

    def _aarq(self, apdu: bytes) -> bytes:
        elements: dict[int, bytes] = {}
        pos = 2 if apdu[1] < 0x80 else 2 + (apdu[1] & 0x7F)
        while pos + 2 <= len(apdu):
            tag, n = apdu[pos], apdu[pos + 1]
            elements[tag] = apdu[pos + 2 : pos + 2 + n]
            pos += 2 + n
        password = None
        if 0xAC in elements and elements[0xAC][:1] == b"\x80":
            password = bytes(elements[0xAC][2 : 2 + elements[0xAC][1]])
        ui = elements.get(0xBE, b"")
        proposed = int.from_bytes(ui[-5:-2], "big") if len(ui) >= 14 else 0
        if len(ui) >= 14:
            self.client_max_pdu = max(64, int.from_bytes(ui[-2:], "big") or 0xFFFF)
        role, wanted = CLIENTS.get(self.client_sap, (None, None))
        diagnostic = 0
        if role is None:
            diagnostic = 1  # no reason given: an unknown client
        elif elements.get(0xA1, b"")[2:] != bytes.fromhex("60857405080101"):
            diagnostic = 2  # application context name not supported
        elif wanted is not None and password is None:
            diagnostic = 14  # authentication required
        elif wanted is not None and password != wanted:
            diagnostic = 13  # authentication failure
        accepted = diagnostic == 0
        self.role = role if accepted else None
        body = b"\xa1\x09\x06\x07\x60\x85\x74\x05\x08\x01\x01"
        body += b"\xa2\x03\x02\x01" + (b"\x00" if accepted else b"\x01")
        body += b"\xa3\x05\xa1\x03\x02\x01" + bytes([diagnostic])
        if accepted:
            if wanted is not None:
                body += b"\x88\x02\x07\x80\x89\x07\x60\x85\x74\x05\x08\x02\x01"
            conf = (proposed & _CONFORMANCE) if proposed else _CONFORMANCE
            initiate = (
                b"\x08\x00\x06\x5f\x1f\x04\x00"
                + conf.to_bytes(3, "big")
                + SERVER_MAX_PDU.to_bytes(2, "big")
                + b"\x00\x07"
            )
            body += b"\xbe" + _len(len(initiate) + 2) + b"\x04" + _len(len(initiate)) + initiate
        return b"\x61" + _len(len(body)) + body

    def _descriptor(self, apdu: bytes, pos: int) -> tuple[int, str, int, tuple[int, bytes] | None, int]:
        class_id = int.from_bytes(apdu[pos : pos + 2], "big")
        ln = ".".join(str(b) for b in apdu[pos + 2 : pos + 8])
        attr = apdu[pos + 8]
        pos += 9
        access = None
        if apdu[pos] == 1:
            selector = apdu[pos + 1]
            _, end = _decode(apdu, pos + 2)
            access = (selector, bytes(apdu[pos + 2 : end]))
            pos = end
        else:
            pos += 1
        return class_id, ln, attr, access, pos

    def _get(self, apdu: bytes) -> bytes:
        kind, invoke = apdu[1], apdu[2]
        role = self.role or "public"
        if kind == 1:
            class_id, ln, attr, access, _ = self._descriptor(apdu, 3)
            result = self.meter.get(role, class_id, ln, attr, access)
            if isinstance(result, int):
                return bytes([0xC4, 0x01, invoke, 0x01, result])
            return self._answer(invoke, b"\xc4\x01" + bytes([invoke, 0x00]), result)
        if kind == 3:
            n = apdu[3]
            pos = 4
            parts = []
            for _ in range(n):
                class_id, ln, attr, access, pos = self._descriptor(apdu, pos)
                r = self.meter.get(role, class_id, ln, attr, access)
                parts.append(bytes([0x01, r]) if isinstance(r, int) else b"\x00" + r)
            return self._answer(invoke, b"\xc4\x03" + bytes([invoke]) + _len(n), b"".join(parts), listed=n)
        if kind == 2:
            block = int.from_bytes(apdu[3:7], "big")
            if self._pending is None or self._pending[2] != block:
                return bytes([0xC4, 0x02, invoke, 0x01]) + (block + 1).to_bytes(4, "big") + b"\x01\x13"
            return self._next_block(invoke)
        return b"\xd8\x02\x01"

    def _answer(self, invoke: int, head: bytes, data: bytes, listed: int = 0) -> bytes:
        if len(head) + len(data) <= min(self.client_max_pdu, SERVER_MAX_PDU):
            return head + data
        raw = (_len(listed) + data) if listed else data
        self._pending = (invoke, raw, 0)
        return self._next_block(invoke)

    def _next_block(self, invoke: int) -> bytes:
        if self._pending is None:  # pragma: no cover - guarded by the caller
            return b"\xd8\x02\x02"
        _, raw, block = self._pending
        size = min(self.client_max_pdu, SERVER_MAX_PDU) - 16
        chunk, rest = raw[:size], raw[size:]
        block += 1
        last = not rest
        self._pending = None if last else (invoke, rest, block)
        return (
            bytes([0xC4, 0x02, invoke, 0x01 if last else 0x00])
            + block.to_bytes(4, "big")
            + b"\x00"
            + _len(len(chunk))
            + chunk
        )


# -- HDLC, the server's own ---------------------------------------------------------------------------
def _crc(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def _frame(dst: bytes, src: bytes, control: int, info: bytes = b"", segmented: bool = False) -> bytes:
    length = 2 + len(dst) + len(src) + 1 + (2 + len(info) if info else 0) + 2
    head = (0xA000 | (0x0800 if segmented else 0) | length).to_bytes(2, "big") + dst + src + bytes([control])
    body = head + (_crc(head).to_bytes(2, "little") + info if info else b"")
    return b"\x7e" + body + _crc(body).to_bytes(2, "little") + b"\x7e"


def _addr(data: bytes, pos: int) -> tuple[bytes, int]:
    start = pos
    while not data[pos] & 1:
        pos += 1
    return bytes(data[start : pos + 1]), pos + 1


Reader = Callable[[float], Awaitable[bytes]]
Writer = Callable[[bytes], Awaitable[None]]


async def hdlc_session(meter: DlmsMeter, read: Reader, write: Writer, *, idle: float = 120.0) -> None:
    """Serve HDLC until DISC, the peer goes, or ``idle`` seconds pass without a frame. Frames with a
    bad FCS or HCS are dropped (the client times out and repeats, Green Book §8.4.3.3)."""
    buf = bytearray()
    my_addr: bytes | None = None
    assoc: _Association | None = None
    client: bytes = b""
    vs = vr = 0
    max_info = 128
    incoming = bytearray()
    out_segments: list[bytes] = []
    while True:
        frame = None
        while frame is None:
            i = buf.find(b"\x7e")
            if i < 0:
                buf.clear()
            else:
                del buf[:i]
                while len(buf) >= 2 and buf[1] == 0x7E:
                    del buf[:1]
                if len(buf) >= 3 and buf[1] >> 4 == 0xA:
                    n = ((buf[1] & 7) << 8) | buf[2]
                    if len(buf) >= n + 2:
                        candidate = bytes(buf[1 : n + 1])
                        del buf[: n + 1]
                        if buf[:1] == b"\x7e" and _crc(candidate[:-2]) == int.from_bytes(
                            candidate[-2:], "little"
                        ):
                            frame = candidate
                        continue
                elif len(buf) >= 3:
                    del buf[:1]
                    continue
            try:
                chunk = await read(idle)
            except TimeoutError:
                return
            if not chunk:
                return
            buf += chunk
        dst, pos = _addr(frame, 2)
        src, pos = _addr(frame, pos)
        control = frame[pos]
        info = b""
        if pos + 1 < len(frame) - 2:
            if _crc(frame[: pos + 1]) != int.from_bytes(frame[pos + 1 : pos + 3], "little"):
                continue  # bad HCS: drop
            info = frame[pos + 3 : -2]
        segmented = bool(frame[0] & 0x08)
        if control == 0x93:  # SNRM
            my_addr, client, vs, vr = dst, src, 0, 0
            assoc = _Association(meter, src[0] >> 1)
            proposed = 128
            if info[:2] == b"\x81\x80":
                p = 3
                while p + 2 <= len(info):
                    if info[p] == 0x06:  # the client's maximum receive length: what we may send
                        proposed = int.from_bytes(info[p + 2 : p + 2 + info[p + 1]], "big")
                    p += 2 + info[p + 1]
            max_info = max(32, min(proposed, 2030))
            params = (
                b"\x05\x01\x80"  # we receive 128 at most
                + (
                    b"\x06\x01" + bytes([max_info])
                    if max_info < 256
                    else b"\x06\x02" + max_info.to_bytes(2, "big")
                )
                + b"\x07\x04\x00\x00\x00\x01\x08\x04\x00\x00\x00\x01"
            )
            await write(_frame(src, dst, 0x73, b"\x81\x80" + bytes([len(params)]) + params))
            continue
        if my_addr is None or dst != my_addr or src != client or assoc is None:
            if control & 0x10:
                await write(_frame(src, dst, 0x1F))  # DM: not connected
            continue
        if control == 0x53:  # DISC
            await write(_frame(src, dst, 0x73))
            return
        if control & 0x01 == 0:  # I frame
            ns = (control >> 1) & 7
            if ns != vr:
                await write(_frame(src, dst, 0x01 | (vr << 5) | 0x10))  # RR: repeat from vr
                continue
            vr = (vr + 1) & 7
            incoming += info
            if segmented:
                await write(_frame(src, dst, 0x01 | (vr << 5) | 0x10))
                continue
            apdu = bytes(incoming[3:]) if incoming[:3] == b"\xe6\xe6\x00" else b""
            incoming.clear()
            answer = b"\xe6\xe7\x00" + assoc.handle(apdu)
            out_segments = [answer[i : i + max_info] for i in range(0, len(answer), max_info)]
        elif control & 0x0F == 0x01 and out_segments:  # RR: the next segment
            pass
        else:
            continue
        seg = out_segments.pop(0)
        await write(_frame(src, dst, (vr << 5) | 0x10 | (vs << 1), seg, segmented=bool(out_segments)))
        vs = (vs + 1) & 7


async def wrapper_session(meter: DlmsMeter, read: Reader, write: Writer, *, idle: float = 120.0) -> None:
    """Serve the TCP wrapper (Green Book §7.3.3.4) until the peer goes or ``idle`` seconds pass."""
    buf = bytearray()
    assocs: dict[int, _Association] = {}
    while True:
        while len(buf) < 8 or len(buf) < 8 + int.from_bytes(buf[6:8], "big"):
            try:
                chunk = await read(idle)
            except TimeoutError:
                return
            if not chunk:
                return
            buf += chunk
        version = int.from_bytes(buf[0:2], "big")
        src, dst, n = (int.from_bytes(buf[k : k + 2], "big") for k in (2, 4, 6))
        apdu = bytes(buf[8 : 8 + n])
        del buf[: 8 + n]
        if version != 1 or dst != 1:
            continue
        assoc = assocs.setdefault(src, _Association(meter, src))
        answer = assoc.handle(apdu)
        await write(
            b"\x00\x01"
            + dst.to_bytes(2, "big")
            + src.to_bytes(2, "big")
            + len(answer).to_bytes(2, "big")
            + answer
        )


class DlmsTcpServer(TcpSessionServer):
    """The meter on a TCP port, speaking HDLC (``framing="hdlc"``) or the wrapper (``"wrapper"``)."""

    def __init__(self, meter: DlmsMeter, framing: str = "wrapper") -> None:
        if framing not in ("hdlc", "wrapper"):
            raise ValueError(f"framing {framing!r}: hdlc or wrapper")
        super().__init__()
        self.meter, self.framing = meter, framing

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def read(timeout: float) -> bytes:
            return await asyncio.wait_for(reader.read(4096), timeout)

        async def write(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        session = hdlc_session if self.framing == "hdlc" else wrapper_session
        try:
            await session(self.meter, read, write)
        except (OSError, TimeoutError, IndexError, ValueError) as exc:
            log.info("%s: session ended: %s", self.endpoint, exc)


class DlmsSerialServer(SimServer):
    """The meter's HDLC port on a serial device or pty (8N1): one session after another."""

    def __init__(self, meter: DlmsMeter, port: str, baud: int = 9600) -> None:
        self.meter, self.port, self.baud = meter, port, baud
        self.endpoint = f"serial://{port}"
        self._ser: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> DlmsSerialServer:
        import serial  # lazy: pyserial loads only when a serial port is simulated

        self._ser = serial.Serial(self.port, self.baud, timeout=0)
        self._task = asyncio.create_task(self._serve(), name=f"dlms-sim {self.port}")
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
        return bytes(self._ser.read(4096))

    async def _write(self, data: bytes) -> None:
        self._ser.write(data)
        await asyncio.to_thread(self._ser.flush)

    async def _serve(self) -> None:
        while True:
            try:
                await hdlc_session(self.meter, self._read, self._write, idle=3600.0)
            except (OSError, IndexError, ValueError) as exc:
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


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def serve_dlms_serial(meter: DlmsMeter, port: str, baud: int = 9600) -> DlmsSerialServer:
    """Serve ``meter`` over HDLC on a serial device or pty."""
    return await DlmsSerialServer(meter, port, baud).start()


async def serve_dlms_tcp(
    meter: DlmsMeter, host: str = "127.0.0.1", port: int = 0, framing: str = "wrapper"
) -> DlmsTcpServer:
    """Serve ``meter`` on ``host:port`` (port 0: a free one, see ``.endpoint``)."""
    return await DlmsTcpServer(meter, framing).start(host, port)


async def dlms_simulator(ctx: SimContext) -> SimServer:
    """Simulator factory for ``kind: dlms`` buses (``meterhub demo``): seed 002's meter where the bus
    points, in the bus's framing (mode-e: the optical port, IEC 62056-21 then HDLC)."""
    bus = ctx.bus
    meter = DlmsMeter(wall=ctx.model.clock)
    framing = bus.dlms_framing
    if framing == "mode-e":

        async def hdlc(read: Reader, write: Writer) -> None:
            await hdlc_session(meter, read, write)

        optical = IecMeter(ctx.model, wall=ctx.model.clock)
        if bus.serial:
            return await serve_iec_serial(optical, bus.serial, hdlc=hdlc)
        return await serve_iec_tcp(optical, bus.host, bus.port or 0, hdlc=hdlc)
    if bus.serial:
        return await serve_dlms_serial(meter, bus.serial, bus.baud)
    return await serve_dlms_tcp(meter, bus.host, bus.port or 0, framing=framing)


register_simulator(BusKind.DLMS, dlms_simulator)
