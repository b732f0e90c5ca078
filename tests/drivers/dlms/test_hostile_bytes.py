"""Bad frames never crash: every decoder, fed arbitrary bytes, either decodes or raises our own typed
error (which the sources count in the device status); property-based with hypothesis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

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
from meterhub.sim.dlms import DlmsMeter, hdlc_session, wrapper_session

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


def _feed(
    chunks: list[bytes],
) -> tuple[Callable[[float], Awaitable[bytes]], Callable[[bytes], Awaitable[None]]]:
    queue = [*chunks, b""]  # then the peer goes away

    async def read(timeout: float) -> bytes:
        return queue.pop(0) if queue else b""

    async def write(data: bytes) -> None:
        return None

    return read, write


EMULATOR = DlmsMeter()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_the_emulator_survives_hostile_bytes(chunks: list[bytes]) -> None:
    """The simulated meter's sessions end when the peer goes, whatever it sent (a session that raised
    would only end its own connection, but must not)."""
    snrm = hdlc.encode_frame(hdlc.server_address(1), hdlc.client_address(0x11), hdlc.SNRM)
    asyncio.run(hdlc_session(EMULATOR, *_feed([snrm, *chunks])))
    asyncio.run(wrapper_session(EMULATOR, *_feed([b"\x00\x01\x00\x11\x00\x01\x00\x03\x60\x01\x00", *chunks])))


_APDU = st.builds(
    lambda tag, kind, rest: bytes([tag, kind]) + rest,
    st.sampled_from([0xC0, 0xC1, 0xC3, 0x60, 0x62, 0x00]),
    st.integers(0, 4),
    st.binary(max_size=60),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_APDU, max_size=4))
def test_the_emulator_survives_hostile_apdus_in_valid_frames(apdus: list[bytes]) -> None:
    """Random APDUs in frames with a correct FCS (and after an accepted AARQ) reach the application
    layer: it answers or ignores them, never raises."""
    server, client = hdlc.server_address(1), hdlc.client_address(0x10)  # public: no password needed
    aarq_apdu = bytes.fromhex("601da109060760857405080101be10040e01000000065f1f0400007e1fffff")
    frames = [hdlc.encode_frame(server, client, hdlc.SNRM)]
    frames.append(hdlc.encode_frame(server, client, hdlc.i_control(0, 0), hdlc.LLC_REQUEST + aarq_apdu))
    for k, apdu in enumerate(apdus, start=1):
        frames.append(hdlc.encode_frame(server, client, hdlc.i_control(k, k), hdlc.LLC_REQUEST + apdu))
    asyncio.run(hdlc_session(EMULATOR, *_feed(frames)))
    wrapped = [b"\x00\x01\x00\x10\x00\x01" + len(a).to_bytes(2, "big") + a for a in [aarq_apdu, *apdus]]
    asyncio.run(wrapper_session(EMULATOR, *_feed(wrapped)))
