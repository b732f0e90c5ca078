"""The simulated site is physically consistent and its energy registers integrate P exactly."""

from pathlib import Path

import pytest

from meterhub.config import load_config
from meterhub.model import Phase
from meterhub.sim.physics import CATCHUP_FINE, CATCHUP_STEPS, MAX_STEP, REGISTERS, SiteModel

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


def _all_registers(model: SiteModel) -> dict[tuple[str, str], float]:
    return {(c.id, k): v for c in model.config.circuits for k, v in model.circuit_energy(c.id).items()}


def test_a_model_killed_after_its_last_save_restarts_at_or_above_every_value_it_served(tmp_path):
    # kill -9: the state was saved 3.7 s before the last value served; the restarted model must not
    # serve less, whatever the irregular read times of the killed one were
    clock = Clock(1_000_000.03)
    cfg = load_config(DEMO)
    state = tmp_path / "sim-state.json"
    a = SiteModel(cfg, clock=clock, state_file=state)
    for dt in (0.37, 0.05, 0.91, 0.13, 0.6):
        clock.t += dt
        a.advance()
    a.save()
    for dt in (0.07, 0.33, 1.2, 0.51, 0.09, 1.5):  # served after the save, then killed (not saved)
        clock.t += dt
        a.advance()
    served = _all_registers(a)
    b = SiteModel(cfg, clock=clock, state_file=state)  # restarted at the very instant of the kill
    again = _all_registers(b)
    for key, value in served.items():
        assert again[key] == pytest.approx(value, rel=1e-12, abs=1e-9), key  # the same integral
    clock.t += 2.0  # a real restart takes time: the meters counted meanwhile
    later = _all_registers(SiteModel(cfg, clock=clock, state_file=state))
    assert all(later[k] >= v for k, v in served.items())
    grew = [k for k, v in served.items() if k[1] == "energy_active_import" and later[k] > v]
    assert len(grew) >= 15  # every consuming circuit counted the 2 s


def test_a_restart_after_a_long_gap_counts_the_gap_like_a_meter_that_kept_running(tmp_path):
    clock = Clock()
    state = tmp_path / "sim-state.json"
    SiteModel.single_meter("m", rated_power=10_000.0, clock=clock, model="hvac", state_file=state).save()
    running = SiteModel.single_meter("m", rated_power=10_000.0, clock=clock, model="hvac")
    for _ in range(60):  # the reference never stopped: one hour cell by cell, read every minute
        clock.t += 60.0
        running.advance()
    # restarted one hour after the save: a minute cell by cell, the rest in 500 coarse steps
    b = SiteModel.single_meter("m", rated_power=10_000.0, clock=clock, model="hvac", state_file=state)
    truth = running.circuit_energy("m")["energy_active_import"]
    assert truth > 2000.0  # a cycling compressor: hours of kWh, not a constant
    assert b.circuit_energy("m")["energy_active_import"] == pytest.approx(truth, rel=0.01)


def test_catching_up_a_month_costs_a_bounded_number_of_load_evaluations(tmp_path, monkeypatch):
    clock = Clock()
    cfg = load_config(DEMO)
    state = tmp_path / "sim-state.json"
    SiteModel(cfg, clock=clock, state_file=state).save()
    clock.t += 30 * 86400.0
    calls = []
    real = SiteModel._states_at
    monkeypatch.setattr(SiteModel, "_states_at", lambda self, t: calls.append(t) or real(self, t))
    b = SiteModel(cfg, clock=clock, state_file=state)
    assert len(calls) <= CATCHUP_FINE / MAX_STEP + CATCHUP_STEPS + 2
    assert b.circuit_energy("sockets-1")["energy_active_import"] == pytest.approx(
        1500.0 * 30 * 24, rel=0.03
    )  # a constant 1.5 kW load for 30 days: 1 080 kWh


def test_the_simulated_clock_continues_after_a_short_restart_and_starts_again_after_a_long_one(tmp_path):
    clock = Clock()
    cfg = load_config(DEMO)  # simulation.start_hour: 11
    state = tmp_path / "sim-state.json"
    a = SiteModel(cfg, clock=clock, state_file=state)
    clock.t += 1800.0
    a.save()
    assert a.local_hour(clock.t) == pytest.approx(11.5)
    clock.t += 10.0
    assert SiteModel(cfg, clock=clock, state_file=state).local_hour(clock.t) == pytest.approx(
        11.5 + 10 / 3600
    )
    clock.t += 3600.0
    assert SiteModel(cfg, clock=clock, state_file=state).local_hour(clock.t) == pytest.approx(11.0)


def test_an_unreadable_state_file_starts_the_meters_at_zero(tmp_path, caplog):
    state = tmp_path / "sim-state.json"
    state.write_text("{not json")
    model = SiteModel(load_config(DEMO), clock=Clock(), state_file=state)
    assert set(model.circuit_energy("hvac").values()) == {0.0}
    assert "cannot read the simulated site's state" in caplog.text
    assert len(REGISTERS) == 7


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
