"""Effective-dated tariffs: energy is priced with the tariff in force when it was used (issue 10 item 7).

Hand-computed: 10 kWh per local day is a constant 416.67 W (2.5 kWh per 6 h); Europe/Berlin is UTC+2 in
June, so local 2026-06-01 00:00 is 2026-05-31T22:00Z.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from meterhub.checks import parse_site
from meterhub.config import edit
from meterhub.config.loader import ConfigError
from meterhub.energy.config import TariffSettings, effective_time
from meterhub.energy.pipeline import EnergyPipeline
from meterhub.energy.reports import energy_report
from meterhub.energy.tariffs import Co2Factor, TariffTimeline
from meterhub.model.readings import Reading

from .conftest import SITE, site
from .test_pipeline import Clock, by, local, ramp
from .test_reports import constant_load, imported, utc

DAY1 = utc("2026-05-31T22:00:00")  # local 2026-06-01 00:00
TEN_KWH_A_DAY = 10_000.0 / 24.0  # [W]

#: 0.20 EUR/kWh until local 2026-06-02 00:00, 0.30 from then on
CHANGED_ON_DAY_2 = """
  tariffs: {effective_from: "2026-06-02", rates: [{id: flat, price: 0.30}]}
  tariff_history:
    - {from: null, tariffs: {rates: [{id: flat, price: 0.20}]}}
"""


def two_days(storage: Any, tmp_path: Path, circuit: str = "light") -> None:
    imported(storage, tmp_path, constant_load(DAY1, DAY1 + 2 * 86400, TEN_KWH_A_DAY), circuit)


def test_a_tariff_change_does_not_reprice_the_day_before(storage_backend: Any, tmp_path: Path) -> None:
    two_days(storage_backend, tmp_path)
    kw: dict[str, Any] = dict(circuit="light", start=date(2026, 6, 1))
    days = energy_report(storage_backend, site(CHANGED_ON_DAY_2), end=date(2026, 6, 3), interval="day", **kw)
    assert [d["energy_active_import"] for d in days["intervals"]] == [10_000.0, 10_000.0]
    assert [d["cost"] for d in days["intervals"]] == pytest.approx([2.00, 3.00])  # 10 kWh · 0.20, · 0.30
    month = energy_report(
        storage_backend, site(CHANGED_ON_DAY_2), end=date(2026, 7, 1), interval="month", **kw
    )
    assert month["intervals"][0]["cost"] == pytest.approx(5.00)  # one row across the change, split at it
    # what main did before: the current tariff for everything (3.00 + 3.00)
    flat = site("  tariffs: {rates: [{id: flat, price: 0.30}]}")
    before = energy_report(storage_backend, flat, end=date(2026, 7, 1), interval="month", **kw)
    assert before["intervals"][0]["cost"] == pytest.approx(6.00)


def test_a_change_at_noon_splits_that_day(storage_backend: Any, tmp_path: Path) -> None:
    two_days(storage_backend, tmp_path)
    cfg = site(CHANGED_ON_DAY_2.replace('"2026-06-02"', '"2026-06-02T12:00:00+02:00"'))
    kw: dict[str, Any] = dict(circuit="light", start=date(2026, 6, 2), end=date(2026, 6, 3))
    day = energy_report(storage_backend, cfg, interval="day", **kw)["intervals"][0]
    assert day["cost"] == pytest.approx(5 * 0.20 + 5 * 0.30)  # 5 kWh before noon, 5 kWh after = 2.50
    hours = energy_report(storage_backend, cfg, interval="hour", **kw)["intervals"]
    assert [h["start"][11:16] for h in hours[11:13]] == ["11:00", "12:00"]
    assert [h["cost"] for h in hours[11:13]] == pytest.approx(
        [TEN_KWH_A_DAY * 0.2e-3, TEN_KWH_A_DAY * 0.3e-3]
    )


def test_standing_and_demand_charges_are_split_pro_rata() -> None:
    tz = "Europe/Berlin"
    old = TariffSettings.model_validate({"standing_charge": 1.0, "demand_charge": 10.0})
    new = TariffSettings.model_validate({"standing_charge": 2.0, "demand_charge": 20.0})
    noon = effective_time("2026-06-02T12:00:00+02:00", tz)
    timeline = TariffTimeline([(None, old), (noon, new)], tz)
    days = DAY1 + 86400.0 * np.arange(3)
    assert timeline.standing_charge(days).tolist() == pytest.approx([1.0, 0.5 + 1.0])  # half a day each
    june = np.array([DAY1, DAY1 + 30 * 86400.0])
    # 1.5 of 30 days at 10 /kW, 28.5 at 20 /kW
    assert timeline.demand_charge(june).tolist() == pytest.approx([(1.5 * 10 + 28.5 * 20) / 30])


def test_rates_keep_their_number_and_windows_across_a_change_are_priced_then() -> None:
    tz = "Europe/Berlin"
    tou = TariffSettings.model_validate(
        {
            "rates": [{"id": "peak", "price": 0.3}, {"id": "low", "price": 0.2}],
            "seasons": [{"weekday": [{"from": "00:00", "rate": "low"}, {"from": "07:00", "rate": "peak"}]}],
        }
    )
    flat = TariffSettings.model_validate({"rates": [{"id": "flat", "price": 0.25}]})
    change = local("2026-06-02T00:00:00")
    timeline = TariffTimeline([(None, tou), (change, flat)], tz)
    assert timeline.rate_ids == ["peak", "low", "flat"]
    ts = np.array([local("2026-06-01T06:00:00"), local("2026-06-01T08:00:00"), local("2026-06-02T08:00:00")])
    rate = timeline.rate_index(ts)
    assert rate.tolist() == [1, 0, 2]
    assert timeline.prices(ts, rate)[0].tolist() == pytest.approx([0.2, 0.3, 0.25])
    # a demand window whose rate was chosen before the change and closes after it: the new tariff's price
    assert timeline.prices(ts[2:], np.array([0]))[0].tolist() == pytest.approx([0.25])


def test_the_live_cost_follows_a_scheduled_change(tmp_path: Path) -> None:
    t0 = local("2026-06-01T10:00:00")
    cfg = site(
        """
  demand: {interval: 15, method: block}
  tariffs: {effective_from: "2026-06-01T10:15:00+02:00", rates: [{id: flat, price: 0.10}]}
  tariff_history:
    - {from: null, tariffs: {rates: [{id: flat, price: 0.30}]}}
"""
    )
    p = EnergyPipeline(cfg, None, clock=Clock(t0 + 3600))
    out: list[Reading] = p.process(ramp(t0, 30, 0.0, 100.0))  # 6 kW: 1.5 kWh per quarter hour
    assert [c.value for c in by(out, "cost")] == pytest.approx([1.5 * 0.30, 1.5 * 0.10])


def config_error(energy: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse_site(SITE.format(tz="Europe/Berlin", energy=energy), "site.yaml")
    return str(err.value)


def test_history_errors_name_the_entry() -> None:
    out_of_order = config_error(
        """
  tariffs: {effective_from: "2026-06-01", rates: [{id: flat, price: 0.3}]}
  tariff_history:
    - {from: "2026-03-01", tariffs: {rates: [{id: flat, price: 0.2}]}}
    - {from: "2026-02-01", tariffs: {rates: [{id: flat, price: 0.1}]}}
"""
    )
    assert out_of_order.startswith(  # the file, line and field of the second entry
        "site.yaml:17: energy.tariff_history[1].from: tariff_history[1] starts at 2026-02-01, "
        "not after tariff_history[0] (2026-03-01)"
    )
    not_after_current = config_error(
        """
  tariffs: {effective_from: "2026-03-01T00:00:00+01:00", rates: [{id: flat, price: 0.3}]}
  tariff_history:
    - {from: "2026-03-01", tariffs: {rates: [{id: flat, price: 0.2}]}}
"""
    )  # local midnight in Berlin is the same instant
    assert (
        "the current tariff starts at 2026-03-01T00:00:00+01:00, not after tariff_history[0]"
        in not_after_current
    )
    no_start = config_error(
        """
  tariffs: {rates: [{id: flat, price: 0.3}]}
  tariff_history:
    - {tariffs: {rates: [{id: flat, price: 0.2}]}}
"""
    )
    assert "tariffs.effective_from is missing: with a tariff_history, say when" in no_start
    no_offset = config_error('  tariffs: {effective_from: "2026-06-01T12:00", rates: []}')
    assert "has no UTC offset" in no_offset
    own_start = config_error(
        """
  tariffs: {effective_from: "2026-06-01", rates: []}
  tariff_history:
    - {from: null, tariffs: {effective_from: "2026-01-01", rates: []}}
"""
    )
    assert "not tariffs.effective_from" in own_start


def test_a_new_co2_factor_does_not_change_the_co2_of_the_day_before(
    storage_backend: Any, tmp_path: Path
) -> None:
    two_days(storage_backend, tmp_path)
    cfg = site(  # site.co2_factor 0.4 kg/kWh until local 2026-06-02, 0.25 from then on
        """
  co2: {factor_from: "2026-06-02", history: [{from: null, factor: 0.4}]}
"""
    )
    cfg.site.co2_factor = 0.25
    kw: dict[str, Any] = dict(circuit="light", start=date(2026, 6, 1), end=date(2026, 6, 3))
    days = energy_report(storage_backend, cfg, interval="day", **kw)["intervals"]
    assert [d["co2"] for d in days] == pytest.approx([10 * 0.4, 10 * 0.25])  # 4.0 and 2.5 kg


def test_changing_the_site_co2_factor_keeps_the_old_one_in_the_history() -> None:
    cfg = site("  {}")
    now = utc("2026-06-02T10:00:00")
    new = edit.patch_site(cfg, {"co2_factor": 0.25}, now=now)
    assert new.site.co2_factor == 0.25 and new.energy is not None
    co2 = new.energy.co2
    assert co2.factor_from == "2026-06-02T12:00:00+02:00"
    assert [(h.start, h.factor) for h in co2.history] == [(None, 0.4)]
    factor = Co2Factor.from_settings(co2, new.site.co2_factor, tz="Europe/Berlin")
    assert factor.at(np.array([now - 1, now])).tolist() == [0.4, 0.25]
    # an energy.co2.factor overrides the site's: changing the site's then changes no CO2, nothing recorded
    fixed = site("  co2: {factor: 0.3}")
    assert edit.patch_site(fixed, {"co2_factor": 0.1}, now=now).energy == fixed.energy


def test_co2_history_errors_name_the_entry() -> None:
    message = config_error(
        """
  co2:
    factor_from: "2026-01-01"
    history: [{from: null, factor: 0.5}, {from: "2026-03-01", factor: 0.4}]
"""
    )
    assert message.startswith(
        "site.yaml:15: energy.co2.factor_from: the present factor starts at 2026-01-01, "
        "not after co2.history[1] (2026-03-01)"
    )
