"""Golden frames of the ADC board protocol: hand-written bytes, checked against the driver's decoder
and encoder and against the simulator's own encoder (two independent implementations of one format)."""

from __future__ import annotations

import numpy as np
import pytest

from meterhub.drivers.waveform.protocol import (
    FORMAT_FLOAT32,
    FORMAT_INT16,
    FrameError,
    decode_frame,
    decode_request,
    encode_frame,
    encode_request,
)
from meterhub.errors import DeviceError
from meterhub.sim import adc


def _hex(s: str) -> bytes:
    return bytes.fromhex(s.replace("\n", " "))


# float32 frame: sequence 7, 2 channels × 3 samples from sample 1280, fs 6400 Hz, t0 1 700 000 000.25 s
FLOAT32_FRAME = _hex(
    "4d 48 57 46"  # magic "MHWF"
    " 01 02"  # version 1, format 2 = float32
    " 02 00"  # 2 channels
    " 07 00 00 00"  # sequence 7
    " 03 00 00 00"  # 3 samples per channel
    " 00 05 00 00 00 00 00 00"  # first sample 1280 = 0x500
    " 00 00 00 00 00 00 b9 40"  # fs 6400.0 (float64)
    " 00 00 10 40 fc 54 d9 41"  # t0 1 700 000 000.25 (float64)
    " 00 00 80 3f 00 00 80 3f"  # scales 1.0, 1.0 (float32)
    " 00 00 80 3f 00 00 20 41"  # s0: 1.0, 10.0
    " 00 00 00 c0 00 00 00 00"  # s1: -2.0, 0.0
    " 00 00 00 3f 00 00 20 c1"  # s2: 0.5, -10.0
    " 48 9a 1b dd"  # CRC-32 of all of the above
)
FLOAT32_SAMPLES = np.array([[1.0, -2.0, 0.5], [10.0, 0.0, -10.0]])

# int16 frame: sequence 258, 2 channels × 3 samples from sample 65536, fs 12800 Hz, t0 0; scale = peak/32000
INT16_FRAME = _hex(
    "4d 48 57 46 01 01 02 00"  # magic, version 1, format 1 = int16, 2 channels
    " 02 01 00 00"  # sequence 258 = 0x102
    " 03 00 00 00"  # 3 samples
    " 00 00 01 00 00 00 00 00"  # first sample 65536
    " 00 00 00 00 00 00 c9 40"  # fs 12800.0
    " 00 00 00 00 00 00 00 00"  # t0 0.0
    " 00 00 00 3f 00 00 80 3b"  # scales 0.5 (16000/32000) and 2⁻⁸ (125/32000)
    " 00 7d 00 7d"  # s0: 32000, 32000
    " 80 c1 80 c1"  # s1: -16000, -16000
    " 40 1f 00 00"  # s2: 8000, 0
    " fd d5 5c 75"  # CRC-32
)
INT16_SAMPLES = np.array([[16000.0, -8000.0, 4000.0], [125.0, -62.5, 0.0]])

RESUME_1000000 = _hex("4d 48 52 51 01 00 00 00 40 42 0f 00 00 00 00 00 cf f1 7e 4c")  # "MHRQ", v1, 1 000 000
RESUME_LIVE = _hex("4d 48 52 51 01 00 00 00 ff ff ff ff ff ff ff ff d2 e5 47 03")  # wanted 2⁶⁴−1 = live


@pytest.mark.parametrize(
    ("golden", "fmt", "seq", "first", "fs", "t0", "samples"),
    [
        (FLOAT32_FRAME, FORMAT_FLOAT32, 7, 1280, 6400.0, 1_700_000_000.25, FLOAT32_SAMPLES),
        (INT16_FRAME, FORMAT_INT16, 258, 65536, 12800.0, 0.0, INT16_SAMPLES),
    ],
    ids=["float32", "int16"],
)
def test_golden_frame_decodes_and_both_encoders_write_it(
    golden: bytes, fmt: int, seq: int, first: int, fs: float, t0: float, samples: np.ndarray
) -> None:
    f = decode_frame(golden)
    assert (f.sequence, f.first_sample, f.fs, f.t0) == (seq, first, fs, t0)
    np.testing.assert_array_equal(f.samples, samples)  # every value is exact in this frame
    assert encode_frame(seq, first, fs, t0, samples, fmt) == golden
    assert adc.frame_bytes(seq, first, fs, t0, samples, fmt) == golden
    assert adc.FORMAT_INT16 == FORMAT_INT16 and adc.FORMAT_FLOAT32 == FORMAT_FLOAT32


def test_golden_resume_requests_of_client_and_board() -> None:
    assert encode_request(1_000_000) == RESUME_1000000
    assert encode_request(None) == RESUME_LIVE
    assert decode_request(RESUME_1000000) == 1_000_000 and decode_request(RESUME_LIVE) is None
    assert adc.wanted_sample(RESUME_1000000) == 1_000_000
    assert adc.wanted_sample(RESUME_LIVE) is None


def test_a_damaged_resume_request_means_live_to_the_board_and_an_error_to_the_driver() -> None:
    bad = bytearray(RESUME_1000000)
    bad[9] ^= 1
    assert adc.wanted_sample(bytes(bad)) is None
    assert adc.wanted_sample(RESUME_1000000[:-1]) is None
    with pytest.raises(FrameError, match="CRC mismatch"):
        decode_request(bytes(bad))
    with pytest.raises(FrameError, match="19 bytes"):
        decode_request(RESUME_1000000[:-1])


def test_frame_errors_are_device_errors() -> None:
    assert issubclass(FrameError, DeviceError)
    bad = bytearray(INT16_FRAME)
    bad[-1] ^= 0xFF
    with pytest.raises(DeviceError, match="frame 258: CRC mismatch"):
        decode_frame(bytes(bad))


def test_a_frame_without_a_finite_time_stamp_is_refused() -> None:
    frame = adc.frame_bytes(9, 0, 6400.0, float("nan"), FLOAT32_SAMPLES, FORMAT_FLOAT32)
    with pytest.raises(FrameError, match="frame 9: bad time stamp nan"):
        decode_frame(frame)
