"""Golden frames of our DLMS client: HDLC, AARQ/AARE, GET request and response APDUs, written out by
hand from the DLMS UA Green Book Ed. 9 (§8.4 HDLC frame format, §9.4 AARQ/AARE encoding, §9.3 GET)
and cross-checked byte for byte with gurux-dlms (test-only peer) where it builds the same message."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from gurux_dlms import GXByteBuffer, GXDateTime, GXDLMSClient
from gurux_dlms.enums import Authentication, DataType, InterfaceType
from gurux_dlms.GXDLMSSettings import GXDLMSSettings
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.objects import GXDLMSRegister

from meterhub.drivers.dlms import hdlc
from meterhub.drivers.dlms.apdu import (
    AttributeRef,
    aarq,
    get_request,
    get_request_next,
    get_request_with_list,
    parse_aare,
    parse_get_response,
    rlrq,
)
from meterhub.drivers.dlms.axdr import Enum, decode_data
from meterhub.drivers.dlms.client import decode_datetime, encode_datetime, obis_bytes
from meterhub.drivers.dlms.errors import DlmsApduError, DlmsFrameError

H = bytes.fromhex
CLIENT = hdlc.client_address(0x10)  # public client 0x10 → 0x21
SERVER = hdlc.server_address(1)  # logical device 1 → 0x03

# (name, bytes we build, bytes written out by hand)
GOLDEN = [
    # SNRM without parameters: 7E A0 07 | dst 03 | src 21 | control 93 | FCS 0F 01 | 7E
    ("snrm", hdlc.encode_frame(SERVER, CLIENT, hdlc.SNRM), H("7ea00703219 30f017e".replace(" ", ""))),
    ("disc", hdlc.encode_frame(SERVER, CLIENT, hdlc.DISC), H("7ea00703215303c77e")),
    # AARQ, LN referencing without ciphering, no security: 29 bytes of elements (0x1D)
    (
        "aarq none",
        aarq(None, max_pdu=0xFFFF),
        H("601d a109060760857405080101 be10040e01000000065f1f0400007e1fffff".replace(" ", "")),
    ),
    # AARQ with LLS, password "12345678": + acse-requirements, mechanism name, calling-authentication-value
    (
        "aarq lls",
        aarq(b"12345678", max_pdu=0xFFFF),
        H(
            (
                "6036 a109060760857405080101 8a020780 8b0760857405080201 ac0a80083132333435363738"
                " be10040e01000000065f1f0400007e1fffff"
            ).replace(" ", "")
        ),
    ),
    # GET-Request-Normal of register 1.0.1.8.0.255 attribute 2, invoke-id-and-priority C1
    (
        "get",
        get_request(0xC1, AttributeRef(3, obis_bytes("1.0.1.8.0.255"), 2)),
        H("c001c1000301000108 00ff0200".replace(" ", "")),
    ),
    ("get next", get_request_next(0xC1, 1), H("c002c100000001")),
    (
        "get with list",
        get_request_with_list(
            0xC1,
            [
                AttributeRef(3, obis_bytes("1.0.1.8.0.255"), 2),
                AttributeRef(3, obis_bytes("1.0.1.8.0.255"), 3),
            ],
        ),
        H("c003c102 0003010001 0800ff0200 0003010001 0800ff0300".replace(" ", "")),
    ),
    ("rlrq", rlrq(), H("6203800100")),
]


@pytest.mark.parametrize(("name", "built", "wire"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_client_messages_encode_to_the_golden_bytes(name: str, built: bytes, wire: bytes) -> None:
    assert built.hex(" ") == wire.hex(" ")


def test_the_crc_is_crc16_x25() -> None:
    assert hdlc.crc16(b"123456789") == 0x906E  # the check value of CRC-16/X.25 (ISO/IEC 13239)


def test_our_frames_equal_gurux_frames() -> None:
    g = GXDLMSClient(True, 0x10, 1, Authentication.NONE, None, InterfaceType.HDLC)
    assert bytes(g.snrmRequest()) == hdlc.encode_frame(SERVER, CLIENT, hdlc.SNRM)
    (g_aarq,) = g.aarqRequest()
    ours = hdlc.encode_frame(
        SERVER, CLIENT, hdlc.i_control(0, 0), hdlc.LLC_REQUEST + aarq(None, conformance=H("401e5d"))
    )
    assert bytes(g_aarq) == ours  # gurux proposes conformance 40 1E 5D; with it the frames are equal
    (g_read,) = g.read(GXDLMSRegister("1.0.1.8.0.255"), 2)
    ours = hdlc.encode_frame(
        SERVER,
        CLIENT,
        hdlc.i_control(1, 1),
        hdlc.LLC_REQUEST + get_request(0xC1, AttributeRef(3, obis_bytes("1.0.1.8.0.255"), 2)),
    )
    assert (
        bytes(g_read).hex(" ")
        == ours.hex(" ")
        == "7e a0 19 03 21 32 6f d8 e6 e6 00 c0 01 c1 00 03 01 00 01 08 00 ff 02 00 32 68 7e"
    )


def test_lls_aarq_equals_gurux() -> None:
    g = GXDLMSClient(True, 0x11, 1, Authentication.LOW, "12345678", InterfaceType.WRAPPER)
    (frame,) = g.aarqRequest()
    assert bytes(frame)[8:] == aarq(b"12345678", conformance=H("401e5d"))  # after the 8-byte wrapper header


@pytest.mark.parametrize(
    ("logical", "physical", "size", "wire"),
    [(1, None, 1, "03"), (1, 17, 2, "02 23"), (1, 17, 4, "00 02 00 23"), (0x3FFF, 0x3FFF, 4, "fe fe fe ff")],
)
def test_server_address_sizes(logical: int, physical: int | None, size: int, wire: str) -> None:
    addr = hdlc.server_address(logical, physical, size)
    assert addr.hex(" ") == wire
    frame = hdlc.decode_frame(hdlc.encode_frame(addr, CLIENT, hdlc.SNRM))
    assert frame.dst == addr and frame.src == CLIENT


def test_segmented_i_frame_round_trips() -> None:
    raw = hdlc.encode_frame(
        SERVER, CLIENT, hdlc.i_control(3, 5), b"\xe6\xe6\x00" + bytes(range(40)), segmented=True
    )
    assert raw[1] == 0xA8  # format type 3 with the segmentation bit
    f = hdlc.decode_frame(raw)
    assert f.segmented and f.is_i and (f.ns, f.nr) == (3, 5) and f.info[3:] == bytes(range(40))


@pytest.mark.parametrize(("offset", "message"), [(-2, "FCS"), (5, "HCS")])
def test_a_corrupted_frame_is_refused(offset: int, message: str) -> None:
    raw = bytearray(hdlc.encode_frame(SERVER, CLIENT, hdlc.i_control(0, 0), b"\xe6\xe6\x00\xc0"))
    raw[offset if offset > 0 else len(raw) + offset] ^= 0x10
    if message == "HCS":  # an intact FCS over a corrupted header check: only the HCS catches it
        body = bytes(raw[1:-3])
        raw[-3:-1] = hdlc.crc16(body).to_bytes(2, "little")
    with pytest.raises(DlmsFrameError, match=message):
        hdlc.decode_frame(bytes(raw))


def test_frames_are_cut_out_of_noise() -> None:
    a = hdlc.encode_frame(SERVER, CLIENT, hdlc.SNRM)
    b = hdlc.encode_frame(SERVER, CLIENT, hdlc.DISC)
    buf = bytearray(b"\x00\x7e\x7e\x01garbage" + a + b[1:] + b"\x7e\xa0")  # b shares a's closing flag
    frames = hdlc.split_frames(buf)
    assert frames == [a, b]
    assert buf == bytearray(b"\x7e\xa0")  # an incomplete frame waits for more


def test_aare_accepted_and_refused() -> None:
    accepted = H(
        "6129 a109060760857405080101 a203020100 a305a103020100 be10040e0800065f1f040000121d040000 07".replace(
            " ", ""
        )
    )
    r = parse_aare(accepted)
    assert r.accepted and r.conformance == H("00121d") and r.max_pdu == 0x0400
    refused = H("6117 a109060760857405080101 a203020101 a305a10302010d".replace(" ", ""))
    r = parse_aare(refused)
    assert not r.accepted and r.diagnostic == 13 and r.reason == "authentication failure"
    with pytest.raises(DlmsApduError, match="expected an AARE"):
        parse_aare(H("c401c10000"))


def test_get_responses_decode() -> None:
    # double-long-unsigned 12345 Wh
    assert parse_get_response(H("c401c100060000 3039".replace(" ", ""))).results == [(12345, None)]
    # scaler_unit {-1, V}
    assert parse_get_response(H("c401c10002020fff1623")).results == [((-1, Enum(35)), None)]
    # data-access-result object-undefined (4)
    assert parse_get_response(H("c401c10104")).results == [(None, 4)]
    # first data block, not the last, 3 bytes of raw data
    block = parse_get_response(H("c402c1 00 00000001 00 03 060000".replace(" ", "")))
    assert (block.kind, block.last_block, block.block_number, block.raw) == (2, False, 1, H("060000"))
    listed = parse_get_response(H("c403c102 00 1200e6 01 03".replace(" ", "")))
    assert listed.results == [(230, None), (None, 3)]
    with pytest.raises(DlmsApduError, match="cut off"):
        parse_get_response(H("c401c100060000"))


def test_clock_date_time_decodes() -> None:
    # 2026-12-06 (Sunday = 7) 12:30:15.50, deviation 0, status 0 (Blue Book §4.1.6.1)
    t = decode_datetime(H("07ea0c06070c1e0f320000 00".replace(" ", "")))
    assert t is not None and t.isoformat() == "2026-12-06T12:30:15.500000+00:00"
    assert decode_datetime(H("ffffffffffffffffff800000")) is None


def test_nested_data_decodes() -> None:
    # array of 1 structure {octet-string(2), long -5, boolean true}
    value, end = decode_data(H("0101 0203 09020102 10fffb 0301".replace(" ", "")))
    assert value == [(b"\x01\x02", -5, True)] and end == 13


def test_deviation_sign_equals_gurux() -> None:
    """Blue Book §4.1.6.1: deviation in minutes of local time to UTC — gurux writes −120 (FF 88) for
    01:00 CEST (UTC+2); so do we, with the daylight-saving status bit set."""
    t = datetime(2026, 10, 25, 1, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    b = GXByteBuffer()
    _GXCommon.setData(GXDLMSSettings(False, None), b, DataType.DATETIME, GXDateTime(t))
    theirs = bytes.fromhex(b.toHex().replace(" ", ""))[1:13]  # after the date-time tag 0x19
    ours = encode_datetime(t)
    assert ours[9:11] == theirs[9:11] == H("ff88")
    assert ours[:4] + ours[5:9] == theirs[:4] + theirs[5:9]  # date and time (gurux leaves the weekday out)
    assert ours[11] == 0x80 and decode_datetime(ours) == t
