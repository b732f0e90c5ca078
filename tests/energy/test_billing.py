"""Monthly billing on day 28 at 23:00 (seed 002 appendix 4): automatic, manual, API; count; history."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from meterhub.energy.billing import BillingReason, next_billing_time
from meterhub.energy.pipeline import EnergyPipeline
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase

from .conftest import site

BERLIN = ZoneInfo("Europe/Berlin")
BILLING = "  billing: {day: 28, hour: 23}\n  demand: {interval: 15}"


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def test_next_billing_time_is_day_28_at_23_local_across_dst() -> None:
    tz = "Europe/Berlin"
    assert next_billing_time(local("2026-02-10T12:00"), 28, 23, tz) == local("2026-02-28T23:00")
    assert next_billing_time(local("2026-02-28T23:00"), 28, 23, tz) == local("2026-03-28T23:00")
    # after the spring change the same local hour is one UTC hour earlier
    assert local("2026-04-28T23:00") - local("2026-03-28T23:00") == 31 * 86400 - 3600
    assert next_billing_time(local("2026-12-29T00:00"), 28, 23, tz) == local("2027-01-28T23:00")


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_automatic_billing_snapshots_registers_and_max_demand_then_resets(tmp_path: Path) -> None:
    t0 = local("2026-02-28T21:00")
    clock = Clock(t0)
    state = tmp_path / "energy.json"
    p = EnergyPipeline(site(BILLING), None, clock=clock, state_file=state)
    e = 10_000.0
    for k in range(13):  # 21:00 … 24:00 every 15 min; 2 kW before 23:00, 4 kW after
        t = t0 + 900 * k
        clock.t = t
        p.process([Reading(t, "main", "energy_active_import", Phase.TOTAL, e)])
        e += 500.0 if t < local("2026-02-28T23:00") else 1000.0
    assert p.billing.count == 1
    snap = p.billing.history[0]
    assert snap.ts == local("2026-02-28T23:00") and snap.reason == "automatic"
    assert snap.registers["main/energy_active_import/total"] == 10_000.0 + 8 * 500.0  # the 23:00 reading
    md = snap.max_demand["main/demand_active_import"]["total"]
    assert md == [2000.0, local("2026-02-28T21:15")]
    # after the reset only the 4-kW windows count
    assert p.max_demand()["main/demand_active_import"]["total"] == [4000.0, local("2026-02-28T23:15")]
    assert p.billing.next_ts == local("2026-03-28T23:00")
    # manual and API billing increment the count; history survives a restart
    p.bill(BillingReason.MANUAL)
    p.bill(BillingReason.API)
    p.close()
    p2 = EnergyPipeline(site(BILLING), None, clock=clock, state_file=state)
    assert p2.billing.count == 3
    assert [s.reason for s in p2.billing.history] == ["automatic", "manual", "api"]
    # cumulated maximum demand: 2 kW of the first period + 4 kW of the second (+ 0 of the third)
    cum = p2.billing.history[-1].cumulative_max_demand["main/demand_active_import"]["total"]
    assert cum == 6000.0
    assert p2.max_demand()["main/demand_active_import"] == {}


def test_manual_max_demand_reset_returns_the_values_before() -> None:
    t0 = local("2026-06-01T10:00")
    p = EnergyPipeline(site("  demand: {interval: 15}"), None, clock=Clock(t0 + 86400))
    for k, e in enumerate([0.0, 250.0, 1000.0, 1000.0]):  # a load step counts once the next poll confirms it
        p.process([Reading(t0 + 900 * k, "main", "energy_active_import", Phase.TOTAL, e)])
    before = p.reset_max_demand("main")
    assert before == {"main/demand_active_import": {"total": [3000.0, t0 + 1800]}}
    assert p.max_demand() == {"main/demand_active_import": {}}


def test_billing_settings_reject_day_29() -> None:
    from meterhub.config import ConfigError

    with pytest.raises(ConfigError) as err:
        site("  billing: {day: 29, hour: 23}")
    assert "energy.billing.day" in str(err.value) and ":" in str(err.value).split(" ")[0]
