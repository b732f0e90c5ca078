"""Bad frames never crash: every decoder, fed arbitrary bytes, either decodes or raises our own typed
error (which the sources count in the device status); property-based with hypothesis."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meterhub.drivers.dlms import hdlc
from meterhub.drivers.dlms.apdu import (
    parse_aare,
    parse_action_response,
    parse_get_response,
    parse_set_response,
)
from meterhub.drivers.dlms.axdr import decode_data
from meterhub.drivers.dlms.errors import DlmsError
from meterhub.drivers.iec62056.errors import Iec62056Error
from meterhub.drivers.iec62056.protocol import parse_data_message, parse_identification, parse_option_select

SETTINGS = settings(max_examples=300, deadline=None)


@SETTINGS
@given(st.binary(max_size=300))
def test_dlms_decoders_raise_only_our_errors(data: bytes) -> None:
    for decode in (
        hdlc.decode_frame,
        parse_aare,
        parse_get_response,
        parse_set_response,
        parse_action_response,
    ):
        try:
            decode(data)
        except DlmsError:
            pass
    try:
        decode_data(data)
    except DlmsError:
        pass


@SETTINGS
@given(st.binary(max_size=300))
def test_get_responses_with_a_valid_head_and_random_data(data: bytes) -> None:
    try:
        parse_get_response(b"\xc4\x01\xc1\x00" + data)
        parse_get_response(b"\xc4\x03\xc1" + data)
    except DlmsError:
        pass


@SETTINGS
@given(st.binary(max_size=400))
def test_frame_splitting_never_loses_its_footing(data: bytes) -> None:
    good = hdlc.encode_frame(hdlc.server_address(1), hdlc.client_address(16), hdlc.UA)
    buf = bytearray(data + good)
    frames = hdlc.split_frames(buf)
    decoded = []
    for f in frames:
        try:
            decoded.append(hdlc.decode_frame(f))
        except DlmsError:
            pass
    # noise before a frame is dropped (or cut out as frames that fail their FCS); the frame is found
    assert any(d.control == hdlc.UA for d in decoded)


@SETTINGS
@given(st.binary(max_size=300))
def test_iec62056_decoders_raise_only_our_errors(data: bytes) -> None:
    for decode in (parse_data_message, parse_identification, parse_option_select):
        try:
            decode(data)
        except Iec62056Error:
            pass
    try:
        parse_data_message(b"\x02" + data + b"!\r\n\x03\x00")
    except Iec62056Error:
        pass
