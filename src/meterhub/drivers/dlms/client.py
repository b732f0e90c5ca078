"""A DLMS/COSEM client: association (no security or LLS), GET (normal, with list, block transfer) and
the interface classes a meter reader needs (Blue Book, DLMS UA 1000-1 Ed. 14):

* Data (class 1): attribute 2 value;
* Register (class 3): attribute 2 value, attribute 3 scaler_unit ``{scaler: integer, unit: enum}``,
  value × 10^scaler in the unit (Blue Book §4.3.2, units Table 4);
* Demand register (class 5): current and last average value, scaler_unit, status, capture time, start
  of the current period, period [s] and number of periods (Blue Book §4.3.4);
* Clock (class 8): attribute 2 time, a date-time octet string of 12 bytes (Blue Book §4.1.6.1);
* Profile generic (class 7): attribute 3 capture_objects, attribute 4 capture_period [s], attribute 2
  buffer, read whole or with selective access by range (selector 1: restricting object, from, to,
  selected columns; Blue Book §4.3.6).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from meterhub.drivers.dlms import axdr
from meterhub.drivers.dlms.apdu import (
    ACCESS_RESULTS,
    AttributeRef,
    aarq,
    action_request,
    get_request,
    get_request_next,
    get_request_with_list,
    parse_aare,
    parse_action_response,
    parse_get_response,
    parse_set_response,
    rlrq,
    set_request,
)
from meterhub.drivers.dlms.errors import DlmsAccessError, DlmsApduError, DlmsAssociationError
from meterhub.drivers.dlms.transport import ApduTransport

__all__ = [
    "CLOCK",
    "DATA",
    "EXTENDED_REGISTER",
    "PROFILE_GENERIC",
    "REGISTER",
    "UNITS",
    "DEMAND_REGISTER",
    "CaptureObject",
    "DemandRegister",
    "DlmsClient",
    "decode_datetime",
    "encode_datetime",
    "obis_bytes",
]

DATA, REGISTER, EXTENDED_REGISTER, DEMAND_REGISTER, PROFILE_GENERIC, CLOCK, ASSOCIATION_LN = (
    1,
    3,
    4,
    5,
    7,
    8,
    15,
)
#: Blue Book Table 4 (units), the ones an electricity meter uses → symbol.
UNITS = {
    7: "s",
    9: "°C",
    23: "m³",
    27: "W",
    28: "VA",
    29: "var",
    30: "Wh",
    31: "VAh",
    32: "varh",
    33: "A",
    35: "V",
    44: "Hz",
    56: "%",
    255: "",
}
#: Data blocks of one long GET accepted at most (a runaway meter cannot keep the client forever).
MAX_BLOCKS = 100_000


def obis_bytes(code: str) -> bytes:
    """``"1.0.1.8.0.255"`` (or ``1-0:1.8.0*255``) → the 6-byte logical name."""
    parts = code.replace("-", ".").replace(":", ".").replace("*", ".").split(".")
    if len(parts) == 5:
        parts.append("255")
    if len(parts) != 6:
        raise ValueError(f"{code!r} is not a full logical name A.B.C.D.E.F")
    return bytes(int(p) for p in parts)


def decode_datetime(raw: bytes) -> datetime | None:
    """A COSEM date-time (12 bytes, Blue Book §4.1.6.1) → an aware datetime; None when unspecified.

    The deviation is "in minutes of local time to UTC" (Blue Book §4.1.6.1): UTC − local time, so
    −120 for UTC+02:00 (CEST), as gurux-dlms encodes it; 0x8000: not specified → UTC.
    """
    if len(raw) != 12:
        raise DlmsApduError(f"date-time of {len(raw)} bytes (12 expected)")
    year = int.from_bytes(raw[0:2], "big")
    month, day, _dow, hour, minute, second, hundredths = raw[2:9]
    if year == 0xFFFF or month in (0xFF, 0xFD, 0xFE) or day in (0xFF, 0xFD, 0xFE) or hour == 0xFF:
        return None
    dev = struct.unpack(">h", raw[9:11])[0]
    tz = UTC if dev == -0x8000 else timezone(timedelta(minutes=-dev))
    return datetime(
        year,
        month,
        day,
        hour,
        minute,
        second if second != 0xFF else 0,
        (hundredths if hundredths != 0xFF else 0) * 10_000,
        tzinfo=tz,
    )


def encode_datetime(t: datetime, *, status: int = 0) -> bytes:
    """An aware datetime → COSEM date-time; deviation = UTC − local time [min] (Blue Book §4.1.6.1),
    status bit 0x80 when daylight saving time is in effect."""
    off = t.utcoffset()
    dev = 0 if off is None else -int(off.total_seconds() // 60)
    dst = t.dst()
    if dst:
        status |= 0x80
    return (
        t.year.to_bytes(2, "big")
        + bytes([t.month, t.day, t.isoweekday(), t.hour, t.minute, t.second, t.microsecond // 10_000])
        + struct.pack(">h", dev)
        + bytes([status])
    )


@dataclass(frozen=True, slots=True)
class DemandRegister:
    """A Demand register (class 5, Blue Book §4.3.4) as read at one time.

    current : current_average_value × 10^scaler: the energy since ``start`` over
        number_of_periods × period, in ``unit`` (rises through the period). last : last_average_value,
        the demand of the last closed period, in ``unit``. unit : symbol (``W`` …). status : the
        meter's status of the value (its meaning is the meter's own). capture_time : when ``last``
        was computed (the end of that period). start : start_time_current, the current period's
        start. period : [s]. periods : number_of_periods (1: block demand, > 1: sliding over that many
        periods).
    """

    current: float
    last: float
    unit: str
    status: Any
    capture_time: datetime | None
    start: datetime | None
    period: int
    periods: int


@dataclass(frozen=True, slots=True)
class CaptureObject:
    """One column of a profile: class id, logical name (OBIS text), attribute and data index."""

    class_id: int
    obis: str
    attribute: int
    data_index: int = 0


def _obis_text(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)


class DlmsClient:
    """One association with one logical device over an :class:`ApduTransport`.

    password : LLS password (None: no security, the public client). max_pdu : what this client
    receives at most [bytes].
    """

    def __init__(
        self, transport: ApduTransport, *, password: bytes | None = None, max_pdu: int = 0xFFFF
    ) -> None:
        self.transport = transport
        self.password = password
        self.max_pdu = max_pdu
        self.server_max_pdu = 0
        self.conformance = b""
        self._invoke = 0
        self.requests = 0
        self.blocks = 0

    async def associate(self) -> None:
        """Connect the link and open the application association (AARQ → AARE)."""
        await self.transport.connect()
        answer = await self.transport.exchange(aarq(self.password, max_pdu=self.max_pdu))
        result = parse_aare(answer)
        if not result.accepted:
            raise DlmsAssociationError(
                f"{self.transport.endpoint}: association refused: {result.reason}", result.diagnostic
            )
        self.server_max_pdu, self.conformance = result.max_pdu, result.conformance

    async def release(self) -> None:
        """Release the association (RLRQ) and disconnect; errors are ignored."""
        try:
            await self.transport.exchange(rlrq())
        except Exception:
            pass
        await self.transport.disconnect()

    def _next_invoke(self) -> int:
        self._invoke = (self._invoke + 1) & 0x0F
        return 0xC0 | self._invoke  # high priority, confirmed service

    async def get(
        self, class_id: int, obis: str, attribute: int, access: tuple[int, bytes] | None = None
    ) -> Any:
        """One attribute; block transfer followed until the last block. :class:`DlmsAccessError` with
        the meter's data-access-result when it refuses."""
        ref = AttributeRef(class_id, obis_bytes(obis), attribute, access)
        invoke = self._next_invoke()
        self.requests += 1
        resp = parse_get_response(await self.transport.exchange(get_request(invoke, ref)))
        if resp.kind == 2:
            raw = await self._blocks(invoke, resp, f"{obis} attribute {attribute}")
            return axdr.decode_data(raw)[0]
        value, dar = resp.results[0]
        if dar is not None:
            raise DlmsAccessError(
                f"{self.transport.endpoint}: {obis} attribute {attribute}: {ACCESS_RESULTS.get(dar, dar)}",
                dar,
            )
        return value

    async def _blocks(self, invoke: int, first: Any, what: str) -> bytes:
        raw = bytearray()
        resp = first
        expected = 1
        for _ in range(MAX_BLOCKS):
            if resp.kind != 2:
                raise DlmsApduError(
                    f"{what}: a block transfer answered with a GET-Response of kind {resp.kind}"
                )
            if resp.results and resp.results[0][1] is not None:
                dar = resp.results[0][1]
                raise DlmsAccessError(
                    f"{self.transport.endpoint}: {what}: {ACCESS_RESULTS.get(dar, dar)}", dar
                )
            if resp.block_number != expected:
                raise DlmsApduError(f"{what}: data block {resp.block_number} where {expected} was expected")
            raw += resp.raw
            self.blocks += 1
            if resp.last_block:
                return bytes(raw)
            self.requests += 1
            resp = parse_get_response(
                await self.transport.exchange(get_request_next(invoke, resp.block_number))
            )
            expected += 1
        raise DlmsApduError(f"{what}: more than {MAX_BLOCKS} data blocks")

    async def get_with_list(self, refs: list[tuple[int, str, int]]) -> list[Any]:
        """Several attributes in one request; a refused one comes back as a :class:`DlmsAccessError`
        object in its place (not raised), so the others are kept."""
        invoke = self._next_invoke()
        self.requests += 1
        items = [AttributeRef(c, obis_bytes(o), a) for c, o, a in refs]
        resp = parse_get_response(await self.transport.exchange(get_request_with_list(invoke, items)))
        results = resp.results
        if resp.kind == 2:
            raw = await self._blocks(invoke, resp, "GET with list")
            n, pos = axdr.decode_length(raw, 0)
            results = []
            for _ in range(n):
                if raw[pos] == 0:
                    v, pos = axdr.decode_data(raw, pos + 1)
                    results.append((v, None))
                else:
                    results.append((None, raw[pos + 1]))
                    pos += 2
        out: list[Any] = []
        for (c, o, a), (value, dar) in zip(refs, results, strict=False):
            if dar is not None:
                out.append(DlmsAccessError(f"{o} attribute {a}: {ACCESS_RESULTS.get(dar, dar)}", dar))
            else:
                out.append(value)
            del c
        return out

    async def set(self, class_id: int, obis: str, attribute: int, value: bytes) -> None:
        """SET one attribute to an A-XDR ``value``; :class:`DlmsAccessError` when the meter refuses
        (read-write-denied for a client without the right)."""
        ref = AttributeRef(class_id, obis_bytes(obis), attribute)
        self.requests += 1
        result = parse_set_response(
            await self.transport.exchange(set_request(self._next_invoke(), ref, value))
        )
        if result != 0:
            raise DlmsAccessError(
                f"{self.transport.endpoint}: SET {obis} attribute {attribute}: {ACCESS_RESULTS.get(result, result)}",
                result,
            )

    async def action(self, class_id: int, obis: str, method: int, parameter: bytes | None = None) -> Any:
        """Invoke a method; the data it returns, or :class:`DlmsAccessError` with the action-result."""
        self.requests += 1
        apdu = action_request(self._next_invoke(), class_id, obis_bytes(obis), method, parameter)
        result, data = parse_action_response(await self.transport.exchange(apdu))
        if result != 0:
            raise DlmsAccessError(
                f"{self.transport.endpoint}: ACTION {obis} method {method}: {ACCESS_RESULTS.get(result, result)}",
                result,
            )
        return data

    async def set_clock(self, t: datetime, obis: str = "0.0.1.0.0.255") -> None:
        """Clock synchronisation by SET of the clock's time (Blue Book §4.5.1 attribute 2)."""
        await self.set(CLOCK, obis, 2, axdr.octet_string(encode_datetime(t)))

    async def shift_clock(self, seconds: int, obis: str = "0.0.1.0.0.255") -> None:
        """Clock synchronisation by ACTION shift_time (method 6, −900…900 s, Blue Book §4.5.1)."""
        if not -900 <= seconds <= 900:
            raise ValueError("shift_time takes −900…900 s")
        await self.action(CLOCK, obis, 6, b"\x10" + seconds.to_bytes(2, "big", signed=True))

    async def reset_max_demand(self, obis: str = "1.0.1.6.0.255") -> None:
        """Maximum demand reset: ACTION reset (method 1) of the extended register (Blue Book §4.3.3)."""
        await self.action(EXTENDED_REGISTER, obis, 1, axdr.integer(0))

    async def bill(self, obis: str = "0.0.98.1.0.255") -> None:
        """A billing snapshot by command: ACTION capture (method 2) of the billing profile (Blue Book
        §4.3.6; seed 002 "Billing method: Communication: Send billing command")."""
        await self.action(PROFILE_GENERIC, obis, 2, axdr.integer(0))

    # -- interface classes ----------------------------------------------------------------------
    async def read_register(self, obis: str, class_id: int = REGISTER) -> tuple[float, str]:
        """A Register's value × 10^scaler and its unit symbol (Blue Book §4.3.2)."""
        value, scaler_unit = await self.get_with_list([(class_id, obis, 2), (class_id, obis, 3)])
        for v in (value, scaler_unit):
            if isinstance(v, DlmsAccessError):
                raise v
        return scale(value, scaler_unit), unit_of(scaler_unit)

    async def read_demand_register(self, obis: str) -> DemandRegister:
        """Every attribute of a Demand register (class 5) in one GET-with-list (Blue Book §4.3.4:
        2 current_average_value, 3 last_average_value, 4 scaler_unit, 5 status, 6 capture_time,
        7 start_time_current, 8 period, 9 number_of_periods)."""
        values = await self.get_with_list([(DEMAND_REGISTER, obis, a) for a in range(2, 10)])
        for v in values:
            if isinstance(v, DlmsAccessError):
                raise v
        current, last, su, status, capture, start, period, periods = values

        def when(raw: Any) -> datetime | None:
            return decode_datetime(raw) if isinstance(raw, bytes) and len(raw) == 12 else None

        if not isinstance(period, int) or not isinstance(periods, int):
            raise DlmsApduError(f"{obis}: period {period!r} / number_of_periods {periods!r} are not integers")
        return DemandRegister(
            scale(current, su),
            scale(last, su),
            unit_of(su),
            status,
            when(capture),
            when(start),
            period,
            periods,
        )

    async def read_clock(self, obis: str = "0.0.1.0.0.255") -> datetime | None:
        raw = await self.get(CLOCK, obis, 2)
        return decode_datetime(raw) if isinstance(raw, bytes) else None

    async def object_list(self, obis: str = "0.0.40.0.0.255") -> list[tuple[int, int, str]]:
        """What the meter offers: (class id, version, logical name) of every object of the current
        association (Association LN, class 15, attribute 2; Blue Book §4.4.4)."""
        raw = await self.get(ASSOCIATION_LN, obis, 2)
        return [(int(e[0]), int(e[1]), _obis_text(e[2])) for e in raw]

    async def capture_objects(self, obis: str) -> list[CaptureObject]:
        raw = await self.get(PROFILE_GENERIC, obis, 3)
        return [CaptureObject(int(c), _obis_text(ln), int(a), int(d)) for c, ln, a, d in raw]

    async def read_profile(
        self, obis: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[tuple[Any, ...]]:
        """The buffer of a Profile generic: every entry, or those from ``start`` to ``end`` (selective
        access by range on the clock column, Blue Book §4.3.6 selector 1)."""
        access = None
        if start is not None and end is not None:
            restricting = axdr.structure(
                axdr.long_unsigned(CLOCK),
                axdr.octet_string(obis_bytes("0.0.1.0.0.255")),
                axdr.integer(2),
                axdr.long_unsigned(0),
            )
            params = axdr.structure(
                restricting,
                axdr.octet_string(encode_datetime(start)),
                axdr.octet_string(encode_datetime(end)),
                axdr.array(),
            )
            access = (1, params)
        rows = await self.get(PROFILE_GENERIC, obis, 2, access)
        return [tuple(r) for r in rows]


def scale(value: Any, scaler_unit: Any) -> float:
    """value × 10^scaler of a register (Blue Book §4.3.2)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise DlmsApduError(f"register value {value!r} is not a number")
    scaler = int(scaler_unit[0]) if isinstance(scaler_unit, tuple) and scaler_unit else 0
    # divide for negative scalers: 950 / 10^3 is 0.95, 950 × 10^-3 is 0.9500000000000001
    return float(value) / 10.0**-scaler if scaler < 0 else float(value) * 10.0**scaler


def unit_of(scaler_unit: Any) -> str:
    if isinstance(scaler_unit, tuple) and len(scaler_unit) == 2 and isinstance(scaler_unit[1], axdr.Enum):
        code = scaler_unit[1].value
        return UNITS.get(code, f"unit {code}")
    return ""
