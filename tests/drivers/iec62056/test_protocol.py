"""IEC 62056-21 messages: golden frames written by hand from IEC 62056-21:2002 §6.3 (the message formats)
and checked character by character."""

from __future__ import annotations

import pytest

from meterhub.drivers.iec62056.errors import BccError, FrameError
from meterhub.drivers.iec62056.protocol import (
    DataSet,
    Identification,
    Mode,
    bcc,
    data_message,
    obis_values,
    option_select,
    parse_data_message,
    parse_identification,
    parse_option_select,
    sign_on,
)
from meterhub.profiles.obis import ObisCode

# §6.3.1 request, §6.3.3 acknowledgement/option select (V Z Y), written out as bytes
GOLDEN_REQUESTS = [
    (sign_on(), b"/?!\r\n"),
    (sign_on("12345678"), b"/?12345678!\r\n"),
    (option_select("5"), b"\x06050\r\n"),  # readout at 9600 bd (Z = 5)
    (option_select("0"), b"\x06000\r\n"),  # readout, stay at 300 bd
    (option_select("5", protocol="2", mode="2"), b"\x06252\r\n"),  # mode E: binary HDLC at 9600 bd
]


@pytest.mark.parametrize(("built", "wire"), GOLDEN_REQUESTS)
def test_requests_encode_to_the_golden_bytes(built: bytes, wire: bytes) -> None:
    assert built == wire


def test_an_empty_data_message_has_the_bcc_computed_by_hand() -> None:
    # BCC = '!' 0x21 ^ CR 0x0D ^ LF 0x0A ^ ETX 0x03 = 0x2C ^ 0x0A ^ 0x03 = 0x26 ^ 0x03 = 0x25 ('%')
    assert data_message([]) == b"\x02!\r\n\x03%"
    assert parse_data_message(b"\x02!\r\n\x03%") == []


def test_a_data_message_round_trips_with_its_bcc() -> None:
    # "1.8.0(1*kWh)" XOR-folds to 0x6F ^ … — the check: BCC of the body equals the last byte
    frame = data_message(["1.8.0(000123.456*kWh)", "32.7.0(230.1*V)"])
    assert frame[:1] == b"\x02" and frame[-2:-1] == b"\x03"
    assert frame[1:-1] == b"1.8.0(000123.456*kWh)\r\n32.7.0(230.1*V)\r\n!\r\n\x03"
    assert frame[-1] == bcc(frame[1:-1])
    assert parse_data_message(frame) == [
        DataSet("1.8.0", (("000123.456", "kWh"),)),
        DataSet("32.7.0", (("230.1", "V"),)),
    ]


def test_several_data_sets_per_line_and_several_values_per_set() -> None:
    frame = data_message(
        ["1.7.0(01.250*kW)2.7.0(00.000*kW)", "1.6.0(02.50*kW)(2612061215)", "C.1.0(20260002)"]
    )
    assert parse_data_message(frame) == [
        DataSet("1.7.0", (("01.250", "kW"),)),
        DataSet("2.7.0", (("00.000", "kW"),)),
        DataSet("1.6.0", (("02.50", "kW"), ("2612061215", None))),
        DataSet("C.1.0", (("20260002", None),)),
    ]
    values, skipped = obis_values(parse_data_message(frame))
    assert [str(v.code) for v in values] == ["1.7.0", "2.7.0", "1.6.0", "96.1.0"]
    assert values[2].value == "02.50" and values[2].unit == "kW" and skipped == []


def test_a_flipped_bit_is_a_bcc_error_naming_both_characters() -> None:
    frame = bytearray(data_message(["1.8.0(000123.456*kWh)"]))
    frame[3] ^= 0x01  # '8' → '9'
    with pytest.raises(BccError, match=r"block check character 0x.. does not match the data \(0x..\)"):
        parse_data_message(bytes(frame))


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"1.8.0(1*kWh)\r\n!\r\n", "not a data message"),
        (b"\x02" + b"1.8.0(1*kWh)\r\n\x03" + bytes([bcc(b"1.8.0(1*kWh)\r\n\x03")]), "end line '!'"),
        (data_message(["1.8.0(1*kWh) garbage"]), r"data line 1 is not 'address\(value\*unit\)'"),
        (data_message(["no brackets"]), "data line 1"),
    ],
)
def test_malformed_data_messages_are_frame_errors(frame: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        parse_data_message(frame)


@pytest.mark.parametrize(
    ("line", "ident"),
    [
        # mode C at 9600 bd offering mode E (escape \2), as seed 002's optical port does
        (b"/ISk5\\2MT382-1000\r\n", Identification("ISk", "5", "MT382-1000", mode_e=True)),
        (b"/LGZ4ZMF100AC\r\n", Identification("LGZ", "4", "ZMF100AC")),  # mode C, 4800 bd
        (b"/ABCEmeter\r\n", Identification("ABC", "E", "meter")),  # mode B, 9600 bd
        (b"/ABC-meter\r\n", Identification("ABC", "-", "meter")),  # mode A
    ],
)
def test_identifications_decode(line: bytes, ident: Identification) -> None:
    assert parse_identification(line) == ident
    assert ident.encode() == line


def test_the_rate_character_decides_the_mode_and_rate() -> None:
    assert (parse_identification(b"/ISk5\\2X\r\n").mode, parse_identification(b"/ISk5\\2X\r\n").baud) == (
        Mode.C,
        9600,
    )
    assert (parse_identification(b"/ABCEX\r\n").mode, parse_identification(b"/ABCEX\r\n").baud) == (
        Mode.B,
        9600,
    )
    assert (parse_identification(b"/ABC6X\r\n").mode, parse_identification(b"/ABC6X\r\n").baud) == (
        Mode.C,
        19200,
    )
    assert (parse_identification(b"/ABC-X\r\n").mode, parse_identification(b"/ABC-X\r\n").baud) == (
        Mode.A,
        300,
    )


@pytest.mark.parametrize(
    "line", [b"ISK5X\r\n", b"/1235X\r\n", b"/AB\r\n", b"/ABC5\xff\xfe\r\n", b"/ABC5\x01\r\n"]
)
def test_garbage_is_not_an_identification(line: bytes) -> None:
    with pytest.raises(FrameError):
        parse_identification(line)


def test_option_select_decodes_readout_and_mode_e() -> None:
    assert parse_option_select(b"\x06050\r\n").is_readout
    assert parse_option_select(b"\x06252\r\n").is_mode_e
    with pytest.raises(FrameError):
        parse_option_select(b"\x0605\r\n")


def test_a_bad_device_address_is_refused() -> None:
    with pytest.raises(ValueError, match="up to 32"):
        sign_on("a!b")


def test_non_obis_addresses_are_kept_out_of_the_values() -> None:
    values, skipped = obis_values([DataSet("VENDOR_X", (("1", None),)), DataSet("1.8.0", (("2", "kWh"),))])
    assert [v.code for v in values] == [ObisCode(None, None, 1, 8, 0)] and skipped == ["VENDOR_X"]
