"""Per-window measurement (issue 3 performance work): DFT length choice, float32 spectra, row sums,
and energy registers kept per group of circuits."""

from __future__ import annotations

import numpy as np
import pytest

from meterhub.metering.engine import Analyzer, CircuitSpec, EngineConfig
from meterhub.metering.leakage import MAX_STRONG, strong_orders
from meterhub.metering.windows import RowSums, dft_lengths, measure, measure_all
from meterhub.model.topology import Wiring
from meterhub.sim.waveform import Tone, channel, record_3p4w, theta


def _bounds(exact: float, windows: int = 4, start: int = 7) -> tuple[np.ndarray, np.ndarray]:
    b = np.round(start + exact * np.arange(windows + 1)).astype(np.int64)
    return b, np.full(windows, 10.0 / exact)


@pytest.mark.parametrize(
    ("exact", "expected"),
    [
        (2554.89, 2555),  # 12.8 kHz, 50.1 Hz: nearest, 5·7·73
        (2560.0, 2560),
        (1277.45, 1278),  # nearest 1277 is prime: 1278 = 2·3²·71 is 0.55 sample away and much cheaper
        (2539.18, 2539),  # 2539 is prime, but 2540 is 0.82 sample away: stay with the nearest
    ],
)
def test_dft_length_is_the_nearest_or_a_cheaper_neighbour_within_0_75_sample(
    exact: float, expected: int
) -> None:
    b, cps = _bounds(exact)
    assert dft_lengths(b, 10, cps).tolist() == [expected] * 4
    assert dft_lengths(b, 10, None).tolist() == np.diff(b).tolist()


@pytest.mark.parametrize(("fs", "f"), [(6400.0, 49.73), (12800.0, 50.1), (12800.0, 50.41), (10000.0, 50.0)])
def test_pure_sine_subgroups_stay_below_1e_5_of_the_fundamental(fs: float, f: float) -> None:
    th = theta(int(fs * 1.2), fs, f, 0.3)
    v = channel(th, 230.0, 0.0)[None, :]
    exact = 10 * fs / f
    b, cps = _bounds(exact, windows=5)
    u, _, _ = measure(v, np.zeros((0, v.shape[1])), np.zeros(0, dtype=np.int64), b, 10, cycles_per_sample=cps)
    h = u.harmonics[0]
    assert np.all(np.abs(h[:, 1] - 230.0) < 230.0 * 1e-5)
    assert np.nanmax(h[:, 2:]) < 230.0 * 1e-5
    assert np.allclose(np.abs(u.fundamental[0]), 230.0, rtol=1e-5)


RECTIFIER = {3: (0.3, 10.0), 5: (0.2, 200.0), 7: (0.1, 45.0), 9: (0.05, 0.0), 11: (0.05, 70.0)}


@pytest.mark.parametrize(("fs", "f"), [(6400.0, 57.5), (6400.0, 42.5), (12800.0, 50.41), (10000.0, 56.0)])
def test_leakage_of_strong_harmonics_is_removed_in_every_window(fs: float, f: float) -> None:
    # 6.4 kHz at 57.5 Hz: the DFT is 0.6 sample off 10 cycles; the 30 % third harmonic alone would put
    # ~1.4e-3 of the fundamental into orders 2 and 4
    th = theta(int(fs * 1.2), fs, f, 0.3)
    i = np.vstack(
        (channel(th, 10.0, -20.0, RECTIFIER), 1e-4 * np.random.default_rng(1).standard_normal(th.size))
    )
    v = channel(th, 230.0, 0.0)[None, :]
    b, cps = _bounds(10 * fs / f, windows=5)
    _, w, _ = measure(v, i, np.zeros(2, dtype=np.int64), b, 10, cycles_per_sample=cps)
    expected = np.zeros(51)
    expected[1] = 10.0
    for order, (frac, _) in RECTIFIER.items():
        expected[order] = 10.0 * frac
    assert np.nanmax(np.abs(w.harmonics[0] - expected)) < 10.0 * 1e-4
    assert np.allclose(np.abs(w.fundamental[0]), 10.0, rtol=1e-5)


def test_strong_orders_are_those_leaking_enough_and_ignore_an_idle_channel() -> None:
    spec = np.zeros((2, 3, 520), dtype=np.complex64)
    spec[:, 0, 10] = 1000.0  # fundamental of a loaded channel
    for order, amp in {2: 10.0, 3: 300.0, 5: 200.0, 7: 100.0, 25: 3.0, 40: 1.0}.items():
        spec[:, 0, 10 * order] = amp  # h·|C_h|/|C_1| = 0.02, 0.9, 1.0, 0.7, 0.075, 0.04
    spec[:, 1, 10] = 0.5  # an idle channel (below 1e-3 of the loaded one): noise everywhere
    spec[:, 1, 20:] = 0.5
    nb = np.full(2, 520)
    assert strong_orders(spec, 10, nb, [3]).tolist() == [1, 3, 5, 7, 25]
    # a channel of another source (a voltage) counts against its own largest fundamental
    spec[:, 2, 10] = 1.0
    spec[:, 2, 400] = 0.01  # 40th at 1 % of it: 0.4
    assert strong_orders(spec, 10, nb, [2, 1]).tolist() == [1, 3, 5, 7, 25, 40]
    # at most MAX_STRONG harmonic orders, the strongest leakage first
    spec[:, 0, 110:501:10] = 5.0  # orders 11…50 at 0.5 %: 0.055…0.25
    got = strong_orders(spec, 10, nb, [3]).tolist()
    assert MAX_STRONG == 12 and got == [1, 3, 5, 7, 40, *range(43, 51)]  # 40: the voltage's


def test_row_sums_are_the_rms_of_the_summed_channels() -> None:
    rng = np.random.default_rng(3)
    i = rng.standard_normal((6, 9000))
    v = rng.standard_normal((3, 9000))
    b = np.array([11, 2000, 4555, 7110], dtype=np.int64)
    sums = RowSums(np.array([[0, 1, 2], [3, 4, 5]]), np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 0.5]]))
    lines = RowSums(np.array([[0, 1], [1, 2]]), np.array([[1.0, -1.0], [1.0, -1.0]]))
    m = measure_all(v, i, np.zeros(6, dtype=np.int64), b, 10, spectrum=False, u_sums=lines, i_sums=sums)
    rows = [i[0] + i[1] + i[2], i[3] - i[4] + 0.5 * i[5]]
    for r, x in enumerate(rows):
        want = [np.sqrt(np.mean(x[b[k] : b[k + 1]] ** 2)) for k in range(3)]
        np.testing.assert_allclose(m.i_sums[r], want, rtol=1e-12)
    np.testing.assert_allclose(
        m.u_sums[1], [np.sqrt(np.mean((v[1] - v[2])[b[k] : b[k + 1]] ** 2)) for k in range(3)], rtol=1e-12
    )
    np.testing.assert_allclose(
        m.p[3], [np.mean((v[0] * i[3])[b[k] : b[k + 1]]) for k in range(3)], rtol=1e-12
    )
    # neutrals of consecutive phase triplets take the reshaped-sum path
    triplets = RowSums(np.array([[0, 1, 2], [3, 4, 5]]), np.ones((2, 3)))
    assert triplets.blocks == slice(0, 6)
    n = measure_all(v, i, np.zeros(6, dtype=np.int64), b, 10, spectrum=False, i_sums=triplets)
    want = [np.sqrt(np.mean((i[3] + i[4] + i[5])[b[k] : b[k + 1]] ** 2)) for k in range(3)]
    np.testing.assert_allclose(n.i_sums[1], want, rtol=1e-12)


def test_registers_of_circuits_computed_together_start_from_a_preset_value() -> None:
    cur = tuple(Tone(5.0, a) for a in (0.0, -120.0, 120.0))
    v, i = record_3p4w(fs=6400.0, duration=2.0, f=50.0, currents=cur + cur, theta0=0.2)
    an = Analyzer(
        EngineConfig(fs=6400.0),
        [CircuitSpec(c, Wiring.P3W4, tuple(range(3 * k, 3 * k + 3)), (0, 1, 2)) for k, c in enumerate("ab")],
        current_channels=6,
    )
    an.registers["b"].preset("total", "energy_active_import", 1000.0)
    batch = an.feed(v, i)
    wh = 3 * 230.0 * 5.0 * batch.t[-1] / 3600.0  # head included, the last window held back
    e = an.energy()
    assert list(e) == ["a", "b"]
    assert e["a"]["total"]["energy_active_import"] == pytest.approx(wh, rel=5e-4)
    assert e["b"]["total"]["energy_active_import"] == pytest.approx(1000.0 + wh, rel=1e-9)
    assert e["b"]["L1"]["energy_active_import"] == pytest.approx(wh / 3, rel=5e-4)
    assert batch.energy == e
