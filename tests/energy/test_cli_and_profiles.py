"""``meterhub report`` end to end (import → report, JSON and CSV, errors) and load profiles."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meterhub.cli import app
from meterhub.config.schema import StorageConfig
from meterhub.energy.profiles import load_profile
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.storage import open_storage

from .conftest import SITE, site


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Imported 15-min registers of 'main' (1 kW) around the spring DST change; site.yaml in the folder."""
    data = tmp_path / "data"
    data.mkdir()
    rows = ["timestamp,circuit,quantity,phase,value"]
    t0 = utc("2026-03-27T00:00:00")
    for k in range(5 * 96 + 1):
        t = datetime.fromtimestamp(t0 + 900 * k, UTC).isoformat().replace("+00:00", "Z")
        rows.append(f"{t},main,energy_active_import,total,{250.0 * k}")
    rows.append("2026-03-29T05:00:00Z,main,energy_active_import,total,not-a-number")
    (tmp_path / "regs.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    energy = '  tariffs: {rates: [{id: flat, price: 0.25}]}\n  virtual: [{id: rest, formula: "main - light", zone: z}]'
    (data / "site.yaml").write_text(SITE.format(tz="Europe/Berlin", energy=energy), encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(app, ["import", str(tmp_path / "regs.csv"), "--data", str(data)])
    assert (
        res.exit_code == 1 and "483: value 'not-a-number' is not a number" in res.output
    )  # reported, skipped
    return data


def test_report_command_prints_the_issue_json(data_dir: Path) -> None:
    args = [
        "report",
        "--data",
        str(data_dir),
        "--circuit",
        "main",
        "--from",
        "2026-03-28",
        "--to",
        "2026-03-31",
    ]
    res = CliRunner().invoke(app, [*args, "--interval", "day"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["intervals"]
    assert [r["energy_active_import"] for r in rows] == [24000.0, 23000.0, 24000.0]
    assert [r["cost"] for r in rows] == [6.0, 5.75, 6.0]  # 0.25 EUR/kWh
    assert list(rows[0]) == [
        "start",
        "end",
        "energy_active_import",
        "energy_active_export",
        "cost",
        "co2",
        "max_demand",
        "max_demand_time",
        "estimated",
    ]
    assert rows[1]["end"] == "2026-03-30T00:00:00+02:00"
    csv = CliRunner().invoke(app, [*args, "--interval", "hour", "--timezone", "UTC", "--csv"])
    assert csv.exit_code == 0
    lines = csv.stdout.splitlines()
    assert len(lines) == 1 + 72 and lines[1].startswith(
        "2026-03-28T00:00:00+00:00,2026-03-28T01:00:00+00:00,1000.0,"
    )


def test_report_command_zone_and_errors(data_dir: Path) -> None:
    base = ["report", "--data", str(data_dir), "--from", "2026-03-28", "--to", "2026-03-29"]
    res = CliRunner().invoke(app, [*base, "--zone", "z"])
    assert res.exit_code == 0, res.output
    assert (
        json.loads(res.stdout)["intervals"][0]["energy_active_import"] == 24000.0
    )  # rest = main − light(no data)
    bad = CliRunner().invoke(app, [*base, "--circuit", "nope"])
    assert bad.exit_code == 2 and "unknown circuit 'nope'" in bad.stderr
    both = CliRunner().invoke(app, [*base, "--circuit", "main", "--zone", "z"])
    assert both.exit_code == 2 and "one of them" in both.stderr
    empty = CliRunner().invoke(
        app,
        [
            "report",
            "--data",
            str(data_dir.parent / "none"),
            "--circuit",
            "main",
            "--from",
            "2026-03-28",
            "--to",
            "2026-03-29",
        ],
    )
    assert empty.exit_code == 2 and "no data in" in empty.stderr


def test_load_profile_captures_registers_at_the_end_and_means_of_power(tmp_path: Path) -> None:
    storage: Any = open_storage(StorageConfig(), tmp_path, timezone="Europe/Berlin")
    cfg = site(
        "  profiles: [{circuit: main, interval: 30, quantities: [energy_active_import, active_power]}]"
    )
    t0 = utc("2026-06-01T22:00:00")  # local 06-02 00:00
    batch = []
    for k in range(24 * 60 + 1):  # one reading a minute: 1 kW, except 3 kW in the first 30 minutes
        t = t0 + 60 * k
        e = 3000 / 60 * min(k, 30) + 1000 / 60 * max(k - 30, 0)
        batch.append(Reading(t, "main", "energy_active_import", Phase.TOTAL, e))
        batch.append(Reading(t, "main", "active_power", Phase.TOTAL, 3000.0 if k < 30 else 1000.0))
    storage.write(batch)
    storage.flush()
    prof = load_profile(storage, cfg, circuit="main", start=date(2026, 6, 2), end=date(2026, 6, 3))
    rows = prof["rows"]
    assert prof["interval"] == 30 and len(rows) == 48
    assert rows[0] == {
        "end": "2026-06-02T00:30:00+02:00",
        "energy_active_import": 1500.0,
        "active_power": 3000.0,
    }
    assert rows[1]["energy_active_import"] == pytest.approx(2000.0) and rows[1]["active_power"] == 1000.0
    storage.close()


def test_report_co2_from_a_series_file_next_to_the_site_file(data_dir: Path, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "co2.csv").write_text(
        "timestamp,factor\n2026-03-27T23:00:00Z,0.5\n2026-03-28T11:00:00Z,0.25\n", encoding="utf-8"
    )
    (conf / "site.yaml").write_text(
        SITE.format(tz="Europe/Berlin", energy="  co2: {file: co2.csv}"), encoding="utf-8"
    )
    args = ["report", "--data", str(data_dir), "--config", str(conf / "site.yaml"), "--circuit", "main"]
    res = CliRunner().invoke(app, [*args, "--from", "2026-03-28", "--to", "2026-03-29"])
    assert res.exit_code == 0, res.output
    # local 00:00–12:00 at 0.5 kg/kWh, 12:00–24:00 at 0.25: 12 kWh · 0.5 + 12 kWh · 0.25
    assert json.loads(res.stdout)["intervals"][0]["co2"] == pytest.approx(9.0)
    (conf / "co2.csv").write_text("timestamp,factor\nyesterday,0.5\n", encoding="utf-8")
    bad = CliRunner().invoke(app, [*args, "--from", "2026-03-28", "--to", "2026-03-29"])
    assert bad.exit_code == 2 and "co2.csv:2: bad CO2 row" in bad.stderr


def _digest(data: Path) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(data.iterdir()) if p.is_file()}


def test_report_reads_the_days_of_the_zone_stored_with_the_data_and_writes_nothing(tmp_path: Path) -> None:
    # A running gateway of a Berlin site (its site file elsewhere): the report, without --config,
    # must use Berlin days and leave the database as it is (it used to rewrite the zone to UTC).
    data = tmp_path / "data"
    rows = ["timestamp,circuit,quantity,phase,value"]
    t0 = utc("2026-03-27T23:00:00")  # 2026-03-28 00:00 CET
    rows += [
        f"{datetime.fromtimestamp(t0 + 3600 * k, UTC).isoformat()},main,energy_active_import,total,{1000.0 * k}"
        for k in range(48)
    ]
    (tmp_path / "regs.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "site.yaml").write_text(SITE.format(tz="Europe/Berlin", energy="  {}"), encoding="utf-8")
    imported = CliRunner().invoke(
        app,
        ["import", str(tmp_path / "regs.csv"), "--data", str(data), "--config", str(tmp_path / "site.yaml")],
    )
    assert imported.exit_code == 0, imported.output
    gateway = open_storage(StorageConfig(), data, timezone="Europe/Berlin")  # the running gateway
    try:
        before = _digest(data)
        res = CliRunner().invoke(
            app,
            [
                "report",
                "--data",
                str(data),
                "--circuit",
                "main",
                "--from",
                "2026-03-28",
                "--to",
                "2026-03-29",
            ],
        )
        assert res.exit_code == 0, res.output
        (day,) = json.loads(res.stdout)["intervals"]
        assert (day["start"], day["end"]) == ("2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00")
        assert day["energy_active_import"] == 24000.0  # 24 h of 1 kW
        assert (day["cost"], day["co2"]) == (None, None)  # no tariffs known: unknown, not 0
        assert "no site file" in res.stderr
        assert _digest(data) == before  # not a byte written
        assert gateway.timezone == "Europe/Berlin"
        assert dict(gateway._execute("SELECT key, value FROM meta"))["timezone"] == "Europe/Berlin"  # type: ignore[attr-defined]
    finally:
        gateway.close()


def test_a_read_only_storage_refuses_every_write(storage_spec) -> None:
    from meterhub.model.readings import SeriesKey
    from meterhub.storage import StorageError

    writer = storage_spec.open(timezone="Asia/Kolkata")
    writer.write([Reading(1_798_761_600.0, "main", "voltage", Phase.L1, 230.0)])
    writer.close()
    reader = open_storage(storage_spec.config(), storage_spec.data_dir, read_only=True)
    storage_spec.opened.append(reader)
    assert reader.timezone == "Asia/Kolkata"
    assert [p.mean for p in reader.history(SeriesKey("main", "voltage", Phase.L1), 0, 2e9)] == [230.0]
    with pytest.raises(StorageError, match="read-only"):
        reader.write([Reading(1_798_761_601.0, "main", "voltage", Phase.L1, 231.0)])
    with pytest.raises(StorageError, match="read-only"):
        reader.save_registers({SeriesKey("main", "energy_active_import", Phase.TOTAL): 1.0})
    with pytest.raises(StorageError, match="read-only"):
        reader.apply_retention(2e9)
    with pytest.raises(StorageError, match="read-only|readonly"):
        reader._execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")  # type: ignore[attr-defined]
    reader.close()
