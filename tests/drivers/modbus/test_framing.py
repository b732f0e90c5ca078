"""The framer alone (pure): requests built byte for byte, answers cut out of a stream and checked."""

from __future__ import annotations

import pytest

from meterhub.drivers.modbus.errors import ModbusCrcError, ModbusExceptionResponse, ModbusFrameError
from meterhub.drivers.modbus.framing import Request, check_answer, crc16, cut_rtu, cut_tcp, rtu_adu, tcp_adu


def test_read_request_is_the_manuals_frame() -> None:
    # Eastron SDM320Y manual §4.3 "Send: 01 04 01 56 00 02 90 27"
    assert rtu_adu(1, Request(1, 4, 0x0156, 2).pdu()) == bytes.fromhex("01 04 01 56 00 02 90 27")
    assert tcp_adu(7, 1, Request(1, 4, 0x0156, 2).pdu()) == bytes.fromhex(
        "00 07 00 00 00 06 01 04 01 56 00 02"
    )


def test_write_requests_carry_their_values() -> None:
    assert Request(3, 6, 0x0010, 1, b"\x12\x34").pdu() == bytes.fromhex("06 00 10 12 34")
    assert Request(3, 16, 0x0010, 2, b"\x00\x01\x00\x02").pdu() == bytes.fromhex(
        "10 00 10 00 02 04 00 01 00 02"
    )


def test_a_tcp_frame_is_cut_at_its_mbap_length_and_waits_for_the_rest() -> None:
    frame = bytes.fromhex("00 07 00 00 00 07 01 04 04 43 66 00 00")
    assert cut_tcp(frame[:-1]) is None
    assert cut_tcp(frame + b"\x00\x08") == (7, 1, bytes.fromhex("04 04 43 66 00 00"), 13)
    with pytest.raises(ModbusFrameError, match="protocol id 1, length 7"):
        cut_tcp(bytes.fromhex("00 07 00 01 00 07 01 04"))


def test_an_rtu_frame_is_cut_by_its_function_code_and_byte_count() -> None:
    body = bytes.fromhex("01 04 04 43 66 00 00")
    frame = body + crc16(body)
    assert cut_rtu(frame[:8]) is None
    assert cut_rtu(frame + b"\x01") == (1, bytes.fromhex("04 04 43 66 00 00"), 9)
    exc = bytes.fromhex("01 84 02")
    assert cut_rtu(exc + crc16(exc)) == (1, bytes.fromhex("84 02"), 5)
    with pytest.raises(ModbusCrcError):
        cut_rtu(body + b"\x00\x00")


def test_answers_are_checked_against_the_request() -> None:
    req = Request(1, 4, 0, 2)
    assert check_answer(req, bytes.fromhex("04 04 43 66 00 00")) == [0x4366, 0x0000]
    assert check_answer(Request(1, 1, 0, 10), bytes.fromhex("01 02 05 02")) == [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    with pytest.raises(ModbusExceptionResponse, match="exception 02 \\(illegal data address\\)"):
        check_answer(req, bytes.fromhex("84 02"))
    with pytest.raises(ModbusFrameError, match="function code 3 to a request with function code 4"):
        check_answer(req, bytes.fromhex("03 04 43 66 00 00"))
    with pytest.raises(ModbusFrameError, match="byte count 8 but 4 data bytes follow"):
        check_answer(req, bytes.fromhex("04 08 43 66 00 00"))
