"""Removal of the spectral leakage of the fundamental and the strong harmonics from a synchronised DFT.

A DFT window spans a whole number M of samples, so it holds ``nu`` ≈ N cycles of the fundamental
(IEC 61000-4-7 §4.4 asks for exactly N), not exactly N: the rectangular window leaks every line into
every bin, by about ``h·(nu − N)/d`` of the line's amplitude at ``d`` bins from order h. With ``nu``
known from the fractional zero crossings the leakage is known analytically (the Dirichlet kernel,
:func:`dirichlet`), and this module subtracts it for the fundamental and for each harmonic strong
enough to matter (:func:`strong_orders`): one small real linear solve per window across those orders,
shared by all channels, then one (channels, 2S) @ (2S, 2·bins) product per window.

Why the harmonics too: at 6.4 kHz and 57.5 Hz the DFT length is up to 0.75 sample off, ``nu − N`` up
to 0.0067; a 30 % third harmonic then puts ~1.5e-3 of the fundamental into the subgroups of orders 2
and 4, over the 1e-3 that 1/10 of the IEC 61000-4-7 class I limits allows. An unmodelled line of
relative amplitude r at order h leaks at most ≈ 1.3e-3·r·h of the fundamental into a neighbouring
subgroup, so orders with r·h ≥ :data:`STRONG_SCORE` are modelled (≤ 7e-5 each from the rest).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from meterhub.metering.harmonics import MAX_ORDER

__all__ = ["MAX_STRONG", "STRONG_SCORE", "dirichlet", "remove_leakage", "strong_orders"]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
C64 = NDArray[np.complex64]
C128 = NDArray[np.complex128]
I64 = NDArray[np.int64]

STRONG_SCORE = 0.05  # order h is modelled when h·|C_h|/|C_1| reaches this in any window and channel [-]
MAX_STRONG = 12  # most harmonic orders modelled per block besides the fundamental (highest score first)
_PRESENT = 1e-3  # a channel's fundamental counts when ≥ this fraction of its source's largest [-]


def dirichlet(x: F64, length: int) -> NDArray[np.complex128]:
    """``D(x) = Σ_{n=0}^{M−1} e^{j2πxn/M}``: the DFT response of a rectangular window of ``length`` M
    samples to a complex exponential ``x`` bins away from the analysed bin. [-]"""
    m = float(length)
    num = np.sin(np.pi * x)
    den = np.sin(np.pi * x / m)
    small = np.abs(den) < 1e-12
    mag = np.where(small, m, num / np.where(small, 1.0, den))
    return mag * np.exp(1j * np.pi * x * (m - 1.0) / m)


def strong_orders(spec: C64, cycles: int, nb: I64, rows: list[int]) -> I64:
    """Orders whose leakage :func:`remove_leakage` removes: 1 and up to :data:`MAX_STRONG` harmonic
    orders h ≥ 2 with ``h·|X_Nh|/|X_N| ≥`` :data:`STRONG_SCORE` in some window and channel, highest
    score first, then sorted. Only orders whose subgroup bins every window has are candidates, and
    only channels whose fundamental is at least 1e-3 of the largest of their source count (an idle
    channel's noise would otherwise look like strong harmonics).

    spec : (windows, channels, bins) rfft before leakage removal; nb : (windows,) bins each window
    has; rows : channels of each source (e.g. voltages, currents), in order
    """
    top = min(MAX_ORDER, (int(nb.min()) - 2) // cycles)
    if top < 2:
        return np.ones(1, dtype=np.int64)
    mag = np.abs(spec[..., cycles : cycles * top + 1 : cycles])  # (W, C, top): orders 1…top
    f1 = mag[..., 0]
    present = np.zeros(f1.shape, dtype=bool)
    r0 = 0
    for r in rows:  # over the ≤ 2 sources
        part = f1[:, r0 : r0 + r]
        present[:, r0 : r0 + r] = part >= _PRESENT * part.max(axis=1, keepdims=True)
        r0 += r
    present &= f1 > 0
    ratio = mag[..., 1:] / np.where(present, f1, np.inf)[..., None]
    score = ratio.max(axis=(0, 1)) * np.arange(2, top + 1)
    best = np.argsort(-score, kind="stable")[:MAX_STRONG]
    best = np.sort(best[score[best] >= STRONG_SCORE]) + 2
    return np.concatenate(([1], best)).astype(np.int64)


def remove_leakage(spec: C64, nu: F64, cycles: int, length: I64, orders: I64) -> C64:
    """Replace the rectangular-window leakage of the lines ``orders`` by their exact lines (in place).

    Order h is the tone ``a_h·e^{jω_h n} + a_h*·e^{−jω_h n}`` at ``h·nu`` bins, which gives bin k
    ``a_h·D(h·nu − k) + a_h*·D(−h·nu − k)``. The bins N·h of all the orders give one real linear
    system in (Re a_h, Im a_h) per window (the same for every channel); its solution's leakage is
    subtracted from all bins and ``a_h·M`` put back at bin N·h. This keeps the subgroups of a pure sine
    below 1e-5 of the fundamental at any frequency and sampling rate, and those of a rectifier current
    (30 % 3rd, 20 % 5th, 10 % 7th…) within 1e-4.

    spec : (windows, channels, bins) rfft; nu : (windows,) cycles of the fundamental per window [-];
    length : (windows,) DFT length of each window [samples]; orders : (S,) orders, 1 first [-]
    """
    nw, _, bins = spec.shape
    delta = nu - cycles
    # a window whose nu is far from N (no synchronised DFT length) models only its fundamental: its
    # harmonics stay exact lines at N·h, where the solve leaves them as they are
    sync = np.abs(delta) * float(orders.max()) <= 0.5
    x = np.where(orders[None, :] == 1, 1.0, np.where(sync, 1.0, 0.0)[:, None]) * delta[:, None]
    x = (x + cycles) * orders[None, :]  # (W, S) cycles of each order in the window [-]
    at = cycles * orders
    m = length.astype(np.float64)
    # A[w, r, 2s + (0|1)] = Re|Im of row r's response at bin N·h_s;  X_r = coef @ A  →  coef = X_r A⁻¹
    xx = x[:, :, None]
    d1, d2 = _kernel(np.stack((xx, -xx)) - at, m[:, None, None])  # (2, W, S, S): ±line → line bins
    a = np.stack((d1 + d2, 1j * (d1 - d2)), axis=2).reshape(nw, 2 * orders.size, orders.size)
    a_r = np.ascontiguousarray(a).view(np.float64)  # (W, 2S, 2S)
    xr = np.ascontiguousarray(spec[..., at], dtype=np.complex128).view(np.float64)  # (W, C, 2S)
    coef = np.linalg.solve(a_r.transpose(0, 2, 1), xr.transpose(0, 2, 1)).transpose(0, 2, 1)
    flat = spec.view(np.float32)  # (W, C, 2K): re, im interleaved
    basis = _basis(x, bins, length, at)
    c32 = coef.astype(np.float32)
    part = np.empty(flat.shape[1:], dtype=np.float32)  # one window's leakage: stays in cache
    for w in range(nw):  # no (W, C, 2K) temporary (fresh pages of a large array cost more than the product)
        np.matmul(c32[w], basis[w], out=part)
        flat[w] -= part
    lines = np.ascontiguousarray(coef).view(np.complex128)  # (W, C, S): a_h
    spec[..., at] = (lines * m[:, None, None]).astype(np.complex64)  # the solve left ≈ 0 there
    return spec


def _kernel(y: F64, m: F64) -> C128:
    """:func:`dirichlet` of ``y`` [bins] for window lengths ``m`` (broadcast) [samples]."""
    den = np.sin(np.pi * y / m)
    small = np.abs(den) < 1e-12
    mag = np.where(small, m, np.sin(np.pi * y) / np.where(small, 1.0, den))
    return np.asarray(mag * np.exp(1j * np.pi * y * (m - 1.0) / m), dtype=np.complex128)


def _basis(x: F64, bins: int, length: I64, at: I64) -> F32:
    """(W, 2S, 2·bins) float32 leakage of a unit ``Re a_h`` (row 2s) and ``Im a_h`` (row 2s + 1) of each
    line x (W, S) [bins] into every bin, re and im interleaved: ``D(x − k) + D(−x − k)`` and
    ``j·(D(x − k) − D(−x − k))`` (see :func:`dirichlet`), without a sine per bin:
    ``sin(π(x−k)) = (−1)^k sin(πx)`` and ``sin(π(±x−k)/M)`` by the difference formula.

    float32 is enough: away from its own bin a line is ≥ 0.6 bin off every bin (the denominator is
    ≥ 7e-4, its rounding 1e-7) and leaks ≤ 1e-2 of itself; its own bins ``at`` are overwritten from
    the solve (here 0, so a line exactly on its bin gives no 0/0). The per-line terms are float64.
    """
    nw, s = x.shape
    out = np.empty((nw, s, 2, bins), dtype=np.complex64)
    for m_int in np.unique(length).tolist():  # usually one length per block
        sel = np.flatnonzero(length == m_int)
        sign, cb, sb, ek = _bin_terms(bins, m_int)
        m = float(m_int)
        xs = x[sel][..., None]  # (w, S, 1)
        a = np.pi * xs / m
        sa, ca = np.sin(a).astype(np.float32), np.cos(a).astype(np.float32)
        num = np.sin(np.pi * xs).astype(np.float32) * sign  # sin(π(x−k)); that of −x−k is −num
        ph = np.exp(1j * np.pi * xs * (m - 1.0) / m).astype(np.complex64)
        den1 = sa * cb - ca * sb  # sin(π(x−k)/M)
        den1[:, np.arange(s), at] = np.inf
        den2 = ca * sb + sa * cb  # −sin(π(−x−k)/M)
        d1 = (num / den1) * (ph * ek)
        d2 = (num / den2) * (ph.conj() * ek)
        out[sel, :, 0] = d1 + d2
        d1 -= d2
        im = out[sel, :, 1]
        im.real, im.imag = -d1.imag, d1.real
        out[sel, :, 1] = im
    return out.view(np.float32).reshape(nw, 2 * s, 2 * bins)


@lru_cache(maxsize=64)
def _bin_terms(bins: int, length: int) -> tuple[F32, F32, F32, C64]:
    """Per-bin constants of :func:`_basis`: (−1)^k, cos(πk/M), sin(πk/M), e^{−jπk(M−1)/M}."""
    k = np.arange(bins, dtype=np.float64)
    b = np.pi * k / length
    sign, cb, sb = ((1.0 - 2.0 * (k % 2)), np.cos(b), np.sin(b))
    ek = np.exp(-1j * b * (length - 1.0)).astype(np.complex64)
    return sign.astype(np.float32), cb.astype(np.float32), sb.astype(np.float32), ek
