"""Wiring systems (1P3W, 3P3W Aron, DC), energy netting, and IEC 61000-4-30 time aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from meterhub.metering.aggregation import aggregate, clock_groups, consecutive_groups
from meterhub.metering.energy import CompensatedSum, EnergyRegisters, window_energy
from meterhub.metering.engine import Analyzer, CircuitSpec, EngineConfig, VoltageInput
from meterhub.model.topology import Wiring
from meterhub.sim.waveform import channel, theta

FS = 6400.0


def agg_all(b, cid: str = "c") -> dict:
    q = b.circuits[cid]
    a = aggregate(q, b.duration, np.array([0]))
    return {g: {k: x[0] for k, x in d.items()} for g, d in a.items()}


def test_split_phase_1p3w_powers_line_voltage_and_neutral() -> None:
    th = theta(int(FS * 2), FS, 60.0, 0.2)
    v = np.vstack([channel(th, 120.0, 0.0), channel(th, 120.0, 180.0)])
    i = np.vstack([channel(th, 10.0, -30.0), channel(th, 5.0, 150.0)])
    an = Analyzer(
        EngineConfig(fs=FS, f_nominal=60.0, declared_voltage=120.0, voltage_channels=2),
        [CircuitSpec("c", Wiring.P1W3, (0, 1), (0, 1))],
        current_channels=2,
    )
    a = agg_all(an.feed(v, i))
    p = 120 * 10 * np.cos(np.radians(30)) + 120 * 5 * np.cos(np.radians(30))
    assert a["total"]["active_power"] == pytest.approx(p, rel=5e-4)
    assert a["total"]["apparent_power"] == pytest.approx(120 * 15, rel=5e-4)
    # neutral carries the difference of the two legs: |10∠−30° + 5∠150°| = 5 A
    assert a["N"]["current"] == pytest.approx(5.0, rel=5e-4)
    assert a["L2"]["angle_voltage"] == pytest.approx(180.0, abs=0.01)


@pytest.mark.parametrize("two_cts", [True, False], ids=["aron-2-ct", "3-ct"])
def test_3p3w_aron_with_line_to_line_voltages(two_cts: bool) -> None:
    th = theta(int(FS * 2), FS, 50.0, 0.9)
    u = 400.0
    # line-to-line voltages of a balanced system: U12 at +30°, U23 at −90°, U31 at +150° (U1 at 0°)
    v = np.vstack([channel(th, u, 30.0), channel(th, u, -90.0), channel(th, u, 150.0)])
    phi = np.degrees(np.arccos(0.8))
    cur = [channel(th, 10.0, a - phi) for a in (0.0, -120.0, 120.0)]
    i = np.vstack([cur[0], cur[2]]) if two_cts else np.vstack(cur)
    spec = (
        CircuitSpec("c", Wiring.P3W3, (0, 1), (0, 2))
        if two_cts
        else CircuitSpec("c", Wiring.P3W3, (0, 1, 2), (0, 1, 2))
    )
    an = Analyzer(EngineConfig(fs=FS, voltage_input=VoltageInput.LL), [spec], current_channels=i.shape[0])
    b = an.feed(v, i)
    a = agg_all(b)
    assert a["total"]["active_power"] == pytest.approx(np.sqrt(3) * u * 10 * 0.8, rel=5e-4)
    assert a["total"]["reactive_power"] == pytest.approx(np.sqrt(3) * u * 10 * 0.6, rel=1e-3)
    assert a["total"]["voltage_line"] == pytest.approx(u, rel=5e-4)
    # IEEE 1459 3-wire: Se = 3·(U_LL/√3)·I for a balanced system
    assert a["total"]["apparent_power"] == pytest.approx(np.sqrt(3) * u * 10, rel=5e-4)
    assert a["L2"]["current"] == pytest.approx(10.0, rel=5e-4)


def test_dc_circuit_power_and_energy() -> None:
    n = int(FS * 3)
    t = np.arange(n) / FS
    v = (48.0 + 0.2 * np.sin(2 * np.pi * 300 * t))[None, :]
    i = np.full((1, n), 20.0)
    an = Analyzer(
        EngineConfig(fs=FS, declared_voltage=48.0, voltage_channels=1, dc=True),
        [CircuitSpec("c", Wiring.DC, (0,), (0,))],
        current_channels=1,
    )
    b = an.feed(v, i)
    a = agg_all(b)
    assert a["L1"]["voltage"] == pytest.approx(48.0, rel=1e-4)
    assert a["total"]["active_power"] == pytest.approx(960.0, rel=1e-4)
    # the last window's energy is held back until the next feed or the flush
    assert b.energy["c"]["total"]["energy_active_import"] == pytest.approx(
        960.0 * b.duration[:-1].sum() / 3600, rel=1e-9
    )
    assert b.duration.sum() == pytest.approx(3.0)
    assert an.flush().energy["c"]["total"]["energy_active_import"] == pytest.approx(
        960.0 * 3.0 / 3600, rel=1e-9
    )


def test_energy_netting_is_configurable() -> None:
    th = theta(int(FS * 2), FS, 50.0, 0.0)
    v = np.vstack([channel(th, 230.0, a) for a in (0.0, -120.0, 120.0)])
    # L1 imports 2300 W, L2 exports 2300 W, L3 idle
    i = np.vstack([channel(th, 10.0, 0.0), channel(th, 10.0, 60.0), channel(th, 1e-9, 120.0)])
    res = {}
    for net in (True, False):
        an = Analyzer(
            EngineConfig(fs=FS, net_phases=net),
            [CircuitSpec("c", Wiring.P3W4, (0, 1, 2), (0, 1, 2))],
            current_channels=3,
        )
        b = an.feed(v, i)
        res[net] = (b.energy["c"]["total"], b.t[-1] / 3600)  # head included, the last window held back
    e, h = res[True]
    assert e["energy_active_import"] == pytest.approx(0.0, abs=1e-3) and e[
        "energy_active_export"
    ] == pytest.approx(0.0, abs=1e-3)
    e, h = res[False]
    assert e["energy_active_import"] == pytest.approx(2300 * h, rel=5e-4)
    assert e["energy_active_export"] == pytest.approx(2300 * h, rel=5e-4)


def test_four_quadrant_split_of_window_energy() -> None:
    p = np.array([100.0, -100.0, -100.0, 100.0])
    q = np.array([50.0, 50.0, -50.0, -50.0])
    e = window_energy(p, q, np.full(4, 150.0), np.full(4, 3600.0))
    assert e["energy_active_import"].tolist() == [100.0, 0.0, 0.0, 100.0]
    assert e["energy_active_export"].tolist() == [0.0, 100.0, 100.0, 0.0]
    for k, col in enumerate(
        ("energy_reactive_q1", "energy_reactive_q2", "energy_reactive_q3", "energy_reactive_q4")
    ):
        assert e[col].tolist() == [50.0 if j == k else 0.0 for j in range(4)]


def test_compensated_register_keeps_small_increments_on_a_large_total() -> None:
    reg = CompensatedSum(1e9)  # 1 GWh
    for _ in range(1_000_000):
        reg.add(1e-6)  # 1 mWh each: 1 Wh in total
    assert reg.value == pytest.approx(1e9 + 1.0, abs=1e-6)
    naive = 1e9
    for _ in range(1000):
        naive += 1e-8
    assert naive == 1e9  # plain float64 loses them
    regs = EnergyRegisters()
    regs.add({"total": {"energy_active_import": np.full(5, 0.5)}})
    assert regs.values()["total"]["energy_active_import"] == 2.5
    regs.preset("total", "energy_active_export", 1e9)
    for _ in range(100_000):
        regs.add_totals("total", np.array([0.0, 1e-5, 0, 0, 0, 0, 0]))
    assert regs.values()["total"]["energy_active_export"] == pytest.approx(1e9 + 1.0, abs=1e-6)


def test_150_cycle_groups_aggregate_15_windows_as_rms_and_keep_max_min() -> None:
    w = 47
    u = np.where(np.arange(w) % 2 == 0, 220.0, 240.0)
    q = {"L1": {"voltage": u, "active_power": np.arange(w, dtype=float)}}
    starts = consecutive_groups(w, 15)
    assert starts.tolist() == [0, 15, 30]
    a = aggregate(q, np.full(w, 0.2), starts, stops=45)
    assert a["L1"]["voltage"][1] == pytest.approx(np.sqrt((7 * 220**2 + 8 * 240**2) / 15))
    assert a["L1"]["voltage_max"].tolist() == [240.0] * 3
    assert a["L1"]["voltage_min"].tolist() == [220.0] * 3
    assert a["L1"]["active_power"].tolist() == pytest.approx([7.0, 22.0, 37.0])


def test_10_minute_intervals_resynchronise_to_the_clock() -> None:
    t = 1_700_000_000.0 + np.arange(0, 1500, 0.2)  # 25 min of 200 ms windows
    starts, t0 = clock_groups(t, 600.0)
    assert np.all(np.mod(t0[1:], 600.0) == 0)
    assert np.all(np.floor(t[starts[1:]] / 600) * 600 == t0[1:])
    f = np.where(t < t0[1], 50.0, 49.9)
    a = aggregate({"s": {"frequency": f}}, np.full(t.size, 0.2), starts)
    assert a["s"]["frequency"][1] == pytest.approx(49.9)
    one_min, _ = clock_groups(t, 60.0)
    assert one_min.size in (25, 26)


def test_frequency_per_10_s_from_the_window_series() -> None:
    f_of_t = np.where(np.arange(int(FS * 20)) < FS * 10, 50.0, 50.2)
    th = theta(f_of_t.size, FS, f_of_t, 0.0)
    v = np.vstack([channel(th, 230.0, a) for a in (0.0, -120.0, 120.0)])
    an = Analyzer(
        EngineConfig(fs=FS), [CircuitSpec("c", Wiring.P3W4, (0, 1, 2), (0, 1, 2))], current_channels=3
    )
    b = an.feed(v, np.zeros((3, v.shape[1])))
    starts, _ = clock_groups(b.t, 10.0)
    f10 = aggregate({"s": {"frequency": b.frequency}}, b.duration, starts)["s"]["frequency"]
    assert f10[0] == pytest.approx(50.0, abs=1e-3)
    assert f10[1] == pytest.approx(50.2, abs=2e-3)  # one window straddles the step


def test_dip_across_block_boundaries_is_one_event() -> None:
    th = theta(int(FS * 3), FS, 50.0, 0.3)
    v = np.vstack([channel(th, 230.0, a) for a in (0.0, -120.0, 120.0)])
    t = np.arange(v.shape[1]) / FS
    v[0, (t >= 1.03) & (t < 1.53)] *= 0.3
    an = Analyzer(
        EngineConfig(fs=FS), [CircuitSpec("c", Wiring.P3W4, (0, 1, 2), (0, 1, 2))], current_channels=3
    )
    events = []
    for k in range(0, v.shape[1], 500):
        events += an.feed(v[:, k : k + 500], np.zeros((3, v[:, k : k + 500].shape[1]))).events
    assert len(events) == 1
    e = events[0]
    assert e.kind == "dip" and e.channel == 0
    assert e.start == pytest.approx(1.03, abs=0.01)
    assert e.duration == pytest.approx(0.5, abs=0.015)
    assert e.extreme == pytest.approx(69.0, rel=2e-3)


def test_a_stream_that_starts_without_voltage_keeps_windows_and_reports_the_interruption() -> None:
    n = int(FS * 4)
    th = theta(n, FS, 50.0, 0.0)
    v = np.vstack([channel(th, 230.0, a) for a in (0.0, -120.0, 120.0)])
    v[:, : int(FS * 2)] = 0.0  # dead for the first 2 s
    an = Analyzer(
        EngineConfig(fs=FS), [CircuitSpec("c", Wiring.P3W4, (0, 1, 2), (0, 1, 2))], current_channels=3
    )
    parts = [an.feed(v[:, k : k + 640], np.zeros((3, v[:, k : k + 640].shape[1]))) for k in range(0, n, 640)]
    t = np.concatenate([p.t for p in parts])
    assert t.size >= 17  # windows continue through the dead time (nominal cycles)
    assert an._v.shape[1] < FS  # the buffer does not grow
    events = [e for p in parts for e in p.events]
    intr = [e for e in events if e.kind == "interruption"]
    assert len(intr) == 1 and intr[0].duration == pytest.approx(2.0, abs=0.05)
