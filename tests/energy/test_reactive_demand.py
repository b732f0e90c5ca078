"""Seed 002 Appendix 3 register set in the energy pipeline: reactive import/export demand and maximum
demand with the time it occurred, predicted demand of Q and S, net and absolute reactive energy.

Registers are fed once a minute; every expected value is worked out by hand in the comments.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from meterhub.config.energy import DemandSettings
from meterhub.energy.pipeline import EnergyPipeline
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase

from .conftest import site

BERLIN = ZoneInfo("Europe/Berlin")
BLOCK = "  demand: {interval: 15, method: block}"


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def by(out: list[Reading], quantity: str) -> list[Reading]:
    return [r for r in out if r.quantity == quantity]


def minutes(t0: float, registers: dict[str, list[float]]) -> list[list[Reading]]:
    """One batch per minute from ``t0``: each register's value at that minute [varh, VAh]."""
    n = len(next(iter(registers.values())))
    return [
        [Reading(t0 + 60.0 * k, "main", q, Phase.TOTAL, values[k]) for q, values in registers.items()]
        for k in range(n)
    ]


def cumulative(steps: list[float], start: float = 0.0) -> list[float]:
    out = [start]
    for s in steps:
        out.append(out[-1] + s)
    return out


def test_reactive_demand_is_measured_by_default() -> None:
    assert {Q.ENERGY_REACTIVE_IMPORT, Q.ENERGY_REACTIVE_EXPORT, Q.ENERGY_APPARENT} <= set(
        DemandSettings().quantities
    )


def test_reactive_import_and_export_maximum_demand_with_the_time_it_occurred() -> None:
    t0 = local("2026-06-01T07:00:00")
    p = EnergyPipeline(site(BLOCK), None, clock=Clock(t0 + 86400))
    # R+: 50 varh/min (3 kvar) for 30 min, then 100 varh/min (6 kvar) for 30 min
    # R−: 20 varh/min (1.2 kvar) for 15 min, then 10 varh/min (0.6 kvar) for 45 min
    imp = cumulative([50.0] * 30 + [100.0] * 30)
    exp = cumulative([20.0] * 15 + [10.0] * 45, start=1000.0)
    out: list[Reading] = []
    for batch in minutes(t0, {Q.ENERGY_REACTIVE_IMPORT: imp, Q.ENERGY_REACTIVE_EXPORT: exp}):
        out += p.process(batch)
    ends = [t0 + 900 * k for k in (1, 2, 3, 4)]
    d_imp = by(out, Q.DEMAND_REACTIVE_IMPORT)
    assert [d.ts for d in d_imp] == ends
    assert [d.value for d in d_imp] == pytest.approx([3000.0, 3000.0, 6000.0, 6000.0])  # [var]
    assert [d.value for d in by(out, Q.MAX_DEMAND_REACTIVE_IMPORT)] == pytest.approx(
        [3000.0] * 2 + [6000.0] * 2
    )
    d_exp = by(out, Q.DEMAND_REACTIVE_EXPORT)
    assert [d.ts for d in d_exp] == ends
    assert [d.value for d in d_exp] == pytest.approx([1200.0, 600.0, 600.0, 600.0])
    assert [d.value for d in by(out, Q.MAX_DEMAND_REACTIVE_EXPORT)] == pytest.approx([1200.0] * 4)
    # the maxima keep the end of the window they occurred in: 07:45 for R+, 07:15 for R−
    md = p.max_demand()
    assert md["main/demand_reactive_import"] == {"total": [pytest.approx(6000.0), t0 + 2700]}
    assert md["main/demand_reactive_export"] == {"total": [pytest.approx(1200.0), t0 + 900]}
    # a reset clears them and reports what they were
    before = p.reset_max_demand("main")
    assert before["main/demand_reactive_export"]["total"][0] == pytest.approx(1200.0)
    assert p.max_demand()["main/demand_reactive_import"] == {}


def test_predicted_reactive_and_apparent_demand_extrapolate_the_present_power() -> None:
    t0 = local("2026-06-01T07:00:00")
    p = EnergyPipeline(site(BLOCK), None, clock=Clock(t0 + 86400))
    # 07:00–07:07: R+ 50 varh/min (3 kvar), S 100 VAh/min (6 kVA); then 100 varh/min and 200 VAh/min
    imp = cumulative([50.0] * 7 + [100.0] * 2)
    s = cumulative([100.0] * 7 + [200.0] * 2)
    out: list[Reading] = []
    for batch in minutes(t0, {Q.ENERGY_REACTIVE_IMPORT: imp, Q.ENERGY_APPARENT: s}):
        out = p.process(batch)
    # at 07:09 the window holds 550 varh and 6 kvar flows for the 360 s left:
    # (550 varh · 3600 + 6000 var · 360 s) / 900 s = 2200 + 2400 = 4600 var
    q_pred = by(out, Q.DEMAND_REACTIVE_IMPORT_PREDICTED)[-1]
    assert q_pred.ts == t0 + 540 and q_pred.value == pytest.approx(4600.0)
    # (1100 VAh · 3600 + 12000 VA · 360 s) / 900 s = 4400 + 4800 = 9200 VA
    s_pred = by(out, Q.DEMAND_APPARENT_PREDICTED)[-1]
    assert s_pred.ts == t0 + 540 and s_pred.value == pytest.approx(9200.0)
    # the API's predicted_all (GET /energy/demand) gives the same figures, keyed by the predicted quantity
    assert p.predicted_all() == {
        q_pred.circuit: {Q.DEMAND_REACTIVE_IMPORT_PREDICTED: 4600.0, Q.DEMAND_APPARENT_PREDICTED: 9200.0}
    }


def test_a_register_without_a_demand_quantity_is_refused_for_demand() -> None:
    """Measuring the demand of a quadrant register would be stored and shown nowhere: refused."""
    with pytest.raises(ValueError, match="'energy_reactive_q1' has no demand quantity"):
        DemandSettings(quantities=[Q.ENERGY_REACTIVE_Q1])


def test_net_and_absolute_reactive_energy_follow_import_and_export() -> None:
    """Seed 002 Appendix 3: net = R+ − R−, absolute = R+ + R−, per poll once both were counted."""
    t0 = local("2026-06-01T10:00:00")
    p = EnergyPipeline(site(BLOCK), None, clock=Clock(t0 + 86400))
    imp = [500.0, 510.0, 520.0, 530.0]
    exp = [200.0, 205.0, 210.0, 215.0]
    out: list[Reading] = []
    for batch in minutes(t0, {Q.ENERGY_REACTIVE_IMPORT: imp, Q.ENERGY_REACTIVE_EXPORT: exp}):
        out += p.process(batch)
    assert [r.value for r in by(out, Q.ENERGY_REACTIVE_NET)] == [300.0, 305.0, 310.0, 315.0]
    assert [r.value for r in by(out, Q.ENERGY_REACTIVE_ABSOLUTE)] == [700.0, 715.0, 730.0, 745.0]
    # the active pair is unaffected by the reactive one
    assert by(out, Q.ENERGY_ACTIVE_NET) == [] and by(out, Q.ENERGY_ACTIVE_ABSOLUTE) == []


def test_billing_keeps_reactive_maximum_demand_and_its_cumulation() -> None:
    """Seed 002 Appendix 4/8: the monthly billing snapshot holds the reactive import/export maximum
    demand with its time, and the cumulation maximum demand adds each period's maximum."""
    t0 = local("2026-06-01T07:00:00")
    p = EnergyPipeline(site(BLOCK), None, clock=Clock(t0 + 86400))

    def hour(start: float, e0: float, varh_per_min: float) -> None:
        for batch in minutes(start, {Q.ENERGY_REACTIVE_IMPORT: cumulative([varh_per_min] * 60, e0)}):
            p.process(batch)

    hour(t0, 0.0, 50.0)  # 3 kvar for an hour
    first = p.bill(ts=t0 + 3600)
    assert first.max_demand["main/demand_reactive_import"]["total"] == [pytest.approx(3000.0), t0 + 900]
    assert first.cumulative_max_demand["main/demand_reactive_import"]["total"] == pytest.approx(3000.0)
    hour(t0 + 7200, 3000.0, 25.0)  # the next period: 1.5 kvar
    second = p.bill(ts=t0 + 10800)
    assert second.max_demand["main/demand_reactive_import"]["total"][0] == pytest.approx(1500.0)
    # 3000 var + 1500 var: the reset at billing cannot hide the first period's peak
    assert second.cumulative_max_demand["main/demand_reactive_import"]["total"] == pytest.approx(4500.0)
