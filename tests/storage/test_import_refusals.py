"""``meterhub import`` refuses what cannot be right, names each refused row, and counts what it stored."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from meterhub import errors
from meterhub.cli import app
from meterhub.config.schema import StorageConfig
from meterhub.model.readings import SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage import StorageError, open_storage
from meterhub.storage.importer import ImportFileError, RowError, import_csv, parse_rows
from meterhub.storage.sqlite import DB_FILE

HEADER = "timestamp,circuit,quantity,phase,value\n"
E = SeriesKey("main", "energy_active_import", Phase.TOTAL)


def _errors(text: str) -> list[str]:
    rows = parse_rows(iter(text.splitlines(keepends=True)))
    return [str(r) for r in sorted((r for r in rows if isinstance(r, RowError)), key=lambda e: e.line)]


def _raw_count(data: Path) -> int:
    with sqlite3.connect(data / DB_FILE) as db:
        return int(db.execute("SELECT count(*) FROM raw").fetchone()[0])


def test_import_file_error_is_an_input_error() -> None:
    assert issubclass(ImportFileError, errors.InputError)
    assert ImportFileError("x").exit_code == 2


def test_timestamps_that_cannot_be_stored_are_refused() -> None:
    text = HEADER + (
        "1969-12-31T23:59:59Z,a,voltage,L1,230\n"
        "3000-01-01T00:00:00Z,a,voltage,L1,230\n"
        "1970-01-01T00:00:00Z,a,voltage,L1,230\n"
    )
    assert _errors(text) == [
        "line 2: timestamp '1969-12-31T23:59:59Z' is outside 1970-01-01 to 2999-12-31 (cannot be stored)",
        "line 3: timestamp '3000-01-01T00:00:00Z' is outside 1970-01-01 to 2999-12-31 (cannot be stored)",
    ]


def test_implausible_values_are_refused() -> None:
    text = HEADER + (
        "2026-01-01T00:00:00Z,a,voltage,L1,1.7e308\n"
        "2026-01-01T00:00:01Z,a,voltage,L1,-2e12\n"
        "2026-01-01T00:00:02Z,a,voltage,L1,inf\n"
        "2026-01-01T00:00:03Z,a,energy_active_import,total,1e15\n"
        "2026-01-01T00:00:04Z,a,voltage,L1,1e12\n"
    )
    assert _errors(text) == [
        "line 2: value 1.7e+308 is implausible (|value| > 1e+12)",
        "line 3: value -2e+12 is implausible (|value| > 1e+12)",
        "line 4: value 'inf' is not finite",
        "line 5: value 1e+15 is implausible (|value| > 1e+12)",
    ]


def test_energy_register_outliers_are_refused() -> None:
    text = HEADER + (
        "2026-01-01T00:00:00Z,main,energy_active_import,total,1000\n"
        "2026-01-01T00:01:00Z,main,energy_active_import,total,1010\n"
        "2026-01-01T00:02:00Z,main,energy_active_import,total,990\n"  # goes back …
        "2026-01-01T00:03:00Z,main,energy_active_import,total,5000000\n"  # +5 MWh in 2 min = 150 MW
        "2026-01-01T00:04:00Z,main,energy_active_import,total,1030\n"  # … and on from 1010: outliers
        "2026-01-01T00:00:30Z,main,energy_active_import,total,1020\n"  # late: above the later 1010
    )
    assert _errors(text) == [
        "line 4: register value 990 Wh is below the earlier 1010 Wh of line 3, "
        "and line 6 goes on from before it (an outlier, not a reset)",
        "line 5: register rises 4.99899e+06 Wh in 120 s after line 3 (1.5e+08 Wh/h; at most 1e+08 Wh/h is plausible)",
        "line 7: register value 1020 Wh is above the later 1010 Wh of line 3",
    ]


def test_a_register_wrap_or_replacement_confirmed_by_three_rows_is_imported() -> None:
    text = HEADER + (
        "2026-01-01T00:00:00Z,main,energy_active_import,total,999500\n"
        "2026-01-01T00:15:00Z,main,energy_active_import,total,999750\n"
        "2026-01-01T00:30:00Z,main,energy_active_import,total,0\n"  # a 6-digit register wraps
        "2026-01-01T00:45:00Z,main,energy_active_import,total,250\n"
        "2026-01-01T01:00:00Z,main,energy_active_import,total,500\n"
        "2026-01-01T00:00:00Z,pump,energy_active_import,total,7000\n"
        "2026-01-01T00:15:00Z,pump,energy_active_import,total,5\n"  # the file ends: not confirmed
        "2026-01-01T00:30:00Z,pump,energy_active_import,total,10\n"
    )
    rows = list(parse_rows(iter(text.splitlines(keepends=True))))
    assert sorted(r.value for r in rows if not isinstance(r, RowError) and r.circuit == "main") == [
        0.0,
        250.0,
        500.0,
        999500.0,
        999750.0,
    ]
    assert _errors(text) == [
        "line 8: register value 5 Wh is below the earlier 7000 Wh of line 7, "
        "and the file ends before 3 rows confirm a reset or replacement",
        "line 9: register value 10 Wh is below the earlier 7000 Wh of line 7, "
        "and the file ends before 3 rows confirm a reset or replacement",
    ]


def test_a_row_repeating_series_and_time_is_refused() -> None:
    text = HEADER + (
        "2026-01-01T00:00:00Z,a,voltage,L1,230\n"
        "2026-01-01T01:00:00+01:00,a,voltage,L1,231\n"
        "2026-01-01T00:00:00.0002Z,a,voltage,L1,232\n"  # the same stored millisecond
    )
    assert _errors(text) == [
        "line 3: repeats the series and time of line 2",
        "line 4: repeats the series and time of line 2",
    ]


def test_a_register_below_the_stored_value_is_refused(tmp_path: Path) -> None:
    storage = open_storage(StorageConfig(), tmp_path)
    f = tmp_path / "a.csv"
    f.write_text(HEADER + "2026-01-01T00:00:00Z,main,energy_active_import,total,5000\n", encoding="utf-8")
    assert import_csv(f, storage).imported == 1
    f.write_text(HEADER + "2026-01-01T01:00:00Z,main,energy_active_import,total,4000\n", encoding="utf-8")
    res = import_csv(f, storage)
    assert [str(e) for e in res.errors] == [
        "line 2: register value 4000 Wh is below the earlier 5000 Wh stored before the import, "
        "and the file ends before 3 rows confirm a reset or replacement"
    ]
    storage.close()


@pytest.mark.slow
def test_invalid_utf8_deep_in_a_large_file_refuses_that_line_only(tmp_path: Path) -> None:
    # The finding: an invalid byte at line 110,002 of 120,000 stopped the import with "position 3323"
    # and exit 2 after 100,000 rows had been committed.
    f = tmp_path / "big.csv"
    rows = [HEADER.encode()]
    for i in range(119_999):
        rows.append(f"{1_767_225_600 + i},c{i % 7},voltage,L1,230.{i % 10}\n".encode())
    rows[110_001] = b"2026-01-02T06:33:20Z,c1,voltage,L1,23\xff0\n"  # line 110,002
    f.write_bytes(b"".join(r if not r[:1].isdigit() or b"T" in r else _iso(r) for r in rows))
    data = tmp_path / "d"
    started = time.monotonic()
    result = CliRunner().invoke(app, ["import", str(f), "--data", str(data)])
    took = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert "imported 119998 of 119999 rows read into 7 series" in result.output
    assert "refused 1" in result.output
    assert f"{f}:110002: not UTF-8 text: byte 0xff at column 38" in result.output
    assert _raw_count(data) == 119_998  # the count printed is the count stored
    print(f"120 000-line import with one bad byte: {took:.1f} s")


def _iso(row: bytes) -> bytes:
    ts, rest = row.split(b",", 1)
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode() + b"," + rest


def test_a_128_kib_field_is_refused_by_line_without_a_traceback(tmp_path: Path) -> None:
    f = tmp_path / "wide.csv"
    f.write_text(
        HEADER
        + "2026-01-01T00:00:00Z,a,voltage,L1,230\n"
        + "2026-01-01T00:00:01Z,a,voltage,L1,"
        + "9" * (128 * 1024)
        + "\n"
        + '2026-01-01T00:00:02Z,a,voltage,L1,"230\n'  # a quote left open refuses its line only
        + "2026-01-01T00:00:03Z,a,voltage,L1,231\n",
        encoding="utf-8",
    )
    data = tmp_path / "d"
    result = CliRunner().invoke(app, ["import", str(f), "--data", str(data)])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 1, result.output
    assert f"{f}:3: line is 131107 bytes long; at most 64 KiB is read" in result.output
    assert f"{f}:4: not CSV: unexpected end of data" in result.output
    assert "Traceback" not in result.output
    assert _raw_count(data) == 2


def test_every_row_refused_exits_2_and_a_binary_file_too(tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(HEADER + "x,a,voltage,L1,1\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["import", str(f), "--data", str(tmp_path / "d")])
    assert result.exit_code == 2, result.output
    assert "imported 0 of 1 rows read into 0 series, refused 1" in result.output
    b = tmp_path / "bin.csv"
    b.write_bytes(bytes(range(256)) * 64)
    result = CliRunner().invoke(app, ["import", str(b), "--data", str(tmp_path / "d")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_a_storage_failure_mid_import_stops_with_a_truthful_count(tmp_path: Path, monkeypatch) -> None:
    f = tmp_path / "a.csv"
    f.write_text(
        HEADER + "".join(f"2026-01-01T00:00:{s:02d}Z,a,voltage,L1,230\n" for s in range(25)), encoding="utf-8"
    )
    storage = open_storage(StorageConfig(), tmp_path)
    cls = type(storage)
    real = cls.flush
    calls = {"n": 0}

    def flaky(self: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise StorageError("database or disk is full (test)")
        real(self)  # type: ignore[arg-type]

    monkeypatch.setattr(cls, "flush", flaky)
    res = import_csv(f, storage, chunk=10)
    assert (res.imported, res.exit_code) == (10, 1)
    assert str(res.stopped) == (
        "line 12: the storage failed (database or disk is full (test)); "
        "this row and those after it were not imported"
    )
    assert "; stopped at line 12: the storage failed" in res.summary()
    storage.close()  # must not commit the discarded chunk
    assert _raw_count(tmp_path) == 10


_ROW = st.tuples(
    st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "1969-01-01T00:00:00Z", "bad", ""]),
    st.sampled_from(["a", "b", "X", ""]),
    st.sampled_from(["voltage", "energy_active_import", "frequency", "nope"]),
    st.sampled_from(["L1", "total", "", "L9"]),
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["1e15", "-1", "abc", "", '"1,2"']),
    ),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(_ROW, max_size=30),
    noise=st.lists(st.tuples(st.integers(0, 2000), st.binary(min_size=1, max_size=4)), max_size=3),
)
def test_fuzzed_files_never_raise_and_counts_match_the_database(tmp_path_factory, rows, noise) -> None:
    d = tmp_path_factory.mktemp("fuzz")
    body = bytearray(
        (HEADER + "".join(",".join(r) + "\n" for r in rows)).encode("utf-8", errors="surrogatepass")
    )
    for at, junk in noise:
        body[min(at, len(body)) : min(at, len(body))] = junk
    f = d / "in.csv"
    f.write_bytes(bytes(body))
    storage = open_storage(StorageConfig(), d)
    try:
        try:
            res = import_csv(f, storage, chunk=7)
        except ImportFileError:
            return  # a header the noise broke: one clear file-level error
        n_lines = bytes(body).count(b"\n") + 1
        assert all(1 <= e.line <= n_lines for e in res.errors)
        assert res.imported + len(res.errors) == res.rows
        assert res.exit_code == (2 if res.imported == 0 else (1 if res.errors else 0))
    finally:
        storage.close()
    assert _raw_count(d) == res.imported


def test_a_read_error_mid_file_keeps_the_committed_rows_and_says_where_it_stopped(
    tmp_path, monkeypatch
) -> None:
    from meterhub.storage import importer

    f = tmp_path / "a.csv"
    f.write_text(
        HEADER + "".join(f"2026-01-01T00:00:{s:02d}Z,a,voltage,L1,230\n" for s in range(25)), encoding="utf-8"
    )
    real = importer._lines

    def failing(raw, bad):  # type: ignore[no-untyped-def]
        for n, text in enumerate(real(raw, bad), 1):
            if n == 17:
                raise OSError(5, "Input/output error")
            yield text

    monkeypatch.setattr(importer, "_lines", failing)
    storage = open_storage(StorageConfig(), tmp_path)
    res = import_csv(f, storage, chunk=10)
    storage.close()
    assert (res.imported, res.exit_code) == (10, 1)
    assert str(res.stopped) == (
        "line 12: [Errno 5] Input/output error; this row and those after it were not imported"
    )
    assert _raw_count(tmp_path) == 10
