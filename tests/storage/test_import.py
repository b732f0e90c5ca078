"""``meterhub import``: CSV backfill with per-row errors, idempotent, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterhub.cli import app
from meterhub.config.schema import StorageConfig
from meterhub.model.readings import SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage import open_storage
from meterhub.storage.importer import ImportFileError, RowError, import_csv, parse_rows

E = SeriesKey("main", "energy_active_import", Phase.TOTAL)
GOOD = """timestamp,circuit,quantity,phase,value
2026-03-29T00:00:00+01:00,main,energy_active_import,total,100
2026-03-29T01:00:00+01:00,main,energy_active_import,total,101.5
2026-03-29T03:00:00+02:00,main,energy_active_import,total,103
2026-03-29T01:00:00Z,pump,frequency,,50.01
"""
BAD_ROWS = """bad,main,energy_active_import,total,102
2026-03-29T03:00:00+02:00,main,energy_active_imprt,total,102
2026-03-29T02:30:00,x,voltage,L1,230
2026-03-29T03:00:00Z,x,voltage,L4,230
2026-03-29T03:00:00Z,x,voltage,L1,abc
2026-03-29T03:00:00Z,x,voltage
2026-03-29T03:00:00Z,x,voltage,,230
2026-03-29T03:00:00Z,X Y,voltage,L1,230
"""


def ts(*a: int) -> float:
    return datetime(*a, tzinfo=UTC).timestamp()


def test_rows_parse_to_utc_readings() -> None:
    out = list(parse_rows(iter(GOOD.splitlines(keepends=True))))
    assert [(r.ts, r.circuit, r.quantity, r.phase, r.value) for r in out if not isinstance(r, RowError)] == [
        (ts(2026, 3, 28, 23), "main", "energy_active_import", Phase.TOTAL, 100.0),
        (ts(2026, 3, 29, 0), "main", "energy_active_import", Phase.TOTAL, 101.5),
        (ts(2026, 3, 29, 1), "main", "energy_active_import", Phase.TOTAL, 103.0),
        (ts(2026, 3, 29, 1), "pump", "frequency", Phase.TOTAL, 50.01),  # empty phase of a system quantity
    ]


def test_bad_rows_name_their_line_and_reason() -> None:
    text = GOOD + BAD_ROWS
    errors = [
        r
        for r in parse_rows(iter(text.splitlines(keepends=True)), timezone="Europe/Berlin")
        if isinstance(r, RowError)
    ]
    assert [str(e) for e in errors] == [
        "line 6: timestamp 'bad' is not ISO 8601 (e.g. 2026-03-29T01:15:00Z)",
        "line 7: unknown quantity 'energy_active_imprt' (did you mean energy_active_import, "
        "energy_active_export, energy_active_net?)",
        "line 8: local time '2026-03-29T02:30:00' does not exist in Europe/Berlin (DST change); add a UTC offset",
        "line 9: phase 'L4' is not one of L1, L2, L3, N, total",
        "line 10: value 'abc' is not a number",
        "line 11: has 3 column(s), expected 5",
        "line 12: phase is empty; voltage needs one of L1, L2, L3, total",
        "line 13: circuit 'X Y' is not an id (lower-case letters, digits, _ . -)",
    ]


def test_ambiguous_local_time_is_rejected_and_naive_time_uses_the_zone() -> None:
    text = "timestamp,circuit,quantity,phase,value\n2026-10-25T02:30:00,a,voltage,L1,1\n2026-07-01T12:00:00,a,voltage,L1,2\n"
    a, b = list(parse_rows(iter(text.splitlines(keepends=True)), timezone="Europe/Berlin"))
    assert (
        str(a)
        == "line 2: local time '2026-10-25T02:30:00' is ambiguous in Europe/Berlin (DST change); add a UTC offset"
    )
    assert not isinstance(b, RowError) and b.ts == ts(2026, 7, 1, 10)  # CEST = UTC+2


def test_header_without_required_columns_is_a_file_error() -> None:
    with pytest.raises(ImportFileError, match="header lacks column.s. phase, value"):
        list(parse_rows(iter(["timestamp,circuit,quantity\n"])))


def test_import_stores_good_rows_and_is_idempotent(storage_spec, tmp_path: Path) -> None:
    f = tmp_path / "in.csv"
    f.write_text(GOOD + BAD_ROWS, encoding="utf-8")
    storage = storage_spec.open(timezone="Europe/Berlin")
    res = import_csv(f, storage, timezone="Europe/Berlin", chunk=2)
    assert (res.rows, res.imported, len(res.errors), sorted(res.new_circuits)) == (12, 4, 8, ["main", "pump"])
    again = import_csv(f, storage, timezone="Europe/Berlin")
    assert (again.imported, again.new_circuits) == (4, set())
    raw = storage.history(E, 0, 2e9)
    assert [p.last for p in raw] == [100.0, 101.5, 103.0]
    (day,) = storage.history(E, 0, 2e9, "1d")  # the 23-hour local day 2026-03-29
    assert (day.ts, day.count, day.delta) == (ts(2026, 3, 28, 23), 3, 3.0)


def test_cli_import_reports_bad_lines_and_exit_code(tmp_path: Path) -> None:
    f = tmp_path / "in.csv"
    f.write_text(GOOD + BAD_ROWS, encoding="utf-8")
    errs = tmp_path / "errors.txt"
    result = CliRunner().invoke(
        app,
        [
            "import",
            str(f),
            "--data",
            str(tmp_path / "d"),
            "--timezone",
            "Europe/Berlin",
            "--errors",
            str(errs),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "imported 4 of 12 rows read into 2 series" in result.output
    assert "refused 8" in result.output
    assert f"{f}:9: phase 'L4' is not one of L1, L2, L3, N, total" in errs.read_text()
    storage = open_storage(StorageConfig(), tmp_path / "d")
    try:
        assert len(storage.history(E, 0, 2e9)) == 3
    finally:
        storage.close()


def test_cli_import_of_a_clean_file_exits_0(tmp_path: Path) -> None:
    f = tmp_path / "in.csv"
    f.write_text(GOOD, encoding="utf-8")
    result = CliRunner().invoke(app, ["import", str(f), "--data", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "new circuits: main, pump" in result.output


def test_cli_import_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["import", str(tmp_path / "nope.csv"), "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_cli_import_rejects_an_unknown_time_zone(tmp_path: Path) -> None:
    f = tmp_path / "in.csv"
    f.write_text(GOOD, encoding="utf-8")
    result = CliRunner().invoke(
        app, ["import", str(f), "--data", str(tmp_path), "--timezone", "Mars/Olympus"]
    )
    assert result.exit_code == 2
    assert "--timezone 'Mars/Olympus' is not an IANA zone" in result.output


def test_cli_import_without_site_keeps_the_databases_day_zone(tmp_path: Path) -> None:
    berlin = open_storage(StorageConfig(), tmp_path, timezone="Europe/Berlin")
    berlin.close()
    f = tmp_path / "in.csv"
    f.write_text(GOOD, encoding="utf-8")
    assert CliRunner().invoke(app, ["import", str(f), "--data", str(tmp_path)]).exit_code == 0
    storage = open_storage(StorageConfig(), tmp_path)
    try:
        (day,) = storage.history(E, 0, 2e9, "1d")
        assert day.ts == ts(2026, 3, 28, 23)  # local (CET) midnight, not UTC
    finally:
        storage.close()


def test_cli_import_with_site_names_circuits_outside_it(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: {name: s, timezone: Europe/Berlin}\n"
        "buses: [{id: b, kind: modbus-tcp, port: 502}]\n"
        "devices: [{id: m, bus: b, unit: 1, profile: eastron-sdm120}]\n"
        "circuits: [{id: main, device: m}]\n",
        encoding="utf-8",
    )
    f = tmp_path / "in.csv"
    f.write_text(GOOD, encoding="utf-8")
    result = CliRunner().invoke(app, ["import", str(f), "--config", str(site), "--data", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert f"not circuits of {site}: pump" in result.output
