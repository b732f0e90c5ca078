"""Waveform synthesis and the simulated ADC board's sample blocks."""

from __future__ import annotations

import numpy as np
import pytest

from meterhub.config.schema import (
    Bus,
    BusKind,
    Circuit,
    CTSpec,
    Device,
    LoadSpec,
    Simulation,
    SiteConfig,
    SiteInfo,
)
from meterhub.sim.adc import VOLTAGE_CHANNELS, AdcBoard
from meterhub.sim.physics import SiteModel
from meterhub.sim.waveform import PhaseClock, Tone, channel, record_3p4w, theta


def test_channel_rms_includes_harmonics() -> None:
    th = theta(6400, 6400.0, 50.0)
    x = channel(th, 10.0, 30.0, {3: (0.3, 0.0), 5: (0.4, 90.0)})
    assert np.sqrt(np.mean(x**2)) == pytest.approx(10.0 * np.sqrt(1 + 0.09 + 0.16), rel=1e-9)


def test_phase_clock_is_continuous_across_blocks_with_a_drifting_frequency() -> None:
    fs = 6400.0
    f = 50.0 + 0.5 * np.sin(np.arange(12800) / 2000.0)
    whole = np.sin(theta(f.size, fs, f))
    clock = PhaseClock(fs)
    parts = np.concatenate([np.sin(clock.advance(640, f[k : k + 640])) for k in range(0, f.size, 640)])
    np.testing.assert_allclose(parts, whole, atol=1e-9)


def test_record_3p4w_current_angles_are_absolute() -> None:
    v, i = record_3p4w(fs=6400.0, duration=0.2, f=50.0, currents=(Tone(5.0, -30.0),))
    p = np.mean(v[0] * i[0])
    assert p == pytest.approx(230.0 * 5.0 * np.cos(np.radians(30.0)), rel=1e-9)


def _board(ct: CTSpec) -> tuple[AdcBoard, SiteModel]:
    cfg = SiteConfig(
        site=SiteInfo(name="t"),
        buses=[Bus(id="adc", kind=BusKind.WAVEFORM, port=15999)],
        devices=[Device(id="board", bus="adc", profile="meterhub-adc-8x3")],
        circuits=[Circuit(id="m", device="board", channels=[4, 5, 6], wiring="3P4W", ct=ct)],
        simulation=Simulation(voltage_variation=0.0, loads={"m": LoadSpec(model="motor", rated_power=6000, power_factor=0.8, period=1e6)}),
    )  # fmt: skip
    model = SiteModel(cfg)
    return AdcBoard(model, cfg.devices[0], cfg.circuits, dip_interval=0), model


def test_board_voltages_follow_the_supply_and_ct_inputs_their_sensor() -> None:
    board, model = _board(CTSpec(kind="current-output", ratio="100/0.05", burden=10))
    x = board.block(6400)
    sup = model.supply()
    rms = np.sqrt(np.mean(x**2, axis=1))
    np.testing.assert_allclose(rms[:VOLTAGE_CHANNELS], sup.voltage, rtol=1e-3)
    st = model.channel("board", 4)
    # current-output CT: I/ratio through 10 Ω → volts at CT input 4 (channel 3 + 4 − 1)
    assert rms[VOLTAGE_CHANNELS + 3] == pytest.approx(st.current / 2000.0 * 10.0, rel=1e-3)
    assert rms[VOLTAGE_CHANNELS + 0] < 1e-3  # input 1 is not wired


def test_board_dips_now_and_then() -> None:
    board, model = _board(CTSpec(kind="built-in"))
    board.dip_interval = 1.0
    board._next_dip = 3200
    x = board.block(6400 * 2)
    cyc = np.sqrt(np.mean(x[:3, : 12800 // 128 * 128].reshape(3, -1, 128) ** 2, axis=2))
    assert cyc.min() < 0.9 * 230.0
