"""The simulated site is physically consistent and its energy registers integrate P exactly."""

from pathlib import Path

import pytest

from meterhub.config import load_config
from meterhub.model import Phase
from meterhub.sim.physics import MAX_STEP, SiteModel

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def site():
    clock = Clock()
    return SiteModel(load_config(DEMO), clock=clock), clock


def test_each_phase_obeys_s_equals_ui_and_pf_equals_p_over_s(site):
    model, _ = site
    for c in model.config.circuits:
        for ch in model.circuit(c.id):
            assert 180 <= ch.voltage <= 260
            assert ch.apparent_power == pytest.approx(ch.voltage * ch.current, rel=1e-12)
            assert abs(ch.active_power) == pytest.approx(
                ch.voltage * ch.current * abs(ch.power_factor), rel=1e-9
            )
            assert ch.displacement_power_factor**2 == pytest.approx(
                ch.active_power**2 / (ch.active_power**2 + ch.reactive_power**2), rel=1e-9
            )


def test_grid_incomer_carries_the_sum_of_all_circuits_per_phase(site):
    model, _ = site
    for k, ph in enumerate((Phase.L1, Phase.L2, Phase.L3)):
        total = sum(
            ch.active_power
            for c in model.config.circuits
            if c.id != "grid"
            for ch in model.circuit(c.id)
            if ch.phase is ph
        )
        assert model.circuit("grid")[k].active_power == pytest.approx(total, rel=1e-12)


def test_energy_register_grows_by_the_sum_of_p_dt(site):
    model, clock = site
    e0 = model.circuit_energy("hvac")["energy_active_import"]
    expected = 0.0
    for _ in range(int(20 / MAX_STEP)):
        p = sum(ch.active_power for ch in model.circuit("hvac"))
        expected += max(p, 0.0) * MAX_STEP / 3600.0
        clock.t += MAX_STEP
        model.advance()
    assert model.circuit_energy("hvac")["energy_active_import"] - e0 == pytest.approx(expected, rel=1e-9)


def test_pv_exports_and_fills_the_export_register(site):
    model, clock = site
    clock.t += 60
    e = model.circuit_energy("pv")
    assert sum(ch.active_power for ch in model.circuit("pv")) < 0  # start_hour 11: the sun is up
    assert e["energy_active_export"] > 0 and e["energy_active_import"] == 0


def test_registers_survive_a_restart(tmp_path):
    clock = Clock()
    cfg = load_config(DEMO)
    state = tmp_path / "sim-state.json"
    a = SiteModel(cfg, clock=clock, state_file=state)
    clock.t += 30
    before = a.circuit_energy("kitchen")["energy_active_import"]
    a.save()
    b = SiteModel(cfg, clock=clock, state_file=state)
    assert b.circuit_energy("kitchen")["energy_active_import"] == pytest.approx(before, rel=1e-15)
    clock.t += 5
    assert b.circuit_energy("kitchen")["energy_active_import"] > before


def test_voltage_unit_reports_the_supply(site):
    model, _ = site
    u = model.supply()
    assert model.value("vu", "voltage", Phase.L2) == pytest.approx(u.voltage[1])
    assert model.value("vu", "voltage_line", Phase.L1) == pytest.approx(u.voltage_line[0])
    assert 49.9 < model.value("vu", "frequency", None) < 50.1
    # line-to-line voltage of a near-symmetric 230 V system is ~ √3·230 V
    assert u.voltage_line[0] == pytest.approx(398.4, rel=0.02)


def test_single_meter_site_answers_per_phase_and_total():
    m = SiteModel.single_meter("sdm", clock=Clock())
    p = [m.value("sdm", "active_power", ph) for ph in (Phase.L1, Phase.L2, Phase.L3)]
    assert m.value("sdm", "active_power", Phase.TOTAL) == pytest.approx(sum(p))
    assert m.value("sdm", "current", Phase.N) is not None
