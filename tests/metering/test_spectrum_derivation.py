"""Each harmonic order in % of the fundamental and the THD of a spectrum (metering/spectrum)."""

from __future__ import annotations

import math

import numpy as np

from meterhub.metering.spectrum import percent_of_fundamental, spectrum_thd


def _spectrum(**orders: float) -> np.ndarray:
    """A 51-order RMS spectrum with the given orders (``h1=10.0``), the rest 0 [A]."""
    h = np.zeros(51)
    for name, value in orders.items():
        h[int(name[1:])] = value
    return h


def test_percent_of_fundamental_divides_each_order_by_order_one() -> None:
    h = _spectrum(h0=0.5, h1=10.0, h3=1.0, h5=0.3)
    pct = percent_of_fundamental(h)
    assert pct.shape == (51,)
    assert pct[:6].tolist() == [5.0, 100.0, 0.0, 10.0, 0.0, 3.0]


def test_thd_is_the_root_sum_square_of_orders_2_to_50_over_the_fundamental() -> None:
    # 3 A at h3 and 4 A at h5 over 10 A at h1: √(9 + 16) / 10 = 50 % (IEC 61000-4-7 §3.3.2)
    assert float(spectrum_thd(_spectrum(h0=2.0, h1=10.0, h3=3.0, h5=4.0))) == 50.0


def test_a_pure_fundamental_has_zero_thd() -> None:
    assert float(spectrum_thd(_spectrum(h1=230.0))) == 0.0


def test_without_a_fundamental_percent_and_thd_are_undefined_not_zero() -> None:
    for h1 in (0.0, -1.0, math.nan):
        h = _spectrum(h1=h1, h3=1.0)
        assert np.isnan(percent_of_fundamental(h)).all()
        assert math.isnan(float(spectrum_thd(h)))


def test_an_unmeasured_order_stays_unknown_in_percent_and_counts_as_zero_in_thd() -> None:
    h = _spectrum(h1=10.0, h3=3.0, h5=4.0)
    h[7] = math.nan
    pct = percent_of_fundamental(h)
    assert math.isnan(pct[7]) and pct[3] == 30.0
    assert float(spectrum_thd(h)) == 50.0


def test_spectra_of_several_phases_are_derived_at_once() -> None:
    phases = np.stack([_spectrum(h1=10.0, h3=1.0), _spectrum(h1=20.0, h3=1.0), _spectrum(h1=0.0, h3=1.0)])
    pct = percent_of_fundamental(phases)
    thd = spectrum_thd(phases)
    assert pct.shape == (3, 51) and thd.shape == (3,)
    assert pct[:, 3][:2].tolist() == [10.0, 5.0] and math.isnan(pct[2, 3])
    assert thd[:2].tolist() == [10.0, 5.0] and math.isnan(thd[2])
