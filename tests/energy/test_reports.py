"""Interval reports from imported cumulative registers, on SQLite and PostgreSQL (same expectations).

Hand-computed series: a constant 1 kW load gives 250 Wh per quarter hour, so a local day holds
24 kWh — 23 kWh on 2026-03-29 and 25 kWh on 2026-10-25 in Europe/Berlin.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from meterhub.energy.reports import Slots, build_intervals, energy_report, slots_from_samples, to_csv
from meterhub.energy.tariffs import Co2Factor, TariffSchedule
from meterhub.energy.timeutil import Interval, interval_edges
from meterhub.storage.importer import import_csv

from .conftest import site


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def write_csv(path: Path, rows: list[tuple[float, str, str, str, float]]) -> Path:
    lines = ["timestamp,circuit,quantity,phase,value"]
    lines += [f"{iso(t)},{c},{q},{p},{v!r}" for t, c, q, p, v in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def constant_load(
    t0: float, t1: float, watts: float, e0: float = 0.0, step: float = 900.0
) -> list[tuple[float, float]]:
    n = int(round((t1 - t0) / step))
    return [(t0 + k * step, e0 + watts * k * step / 3600.0) for k in range(n + 1)]


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def imported(storage: Any, tmp_path: Path, samples: list[tuple[float, float]], circuit: str = "main") -> None:
    rows = [(t, circuit, "energy_active_import", "total", v) for t, v in samples]
    result = import_csv(write_csv(tmp_path / f"{circuit}.csv", rows), storage)
    assert not result.errors


def daily(report: dict[str, Any]) -> list[float]:
    return [row["energy_active_import"] for row in report["intervals"]]


def test_dst_days_have_23_and_25_hours_of_energy(storage_spec: Any, tmp_path: Path) -> None:
    storage = storage_spec.open(timezone="Europe/Berlin")
    cfg = site()
    spring = constant_load(utc("2026-03-27T00:00:00"), utc("2026-04-01T00:00:00"), 1000.0)
    autumn = constant_load(utc("2026-10-23T00:00:00"), utc("2026-10-28T00:00:00"), 1000.0, e0=spring[-1][1])
    imported(storage, tmp_path, spring + autumn)
    rep = energy_report(
        storage, cfg, start=date(2026, 3, 28), end=date(2026, 3, 31), interval="day", circuit="main"
    )
    assert daily(rep) == [24000.0, 23000.0, 24000.0]
    assert [r["start"] for r in rep["intervals"]] == [
        "2026-03-28T00:00:00+01:00",
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
    ]
    assert not any(r["estimated"] for r in rep["intervals"])
    rep = energy_report(
        storage, cfg, start=date(2026, 10, 24), end=date(2026, 10, 27), interval="day", circuit="main"
    )
    assert daily(rep) == [24000.0, 25000.0, 24000.0]
    hours = energy_report(
        storage, cfg, start=date(2026, 10, 25), end=date(2026, 10, 26), interval="hour", circuit="main"
    )
    rows = hours["intervals"]
    assert len(rows) == 25 and all(r["energy_active_import"] == 1000.0 for r in rows)
    assert [r["start"] for r in rows[2:4]] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
    q = energy_report(
        storage, cfg, start=date(2026, 3, 29), end=date(2026, 3, 30), interval="15min", circuit="main"
    )
    assert len(q["intervals"]) == 92
    assert q["intervals"][8]["start"] == "2026-03-29T03:00:00+02:00"  # 02:00–03:00 does not exist


def test_meter_replacement_and_counter_wrap_keep_daily_totals_exact(
    storage_spec: Any, tmp_path: Path
) -> None:
    storage = storage_spec.open(timezone="Europe/Berlin")
    t0, t1 = utc("2026-05-31T22:00:00"), utc("2026-06-03T22:00:00")  # local 06-01 … 06-04
    samples = constant_load(t0, t1, 1000.0, e0=995_000.0)
    # a 6-digit Wh display wraps at 1 000 000 (on 06-01, 05:00 UTC), a new meter from 0 on 06-02 at 10:00 local
    swap = utc("2026-06-02T08:00:00")
    raw = []
    for t, v in samples:
        reading = v % 1_000_000.0
        if t > swap:
            reading = v - samples[[s[0] for s in samples].index(swap)][1]
        raw.append((t, reading))
    imported(storage, tmp_path, raw)
    rep = energy_report(
        storage, site(), start=date(2026, 6, 1), end=date(2026, 6, 4), interval="day", circuit="main"
    )
    assert daily(rep) == [24000.0, 24000.0, 24000.0]
    assert (
        min(
            r["energy_active_import"]
            for r in energy_report(
                storage,
                site(),
                start=date(2026, 6, 1),
                end=date(2026, 6, 4),
                interval="15min",
                circuit="main",
            )["intervals"]
        )
        == 250.0
    )  # no negative or zero quarter hour at the wrap or the swap


def test_outage_gap_is_filled_from_the_counter_and_flagged(storage_spec: Any, tmp_path: Path) -> None:
    storage = storage_spec.open(timezone="Europe/Berlin")
    t0 = utc("2026-06-01T22:00:00")  # local 06-02 00:00
    samples = [s for s in constant_load(t0, t0 + 86400, 1000.0) if not (t0 + 4 * 3600 < s[0] < t0 + 8 * 3600)]
    imported(storage, tmp_path, samples)
    rep = energy_report(
        storage, site(), start=date(2026, 6, 2), end=date(2026, 6, 3), interval="hour", circuit="main"
    )
    rows = rep["intervals"]
    assert [r["energy_active_import"] for r in rows] == [1000.0] * 24  # the 4-h gap spread evenly
    assert [r["estimated"] for r in rows] == [False] * 4 + [True] * 4 + [False] * 16
    day = energy_report(
        storage, site(), start=date(2026, 6, 2), end=date(2026, 6, 3), interval="day", circuit="main"
    )
    assert day["intervals"][0]["energy_active_import"] == 24000.0 and day["intervals"][0]["estimated"]


FIVE = """
  tariffs:
    standing_charge: 1.0
    rates:
      - {id: t1, price: 0.10}
      - {id: t2, price: 0.20}
      - {id: t3, price: 0.30}
      - {id: t4, price: 0.40}
      - {id: t5, price: 0.05}
    holidays: ["01-01", "2026-05-01"]
    seasons:
      - start: "10-01"
        weekday: [{from: "00:00", rate: t1}, {from: "06:00", rate: t2}, {from: "12:00", rate: t3},
                  {from: "18:00", rate: t4}, {from: "22:00", rate: t1}]
        saturday: [{from: "00:00", rate: t1}, {from: "08:00", rate: t5}, {from: "13:00", rate: t1}]
        weekend: [{from: "00:00", rate: t5}]
      - start: "04-01"
        weekday: [{from: "00:00", rate: t1}, {from: "08:00", rate: t3}, {from: "20:00", rate: t1}]
        weekend: [{from: "00:00", rate: t5}]
"""


def test_five_tariff_schedule_with_seasons_weekends_and_holidays() -> None:
    cfg = site(FIVE)
    energy = cfg.energy
    assert energy is not None
    tz = "Europe/Berlin"
    # Thu 2026-01-01 (holiday), Fri 01-02 (winter weekday), Sat 01-03, Sun 01-04, Mon 2026-06-01 (summer)
    days = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3), date(2026, 1, 4), date(2026, 6, 1)]
    rows = []
    for d in days:
        edges = interval_edges(d, date.fromordinal(d.toordinal() + 1), Interval.DAY, tz)
        slot_edges = np.arange(edges[0], edges[-1] + 1, 900.0)
        samples = constant_load(slot_edges[0] - 3600, slot_edges[-1] + 3600, 1000.0)
        ts, v = np.array(samples).T
        imp = slots_from_samples(ts, v, slot_edges)
        exp = Slots.empty(slot_edges)
        rows += build_intervals(
            edges,
            imp,
            exp,
            schedule=TariffSchedule(energy.tariffs, tz),
            co2=Co2Factor(0.5),
            energy=energy,
            tz=tz,
            interval=Interval.DAY,
        )
    per = [[r[f"energy_active_import_t{i}"] / 1000 for i in range(1, 6)] for r in rows]
    assert per == [
        [0, 0, 0, 0, 24],  # holiday: the weekend (Sunday) bands
        [8, 6, 6, 4, 0],  # winter weekday: 00–06 + 22–24 | 06–12 | 12–18 | 18–22
        [19, 0, 0, 0, 5],  # Saturday: t5 from 08:00 to 13:00
        [0, 0, 0, 0, 24],  # Sunday
        [12, 0, 12, 0, 0],  # summer weekday: 00–08 + 20–24 | 08–20
    ]
    costs = [r["cost"] for r in rows]
    # Σ kWh × price + 1.00 standing charge
    assert costs == pytest.approx(
        [24 * 0.05 + 1, 0.8 + 1.2 + 1.8 + 1.6 + 1, 1.9 + 0.25 + 1, 2.2, 1.2 + 3.6 + 1]
    )
    assert [r["co2"] for r in rows] == pytest.approx([12.0] * 5)
    # maximum demand per rate, with the end of the first window that reached it
    weekday = rows[1]
    assert weekday["max_demand_t4"] == 1000.0 and weekday["max_demand_time_t4"] == "2026-01-02T18:15:00+01:00"
    assert weekday["max_demand_t1"] == 1000.0 and weekday["max_demand_time_t1"] == "2026-01-02T00:15:00+01:00"
    assert weekday["max_demand_t5"] is None


def test_sliding_demand_catches_a_peak_that_block_demand_splits(storage_spec: Any, tmp_path: Path) -> None:
    storage = storage_spec.open(timezone="Europe/Berlin")
    t0 = utc("2026-06-01T22:00:00")  # local 06-02 00:00
    # idle except 9 kW from local 10:10 to 10:20 (1500 Wh), sampled every 5 min
    samples, e = [], 0.0
    for k in range(24 * 12 + 1):
        t = t0 + 300 * k
        samples.append((t, e))
        if 10 * 12 + 2 <= k < 10 * 12 + 4:
            e += 750.0
    imported(storage, tmp_path, samples)
    block = site("  demand: {interval: 15, method: block}")
    sliding = site("  demand: {interval: 15, method: sliding, subintervals: 3}")
    kw = dict(start=date(2026, 6, 2), end=date(2026, 6, 3), interval="day", circuit="main")
    b = energy_report(storage, block, **kw)["intervals"][0]
    s = energy_report(storage, sliding, **kw)["intervals"][0]
    assert b["energy_active_import"] == s["energy_active_import"] == 1500.0
    assert (b["max_demand"], b["max_demand_time"]) == (3000.0, "2026-06-02T10:15:00+02:00")
    assert (s["max_demand"], s["max_demand_time"]) == (6000.0, "2026-06-02T10:20:00+02:00")


def test_virtual_circuit_and_zone_reports(storage_spec: Any, tmp_path: Path) -> None:
    # light 1 kW, unmetered loads 2.5 kW, PV generates 1.5 kW (its export register): grid imports 2 kW
    storage = storage_spec.open(timezone="Europe/Berlin")
    t0 = utc("2026-06-01T22:00:00")
    imported(storage, tmp_path, constant_load(t0, t0 + 86400, 2000.0), "main")
    imported(storage, tmp_path, constant_load(t0, t0 + 86400, 1000.0), "light")
    pv = [(t, "pv", "energy_active_export", "total", v) for t, v in constant_load(t0, t0 + 86400, 1500.0)]
    assert not import_csv(write_csv(tmp_path / "pv.csv", pv), storage).errors
    cfg = site('  virtual: [{id: rest, formula: "main - light - pv", zone: office}]')
    kw: dict[str, Any] = dict(start=date(2026, 6, 2), end=date(2026, 6, 3), interval="day")
    rest = energy_report(storage, cfg, circuit="rest", **kw)["intervals"][0]
    assert rest["energy_active_import"] == 2500.0 * 24  # net: 2000 − 1000 − (0 − 1500) [W] · 24 h
    assert rest["energy_active_export"] == 0.0
    office = energy_report(storage, cfg, zone="office", **kw)["intervals"][0]  # light + rest
    assert office["energy_active_import"] == 3500.0 * 24


def test_report_csv_has_the_json_keys_as_columns(storage_backend: Any, tmp_path: Path) -> None:
    t0 = utc("2026-06-01T22:00:00")
    imported(storage_backend, tmp_path, constant_load(t0, t0 + 86400, 1000.0))
    rep = energy_report(
        storage_backend, site(), start=date(2026, 6, 2), end=date(2026, 6, 3), interval="day", circuit="main"
    )
    text = to_csv(rep)
    header, row = text.splitlines()
    assert header.split(",") == list(rep["intervals"][0])
    assert header.startswith("start,end,energy_active_import,energy_active_export,cost,co2,max_demand")
    assert row.startswith("2026-06-02T00:00:00+02:00,2026-06-03T00:00:00+02:00,24000.0,")


@pytest.mark.parametrize("minute_days", [None, 1.0], ids=["minute-rollups-kept", "minute-rollups-removed"])
def test_reports_are_unchanged_after_retention_removes_raw_values(
    storage_spec: Any, tmp_path: Path, minute_days: float | None
) -> None:
    """Raw values gone, the 1-minute rollups stand in; 1-minute rollups gone too, the 15-minute ones."""
    storage = storage_spec.open(timezone="Europe/Berlin", minute_rollup_retention_days=minute_days)
    t0 = utc("2026-06-01T22:00:00")  # local 06-02 00:00; three days, power varying by hour, a reset on day 2
    samples, e = [], 0.0
    for k in range(3 * 96 + 1):
        t = t0 + 900 * k
        samples.append((t, e if k < 120 else e - 20_000.0))
        e += 25.0 * (1 + (k // 4) % 24)  # 100 W · (1 … 24) per hour
    imported(storage, tmp_path, samples)
    kw: dict[str, Any] = dict(start=date(2026, 6, 2), end=date(2026, 6, 5), interval="hour", circuit="main")
    before = energy_report(storage, site(), **kw)["intervals"]
    removed = storage.apply_retention(t0 + 2 * 86400 + 30 * 86400)
    assert removed > 150
    after = energy_report(storage, site(), **kw)["intervals"]
    assert [r["energy_active_import"] for r in after] == [r["energy_active_import"] for r in before]
    assert [r["energy_active_import"] for r in after[:3]] == [100.0, 200.0, 300.0]
    # the meter that jumped down to a non-zero reading leaves no spike: it continues at its last rate
    assert max(r["energy_active_import"] for r in after) == 2400.0
    assert sum(r["estimated"] for r in after) == 1


@pytest.mark.postgres
def test_postgresql_and_sqlite_give_identical_reports(both_backends: tuple[Any, Any], tmp_path: Path) -> None:
    # two weeks of 5-min readings: a varying load, a wrap, a reset, a 3-h outage, PV export, DST-free June
    rng = np.random.default_rng(7)
    t0 = utc("2026-06-01T22:00:00")
    n = 14 * 288 + 1
    power = 800.0 + 600.0 * rng.random(n)
    e = 999_000.0 + np.concatenate([[0.0], np.cumsum(power[:-1] * 300.0 / 3600.0)])
    raw = e % 1_000_000.0
    raw[2000:] = e[2000:] - e[2000]  # meter reset to 0
    keep = np.ones(n, dtype=bool)
    keep[3000:3036] = False  # 3 h away
    times = t0 + 300.0 * np.arange(n)
    rows = [
        (float(t), "main", "energy_active_import", "total", float(v))
        for t, v in zip(times[keep], raw[keep], strict=True)
    ]
    rows += [(t0 + 300.0 * k, "pv", "energy_active_export", "total", 20.0 * k) for k in range(n)]
    path = write_csv(tmp_path / "two-weeks.csv", rows)
    cfg = site(FIVE.replace('"2026-01-01"', '"2026-06-04"') + '  virtual: [{id: rest, formula: "main - pv"}]')
    reports = []
    for storage in both_backends:
        assert not import_csv(path, storage).errors
        reports.append(
            [
                energy_report(
                    storage, cfg, start=date(2026, 6, 2), end=date(2026, 6, 16), interval=iv, circuit=c
                )
                for iv in ("15min", "hour", "day", "month")
                for c in ("main", "rest")
            ]
        )
    assert reports[0] == reports[1]
    days = reports[0][4]["intervals"]
    assert len(days) == 14 and sum(r["estimated"] for r in days) == 1
    assert all(r["energy_active_import"] > 0 for r in reports[0][0]["intervals"])
    # every Wh is accounted for: the wrap and the outage exactly, the reset loses only the step the old
    # meter counted after its last reading (the new one started from 0 at that reading)
    total = sum(r["energy_active_import"] for r in days)
    assert total == pytest.approx(e[-1] - e[0] - (e[2000] - e[1999]), abs=1e-6)


def test_fixed_charges_belong_to_the_supply_point_only(storage_backend: Any, tmp_path: Path) -> None:
    t0 = utc("2026-06-01T22:00:00")  # June 2026 local, 1 kW all month
    for c in ("main", "light"):
        imported(storage_backend, tmp_path, constant_load(t0, utc("2026-06-30T22:00:00"), 1000.0), c)
    cfg = site("  tariffs: {standing_charge: 2.4, demand_charge: 10, rates: [{id: flat, price: 0.5}]}")
    kw: dict[str, Any] = dict(start=date(2026, 6, 2), end=date(2026, 7, 1))
    grid_hours = energy_report(storage_backend, cfg, circuit="main", interval="hour", **kw)["intervals"]
    assert grid_hours[0]["cost"] == pytest.approx(0.5 + 0.1)  # 1 kWh · 0.5 + 2.4 / 24 h
    grid_month = energy_report(storage_backend, cfg, circuit="main", interval="month", **kw)["intervals"][0]
    # 29 days · (24 kWh · 0.5 + 2.4) + 1 kW maximum demand · 10 /kW
    assert grid_month["cost"] == pytest.approx(29 * (12 + 2.4) + 10)
    light_month = energy_report(storage_backend, cfg, circuit="light", interval="month", **kw)["intervals"][0]
    assert light_month["cost"] == pytest.approx(29 * 12)


def test_announced_meter_change_gives_an_exact_day(storage_spec: Any, tmp_path: Path) -> None:
    storage = storage_spec.open(timezone="Europe/Berlin")
    t0 = utc("2026-06-01T22:00:00")  # local 06-02 00:00, 1 kW all day, read every 15 min
    samples = constant_load(t0, t0 + 86400, 1000.0, e0=50_000.0)
    swap = t0 + 10 * 3600 + 300  # the old meter came off at 10:05 reading 60 083.33 Wh; the new one read 12
    raw = [
        (t, v if t < swap else 12.0 + (v - (50_000.0 + 1000.0 * (swap - t0) / 3600.0))) for t, v in samples
    ]
    imported(storage, tmp_path, raw)
    old_final = 50_000.0 + 1000.0 * (swap - t0) / 3600.0
    cfg = site(
        "  meter_changes:\n"
        f"    - {{circuit: main, time: '2026-06-02T10:05:00', old_final: {old_final!r}, new_initial: 12.0}}"
    )
    rep = energy_report(
        storage, cfg, start=date(2026, 6, 2), end=date(2026, 6, 3), interval="hour", circuit="main"
    )
    assert [r["energy_active_import"] for r in rep["intervals"]] == pytest.approx([1000.0] * 24)
    assert not any(r["estimated"] for r in rep["intervals"])
