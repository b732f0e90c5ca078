"""Reactive import and export energy of waveform circuits (seed 002 Appendix 3, IEC 62053-23).

R+ = QI + QII (Q ≥ 0, current lagging), R− = QIII + QIV (Q < 0). Every expected value below is
U·I·sin φ·t by hand: 230 V · 10 A · sin 30° = 1150 var.
"""

from __future__ import annotations

import numpy as np
import pytest

from meterhub.metering.energy import REGISTER_IDS, EnergyRegisters, named_registers, window_energy
from meterhub.metering.engine import Analyzer, CircuitSpec, EngineConfig
from meterhub.model.quantities import Q
from meterhub.model.topology import Wiring
from meterhub.sim.waveform import PhaseClock, Tone, channel, record_3p4w

FS = 3200.0
RP, RM = Q.ENERGY_REACTIVE_IMPORT, Q.ENERGY_REACTIVE_EXPORT


def _one_phase_hour(phi: float) -> dict[str, float]:
    """230 V, 10 A, the current φ degrees behind the voltage, for 3600 s through the engine (fed in
    10 s blocks as a live source would) [Wh, varh, VAh]."""
    spec = CircuitSpec("c", Wiring.P1W2, (0,), (0,))
    an = Analyzer(EngineConfig(fs=FS, voltage_channels=1, batch_windows=50), [spec], current_channels=1)
    clock = PhaseClock(FS)
    block = int(FS * 10)
    for _ in range(360):
        th = clock.advance(block, 50.0)
        an.feed(channel(th, 230.0, 0.0)[None, :], channel(th, 10.0, -phi)[None, :])
    return an.flush().energy["c"]["total"]


@pytest.mark.parametrize(
    ("phi", "quadrant", "p_import"),
    [
        (30.0, Q.ENERGY_REACTIVE_Q1, True),  # inductive load: P > 0, Q > 0
        (150.0, Q.ENERGY_REACTIVE_Q2, False),  # generator, current lagging: P < 0, Q > 0
        (210.0, Q.ENERGY_REACTIVE_Q3, False),  # generator, current leading: P < 0, Q < 0
        (330.0, Q.ENERGY_REACTIVE_Q4, True),  # capacitive load: P > 0, Q < 0
    ],
    ids=["QI", "QII", "QIII", "QIV"],
)
def test_an_hour_at_30_degrees_is_1150_varh_in_its_quadrant_and_direction(
    phi: float, quadrant: str, p_import: bool
) -> None:
    e = _one_phase_hour(phi)
    # |Q| = 230 · 10 · sin 30° = 1150 var for an hour; |P| = 230 · 10 · cos 30° = 1991.86 W
    assert e[quadrant] == pytest.approx(1150.0, rel=1e-6)
    lagging = quadrant in (Q.ENERGY_REACTIVE_Q1, Q.ENERGY_REACTIVE_Q2)
    assert e[RP] == pytest.approx(1150.0 if lagging else 0.0, rel=1e-6, abs=1e-9)
    assert e[RM] == pytest.approx(0.0 if lagging else 1150.0, rel=1e-6, abs=1e-9)
    assert e[RP] == e[Q.ENERGY_REACTIVE_Q1] + e[Q.ENERGY_REACTIVE_Q2]
    assert e[RM] == e[Q.ENERGY_REACTIVE_Q3] + e[Q.ENERGY_REACTIVE_Q4]
    active = 230.0 * 10.0 * np.cos(np.radians(30.0))
    assert e[Q.ENERGY_ACTIVE_IMPORT if p_import else Q.ENERGY_ACTIVE_EXPORT] == pytest.approx(
        active, rel=1e-6
    )
    assert e[Q.ENERGY_APPARENT] == pytest.approx(2300.0, rel=1e-6)


@pytest.mark.parametrize(("net", "total_import", "total_export"), [(True, 115.0, 0.0), (False, 230.0, 115.0)])
def test_reactive_registers_per_phase_and_total(net: bool, total_import: float, total_export: float) -> None:
    """L1 lags 30° (QI), L2 leads 30° (QIV), L3 exports lagging (QII), 10 A each for 360 s: each
    phase holds 1150 var · 0.1 h = 115 varh. Netted, ΣQ = 1150 − 1150 + 1150 var = 1150 var goes to
    R+ alone; not netted, the phases' own splits add up: R+ 230 varh, R− 115 varh."""
    currents = (Tone(10.0, -30.0), Tone(10.0, -120.0 + 30.0), Tone(10.0, 120.0 - 150.0))
    v, i = record_3p4w(fs=FS, duration=360.0, currents=currents)
    spec = CircuitSpec("c", Wiring.P3W4, (0, 1, 2), (0, 1, 2))
    an = Analyzer(EngineConfig(fs=FS, net_phases=net, batch_windows=50), [spec], current_channels=3)
    for k in range(0, v.shape[1], 32000):
        an.feed(v[:, k : k + 32000], i[:, k : k + 32000])
    e = an.flush().energy["c"]
    assert (e["L1"][RP], e["L1"][RM]) == (pytest.approx(115.0, rel=1e-6), 0.0)
    assert (e["L2"][RP], e["L2"][RM]) == (0.0, pytest.approx(115.0, rel=1e-6))
    assert (e["L3"][RP], e["L3"][RM]) == (pytest.approx(115.0, rel=1e-6), 0.0)
    assert e["total"][RP] == pytest.approx(total_import, rel=1e-6)
    assert e["total"][RM] == pytest.approx(total_export, rel=1e-6, abs=1e-9)
    assert all(list(g) == list(REGISTER_IDS) for g in e.values())


def test_window_energy_splits_reactive_power_by_its_sign() -> None:
    # four windows of one hour, one per quadrant: (P, Q) = (±1991.86 W, ±1150 var)
    p = np.array([1991.86, -1991.86, -1991.86, 1991.86])
    q = np.array([1150.0, 1150.0, -1150.0, -1150.0])
    inc = window_energy(p, q, np.full(4, 2300.0), np.full(4, 3600.0))
    assert inc[RP].tolist() == [1150.0, 1150.0, 0.0, 0.0]
    assert inc[RM].tolist() == [0.0, 0.0, 1150.0, 1150.0]
    quadrants = (Q.ENERGY_REACTIVE_Q1, Q.ENERGY_REACTIVE_Q2, Q.ENERGY_REACTIVE_Q3, Q.ENERGY_REACTIVE_Q4)
    assert np.array_equal(inc[RP] + inc[RM], np.sum([inc[k] for k in quadrants], axis=0))


def test_published_reactive_registers_are_the_sums_of_their_quadrants() -> None:
    regs = EnergyRegisters()
    regs.preset("total", Q.ENERGY_REACTIVE_Q1, 100.0)
    regs.preset("total", Q.ENERGY_REACTIVE_Q2, 20.0)
    regs.preset("total", Q.ENERGY_REACTIVE_Q3, 3.0)
    regs.preset("total", Q.ENERGY_REACTIVE_Q4, 0.5)
    got = regs.values()["total"]
    assert (got[RP], got[RM]) == (120.0, 3.5)
    assert named_registers([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])[RP] == 7.0  # Q1 3 + Q2 4
