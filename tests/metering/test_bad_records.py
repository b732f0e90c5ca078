"""``meterhub analyze`` on broken records: one message naming the file and what is wrong, exit 2, no traceback."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from meterhub.cli import app
from meterhub.errors import InputError
from meterhub.metering.readers import RecordError, read_record
from meterhub.sim.waveform import Tone, record_3p4w

NAMES = ["v_l1", "v_l2", "v_l3", "i_l1", "i_l2", "i_l3"]
FS = 6400.0


def _data(duration: float = 0.5) -> np.ndarray:
    cur = tuple(Tone(10.0, a - 30.0) for a in (0.0, -120.0, 120.0))
    v, i = record_3p4w(fs=FS, duration=duration, currents=cur)
    return np.vstack((v, i))


def _good_npz() -> bytes:
    buf = io.BytesIO()
    d = _data()
    np.savez(buf, fs=FS, **{n: d[k] for k, n in enumerate(NAMES)})
    return buf.getvalue()


def _npz(**arrays: object) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def _channels(**override: object) -> dict[str, object]:
    d = _data()
    out: dict[str, object] = {"fs": FS, **{n: d[k] for k, n in enumerate(NAMES)}}
    out.update(override)
    return {k: v for k, v in out.items() if v is not None}


def _zip_member(name: str, payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, payload)
    return buf.getvalue()


def _bad_crc() -> bytes:
    """A stored v_l1.npy member with one sample byte changed after its CRC was computed."""
    b = bytearray(_zip_member("v_l1.npy", _npz_member_bytes(np.zeros(1000))))
    b[30 + len("v_l1.npy") + 128 + 4000] ^= 0x40  # local header, name, .npy header, into the samples
    return bytes(b)


def _huge_header() -> bytes:
    """A v_l1.npy member whose header claims 10¹² float64 samples but holds 16 bytes."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    return _zip_member("v_l1.npy", head.getvalue() + b"\0" * 16)  # the writer puts the magic first


NPZ_CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty file": (lambda: b"", "empty file"),
    "garbage": (lambda: b"this is not a zip archive at all\n" * 3, "not a valid .npz"),
    "truncated": (lambda: _good_npz()[:3000], "not a valid .npz"),
    "npy not npz": (lambda: _npz_member_bytes(_data()), "not a valid .npz"),
    "front cut off": (lambda: _good_npz()[40:], "array 'fs' is not a readable .npy array"),
    "corrupt member": (lambda: _zip_member("v_l1.npy", b"\x93NUMPY garbage"), "not a readable .npy"),
    "truncated member": (
        lambda: _zip_member("v_l1.npy", _npz_member_bytes(np.zeros(1000))[:500]),
        "claims shape (1000,) of float64, more than the file holds",
    ),
    "bad crc": (_bad_crc, "array 'v_l1' is truncated or corrupt (Bad CRC-32"),
    "huge header": (_huge_header, "more than the file holds"),
    "pickled objects": (
        lambda: _npz(**_channels(v_l1=np.array([{"a": 1}] * 3200, dtype=object))),
        "holds object values",
    ),
    "strings": (lambda: _npz(**_channels(i_l2=np.array(["1.0"] * 3200))), "not numbers"),
    "complex": (lambda: _npz(**_channels(i_l1=_data()[3] * (1 + 0.5j))), "is complex"),
    "two-dimensional": (lambda: _npz(**_channels(v_l2=_data()[:2])), "shape (2, 3200)"),
    "nan": (lambda: _npz(**_channels(v_l3=np.where(np.arange(3200) == 77, np.nan, _data()[2]))), "sample 77"),
    "3.4e38": (lambda: _npz(**_channels(i_l3=np.full(3200, 3.4e38))), "beyond"),
    "missing v_l1": (lambda: _npz(**_channels(v_l1=None)), "needs voltage columns"),
    "missing fs": (lambda: _npz(**_channels(fs=None)), "no 'fs' array"),
    "fs of two values": (lambda: _npz(**_channels(fs=np.array([6400.0, 6400.0]))), "'fs' must be one"),
    "fs negative": (lambda: _npz(**_channels(fs=-6400.0)), "sampling rate -6400"),
    "no arrays": (lambda: _npz(meta=np.zeros(3)), "holds none of the arrays"),
    "no samples": (lambda: _npz(fs=FS, v_l1=np.zeros(0), i_l1=np.zeros(0)), "no samples"),
    "short column": (lambda: _npz(**_channels(i_l1=np.zeros(9))), "i_l1 has 9 samples"),
}


def _npz_member_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, x)
    return buf.getvalue()


def _analyze(path: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["analyze", str(path), *args, "--json"])
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.output


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_bad_npz_is_one_message_naming_file_and_problem(tmp_path: Path, case: str) -> None:
    make, expected = NPZ_CASES[case]
    path = tmp_path / "rec.npz"
    path.write_bytes(make())
    code, out = _analyze(path)
    assert code == 2, out
    assert "Traceback" not in out and "Aborted" not in out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), out
    assert expected in out


CSV_CASES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "rec.csv:1: empty"),
    "header only": (b"v_l1,i_l1\n", "no data rows"),
    "text in a row": (b"v_l1,i_l1\n1,2\n3,4\n5,volts\n", "rec.csv:4: column 2 is not a number: 'volts'"),
    "short row": (b"v_l1,i_l1\n1,2\n3\n", "rec.csv:3: 1 values, the header names 2"),
    "long row": (b"v_l1,i_l1\n1,2\n3,4,5\n", "rec.csv:3: 3 values"),
    "latin-1": (b"v_l1,i_l1\n1,2\n3,4\n\xb5,6\n", "rec.csv:4: not UTF-8"),
    "nan": (b"v_l1,i_l1\n1,2\n3,4\nnan,6\n", "non-finite value (nan) at line 4"),
    "duplicate column": (b"v_l1,i_l1,v_l1\n1,2,3\n", "v_l1 named more than once"),
    "empty name": (b"v_l1,,i_l1\n1,2,3\n", "empty column name"),
    "binary": (bytes(range(256)) * 4, "not UTF-8"),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_bad_csv_names_the_line(tmp_path: Path, case: str) -> None:
    payload, expected = CSV_CASES[case]
    path = tmp_path / "rec.csv"
    path.write_bytes(payload)
    code, out = _analyze(path, "--fs", "6400")
    assert code == 2 and "Traceback" not in out, out
    assert len(out.strip().splitlines()) == 1 and expected in out, out


def test_a_record_too_short_for_the_wiring_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("v_l1,i_l1\n1,2\n3,4\n")
    code, out = _analyze(path, "--fs", "6400")  # 3P4W by default: three voltages needed
    assert code == 2 and out.startswith(f"error: {path}: wiring 3P4W needs 3 voltage column(s)"), out


def test_a_directory_or_an_unknown_suffix_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "rec.npz"
    d.mkdir()
    assert _analyze(d) == (2, f"error: {d}: a directory, not a record file\n")
    txt = tmp_path / "rec.txt"
    txt.write_text("1,2")
    code, out = _analyze(txt)
    assert code == 2 and "unknown record format '.txt'" in out


COMTRADE_CFG = "\r\n".join(
    [
        "test,rec,1999",
        "2,2A,0D",
        "1,v_l1,A,,V,1.0,0,0,-32767,32767,1,1,P",
        "2,i_l1,A,,A,1.0,0,0,-32767,32767,1,1,P",
        "50",
        "1",
        "6400,{n}",
        "22/11/2026,04:00:00.000000",
        "22/11/2026,04:00:00.000000",
        "ASCII",
        "1",
    ]
)


@pytest.mark.parametrize(
    ("cfg", "dat", "expected"),
    [
        (b"\x00\x01garbage\xff", None, "cannot read COMTRADE record"),
        (COMTRADE_CFG.format(n=10).encode(), None, "cannot read COMTRADE record"),
        (COMTRADE_CFG.format(n=10).encode(), b"1,0,1\n2,x,y\n", "cannot read COMTRADE record"),
        (COMTRADE_CFG.format(n=4).encode(), b"1,0,1,2\n2,156,nan,4\n3,312,5,6\n4,468,7,8\n", "non-finite"),
    ],
    ids=["binary cfg", "missing dat", "bad dat row", "nan sample"],
)
def test_bad_comtrade_is_one_message(tmp_path: Path, cfg: bytes, dat: bytes | None, expected: str) -> None:
    path = tmp_path / "rec.cfg"
    path.write_bytes(cfg)
    if dat is not None:
        path.with_suffix(".dat").write_bytes(dat)
    code, out = _analyze(path, "--wiring", "1P2W")
    assert code == 2 and "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    assert str(path) in out and expected in out, out


def test_record_errors_are_input_errors() -> None:
    assert issubclass(RecordError, InputError)
    assert RecordError("x").exit_code == 2


# -- fuzz ---------------------------------------------------------------------------------------

_GOOD_NPZ = _good_npz()
_GOOD_CSV = (
    "v_l1,i_l1\n" + "\n".join(f"{230 * np.sin(k / 20):.4f},{np.cos(k / 20):.4f}" for k in range(400))
).encode()


def _mutate(data: st.DataObject, base: bytes) -> bytes:
    """``base`` with a few bytes flipped, a slice cut out or the tail cut off."""
    b = bytearray(base)
    for _ in range(data.draw(st.integers(0, 6))):
        k = data.draw(st.integers(0, len(b) - 1))
        b[k] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        a = data.draw(st.integers(0, len(b)))
        del b[a : a + data.draw(st.integers(0, 200))]
    if data.draw(st.booleans()):
        del b[data.draw(st.integers(0, len(b))) :]
    return bytes(b)


def _only_record_errors(path: Path) -> None:
    try:
        rec = read_record(path, None if path.suffix == ".npz" else FS)
    except RecordError as exc:
        assert str(exc).startswith(str(path))
    else:
        assert rec.samples > 0 and np.all(np.isfinite(rec.voltages)) and np.all(np.isfinite(rec.currents))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_npz_files_raise_only_record_errors(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "fuzz.npz"
    base = data.draw(st.sampled_from([_GOOD_NPZ, *(make() for make, _ in list(NPZ_CASES.values())[:4])]))
    path.write_bytes(_mutate(data, base) if base else data.draw(st.binary(max_size=300)))
    _only_record_errors(path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_csv_files_raise_only_record_errors(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(
        _mutate(data, _GOOD_CSV) if data.draw(st.booleans()) else data.draw(st.binary(max_size=400))
    )
    _only_record_errors(path)


@pytest.mark.parametrize("value", ["0", "-230", "nan", "inf"])
def test_a_bad_declared_voltage_or_sampling_rate_is_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / "rec.npz"
    path.write_bytes(_good_npz())
    code, out = _analyze(path, "--declared-voltage", value)
    assert code == 2 and "--declared-voltage must be a voltage above 0 V" in out, out
    code, out = _analyze(path, "--fs", value)
    assert code == 2 and out.startswith(f"error: {path}: sampling rate") and "Traceback" not in out, out


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"{'descr': '<f8', 'shape': (3,", "EOF in multi-line statement"),  # tokenize.TokenError
        (b"{'descr': '''<f8", "EOF in multi-line string"),
        (b"{1: 2}", "correct keys"),
    ],
)
def test_a_garbled_npy_header_is_a_record_error(tmp_path: Path, header: bytes, expected: str) -> None:
    """numpy parses .npy headers with tokenize and ast.literal_eval; what they raise on a garbled header
    (found by the fuzz test below: TokenError) is one message naming the array, never a traceback."""
    good = io.BytesIO()
    np.lib.format.write_array(good, np.zeros(3))
    raw = good.getvalue()
    length = int.from_bytes(raw[8:10], "little")
    bad = raw[:10] + header.ljust(length - 1) + b"\n" + raw[10 + length :]
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("v_l1.npy", bad)
        z.writestr("fs.npy", raw)
    with pytest.raises(RecordError) as exc:
        read_record(path)
    assert f"{path}: array 'v_l1' is not a readable .npy array" in str(exc.value)
    assert expected in str(exc.value)
