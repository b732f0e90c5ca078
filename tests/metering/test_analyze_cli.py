"""``meterhub analyze`` on CSV, NPZ and COMTRADE records: the JSON of issue 3 with analytic values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from meterhub.cli import app
from meterhub.metering.readers import RecordError, read_record
from meterhub.metering.record import PHASE_KEYS, TOTAL_KEYS, analyse
from meterhub.model.topology import Wiring
from meterhub.sim.waveform import Tone, record_3p4w

NAMES = ["v_l1", "v_l2", "v_l3", "i_l1", "i_l2", "i_l3"]
FS = 6400.0


def make_record(duration: float = 2.0, f: float = 50.0) -> np.ndarray:
    cur = tuple(Tone(10.0, a - 60.0, {5: (0.2, 0.0)}) for a in (0.0, -120.0, 120.0))
    v, i = record_3p4w(fs=FS, duration=duration, f=f, currents=cur, theta0=0.5)
    return np.vstack((v, i))


def write_csv(path: Path, data: np.ndarray, names: list[str] = NAMES) -> None:
    np.savetxt(path, data.T, delimiter=",", header=",".join(names), comments="", fmt="%.9g")


def write_comtrade(path: Path, data: np.ndarray, names: list[str], fs: float) -> Path:
    """An ASCII COMTRADE 1999 record (IEEE C37.111-1999 §6, §7) with integer samples and scale a."""
    n_ch, n = data.shape
    scale = np.max(np.abs(data), axis=1) / 30000.0
    ints = np.round(data / scale[:, None]).astype(np.int64)
    lines = ["meterhub-test,rec1,1999", f"{n_ch},{n_ch}A,0D"]
    for k, name in enumerate(names):
        unit = "V" if name.startswith("v") else "A"
        ph = name.split("_")[1].upper()
        lines.append(f"{k + 1},{name},{ph},,{unit},{scale[k]:.12g},0,0,-32767,32767,1,1,P")
    lines += [
        "50",
        "1",
        f"{fs:g},{n}",
        "22/11/2026,04:00:00.000000",
        "22/11/2026,04:00:00.000000",
        "ASCII",
        "1",
    ]
    cfg = path.with_suffix(".cfg")
    cfg.write_text("\r\n".join(lines) + "\r\n")
    t_us = np.round(np.arange(n) * 1e6 / fs).astype(np.int64)
    rows = np.column_stack((np.arange(1, n + 1), t_us, ints.T))
    np.savetxt(path.with_suffix(".dat"), rows, fmt="%d", delimiter=",")
    return cfg


def check_result(d: dict, rel: float = 5e-4) -> None:
    assert set(d) >= {"frequency", "L1", "L2", "L3", "N", "total", "unbalance", "events"}
    assert d["frequency"] == pytest.approx(50.0, abs=1e-3)
    assert d["frequency_deviation"] == pytest.approx(0.0, abs=1e-3)
    for ph in ("L1", "L2", "L3"):
        assert set(d[ph]) >= set(PHASE_KEYS)
        assert d[ph]["voltage"] == pytest.approx(230.0, rel=rel)
        assert d[ph]["current"] == pytest.approx(10.0 * np.sqrt(1.04), rel=rel)
        assert d[ph]["active_power"] == pytest.approx(1150.0, rel=2 * rel)
        assert d[ph]["reactive_power"] == pytest.approx(2300 * np.sin(np.pi / 3), rel=2 * rel)
        assert len(d[ph]["harmonics_current"]) == 51
        assert d[ph]["harmonics_current"][5] == pytest.approx(2.0, abs=0.01)
        assert d[ph]["thd_current"] == pytest.approx(20.0, abs=0.02)
        assert d[ph]["harmonics_current_percent"][5] == pytest.approx(20.0, abs=0.1)
        assert d[ph]["harmonic_groups_current"][5] == pytest.approx(2.0, abs=0.01)  # IEC 61000-4-7 group
    assert d["L2"]["angle_voltage"] == pytest.approx(-120.0, abs=0.01)
    assert d["L3"]["angle_current"] == pytest.approx(60.0, abs=0.01)
    assert set(d["total"]) >= set(TOTAL_KEYS) | {f"energy_reactive_q{k}" for k in range(1, 5)}
    assert d["total"]["active_power"] == pytest.approx(3450.0, rel=2 * rel)
    t = d["record"]["metered_seconds"]  # every sample, not only the complete windows
    assert d["total"]["energy_active_import"] == pytest.approx(3450.0 * t / 3600, rel=2 * rel)
    assert d["total"]["power_factor"] == pytest.approx(3450.0 / (3 * 230 * 10 * np.sqrt(1.04)), rel=1e-3)
    assert d["unbalance"]["voltage_negative"] == pytest.approx(0.0, abs=1e-3)
    assert d["events"] == []


def test_analyze_csv_prints_the_issue_json(tmp_path: Path) -> None:
    path = tmp_path / "rec.csv"
    write_csv(path, make_record())
    res = CliRunner().invoke(app, ["analyze", str(path), "--fs", "6400", "--json"])
    assert res.exit_code == 0, res.output
    check_result(json.loads(res.output))


def test_analyze_npz_takes_fs_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rec.npz"
    data = make_record()
    np.savez(path, fs=FS, **{n: data[k] for k, n in enumerate(NAMES)})
    res = CliRunner().invoke(app, ["analyze", str(path), "--json"])
    assert res.exit_code == 0, res.output
    check_result(json.loads(res.output))


def test_analyze_comtrade_record(tmp_path: Path) -> None:
    cfg = write_comtrade(tmp_path / "rec.cfg", make_record(), NAMES, FS)
    res = CliRunner().invoke(app, ["analyze", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    check_result(json.loads(res.output), rel=1e-3)  # 15-bit integer samples


def test_analyze_windows_adds_per_window_series(tmp_path: Path) -> None:
    path = tmp_path / "rec.csv"
    write_csv(path, make_record(duration=1.0))
    res = CliRunner().invoke(app, ["analyze", str(path), "--fs", "6400", "--windows", "--json"])
    d = json.loads(res.output)
    w = d["windows"]
    assert len(w["t"]) == d["record"]["windows"] == len(w["L1"]["voltage"])
    assert w["duration"][0] == pytest.approx(0.2, abs=1 / FS)
    assert len(w["L1"]["harmonics_voltage"][0]) == 51
    agg = w["aggregates"]
    assert agg["1_min"]["windows"] == [d["record"]["windows"]]
    assert agg["1_min"]["L2"]["voltage"][0] == pytest.approx(230.0, rel=5e-4)
    assert agg["10_min"]["total"]["active_power"][0] == pytest.approx(3450.0, rel=1e-3)


def test_analyze_single_phase_record(tmp_path: Path) -> None:
    data = make_record()
    path = tmp_path / "one.csv"
    write_csv(path, data[[0, 3]], ["v_l1", "i_l1"])
    res = CliRunner().invoke(app, ["analyze", str(path), "--fs", "6400", "--wiring", "1P2W", "--json"])
    d = json.loads(res.output)
    assert "L2" not in d
    assert d["total"]["active_power"] == pytest.approx(1150.0, rel=1e-3)
    assert d["total"]["apparent_power"] == pytest.approx(2300 * np.sqrt(1.04), rel=1e-3)


def test_analyze_reports_missing_sampling_rate_and_bad_columns(tmp_path: Path) -> None:
    path = tmp_path / "rec.csv"
    write_csv(path, make_record(duration=0.5))
    res = CliRunner().invoke(app, ["analyze", str(path), "--json"])
    assert res.exit_code == 2
    assert "sampling rate" in res.output and "rec.csv" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("volts,amps\n1,2\n")
    res = CliRunner().invoke(app, ["analyze", str(bad), "--fs", "6400", "--json"])
    assert res.exit_code == 2 and "v_l1" in res.output


def test_dip_of_known_depth_duration_and_start() -> None:
    data = make_record(duration=3.0)
    t = np.arange(data.shape[1]) / FS
    dip = (t >= 1.0) & (t < 1.2)  # 10 cycles at 50 % on L2
    data[1, dip] *= 0.5
    rec = read_record_from_array(data)
    d = analyse(rec, wiring=Wiring.P3W4)
    assert len(d["events"]) == 1
    ev = d["events"][0]
    assert ev["type"] == "dip" and ev["phase"] == "L2"
    assert ev["start"] == pytest.approx(1.0, abs=0.01)
    assert ev["duration"] == pytest.approx(0.2, abs=0.01)
    assert ev["extreme"] == pytest.approx(115.0, rel=1e-3)
    assert d["record"]["flagged_windows"] >= 1


def test_interruption_and_swell_are_detected() -> None:
    data = make_record(duration=3.0)
    t = np.arange(data.shape[1]) / FS
    data[:3, (t >= 0.6) & (t < 1.0)] *= 0.01  # all phases to 1 % for 400 ms
    data[0, (t >= 2.0) & (t < 2.1)] *= 1.2  # L1 to 120 % for 100 ms
    d = analyse(read_record_from_array(data), wiring=Wiring.P3W4)
    kinds = [(e["type"], round(e["start"], 2), round(e["duration"], 2)) for e in d["events"]]
    intr = [e for e in d["events"] if e["type"] == "interruption"]
    sw = [e for e in d["events"] if e["type"] == "swell"]
    # below 5 % only once a whole cycle is interrupted: IEC 61000-4-30 allows one cycle of uncertainty
    assert len(intr) == 1 and intr[0]["start"] == pytest.approx(0.6, abs=0.02), kinds
    assert intr[0]["duration"] == pytest.approx(0.4, abs=0.04)  # start and end each ±1 cycle
    assert intr[0]["extreme"] == pytest.approx(2.3, rel=0.01)
    assert len(sw) == 1 and sw[0]["phase"] == "L1" and sw[0]["extreme"] == pytest.approx(276.0, rel=1e-3)
    assert sw[0]["duration"] == pytest.approx(0.1, abs=0.02)  # ±1 cycle (IEC 61000-4-30 §5.4.3.2)


def read_record_from_array(data: np.ndarray):
    from meterhub.metering.readers import Record

    return Record(FS, data[:3].copy(), data[3:].copy(), None, list(NAMES))


def test_reader_rejects_a_file_with_a_short_column(tmp_path: Path) -> None:
    path = tmp_path / "short.npz"
    np.savez(path, fs=FS, v_l1=np.zeros(10), i_l1=np.zeros(9))
    with pytest.raises(RecordError, match="i_l1 has 9 samples"):
        read_record(path)


def test_long_records_are_fed_in_blocks_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import meterhub.metering.record as record_mod

    rec = read_record_from_array(make_record(duration=3.0))
    whole = analyse(rec)
    monkeypatch.setattr(record_mod, "_BLOCK_SECONDS", 0.77)
    parts = analyse(rec)
    assert parts["record"]["windows"] == whole["record"]["windows"]
    assert parts["total"]["energy_active_import"] == pytest.approx(
        whole["total"]["energy_active_import"], rel=1e-12
    )
    assert parts["L2"]["voltage"] == pytest.approx(whole["L2"]["voltage"], rel=1e-12)


def test_analyze_applies_vt_and_ct_ratios(tmp_path: Path) -> None:
    path = tmp_path / "secondary.csv"
    data = make_record(duration=1.0)
    data[:3] *= 100 / 600  # a 600/100 VT: 230 V primary is 38.33 V at the terminals
    data[3:] *= 5 / 800  # an 800/5 CT
    write_csv(path, data)
    res = CliRunner().invoke(
        app, ["analyze", str(path), "--fs", "6400", "--vt-ratio", "600/100", "--ct-ratio", "800/5", "--json"]
    )
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["L1"]["voltage"] == pytest.approx(230.0, rel=5e-4)
    assert d["L1"]["current"] == pytest.approx(10.0 * np.sqrt(1.04), rel=5e-4)
    bad = CliRunner().invoke(app, ["analyze", str(path), "--fs", "6400", "--vt-ratio", "six", "--json"])
    assert bad.exit_code == 2 and "PRIMARY/SECONDARY" in bad.output
