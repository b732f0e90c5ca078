"""Per-window measurements of every channel: RMS, peak, DC, spectrum, fundamental phasor, power.

One call handles any number of voltage channels, current channels and windows, with array operations
only (no loop per window or per sample):

* Windows of equal length are stacked (in cache-sized chunks) and measured together: RMS
  (IEC 61000-4-30 §5.2.1: over the window, including DC and all harmonics), peak, mean, and active
  power as the mean of the instantaneous product u·i (IEEE 1459 §3.1.1.4). Window boundaries are the
  synchronised ones, so energy sums every sample exactly once.
* Spectra (IEC 61000-4-7) come from ``numpy.fft.rfft`` of windows stacked by length. The exact number
  of fundamental cycles in each window is known from the fractional zero crossings, and the
  fundamental's leakage is removed exactly (:func:`_remove_fundamental_leakage`); what is left is the
  harmonics' own leakage from the ≤ 1 sample length rounding (≤ 0.04 % of the fundamental at 6.4 kHz).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from meterhub.metering.harmonics import harmonic_table, spectral_power_rms

__all__ = ["ChannelWindows", "concat", "dirichlet", "empty_windows", "measure", "rms_only"]

F64 = NDArray[np.float64]
C128 = NDArray[np.complex128]
I64 = NDArray[np.int64]


@dataclass
class ChannelWindows:
    """Window values of a set of channels (shape (channels, windows) unless stated).

    rms : RMS value [unit]
    peak : largest absolute sample [unit]
    dc : mean value [unit]
    fundamental : complex RMS phasor of the fundamental (bin N), angle relative to the window start [unit]
    harmonics : (channels, windows, 51) RMS of harmonic subgroups, order 0…50 [unit]
    groups : (channels, windows, 51) RMS of harmonic groups, order 0…50 [unit]
    """

    rms: F64
    peak: F64
    dc: F64
    fundamental: C128
    harmonics: F64
    groups: F64


def dirichlet(x: F64, length: int) -> NDArray[np.complex128]:
    """``D(x) = Σ_{n=0}^{M−1} e^{j2πxn/M}``: the DFT response of a rectangular window of ``length`` M
    samples to a complex exponential ``x`` bins away from the analysed bin. [-]"""
    m = float(length)
    num = np.sin(np.pi * x)
    den = np.sin(np.pi * x / m)
    small = np.abs(den) < 1e-12
    mag = np.where(small, m, num / np.where(small, 1.0, den))
    return mag * np.exp(1j * np.pi * x * (m - 1.0) / m)


def _remove_fundamental_leakage(
    spec: NDArray[np.complex128], nu: F64, cycles: int, length: int
) -> NDArray[np.complex128]:
    """Replace the fundamental's rectangular-window leakage by its exact line.

    The window holds ``nu`` (≈ N) cycles of the fundamental, not exactly N, because its ends are whole
    samples. The fundamental ``a·e^{jωn} + a*·e^{−jωn}`` then leaks into every bin; with ``nu`` known
    from the fractional zero crossings we solve bin N for ``a`` and subtract ``a·D(nu−k) + a*·D(−nu−k)``
    from all bins, then put ``a·M`` back at bin N. This keeps harmonic subgroups of a pure sine below
    1e-5 of the fundamental at any frequency and sampling rate.

    spec : (channels, windows, bins) rfft; nu : (windows,) cycles of the fundamental per window [-]
    """
    d1, d2 = _dirichlet_pair(nu, spec.shape[-1], length)  # (W, K)
    s1 = d1[:, cycles] + d2[:, cycles]
    s2 = d1[:, cycles] - d2[:, cycles]
    xn = spec[..., cycles]
    # X = ar·s1 + j·ai·s2  →  2×2 real system per (channel, window)
    det = s1.real * s2.real + s1.imag * s2.imag
    ok = np.abs(det) > 1e-9 * length * length
    det = np.where(ok, det, 1.0)
    ar = (xn.real * s2.real + xn.imag * s2.imag) / det
    ai = (xn.imag * s1.real - xn.real * s1.imag) / det
    a = np.where(ok, ar + 1j * ai, xn / length)
    spec -= a[..., None] * d1[None]
    spec -= np.conj(a)[..., None] * d2[None]
    spec[..., cycles] += a * length
    return spec


@lru_cache(maxsize=64)
def _bin_terms(bins: int, length: int) -> tuple[F64, F64, F64, NDArray[np.complex128]]:
    """Per-bin constants of :func:`_dirichlet_pair`: (−1)^k, cos(πk/M), sin(πk/M), e^{−jπk(M−1)/M}."""
    k = np.arange(bins, dtype=np.float64)
    b = np.pi * k / length
    return (1.0 - 2.0 * (k % 2)), np.cos(b), np.sin(b), np.exp(-1j * b * (length - 1.0))


def _dirichlet_pair(nu: F64, bins: int, length: int) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """``D(nu − k)`` and ``D(−nu − k)`` for bins k < ``bins`` (see :func:`dirichlet`), without a sine
    per bin: ``sin(π(x−k)) = (−1)^k sin(πx)`` and ``sin(π(x−k)/M)`` by the difference formula."""
    sign, cb, sb, ek = _bin_terms(bins, length)
    out = []
    m = float(length)
    for x in (nu, -nu):
        a = np.pi * x / m
        den = np.sin(a)[:, None] * cb[None, :] - np.cos(a)[:, None] * sb[None, :]
        small = np.abs(den) < 1e-12
        num = np.sin(np.pi * x)[:, None] * sign[None, :]
        mag = np.where(small, m, num / np.where(small, 1.0, den))
        out.append(mag * (np.exp(1j * np.pi * x * (m - 1.0) / m)[:, None] * ek[None, :]))
    return out[0], out[1]


def _stack(x: F64, starts: I64, length: int) -> F64:
    """(channels, len(starts), length) copies of the windows (a gather of contiguous blocks)."""
    return np.asarray(np.lib.stride_tricks.sliding_window_view(x, length, axis=1)[:, starts])


def empty_windows(nc: int, nw: int) -> ChannelWindows:
    """Zeroed window values of ``nc`` channels and ``nw`` windows."""
    return ChannelWindows(
        rms=np.zeros((nc, nw)),
        peak=np.zeros((nc, nw)),
        dc=np.zeros((nc, nw)),
        fundamental=np.zeros((nc, nw), dtype=np.complex128),
        harmonics=np.zeros((nc, nw, 51)),
        groups=np.zeros((nc, nw, 51)),
    )


def concat(a: ChannelWindows, b: ChannelWindows) -> ChannelWindows:
    """The channels of ``a`` followed by those of ``b`` (same windows)."""
    return ChannelWindows(
        *(
            np.concatenate((getattr(a, k), getattr(b, k)), axis=0)
            for k in ("rms", "peak", "dc", "fundamental", "harmonics", "groups")
        )
    )


def _time_domain(out: ChannelWindows, x: F64, bounds: I64) -> None:
    """RMS, peak and mean of ``x`` over the windows, by segment reductions."""
    if x.shape[0] == 0 or bounds.size < 2:
        return
    seg = x[:, : bounds[-1]]
    starts = bounds[:-1]
    n = np.diff(bounds).astype(np.float64)
    out.rms[:] = np.sqrt(np.add.reduceat(seg * seg, starts, axis=1) / n)
    out.dc[:] = np.add.reduceat(seg, starts, axis=1) / n
    out.peak[:] = np.maximum(
        np.maximum.reduceat(seg, starts, axis=1), -np.minimum.reduceat(seg, starts, axis=1)
    )


_CHUNK = 1 << 19  # samples per stacked chunk: keeps temporaries in cache [samples]


def _fill(out: ChannelWindows, w: F64, sel: I64, cycles: int, spectrum: bool, cps: F64 | None) -> None:
    """Measure stacked windows ``w`` (channels, len(sel), length) into columns ``sel`` of ``out``."""
    length = w.shape[-1]
    out.rms[:, sel] = np.sqrt(np.einsum("cwl,cwl->cw", w, w) / length)
    out.dc[:, sel] = w.sum(axis=-1) / length
    out.peak[:, sel] = np.maximum(w.max(axis=-1), -w.min(axis=-1))
    if not spectrum or w.shape[0] == 0:
        return
    spec = np.fft.rfft(w, axis=-1)
    if cps is not None and spec.shape[-1] > cycles + 1:
        kmax = min(spec.shape[-1], cycles * 51 + cycles // 2 + 1)
        spec = _remove_fundamental_leakage(spec[..., :kmax], cps[sel] * length, cycles, length)
    c2 = spectral_power_rms(spec, length)
    out.harmonics[:, sel] = harmonic_table(c2, cycles, "subgroup")
    out.groups[:, sel] = harmonic_table(c2, cycles, "group")
    if spec.shape[-1] > cycles:
        out.fundamental[:, sel] = spec[..., cycles] * (np.sqrt(2.0) / length)


def _rows(cs: I64) -> I64 | slice:
    """A slice when the channel indices are contiguous (a view instead of a copy)."""
    if cs.size and cs[-1] - cs[0] + 1 == cs.size:
        return slice(int(cs[0]), int(cs[-1]) + 1)
    return cs


def measure(
    v: F64,
    i: F64,
    v_of_i: I64,
    bounds: I64,
    cycles: int,
    *,
    spectrum: bool = True,
    cycles_per_sample: F64 | None = None,
    voltages: bool = True,
) -> tuple[ChannelWindows, ChannelWindows, F64]:
    """Voltage windows, current windows and active power per current channel, in one pass.

    Parameters
    ----------
    v : (voltage channels, samples) [V]; i : (current channels, samples) [A]
    v_of_i : voltage channel of each current channel, −1 for none (power 0)
    bounds : (windows + 1,) increasing sample indices of the gapless windows
    cycles : N, cycles per window (10 or 12) [-]
    spectrum : compute spectra (False for DC systems)
    cycles_per_sample : (windows,) fundamental cycles per sample in each window, N/(exact window
        length) [1/samples]; given, the fundamental's leakage is removed
    voltages : measure the voltage channels too (False: only used for power)

    Returns (voltage windows, current windows, P (current channels, windows) [W]). Windows of equal
    length are stacked in chunks of about 0.5 Mi samples, so temporaries stay in cache.
    """
    nv, ni = v.shape[0], i.shape[0]
    nw = bounds.size - 1
    uo = empty_windows(nv if voltages else 0, nw)
    io = empty_windows(ni, nw)
    p = np.zeros((ni, nw))
    groups = [(int(vi), np.flatnonzero(v_of_i == vi)) for vi in np.unique(v_of_i) if vi >= 0]
    lengths = np.diff(bounds)
    for length in np.unique(lengths).tolist():
        sel_all = np.flatnonzero(lengths == length)
        per = max(1, _CHUNK // (length * max(1, nv + ni)))
        for k in range(0, sel_all.size, per):
            sel = sel_all[k : k + per]
            vw = _stack(v, bounds[sel], length)
            iw = _stack(i, bounds[sel], length)
            if voltages:
                _fill(uo, vw, sel, cycles, spectrum, cycles_per_sample)
            _fill(io, iw, sel, cycles, spectrum, cycles_per_sample)
            for vi, cs in groups:
                p[np.ix_(cs, sel)] = np.einsum("wl,cwl->cw", vw[vi], iw[_rows(cs)]) / length
    return uo, io, p


def rms_only(x: F64, bounds: I64) -> F64:
    """RMS of ``x`` (channels, samples) over the windows ``bounds`` [unit]."""
    out = empty_windows(x.shape[0], bounds.size - 1)
    _time_domain(out, x, bounds)
    return out.rms
