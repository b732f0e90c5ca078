"""What a harmonic spectrum says relative to its fundamental: each order in %, and the THD.

A spectrum here is the RMS of harmonic orders 0…50 of one voltage or current (the harmonic subgroups of
IEC 61000-4-7 §3.2.3, as IEC 61000-4-30 §5.8 class A measures them; order 0 is the DC component). A source
may publish the spectrum in % of the fundamental itself; one that publishes RMS only gets the same
definitions from these functions, so every spectrum reads the same whatever measured it.

Pure numpy: arrays in, arrays out, vectorised over any leading axes (channels, phases, windows).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meterhub.metering.harmonics import thd

__all__ = ["percent_of_fundamental", "spectrum_thd"]

F64 = NDArray[np.float64]


def _fundamental(h: F64) -> F64:
    """Order 1 of each spectrum, NaN where the spectrum has no order 1 or it is not a positive number."""
    if h.shape[-1] < 2:
        return np.full(h.shape[:-1], np.nan)
    h1 = h[..., 1]
    return np.where(np.isfinite(h1) & (h1 > 0), h1, np.nan)


def percent_of_fundamental(rms: ArrayLike) -> F64:
    """Each harmonic order in percent of the fundamental (order 1) [%].

    Parameters
    ----------
    rms : array_like (..., K) — RMS of orders 0…K−1 of one spectrum per leading index [V or A].

    Returns
    -------
    ndarray (..., K) — ``100 · rms[h] / rms[1]`` [%]: order 1 is 100. Every order of a spectrum whose
    fundamental is zero, negative, not finite or missing is NaN (the ratio is undefined); an order that
    was not measured (NaN) stays NaN.
    """
    h = np.asarray(rms, dtype=np.float64)
    h1 = _fundamental(h)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * h / h1[..., np.newaxis]


def spectrum_thd(rms: ArrayLike) -> F64:
    """Total harmonic distortion of each spectrum: ``√Σ(h=2…50) rms[h]² / rms[1]`` (IEC 61000-4-7 §3.3.2;
    with subgroups this is THDS) [%].

    Parameters
    ----------
    rms : array_like (..., 51) — RMS of orders 0…50 [V or A]; unmeasured orders (NaN) count as 0.

    Returns
    -------
    ndarray (...) — the THD [%]; NaN where the fundamental is zero, negative, not finite or missing
    (a distortion relative to nothing is undefined, not 0).
    """
    h = np.asarray(rms, dtype=np.float64)
    h1 = _fundamental(h)
    return np.where(np.isfinite(h1), thd(h), np.nan)
