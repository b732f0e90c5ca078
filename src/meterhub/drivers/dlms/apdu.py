"""xDLMS APDUs of a client using logical-name referencing without ciphering (pure).

DLMS UA Green Book Ed. 9 §9.3 (COSEM application layer) and §11 (the AARQ/AARE examples):

* AARQ ``60`` (BER, ISO/IEC 8650-1): application-context-name LN no ciphering
  ``2.16.756.5.8.1.1`` (``A1 09 06 07 60 85 74 05 08 01 01``); for low level security the
  acse-requirements ``8A 02 07 80``, mechanism-name LLS ``2.16.756.5.8.2.1``
  (``8B 07 60 85 74 05 08 02 01``) and the password as calling-authentication-value
  ``AC len 80 len password``; user-information ``BE 10 04 0E`` with the xDLMS InitiateRequest
  ``01 00 00 00 06 5F 1F 04 00 <conformance 3> <max receive PDU 2>``;
* AARE ``61``: association-result ``A2 03 02 01 r`` (0 accepted, 1 rejected-permanent),
  result-source-diagnostic ``A3 05 A1 03 02 01 d`` (acse-service-user: 13 authentication failure …),
  user-information with the InitiateResponse ``08 00 06 5F 1F 04 00 <conformance> <max PDU> 00 07``;
* GET-Request ``C0`` normal ``01`` / next ``02`` / with-list ``03``; GET-Response ``C4`` normal ``01``
  / with-datablock ``02`` / with-list ``03``; RLRQ ``62`` / RLRE ``63``.

An attribute descriptor is class-id (2 bytes), logical name (6 bytes OBIS) and attribute id (1 byte)
followed by the access-selection (absent ``00``, or ``01`` selector and parameters, Blue Book §4.4.5
selective access of Profile generic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meterhub.drivers.dlms.axdr import decode_data, decode_length, encode_length
from meterhub.drivers.dlms.errors import DlmsApduError

__all__ = [
    "ACCESS_RESULTS",
    "CONFORMANCE",
    "AareResult",
    "AttributeRef",
    "GetResponse",
    "aarq",
    "get_request",
    "get_request_next",
    "get_request_with_list",
    "parse_aare",
    "parse_get_response",
    "action_request",
    "parse_action_response",
    "parse_set_response",
    "rlrq",
    "set_request",
]

#: Application context name "LN referencing, no ciphering" (Green Book §9.4.2.2.2).
LN_NO_CIPHERING = bytes.fromhex("60857405080101")
#: Authentication mechanism name "low level security" (Green Book §9.4.2.2.3).
MECHANISM_LLS = bytes.fromhex("60857405080201")
#: Conformance the client proposes: priority-mgmt, attribute0-get, block-transfer with GET, SET and
#: ACTION, multiple-references, get, set, selective-access, event-notification, action (Green Book
#: §9.4.6.1: bits 9–14, 19–23) = 00 7E 1F.
CONFORMANCE = bytes.fromhex("007E1F")
#: DataAccessResult (Green Book §9.3, Blue Book): the reasons a meter refuses an attribute.
ACCESS_RESULTS = {
    0: "success",
    1: "hardware-fault",
    2: "temporary-failure",
    3: "read-write-denied",
    4: "object-undefined",
    9: "object-class-inconsistent",
    11: "object-unavailable",
    12: "type-unmatched",
    13: "scope-of-access-violated",
    14: "data-block-unavailable",
    15: "long-get-aborted",
    16: "no-long-get-in-progress",
    17: "long-set-aborted",
    18: "no-long-set-in-progress",
    19: "data-block-number-invalid",
    250: "other-reason",
}
#: acse-service-user diagnostics of a refused association (ISO/IEC 8650-1, Green Book §9.4.2.2.4).
ASSOCIATION_DIAGNOSTICS = {
    0: "null",
    1: "no reason given",
    2: "application context name not supported",
    11: "authentication mechanism name not recognised",
    12: "authentication mechanism name required",
    13: "authentication failure",
    14: "authentication required",
}


def aarq(password: bytes | None = None, *, max_pdu: int = 0xFFFF, conformance: bytes = CONFORMANCE) -> bytes:
    """The AARQ of a client: no security when ``password`` is None, else low level security (LLS)."""
    initiate = b"\x01\x00\x00\x00\x06\x5f\x1f\x04\x00" + conformance + max_pdu.to_bytes(2, "big")
    body = b"\xa1\x09\x06\x07" + LN_NO_CIPHERING
    if password is not None:
        body += b"\x8a\x02\x07\x80"
        body += b"\x8b\x07" + MECHANISM_LLS
        auth = b"\x80" + encode_length(len(password)) + password
        body += b"\xac" + encode_length(len(auth)) + auth
    user = b"\x04" + encode_length(len(initiate)) + initiate
    body += b"\xbe" + encode_length(len(user)) + user
    return b"\x60" + encode_length(len(body)) + body


@dataclass(frozen=True, slots=True)
class AareResult:
    """What an AARE says: accepted, the diagnostic (``ASSOCIATION_DIAGNOSTICS``), the negotiated
    conformance (3 bytes) and the server's maximum receive PDU size [bytes]."""

    accepted: bool
    diagnostic: int
    conformance: bytes = b""
    max_pdu: int = 0

    @property
    def reason(self) -> str:
        return ASSOCIATION_DIAGNOSTICS.get(self.diagnostic, f"diagnostic {self.diagnostic}")


def _ber_items(data: bytes, pos: int, end: int) -> list[tuple[int, bytes]]:
    items = []
    while pos < end:
        tag = data[pos]
        n, p = decode_length(data, pos + 1)
        if p + n > end:
            raise DlmsApduError(f"BER element 0x{tag:02X} runs past the end of the APDU")
        items.append((tag, bytes(data[p : p + n])))
        pos = p + n
    return items


def parse_aare(apdu: bytes) -> AareResult:
    """Decode an AARE; :class:`DlmsApduError` when it is not one."""
    if not apdu or apdu[0] != 0x61:
        raise DlmsApduError(f"expected an AARE (0x61), got {apdu[:8].hex(' ') or 'nothing'}")
    n, pos = decode_length(apdu, 1)
    if pos + n > len(apdu):
        raise DlmsApduError("AARE cut off")
    result, diagnostic = None, 0
    conformance, max_pdu = b"", 0
    for tag, value in _ber_items(apdu, pos, pos + n):
        if tag == 0xA2 and len(value) == 3 and value[0] == 0x02:
            result = value[2]
        elif tag == 0xA3 and len(value) >= 5:
            diagnostic = value[-1]
        elif tag == 0xBE and len(value) > 2 and value[0] == 0x04:
            ui = value[2:]
            if ui[:1] == b"\x08" and len(ui) >= 14:  # InitiateResponse
                conformance = bytes(ui[7:10])
                max_pdu = int.from_bytes(ui[10:12], "big")
    if result is None:
        raise DlmsApduError("AARE without association-result")
    return AareResult(result == 0, diagnostic, conformance, max_pdu)


@dataclass(frozen=True, slots=True)
class AttributeRef:
    """class id, logical name (OBIS, 6 bytes), attribute id, and access selection (selector, A-XDR
    parameters) or None."""

    class_id: int
    obis: bytes
    attribute: int
    access: tuple[int, bytes] | None = None

    def encode(self) -> bytes:
        if len(self.obis) != 6:
            raise ValueError("a logical name is 6 bytes")
        out = self.class_id.to_bytes(2, "big") + self.obis + bytes([self.attribute])
        if self.access is None:
            return out + b"\x00"
        return out + b"\x01" + bytes([self.access[0]]) + self.access[1]


def get_request(invoke: int, ref: AttributeRef) -> bytes:
    """GET-Request-Normal; ``invoke`` is the invoke-id-and-priority byte (0xC1: id 1, high priority,
    confirmed)."""
    return bytes([0xC0, 0x01, invoke]) + ref.encode()


def get_request_next(invoke: int, block: int) -> bytes:
    """GET-Request-Next: ask for data block ``block`` + 1 after ``block`` was received."""
    return bytes([0xC0, 0x02, invoke]) + block.to_bytes(4, "big")


def get_request_with_list(invoke: int, refs: list[AttributeRef]) -> bytes:
    """GET-Request-With-List: several attributes in one request."""
    return bytes([0xC0, 0x03, invoke]) + encode_length(len(refs)) + b"".join(r.encode() for r in refs)


def rlrq() -> bytes:
    """Release request (RLRQ) with reason normal (Green Book §9.4.2.3)."""
    return b"\x62\x03\x80\x01\x00"


@dataclass(frozen=True, slots=True)
class GetResponse:
    """A decoded GET-Response.

    kind : 1 normal, 2 with data block, 3 with list. results : (data, None) or (None, access result)
    per attribute. last_block, block_number, raw : the data block of kind 2 (``raw`` is part of an
    encoded Data).
    """

    kind: int
    invoke: int
    results: list[tuple[Any, int | None]]
    last_block: bool = True
    block_number: int = 0
    raw: bytes = b""


def _result(apdu: bytes, pos: int) -> tuple[tuple[Any, int | None], int]:
    if pos >= len(apdu):
        raise DlmsApduError("GET-Response cut off before its result")
    choice = apdu[pos]
    if choice == 0:
        value, pos = decode_data(apdu, pos + 1)
        return (value, None), pos
    if choice == 1 and pos + 1 < len(apdu):
        return (None, apdu[pos + 1]), pos + 2
    raise DlmsApduError(f"GET-Response result choice {choice} at byte {pos}")


def parse_get_response(apdu: bytes) -> GetResponse:
    """Decode a GET-Response (normal, with data block, with list)."""
    if len(apdu) < 4 or apdu[0] != 0xC4:
        if apdu[:1] == b"\xd8" and len(apdu) >= 3:  # Exception-Response (Green Book §9.3.5)
            raise DlmsApduError(f"exception response: state error {apdu[1]}, service error {apdu[2]}")
        raise DlmsApduError(f"expected a GET-Response (0xC4), got {apdu[:8].hex(' ') or 'nothing'}")
    kind, invoke = apdu[1], apdu[2]
    if kind == 1:
        result, pos = _result(apdu, 3)
        return GetResponse(1, invoke, [result])
    if kind == 2:
        if len(apdu) < 10:
            raise DlmsApduError("GET-Response-With-Datablock cut off")
        last = apdu[3] != 0
        block = int.from_bytes(apdu[4:8], "big")
        if apdu[8] == 1:
            return GetResponse(2, invoke, [(None, apdu[9])], last, block)
        n, pos = decode_length(apdu, 9)
        if pos + n > len(apdu):
            raise DlmsApduError(f"data block {block} says {n} bytes, {len(apdu) - pos} arrived")
        return GetResponse(2, invoke, [], last, block, bytes(apdu[pos : pos + n]))
    if kind == 3:
        count, pos = decode_length(apdu, 3)
        results = []
        for _ in range(count):
            r, pos = _result(apdu, pos)
            results.append(r)
        return GetResponse(3, invoke, results)
    raise DlmsApduError(f"GET-Response of unknown kind {kind}")


def set_request(invoke: int, ref: AttributeRef, value: bytes) -> bytes:
    """SET-Request-Normal (Green Book §9.3.7): attribute descriptor, access selection, the A-XDR value."""
    return bytes([0xC1, 0x01, invoke]) + ref.encode() + value


def parse_set_response(apdu: bytes) -> int:
    """The data-access-result of a SET-Response-Normal (0: success)."""
    if len(apdu) < 4 or apdu[0] != 0xC5 or apdu[1] != 0x01:
        if apdu[:1] == b"\xd8" and len(apdu) >= 3:
            raise DlmsApduError(f"exception response: state error {apdu[1]}, service error {apdu[2]}")
        raise DlmsApduError(f"expected a SET-Response (0xC5 01), got {apdu[:8].hex(' ') or 'nothing'}")
    return apdu[3]


def action_request(invoke: int, class_id: int, obis: bytes, method: int, parameter: bytes | None) -> bytes:
    """ACTION-Request-Normal (Green Book §9.3.8): method descriptor and optional A-XDR parameter."""
    head = bytes([0xC3, 0x01, invoke]) + class_id.to_bytes(2, "big") + obis + bytes([method])
    return head + (b"\x01" + parameter if parameter is not None else b"\x00")


def parse_action_response(apdu: bytes) -> tuple[int, Any]:
    """(action-result, returned data or None) of an ACTION-Response-Normal."""
    if len(apdu) < 4 or apdu[0] != 0xC7 or apdu[1] != 0x01:
        if apdu[:1] == b"\xd8" and len(apdu) >= 3:
            raise DlmsApduError(f"exception response: state error {apdu[1]}, service error {apdu[2]}")
        raise DlmsApduError(f"expected an ACTION-Response (0xC7 01), got {apdu[:8].hex(' ') or 'nothing'}")
    result = apdu[3]
    if len(apdu) > 5 and apdu[4] == 1 and apdu[5] == 0:
        return result, decode_data(apdu, 6)[0]
    return result, None
