"""EnergyPipeline: guarded registers, demand, cost, CO2, restart continuity, bad data — on real storage."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from meterhub.energy.pipeline import EnergyPipeline
from meterhub.energy.plausibility import RefusalReason
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading, SeriesKey
from meterhub.model.topology import Phase

from .conftest import site

BERLIN = ZoneInfo("Europe/Berlin")
TARIFFS = """
  demand: {interval: 15, method: block}
  tariffs:
    rates: [{id: peak, price: 0.30}, {id: low, price: 0.20}]
    seasons:
      - start: "01-01"
        weekday: [{from: "00:00", rate: low}, {from: "07:00", rate: peak}, {from: "20:00", rate: low}]
"""
IMP = "energy_active_import"
EXP = "energy_active_export"


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ramp(t0: float, minutes: int, e0: float, wh_per_min: float, circuit: str = "main") -> list[Reading]:
    return [
        Reading(t0 + 60.0 * i, circuit, IMP, Phase.TOTAL, e0 + wh_per_min * i) for i in range(minutes + 1)
    ]


def by(out: list[Reading], quantity: str) -> list[Reading]:
    return [r for r in out if r.quantity == quantity]


def test_block_demand_cost_and_co2_per_quarter_hour(storage_backend: Any, tmp_path: Path) -> None:
    t0 = local("2026-06-01T06:30:00")  # a Monday; peak from 07:00
    clock = Clock(t0)
    p = EnergyPipeline(site(TARIFFS), storage_backend, clock=clock, state_file=tmp_path / "s.json")
    out: list[Reading] = []
    for r in ramp(t0, 60, 10_000.0, 100.0):  # 6 kW for an hour
        clock.t = r.ts
        out += p.process([r])
    demand = by(out, "demand_active_import")
    assert [d.ts for d in demand] == [t0 + 900 * k for k in (1, 2, 3, 4)]
    assert [d.value for d in demand] == pytest.approx([6000.0] * 4)
    # 1.5 kWh per quarter hour: 06:30–07:00 at 0.20, 07:00–07:30 at 0.30 [EUR/kWh]
    assert [c.value for c in by(out, "cost")] == pytest.approx([0.30, 0.30, 0.45, 0.45])
    assert [c.value for c in by(out, "co2")] == pytest.approx([0.6] * 4)  # site factor 0.4 kg/kWh
    assert by(out, "max_demand_active_import")[-1].value == pytest.approx(6000.0)
    md = p.max_demand()["main/demand_active_import"]
    assert md["low"][0] == pytest.approx(6000.0) and md["low"][1] == t0 + 900
    assert md["peak"][0] == pytest.approx(6000.0) and md["peak"][1] == t0 + 2700


def test_predicted_demand_extrapolates_the_present_power(tmp_path: Path) -> None:
    t0 = local("2026-06-01T07:00:00")
    p = EnergyPipeline(site(TARIFFS), None, clock=Clock(t0 + 86400), state_file=None)
    out: list[Reading] = []
    # 07:00–07:07 at 6 kW, then 12 kW: the step is counted when 07:09 confirms it; at 07:09 the
    # window holds 700 + 200 + 200 Wh
    rs = ramp(t0, 7, 0.0, 100.0) + [
        Reading(t0 + 60 * k, "main", IMP, Phase.TOTAL, e) for k, e in ((8, 900.0), (9, 1100.0))
    ]
    for r in rs:
        out = p.process([r])
    pred = by(out, "demand_active_import_predicted")[-1]
    # (1100 Wh · 3600 + 12 kW · 360 s) / 900 s = 4400 + 4800 = 9200 W
    assert pred.ts == t0 + 540 and pred.value == pytest.approx(9200.0)


def test_sliding_demand_updates_each_subinterval(tmp_path: Path) -> None:
    cfg = site("  demand: {interval: 15, method: sliding, subintervals: 3}")
    t0 = local("2026-06-01T08:00:00")
    p = EnergyPipeline(cfg, None, clock=Clock(t0 + 86400))
    out: list[Reading] = []
    # 5-min energies: 100, 100, 400, 100 Wh → windows ending 08:15 and 08:20
    e = 0.0
    for k, wh in enumerate([100.0, 100.0, 400.0, 100.0]):
        out += p.process([Reading(t0 + 300 * k, "main", IMP, Phase.TOTAL, e)])
        e += wh
    out += p.process([Reading(t0 + 1200, "main", IMP, Phase.TOTAL, e)])
    d = by(out, "demand_active_import")
    assert [x.ts - t0 for x in d] == [900, 1200]
    assert [x.value for x in d] == pytest.approx([600 * 4.0, 600 * 4.0])  # 600 Wh per 15 min = 2400 W


def test_registers_continue_across_a_restart(storage_spec: Any, tmp_path: Path) -> None:
    state = tmp_path / "energy.json"
    t0 = local("2026-06-01T10:00:00")
    cfg = site(TARIFFS)
    s1 = storage_spec.open(timezone="Europe/Berlin")
    p1 = EnergyPipeline(cfg, s1, clock=Clock(t0), state_file=state)
    key = SeriesKey("main", IMP, Phase.TOTAL)
    out = p1.process([Reading(t0, "main", IMP, Phase.TOTAL, 5000.0)])
    out += p1.process([Reading(t0 + 60, "main", IMP, Phase.TOTAL, 5100.0)])  # 6 kW
    # meter reset: 80 Wh since, 6 kW on; confirmed by 3 polls over ≥ 30 s → 5180, then 5280, 5380
    for k, e in ((2, 80.0), (3, 180.0), (4, 280.0)):
        out += p1.process([Reading(t0 + 60 * k, "main", IMP, Phase.TOTAL, e)])
    assert [(r.ts - t0, r.value, r.quality) for r in by(out, IMP) if r.quality < Quality.INVALID][2:] == [
        (120.0, 5180.0, Quality.GOOD),
        (180.0, 5280.0, Quality.GOOD),
        (240.0, 5380.0, Quality.GOOD),
    ]
    s1.write(out)
    s1.save_registers(p1.registers())
    s1.flush()
    p1.close()
    s1.close()
    s2 = storage_spec.open(timezone="Europe/Berlin")
    p2 = EnergyPipeline(cfg, s2, clock=Clock(t0 + 300), state_file=state)
    assert p2.registers()[key] == pytest.approx(5380.0)
    # the raw baseline, its time and the rate were kept: the next poll counts at once
    out2 = p2.process([Reading(t0 + 300, "main", IMP, Phase.TOTAL, 380.0)])
    assert by(out2, IMP)[0].value == pytest.approx(5480.0)


def test_bad_values_go_on_invalid_and_are_counted_never_raised() -> None:
    t0 = local("2026-06-01T10:00:00")
    p = EnergyPipeline(site(TARIFFS), None, clock=Clock(t0 + 86400))
    batch = [
        Reading(t0, "main", IMP, Phase.TOTAL, 100.0),
        Reading(t0 + 1, "main", IMP, Phase.TOTAL, math.nan),
        Reading(t0 + 2, "main", IMP, Phase.TOTAL, -3.0),
        Reading(t0 + 3, "nowhere", IMP, Phase.TOTAL, 7.0),
        Reading(t0 + 4, "main", "no_such_quantity", None, 1.0),
        Reading(t0 + 5, "main", Q.VOLTAGE, Phase.L1, 230.0),
    ]
    out = p.process(batch)
    assert [(r.circuit, r.quantity, r.value, r.quality) for r in out if not math.isnan(r.value)] == [
        ("main", IMP, 100.0, Quality.GOOD),
        ("main", IMP, -3.0, Quality.INVALID),
        ("nowhere", IMP, 7.0, Quality.GOOD),
        ("main", "no_such_quantity", 1.0, Quality.GOOD),
        ("main", Q.VOLTAGE, 230.0, Quality.GOOD),
    ]
    assert sum(math.isnan(r.value) and r.quality is Quality.INVALID for r in out) == 1
    status = p.refusals()["main"]
    assert status.count == 2 and status.device == "m1"
    assert status.by_reason == {RefusalReason.NOT_A_NUMBER: 1, RefusalReason.OUT_OF_RANGE: 1}


def test_outage_marks_the_first_reading_after_it_estimated() -> None:
    t0 = local("2026-06-01T10:00:00")
    p = EnergyPipeline(site(TARIFFS), None, clock=Clock(t0 + 86400))
    p.process([Reading(t0, "main", IMP, Phase.TOTAL, 100.0)])
    out = p.process([Reading(t0 + 3 * 3600, "main", IMP, Phase.TOTAL, 3100.0)])
    reg = by(out, IMP)[0]
    assert reg.value == 3100.0 and reg.quality is Quality.ESTIMATED
    d = by(out, "demand_active_import")
    assert len(d) == 12 and all(x.quality is Quality.ESTIMATED for x in d)  # 10:15 … 13:00
    assert d[0].value == pytest.approx(1000.0)


def test_virtual_circuit_power_and_demand_follow_the_formula() -> None:
    cfg = site('  virtual: [{id: rest, formula: "main - light - pv"}]')
    t0 = local("2026-06-01T10:00:00")
    p = EnergyPipeline(cfg, None, clock=Clock(t0 + 86400))
    out = p.process(
        [
            Reading(t0, "main", "active_power", Phase.TOTAL, 5000.0),
            Reading(t0, "light", "active_power", Phase.TOTAL, 1200.0),
            Reading(t0, "pv", "active_power", Phase.TOTAL, 800.0),
        ]
    )
    rest = [r for r in out if r.circuit == "rest"]
    assert [(r.quantity, r.value) for r in rest] == [("active_power", 3000.0)]
    out = []
    # one quarter hour: main imports 1000 Wh, light 300 Wh, PV exports 400 Wh (no import)
    regs = (("main", IMP, 1000.0), ("light", IMP, 300.0), ("pv", IMP, 0.0), ("pv", EXP, 400.0))
    for t, f in ((t0, 0.0), (t0 + 900, 1.0)):  # one batch per poll, as the runtime delivers them
        out += p.process([Reading(t, c, q, Phase.TOTAL, f * wh) for c, q, wh in regs])
    rest_d = [r for r in out if r.circuit == "rest" and r.quantity.startswith("demand_active")]
    # net: 1000 − 300 − (0 − 400) = 1100 Wh in 15 min = 4400 W import, 0 export
    assert [(r.quantity, r.value) for r in rest_d] == [
        ("demand_active_import", 4400.0),
        ("demand_active_export", 0.0),
    ]


def test_thermal_demand_reaches_90_percent_of_a_step_in_one_interval() -> None:
    t0 = local("2026-06-01T10:00:00")
    p = EnergyPipeline(site("  demand: {interval: 15, method: thermal}"), None, clock=Clock(t0 + 86400))
    out: list[Reading] = []
    for r in ramp(t0, 30, 0.0, 10_000.0 / 60.0):  # a 10-kW step at 10:00, read every minute
        out += p.process([r])
    d = by(out, "demand_active_import")
    assert [x.ts - t0 for x in d] == [900.0, 1800.0]
    assert [x.value for x in d] == pytest.approx([9000.0, 9900.0])


def test_reconfigure_keeps_registers_and_applies_new_prices(tmp_path: Path) -> None:
    t0 = local("2026-06-01T10:00:00")
    p = EnergyPipeline(site(TARIFFS), None, clock=Clock(t0 + 86400))
    p.process(ramp(t0, 15, 0.0, 100.0))
    cheaper = TARIFFS.replace("price: 0.30", "price: 0.10")
    p.reconfigure(site(cheaper))
    out = p.process(ramp(t0 + 960, 14, 1600.0, 100.0))
    assert p.registers()[SeriesKey("main", IMP, Phase.TOTAL)] == 3000.0
    assert [c.value for c in by(out, "cost")] == pytest.approx([0.15])  # 1.5 kWh at the new peak price


def test_a_reading_from_a_wrong_device_clock_does_not_hold_the_register(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t0 = local("2026-06-01T10:00:00")
    clock = Clock(t0)
    p = EnergyPipeline(site(TARIFFS), None, clock=clock)
    p.process([Reading(t0, "main", IMP, Phase.TOTAL, 100.0)])
    assert p.process([Reading(t0 + 365 * 86400, "main", IMP, Phase.TOTAL, 150.0)]) == []
    clock.t = t0 + 60
    out = p.process([Reading(t0 + 60, "main", IMP, Phase.TOTAL, 110.0)])
    assert by(out, IMP)[0].value == 110.0 and "in the future" in caplog.text


def test_max_average_current_per_phase() -> None:
    t0 = local("2026-06-01T10:00:00")
    p = EnergyPipeline(site("  demand: {interval: 15}"), None, clock=Clock(t0 + 86400))
    out: list[Reading] = []
    for k in range(31):  # L1 read every minute: 10 A for 10 min, then 40 A
        out += p.process([Reading(t0 + 60 * k, "main", "current", Phase.L1, 10.0 if k < 10 else 40.0)])
    avg = by(out, "demand_current")
    # (10 A · 600 s + 40 A · 300 s) / 900 s = 20 A, then 40 A
    assert [(a.ts - t0, a.phase, a.value) for a in avg] == [(900.0, Phase.L1, 20.0), (1800.0, Phase.L1, 40.0)]
    assert by(out, "max_demand_current")[-1].value == 40.0
    assert p.max_demand()["main/demand_current/L1"] == {"total": [40.0, t0 + 1800]}
    p.reset_max_demand()
    assert "main/demand_current/L1" not in p.max_demand()


def test_net_and_absolute_active_energy_follow_import_and_export() -> None:
    """Seed 002 Appendix 3: net = A+ − A−, absolute = A+ + A−, per poll once both were counted."""
    t0 = local("2026-06-01T10:00:00")
    p = EnergyPipeline(site(TARIFFS), None, clock=Clock(t0 + 86400))
    out: list[Reading] = []
    # the export's first rise (400 → 405 after steps of 0) is counted when the next poll confirms it
    for k, (imp, exp) in enumerate([(1000.0, 400.0), (1010.0, 400.0), (1010.0, 405.0), (1010.0, 410.0)]):
        out += p.process(
            [
                Reading(t0 + 60 * k, "pv", IMP, Phase.TOTAL, imp),
                Reading(t0 + 60 * k, "pv", EXP, Phase.TOTAL, exp),
            ]
        )
    assert [r.value for r in by(out, Q.ENERGY_ACTIVE_NET)] == [600.0, 610.0, 605.0, 600.0]
    assert [r.value for r in by(out, Q.ENERGY_ACTIVE_ABSOLUTE)] == [1400.0, 1410.0, 1415.0, 1420.0]
    # a meter with its own absolute register keeps it; ours is not added beside it
    out = p.process(
        [
            Reading(t0 + 240, "pv", Q.ENERGY_ACTIVE_ABSOLUTE, Phase.TOTAL, 1425.0),
            Reading(t0 + 240, "pv", IMP, Phase.TOTAL, 1015.0),
            Reading(t0 + 240, "pv", EXP, Phase.TOTAL, 410.0),
        ]
    )
    assert [r.value for r in by(out, Q.ENERGY_ACTIVE_ABSOLUTE)] == [1425.0]
    assert [r.value for r in by(out, Q.ENERGY_ACTIVE_NET)] == [605.0]
