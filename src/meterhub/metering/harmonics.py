"""Harmonic groups and subgroups, THD, TOHD, TEHD, K-factor and factor K.

The DFT of a basic window of N cycles (N = 10 at 50 Hz, 12 at 60 Hz; IEC 61000-4-7 §4.4) has a bin
every f1/N; harmonic order h sits at bin N·h. Spectral components ``C_k`` are RMS values.

* Harmonic group (IEC 61000-4-7 §3.2.2, eq. 8):
  ``G_h² = ½·C²(Nh−N/2) + Σ_{k=−N/2+1}^{N/2−1} C²(Nh+k) + ½·C²(Nh+N/2)``
* Harmonic subgroup (§3.2.3, eq. 9): ``Gsg_h² = Σ_{k=−1}^{1} C²(Nh+k)``; IEC 61000-4-30 §5.8 Class A
  measures harmonics as subgroups, which is our default output.
* Order 0 is the DC component ``|C_0|``.
* THD (§3.3.2, with subgroups = THDS): ``√Σ_{h=2}^{50} (G_h/G_1)²``; TOHD over odd h ≥ 3, TEHD over even h.
* K-factor (UL 1561): ``Σ I_h² h² / Σ I_h²`` (h ≥ 1). Factor K (BS 7821 / IEEE C57.110 Annex):
  ``√(1 + e/(1+e)·(I1/I)²·Σ_{h≥2} h^q (I_h/I1)²)`` with e = 0.1, q = 1.7.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from meterhub.model.quantities import Q

__all__ = [
    "MAX_ORDER",
    "distortion",
    Q.FACTOR_K,
    "group_weights",
    "harmonic_table",
    Q.K_FACTOR,
    "load_factors",
    "spectral_power_rms",
    "thd",
]

F64 = NDArray[np.float64]
MAX_ORDER = 50


@lru_cache(maxsize=16)
def group_weights(cycles: int, kind: str) -> tuple[NDArray[np.int64], F64]:
    """Bin offsets and weights around bin N·h of a group (``"group"``) or subgroup (``"subgroup"``)."""
    half = cycles // 2
    if kind == "subgroup":
        return np.arange(-1, 2), np.ones(3)
    offs = np.arange(-half, half + 1)
    w = np.ones(offs.size)
    w[0] = w[-1] = 0.5
    return offs, w


def spectral_power_rms(spectrum: NDArray[np.complex128], length: int) -> F64:
    """Squared RMS value of each spectral component from a ``numpy.fft.rfft`` of ``length`` samples.

    Returns ``C_k²`` [unit²]: bin 0 is the DC value squared; bins k > 0 are ``2·|X_k|²/M²`` (the
    Nyquist bin of an even-length window counts once).
    """
    p = (spectrum.real**2 + spectrum.imag**2) * (2.0 / (length * length))
    p[..., 0] *= 0.5
    if length % 2 == 0 and p.shape[-1] == length // 2 + 1:
        p[..., -1] *= 0.5
    return p


def harmonic_table(c2: F64, cycles: int, kind: str = "subgroup", max_order: int = MAX_ORDER) -> F64:
    """RMS of harmonic orders 0…max_order from squared spectral components ``c2`` [unit].

    Parameters
    ----------
    c2 : ndarray (..., bins) — ``C_k²`` of a window of ``cycles`` cycles [unit²]
    cycles : N, cycles per window [-]
    kind : ``"subgroup"`` (IEC 61000-4-7 eq. 9) or ``"group"`` (eq. 8)

    Orders whose bins lie beyond the spectrum (low sampling rate) are NaN. Order 0 is |DC|.
    """
    offs, w = group_weights(cycles, kind)
    half = int(-offs[0])
    nb = c2.shape[-1]
    need = cycles * max_order + half + 1
    padded = np.zeros(c2.shape[:-1] + (half + max(nb, need),))
    padded[..., half : half + nb] = c2
    centres = cycles * np.arange(max_order + 1)
    idx = centres[:, None] + offs[None, :] + half
    g2 = padded[..., idx] @ w
    g2[..., 0] = c2[..., 0]
    out = np.sqrt(g2)
    beyond = centres + offs[-1] >= nb
    out[..., beyond] = np.nan
    return out


def distortion(h: F64) -> tuple[F64, F64, F64]:
    """THD, TOHD and TEHD together (see :func:`thd`), from one pass over the orders [%].

    h : ndarray (..., 51) RMS by order 0…50 (groups or subgroups) [unit]
    """
    h2 = _squares(h[..., 2:])
    even = h2[..., 0::2].sum(axis=-1)
    odd = h2[..., 1::2].sum(axis=-1)
    h1 = h[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(h1 > 0, 100.0 / h1, 0.0)
    return np.sqrt(even + odd) * inv, np.sqrt(odd) * inv, np.sqrt(even) * inv


def load_factors(h: F64, e: float = 0.1, q: float = 1.7) -> tuple[F64, F64]:
    """UL 1561 K-factor and BS 7821 factor K together (see :func:`k_factor`, :func:`factor_k`) [-].

    h : ndarray (..., 51) RMS by order 0…50 [unit]
    """
    h2 = _squares(h[..., 1:])
    w_k, w_q = _order_weights(h2.shape[-1], q)
    den = h2.sum(axis=-1)
    num = h2 @ w_k
    s = h2 @ w_q
    i1 = h2[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        kf = np.where(den > 0, num / den, 1.0)
        fk = np.where((i1 > 0) & (den > 0), np.sqrt(1.0 + e / (1.0 + e) * s / den), 1.0)
    return kf, fk


def _squares(h: F64) -> F64:
    """``h²`` with NaN (orders beyond the spectrum) as 0."""
    h2 = h * h
    if np.isnan(h2.sum()):  # one reduction to test, the masking only when needed
        h2[np.isnan(h2)] = 0.0
    return h2


@lru_cache(maxsize=8)
def _order_weights(n: int, q: float) -> tuple[F64, F64]:
    """h² and h^q (0 for h = 1) over orders h = 1…n."""
    orders = np.arange(1, n + 1, dtype=np.float64)
    wq = orders**q
    wq[0] = 0.0
    return orders * orders, wq


def thd(h: F64, orders: str = "all") -> F64:
    """Total harmonic distortion relative to the fundamental [%].

    h : ndarray (..., 51) RMS by order 0…50 (groups or subgroups) [unit]
    orders : ``"all"`` (2…50, THD), ``"odd"`` (3, 5 … 49, TOHD) or ``"even"`` (2, 4 … 50, TEHD)
    """
    sel = {"all": slice(2, None), "odd": slice(3, None, 2), "even": slice(2, None, 2)}[orders]
    hs = np.nan_to_num(h[..., sel])
    h1 = h[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(h1 > 0, 100.0 * np.sqrt(np.sum(hs * hs, axis=-1)) / h1, 0.0)


def k_factor(h: F64) -> F64:
    """UL 1561 K-factor ``Σ I_h² h² / Σ I_h²`` over h = 1…50 [-]; 1 for a pure sine."""
    hh = np.nan_to_num(h[..., 1:])
    orders = np.arange(1, hh.shape[-1] + 1, dtype=np.float64)
    num = np.sum(hh * hh * orders * orders, axis=-1)
    den = np.sum(hh * hh, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, 1.0)


def factor_k(h: F64, e: float = 0.1, q: float = 1.7) -> F64:
    """BS 7821 factor K (transformer derating) [-]; 1 for a pure sine.

    e : eddy-current loss at the fundamental relative to resistive loss [-]
    q : exponent of the frequency dependence (1.5…1.7) [-]
    """
    hh = np.nan_to_num(h[..., 1:])
    orders = np.arange(1, hh.shape[-1] + 1, dtype=np.float64)
    i2 = np.sum(hh * hh, axis=-1)
    i1 = hh[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.sum(orders[1:] ** q * hh[..., 1:] ** 2, axis=-1) / i2
        k2 = 1.0 + e / (1.0 + e) * s
        return np.where((i1 > 0) & (i2 > 0), np.sqrt(k2), 1.0)
