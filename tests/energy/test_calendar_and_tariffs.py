"""Local calendar (DST), tariff switching by a digital input, CO2 series, thermal demand, config errors."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from meterhub.checks import parse_site
from meterhub.config import ConfigError
from meterhub.energy.config import TariffSettings
from meterhub.energy.demand import block_demand, sliding_demand, thermal_demand
from meterhub.energy.tariffs import Co2Factor, TariffSchedule, load_co2_series
from meterhub.energy.timeutil import Interval, interval_edges, local_iso
from meterhub.energy.virtual import FormulaError, expand, parse_formula, site_balance

from .conftest import SITE, site

TZ = "Europe/Berlin"


def test_day_edges_span_23_and_25_hours_on_dst_changes() -> None:
    spring = interval_edges(date(2026, 3, 29), date(2026, 3, 30), Interval.DAY, TZ)
    autumn = interval_edges(date(2026, 10, 25), date(2026, 10, 26), Interval.DAY, TZ)
    assert np.diff(spring).tolist() == [23 * 3600.0]
    assert np.diff(autumn).tolist() == [25 * 3600.0]
    assert len(interval_edges(date(2026, 10, 25), date(2026, 10, 26), Interval.MIN15, TZ)) - 1 == 100
    months = interval_edges(date(2026, 3, 15), date(2026, 5, 10), Interval.MONTH, TZ)
    assert [local_iso(t, TZ) for t in months] == [
        "2026-03-15T00:00:00+01:00",
        "2026-04-01T00:00:00+02:00",
        "2026-05-01T00:00:00+02:00",
        "2026-05-10T00:00:00+02:00",
    ]


def test_bands_follow_local_clock_time_across_dst() -> None:
    settings = TariffSettings.model_validate(
        {
            "rates": [{"id": "day", "price": 0.3}, {"id": "night", "price": 0.1}],
            "seasons": [
                {
                    "weekday": [{"from": "06:00", "rate": "day"}, {"from": "22:00", "rate": "night"}],
                    "weekend": [{"from": "06:00", "rate": "day"}, {"from": "22:00", "rate": "night"}],
                }
            ],
        }
    )
    s = TariffSchedule(settings, TZ)
    at = [datetime(2026, 3, 29, h, 30, tzinfo=ZoneInfo(TZ)).timestamp() for h in (1, 5, 6, 21, 22)]
    assert s.rate_index(np.array(at)).tolist() == [1, 1, 0, 0, 1]


def test_tariff_switched_by_a_digital_input() -> None:
    settings = TariffSettings.model_validate(
        {
            "rates": [{"id": "high", "price": 0.3}, {"id": "low", "price": 0.1}],
            "switch": {"input": "di1", "closed": "low", "open": "high"},
        }
    )
    s = TariffSchedule(settings, TZ)
    di = (np.array([100.0, 200.0, 300.0]), np.array([1.0, 0.0, 1.0]))
    assert s.rate_index(np.array([50.0, 100.0, 150.0, 250.0, 300.0, 400.0]), di).tolist() == [
        0,
        1,
        1,
        0,
        1,
        1,
    ]


def test_co2_time_series_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "co2.csv"
    path.write_text(
        "timestamp,factor\n2026-06-01T00:00:00Z,0.5\n2026-06-01T01:00:00Z,0.2\n", encoding="utf-8"
    )
    f = Co2Factor(0.4, load_co2_series(path))
    t0 = datetime(2026, 6, 1, tzinfo=ZoneInfo("UTC")).timestamp()
    assert f.at(np.array([t0 - 1, t0, t0 + 1800, t0 + 3600])).tolist() == [0.4, 0.5, 0.5, 0.2]
    path.write_text("timestamp,factor\n2026-06-01T00:00:00,0.5\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"co2.csv:2: .*without a UTC offset"):
        load_co2_series(path)


def test_demand_formulas_by_hand() -> None:
    edges = np.array([0.0, 900.0, 1800.0])
    assert block_demand(edges, np.array([0.0, 250.0, 1000.0])).tolist() == [1000.0, 3000.0]
    # 5-min energies 100, 100, 400, 100 Wh; 15-min windows of 3 subintervals
    d = sliding_demand(np.array([100.0, 100.0, 400.0, 100.0]), 3, 900.0)
    assert np.isnan(d[:2]).all() and d[2:].tolist() == [2400.0, 2400.0]
    # thermal: 90 % of a 10 kW step after one interval, 99 % after two
    t = np.array([0.0, 900.0, 1800.0])
    assert thermal_demand(t, np.array([0.0, 10_000.0, 10_000.0]), 900.0).tolist() == pytest.approx(
        [0.0, 9000.0, 9900.0]
    )


def test_virtual_formulas_nest_and_reject_cycles() -> None:
    assert parse_formula("main - a + b") == [(1, "main"), (-1, "a"), (1, "b")]
    assert expand("rest", {"rest": "main - subs", "subs": "a + b"}) == {"main": 1, "a": -1, "b": -1}
    with pytest.raises(FormulaError, match="refers to itself"):
        expand("x", {"x": "y + a", "y": "x"})
    with pytest.raises(FormulaError, match="character"):
        parse_formula("main * 2")
    bal = site_balance([np.array([10.0, 0.0])], [np.array([0.0, 4.0])], [np.array([3.0, 9.0])], 2)
    assert bal.consumption.tolist() == [13.0, 5.0] and bal.self_consumption.tolist() == [3.0, 5.0]


def test_energy_section_errors_name_file_line_and_what_is_known() -> None:
    text = SITE.format(tz=TZ, energy='  virtual: [{id: rest, formula: "main - boiler"}]')
    with pytest.raises(ConfigError) as err:
        parse_site(text, "site.yaml")
    msg = str(err.value)
    assert "site.yaml:" in msg and "energy.virtual[0].formula: unknown circuit 'boiler'" in msg
    assert "known circuits: light, main, pv, rest" in msg
    with pytest.raises(
        ConfigError, match=r"energy.tariffs.seasons\[0\].weekday\[0\].from: time of day '25:00'"
    ):
        site('  tariffs: {rates: [{id: a}], seasons: [{weekday: [{from: "25:00", rate: a}]}]}')
    with pytest.raises(ConfigError, match="unknown rate 'b'"):
        site('  tariffs: {rates: [{id: a}], seasons: [{weekday: [{from: "00:00", rate: b}]}]}')
    with pytest.raises(ConfigError, match="energy.demand.interval"):
        site("  demand: {interval: 7}")
