"""Energy over a whole record, head and tail included: Analyzer.flush() against a direct Σu·i/fs."""

from __future__ import annotations

import numpy as np
import pytest

from meterhub.metering.engine import Analyzer, CircuitSpec, EngineConfig
from meterhub.metering.readers import Record
from meterhub.metering.record import analyse
from meterhub.model.quantities import Q
from meterhub.model.topology import Wiring
from meterhub.sim.waveform import Tone, record_3p4w

FS = 6400.0


def _three_phase(duration: float, f: float, lag: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """230 V, 10 A with a 20 % 5th harmonic lagging ``lag`` degrees; theta0 so the record starts
    mid-cycle (a head of about a third of a period before the first zero crossing)."""
    cur = tuple(Tone(10.0, a - lag, {5: (0.2, 0.0)}) for a in (0.0, -120.0, 120.0))
    return record_3p4w(fs=FS, duration=duration, f=f, currents=cur, theta0=2.0)


def _run(v: np.ndarray, i: np.ndarray, f: float, block: int) -> dict[str, float]:
    spec = CircuitSpec("c", Wiring.P3W4, (0, 1, 2), (0, 1, 2))
    an = Analyzer(EngineConfig(fs=FS, f_nominal=f), [spec], current_channels=3)
    for k in range(0, v.shape[1], block):
        an.feed(v[:, k : k + block], i[:, k : k + block])
    return an.flush().energy["c"]["total"]


@pytest.mark.parametrize("f", [50.0, 60.0])
@pytest.mark.parametrize("duration", [10.0, 7.3, 60.0])
def test_active_energy_of_any_record_length_is_the_sum_of_u_times_i(duration: float, f: float) -> None:
    v, i = _three_phase(duration, f)
    truth = float(np.sum(v * i)) / FS / 3600.0  # [Wh]
    # 10 A at 30° lag: P = 3·230·10·cos 30° = 5975.6 W, so 10 s hold 16.6 Wh
    assert truth == pytest.approx(3 * 230 * 10 * np.cos(np.radians(30)) * duration / 3600, rel=1e-3)
    got = _run(v, i, f, block=1111)  # odd blocks: windows straddle every block boundary
    assert got[Q.ENERGY_ACTIVE_IMPORT] == pytest.approx(truth, rel=1e-6)
    assert got[Q.ENERGY_ACTIVE_EXPORT] == 0.0
    # reactive: Q1 = 3·230·10·sin 30° = 3450 var over the whole record, head and tail included
    q1 = 3 * 230 * 10 * np.sin(np.radians(30)) * (v.shape[1] / FS) / 3600
    assert got[Q.ENERGY_REACTIVE_Q1] == pytest.approx(q1, rel=1e-4)


def test_exported_energy_of_an_odd_record_is_the_sum_of_u_times_i() -> None:
    v, i = _three_phase(7.3, 50.0, lag=180.0 - 20.0)  # a generator: P < 0
    truth = float(np.sum(v * i)) / FS / 3600.0
    assert truth < 0
    got = _run(v, i, 50.0, block=6400)
    assert got[Q.ENERGY_ACTIVE_EXPORT] == pytest.approx(-truth, rel=1e-6)
    assert got[Q.ENERGY_ACTIVE_IMPORT] == 0.0


def test_record_shorter_than_one_window_is_still_metered() -> None:
    v, i = _three_phase(0.15, 50.0)  # 7.5 cycles: no complete 10-cycle window
    spec = CircuitSpec("c", Wiring.P3W4, (0, 1, 2), (0, 1, 2))
    an = Analyzer(EngineConfig(fs=FS), [spec], current_channels=3)
    assert an.feed(v, i).windows == 0
    got = an.flush().energy["c"]["total"]
    assert got[Q.ENERGY_ACTIVE_IMPORT] == pytest.approx(float(np.sum(v * i)) / FS / 3600.0, rel=1e-9)


def test_flush_restarts_synchronisation_and_keeps_the_registers() -> None:
    """Two segments with a gap between them (as after a lost connection): each is metered whole."""
    v, i = _three_phase(3.0, 50.0)
    spec = CircuitSpec("c", Wiring.P3W4, (0, 1, 2), (0, 1, 2))
    an = Analyzer(EngineConfig(fs=FS), [spec], current_channels=3)
    an.feed(v[:, :7000], i[:, :7000])
    an.flush()
    b = an.feed(v[:, 9001:], i[:, 9001:])  # 2001 samples never arrived
    assert b.windows > 0 and b.t[0] * FS >= 7000  # the second segment's windows follow the first's
    got = an.flush().energy["c"]["total"][Q.ENERGY_ACTIVE_IMPORT]
    truth = (float(np.sum(v[:, :7000] * i[:, :7000])) + float(np.sum(v[:, 9001:] * i[:, 9001:]))) / FS / 3600
    assert got == pytest.approx(truth, rel=1e-6)
    assert an.next_sample == 7000 + (v.shape[1] - 9001)


@pytest.mark.parametrize("wiring", [Wiring.P1W2, Wiring.P3W3, Wiring.DC])
def test_analyse_meters_the_whole_record_for_every_wiring(wiring: Wiring) -> None:
    v, i = _three_phase(7.3, 50.0)
    if wiring is Wiring.DC:
        v = np.abs(v[:1]) + 10.0
        i = np.abs(i[:1])
    elif wiring is Wiring.P3W3:
        i = np.vstack((i[0], -(i[0] + i[2]), i[2]))  # no neutral: the three currents sum to zero
    rec = Record(
        FS,
        v,
        i,
        None,
        [f"v_l{k + 1}" for k in range(v.shape[0])] + [f"i_l{k + 1}" for k in range(i.shape[0])],
    )
    out = analyse(rec, wiring=wiring)
    n = 1 if wiring in (Wiring.P1W2, Wiring.DC) else 3
    truth = float(np.sum(v[:n] * i[:n])) / FS / 3600.0
    assert out["total"][Q.ENERGY_ACTIVE_IMPORT] == pytest.approx(truth, rel=1e-6)
    assert out["record"]["metered_seconds"] == pytest.approx(7.3)


def test_windows_analysed_in_batches_equal_those_analysed_per_frame() -> None:
    """batch_windows only changes when windows are analysed, not what they hold."""
    v, i = _three_phase(3.3, 50.0)
    spec = CircuitSpec("c", Wiring.P3W4, (0, 1, 2), (0, 1, 2))
    out = {}
    for bw in (1, 5):
        an = Analyzer(EngineConfig(fs=FS, batch_windows=bw), [spec], current_channels=3)
        batches = [an.feed(v[:, k : k + 640], i[:, k : k + 640]) for k in range(0, v.shape[1], 640)]
        batches.append(an.flush())
        sizes = [b.windows for b in batches if b.windows]
        t = np.concatenate([b.t for b in batches])
        p = np.concatenate([b.circuits["c"]["total"][Q.ACTIVE_POWER] for b in batches if b.windows])
        out[bw] = (sizes, t, p, batches[-1].energy["c"]["total"])
    sizes1, t1, p1, e1 = out[1]
    sizes5, t5, p5, e5 = out[5]
    assert set(sizes1) == {1} and all(s >= 5 for s in sizes5[:-1])  # 0.1 s frames, 0.2 s windows
    assert t1.size == t5.size == 16  # 3.3 s hold 16 complete windows after the first zero crossing
    np.testing.assert_array_equal(t1, t5)
    np.testing.assert_allclose(p1, p5, rtol=1e-12)
    assert e5[Q.ENERGY_ACTIVE_IMPORT] == pytest.approx(e1[Q.ENERGY_ACTIVE_IMPORT], rel=1e-12)
    assert e5[Q.ENERGY_ACTIVE_IMPORT] == pytest.approx(float(np.sum(v * i)) / FS / 3600, rel=1e-9)


def test_aron_circuit_of_two_currents_meters_the_whole_record() -> None:
    """3P3W with CTs on L1 and L3 only: the engine derives i2 = −(i1 + i3)."""
    v, i = _three_phase(7.3, 50.0)
    i13 = np.vstack((i[0], i[2]))
    rec = Record(FS, v, i13, None, ["v_l1", "v_l2", "v_l3", "i_l1", "i_l3"])
    out = analyse(rec, wiring=Wiring.P3W3)
    truth = float(np.sum(v[0] * i13[0] - v[1] * (i13[0] + i13[1]) + v[2] * i13[1])) / FS / 3600.0
    assert out["total"][Q.ENERGY_ACTIVE_IMPORT] == pytest.approx(truth, rel=1e-6)


def test_a_head_in_the_negative_lobe_of_a_leading_load_is_not_counted_as_export() -> None:
    """Instantaneous power of a current leading by 85° is negative just before a voltage zero
    crossing; a record starting there has a head of −1.2 mWh. It joins the first window (a load that
    imports), so the export register stays 0 and import is exactly Σu·i/fs."""
    v, i = record_3p4w(fs=FS, duration=1.0, currents=(Tone(10.0, 85.0),), theta0=np.pi / 2)
    an = Analyzer(
        EngineConfig(fs=FS, voltage_channels=1),
        [CircuitSpec("c", Wiring.P1W2, (0,), (0,))],
        current_channels=1,
    )
    b = an.feed(v[:1], i)
    head = int(round(b.t[0] * FS))
    assert float(np.sum(v[0, :head] * i[0, :head])) / FS / 3600 == pytest.approx(-1.18e-3, rel=0.01)
    e = an.flush().energy["c"]["total"]
    assert e[Q.ENERGY_ACTIVE_EXPORT] == 0.0
    # 230 V·10 A·cos 85° = 200.5 W for 1 s
    assert e[Q.ENERGY_ACTIVE_IMPORT] == pytest.approx(float(np.sum(v[0] * i[0])) / FS / 3600, rel=1e-9)
    assert e[Q.ENERGY_ACTIVE_IMPORT] == pytest.approx(2300 * np.cos(np.radians(85)) / 3600, rel=1e-3)
