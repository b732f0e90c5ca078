"""Simulated wiring faults: the site file's ``simulation.faults``, ``demo --fault`` and the physics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from meterhub.checks import load_site
from meterhub.config.faults import Fault, parse_fault
from meterhub.config.loader import ConfigError
from meterhub.model.quantities import Q
from meterhub.model.topology import Phase
from meterhub.profiles import get_profile
from meterhub.sim.modbus_device import ProfileDevice, model_value
from meterhub.sim.physics import SiteModel

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"


def angle(ch: object) -> float:
    return math.degrees(math.atan2(ch.reactive_power, ch.active_power))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("hvac:reverse:L2", Fault("hvac", "reverse", (Phase.L2,))),
        ("kitchen:swap:L1,L3", Fault("kitchen", "swap", (Phase.L1, Phase.L3))),
        ("pv:ratio:10", Fault("pv", "ratio", factor=10.0)),
        ("vu:drop:l2", Fault("vu", "drop", (Phase.L2,))),
    ],
)
def test_fault_texts(text: str, fault: Fault) -> None:
    assert parse_fault(text) == fault


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hvac:reverse", "is not TARGET:KIND:ARG"),
        ("hvac:reverse:N", "'N' is not a phase"),
        ("hvac:swap:L1", "swap names two phases"),
        ("hvac:swap:L2,L2", "two different phases"),
        ("hvac:ratio:1", "other than 1"),
        ("hvac:ratio:x", "between 0.001 and 1000"),
        ("hvac:melt:L1", "unknown kind 'melt'"),
    ],
)
def test_bad_fault_texts_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(text)


def test_site_file_fault_on_an_unknown_circuit_is_a_config_error(tmp_path: Path) -> None:
    text = DEMO.read_text(encoding="utf-8").replace(
        "  start_hour: 11", "  start_hour: 11\n  faults: [hvac:reverse:L2, lighting-office:reverse:L3]"
    )
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"circuit 'lighting-office' has no L3 \(it has L1\)"):
        load_site(path)


@pytest.fixture(scope="module")
def demo_model() -> SiteModel:
    cfg = load_site(DEMO)
    return SiteModel(cfg, clock=lambda: 1_780_000_000.0,
                     faults=["hvac:reverse:L2", "kitchen:swap:L1,L3", "vu:drop:L2"])  # fmt: skip


def test_reversed_ct_reads_its_angle_turned_by_180_degrees(demo_model: SiteModel) -> None:
    """hvac PF 0.85 lagging: 31.8° on L1 and L3, 31.8° − 180° on L2 (whose voltage is also dropped
    here, so its power is 0: see the next test for the angle without the drop)."""
    hvac = demo_model.circuit("hvac")
    assert angle(hvac[0]) == pytest.approx(31.8, abs=0.1)
    assert angle(hvac[2]) == pytest.approx(31.8, abs=0.1)
    cfg = load_site(DEMO)
    alone = SiteModel(cfg, clock=lambda: 1_780_000_000.0, faults=["hvac:reverse:L2"])
    assert angle(alone.circuit("hvac")[1]) == pytest.approx(31.8 - 180.0, abs=0.1)


def test_swapped_cts_read_120_degrees_off_until_the_phases_follow(demo_model: SiteModel) -> None:
    """kitchen PF 0.97 lagging (14.1°): channel 1 carries L3's current against U L1: 14.1° − 120°."""
    cfg = load_site(DEMO)
    model = SiteModel(cfg, clock=lambda: 1_780_000_000.0, faults=["kitchen:swap:L1,L3"])
    k = model.circuit("kitchen")
    assert [round(angle(c), 1) for c in k] == [pytest.approx(14.1 - 120, abs=0.5), pytest.approx(14.1, abs=0.5),
                                              pytest.approx(14.1 + 120, abs=0.5)]  # fmt: skip
    # the fix: phases [L3, L2, L1]; a current module then uses U L3 for channel 1
    fixed = cfg.model_copy(deep=True)
    fixed.circuit("kitchen").phases = [Phase.L3, Phase.L2, Phase.L1]
    model.reconfigure(fixed)
    assert [round(angle(c), 1) for c in model.circuit("kitchen")] == [pytest.approx(14.1, abs=0.5)] * 3


def test_dropped_voltage_reads_zero_at_the_voltage_unit_and_no_power(demo_model: SiteModel) -> None:
    assert demo_model.value("vu", Q.VOLTAGE, Phase.L2) == 0.0
    assert demo_model.value("vu", Q.VOLTAGE, Phase.L1) == pytest.approx(230, rel=0.03)
    assert demo_model.value("vu", Q.VOLTAGE_LINE, Phase.L1) == pytest.approx(230, rel=0.03)  # |U1 − 0|
    ch = demo_model.circuit("lighting-warehouse")[0]  # on L2, voltage from vu
    assert (ch.voltage, ch.active_power) == (0.0, 0.0)
    assert ch.current > 1.0  # the load still draws current
    assert demo_model.value("incomer-meter", Q.VOLTAGE, Phase.L2) == pytest.approx(
        230, rel=0.03
    )  # own inputs


def test_ratio_fault_reads_that_many_times_the_current() -> None:
    cfg = load_site(DEMO)
    clock = lambda: 1_780_000_000.0  # noqa: E731
    plain, faulty = SiteModel(cfg, clock=clock), SiteModel(cfg, clock=clock, faults=["lift:ratio:10"])
    assert faulty.circuit("lift")[0].current == pytest.approx(10 * plain.circuit("lift")[0].current)


def test_modbus_module_serves_the_faulty_measurement() -> None:
    """Over the profile's registers (the Modbus path): M30 channel 2 of the reversed hvac CT exports."""
    cfg = load_site(DEMO)
    model = SiteModel(cfg, clock=lambda: 1_780_000_000.0, faults=["hvac:reverse:L2"])
    dev = ProfileDevice("m-hvac", get_profile("enertrek-m30"), model)
    points = {(p.quantity, p.channel): p for p in dev.profile.points()}
    p1 = model_value(model, "m-hvac", points[(Q.ACTIVE_POWER, 1)])
    p2 = model_value(model, "m-hvac", points[(Q.ACTIVE_POWER, 2)])
    assert p1 is not None and p2 is not None
    assert p1 > 0 > p2
    assert abs(p2) == pytest.approx(p1, rel=0.15)  # the phases share the load within ±6 %


def test_adc_board_samples_carry_the_faults() -> None:
    """The waveform path: the ADC board's CT input 1 of a reversed compressor CT is the negated waveform,
    and a voltage input dropped at the board reads 0 V (the gateway's engine then sees exactly that)."""
    from meterhub.sim.adc import VOLTAGE_CHANNELS, AdcBoard  # lazy: the board pulls in the sensor models

    cfg = load_site(DEMO)
    device = cfg.device("adc")
    circuits = [c for c in cfg.circuits if c.device == "adc"]

    def block(faults: list[str]) -> object:
        model = SiteModel(cfg, clock=lambda: 1_780_000_000.0, faults=faults)
        return AdcBoard(model, device, circuits, dip_interval=0).block(640)

    plain = block([])
    faulty = block(["compressor:reverse:L1", "adc:drop:L2"])
    ct1 = VOLTAGE_CHANNELS + 0
    assert abs(plain[ct1]).max() > 0.01  # type: ignore[index]
    assert faulty[ct1] == pytest.approx(-plain[ct1], abs=1e-9)  # type: ignore[index]
    assert faulty[ct1 + 1] == pytest.approx(plain[ct1 + 1], abs=1e-9)  # type: ignore[index]
    assert abs(faulty[1]).max() == 0.0  # type: ignore[index]
    assert abs(faulty[0]).max() == pytest.approx(abs(plain[0]).max())  # type: ignore[index]
