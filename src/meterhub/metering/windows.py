"""Per-window measurements of every channel: RMS, peak, DC, spectrum, fundamental phasor, power.

One call handles any number of voltage channels, current channels and windows, with array operations
over channels × windows (no loop per sample):

* The windows are walked in cache-sized chunks of consecutive windows of equal length, each seen as a
  strided (channels, windows, length) view of the samples (no copy). RMS (IEC 61000-4-30 §5.2.1: over
  the window, including DC and all harmonics), peak, mean and active power as the mean of the
  instantaneous product u·i (IEEE 1459 §3.1.1.4) are float64 reductions over the raw samples. Window
  boundaries are the synchronised ones, so energy sums every sample exactly once.
* Spectra (IEC 61000-4-7) come from float32 ``scipy.fft.rfft`` of the same chunks (the DFT is
  vectorised across windows; its rounding, ~1e-7 of the fundamental, is far below the 1e-5 the
  harmonic subgroups need). The DFT window starts at the window's first sample and spans the whole
  number of samples nearest to N fundamental cycles (:func:`dft_lengths`): within half a sample, or
  within 0.75 sample where the nearest length has a large prime factor (a slow DFT) and its neighbour
  does not. (The gapless windows themselves are up to one sample off N cycles, so a DFT over them
  leaked more.) The exact number of fundamental cycles in it is known from the fractional zero
  crossings, and the leakage of the fundamental and of every strong harmonic is removed exactly
  (:mod:`meterhub.metering.leakage`). Measured over 42.5…57.5 Hz and 51…69 Hz at 6.4, 10 and
  12.8 kHz: subgroups within 2e-6 of the fundamental for a rectifier current (30 % 3rd, 20 % 5th,
  10 % 7th…) and 2e-5 for a 5 % voltage harmonic mix, where the fundamental's alone left 1.9e-3 and
  9e-4.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from numpy.typing import NDArray

from meterhub.metering.harmonics import MAX_ORDER
from meterhub.metering.leakage import dirichlet, remove_leakage, strong_orders

__all__ = [
    "ChannelWindows",
    "Measured",
    "RowSums",
    "concat",
    "dft_lengths",
    "dirichlet",
    "empty_windows",
    "measure",
    "measure_all",
    "rms_of_sums",
    "rms_only",
]

F64 = NDArray[np.float64]
F32 = NDArray[np.float32]
C64 = NDArray[np.complex64]
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


@lru_cache(maxsize=4096)
def _dft_cost(n: int) -> int:
    """Estimated time of a DFT of ``n`` points [relative]: pocketfft's mixed-radix passes cost about the
    sum of the prime factors per sample, a large prime factor is done by Bluestein's algorithm at a
    fixed cost, plus a fixed overhead per sample (fitted to scipy 1.17 float32 rfft near 2 560 points)."""
    cost, p, m = 0, 2, n
    while p * p <= m:
        while m % p == 0:
            cost += p
            m //= p
        p += 1
    return min(cost + (m if m > 1 else 0), 300) + 35


_MAX_DFT_OFFSET = 0.75  # largest |DFT length − exact N-cycle length| for a cheaper length [samples]


def dft_lengths(bounds: I64, cycles: int, cycles_per_sample: F64 | None) -> I64:
    """DFT length of each window [samples].

    The whole number of samples nearest to ``cycles`` fundamental cycles (IEC 61000-4-7 §4.4
    synchronisation), or the other neighbour of the exact length when that one is estimated at least
    1.5× cheaper to transform (a length with a large prime factor costs up to 5× a smooth one) and is
    within 0.75 sample of it. Without ``cycles_per_sample``, the window lengths themselves.
    """
    lengths = np.diff(bounds)
    if cycles_per_sample is None or lengths.size == 0:
        return lengths
    exact = cycles / np.asarray(cycles_per_sample, dtype=np.float64)
    exact = np.where(np.abs(exact - lengths) <= 2.0, exact, lengths)  # not finite or not N cycles: as is
    lo = np.floor(exact).astype(np.int64)
    near = np.where(exact - lo >= 0.5, lo + 1, lo)
    other = np.where(near == lo, lo + 1, lo)
    out = near.copy()
    pairs = list(zip(other.tolist(), near.tolist(), strict=True))
    cheaper = {(a, b): 1.5 * _dft_cost(a) <= _dft_cost(b) for a, b in set(pairs)}
    swap = np.array([cheaper[ab] for ab in pairs], dtype=bool)
    swap &= np.abs(other - exact) <= _MAX_DFT_OFFSET
    out[swap] = other[swap]
    return np.maximum(out, 1)


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


_CHUNK = 1 << 17  # samples (all channels) per chunk of windows: temporaries stay in L2 cache [samples]


def _chunks(bounds: I64, channels: int) -> Iterator[tuple[int, int, int]]:
    """(first window, end window, length) of runs of consecutive windows of equal length, each run
    cut to about ``_CHUNK`` samples over ``channels`` channels."""
    lengths = np.diff(bounds)
    edges = [0, *(np.flatnonzero(np.diff(lengths)) + 1).tolist(), lengths.size]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        m = int(lengths[a])
        per = max(1, _CHUNK // max(1, m * channels))
        for s in range(a, b, per):
            yield s, min(b, s + per), m


def _view(x: F64, start: int, count: int, step: int, length: int) -> F64:
    """(channels, count, length) strided view of ``x[:, start + k·step : start + k·step + length]``."""
    if length <= step and start + count * step <= x.shape[1]:  # a reshape: much cheaper than as_strided
        out = x[:, start : start + count * step].reshape(x.shape[0], count, step)[..., :length]
        out.flags.writeable = False
        return out
    return np.lib.stride_tricks.as_strided(
        x[:, start:],
        shape=(x.shape[0], count, length),
        strides=(x.strides[0], step * x.strides[1], x.strides[1]),
        writeable=False,
    )


def _rows(cs: I64) -> I64 | slice:
    """A slice when the channel indices are evenly spaced (a view instead of a copy)."""
    if cs.size == 1 or (cs.size > 1 and np.all(np.diff(cs) == cs[1] - cs[0]) and cs[1] > cs[0]):
        step = int(cs[1] - cs[0]) if cs.size > 1 else 1
        return slice(int(cs[0]), int(cs[-1]) + 1, step)
    return cs


class _Spectra:
    """Collects the first bins of the DFT of every (window, channel) of several sample arrays and
    reduces them to harmonics."""

    def __init__(self, sources: list[F64], cycles: int, dft_len: I64) -> None:
        self.sources = [x for x in sources if x.shape[0]]
        self.channels = sum(x.shape[0] for x in self.sources)
        self.cycles = cycles
        self.dft_len = dft_len
        need = cycles * (MAX_ORDER + 1) + cycles // 2 + 1
        self.bins = int(min(need, int(dft_len.max()) // 2 + 1)) if dft_len.size else 0
        self.spec = np.zeros((dft_len.size, self.channels, self.bins), dtype=np.complex64)
        self._bufs: dict[tuple[int, int], F32] = {}  # float32 DFT input per (windows, length), reused

    def add(self, w0: int, w1: int, start: int, step: int) -> None:
        """DFT of the windows w0…w1−1, the first starting at sample ``start``, ``step`` apart."""
        if not self.channels:
            return
        lens = self.dft_len[w0:w1]
        for length in sorted(set(lens.tolist())):  # usually one (np.unique costs more on a few windows)
            sel = np.flatnonzero(lens == length)
            buf = self._bufs.get((sel.size, length))
            if buf is None:  # the chunks of a block mostly share one shape: fresh pages cost more
                buf = self._bufs[sel.size, length] = np.empty((sel.size, self.channels, length), np.float32)
            row = 0
            for x in self.sources:
                if x.shape[1] - start - int(sel[-1]) * step < length:
                    raise ValueError("DFT window beyond the samples")
                blk = _view(x, start + int(sel[0]) * step, sel.size, step, length).transpose(1, 0, 2)
                if sel.size != int(sel[-1] - sel[0]) + 1:
                    blk = blk[sel - sel[0]]
                buf[:, row : row + x.shape[0]] = blk  # float64 → float32 in the copy
                row += x.shape[0]
            f = scipy.fft.rfft(buf, axis=-1, workers=1, overwrite_x=True)
            k = min(self.bins, f.shape[-1])
            self.spec[w0 + sel, :, :k] = f[..., :k]

    def finish(self, outs: list[ChannelWindows], cps: F64 | None) -> None:
        """Fundamental leakage removal, harmonic subgroups and groups and the fundamental phasor, into
        ``outs`` (one per source, in order)."""
        spec, n, length = self.spec, self.cycles, self.dft_len
        if spec.size == 0:
            return
        nb = np.minimum(self.bins, length // 2 + 1)  # bins each window really has
        if cps is not None and self.bins > n + 1:
            orders = strong_orders(spec, n, nb, [x.shape[0] for x in self.sources])
            spec = remove_leakage(spec, cps * length, n, length, orders)
        m = length.astype(np.float64)
        fund = spec[..., n] * (np.sqrt(2.0) / m)[:, None] if self.bins > n else None
        nyq = np.flatnonzero((length % 2 == 0) & (nb == length // 2 + 1))
        if nyq.size:  # the Nyquist bin of an even length counts once: C² = |X|²/M²
            spec[nyq, :, nb[nyq] - 1] *= np.float32(np.sqrt(0.5))
        sq = spec.view(np.float32)  # the spectra are not needed any more: squared in place
        np.square(sq, out=sq)
        c2 = sq[..., 0::2] + sq[..., 1::2]  # |X_k|²; C_k² = 2|X_k|²/M² (IEC 61000-4-7 §3.2.1)
        g = np.sqrt(_tables(c2, n).astype(np.float64) * (2.0 / (m * m))[:, None, None, None])
        beyond = _reach(n)[None, :, :] >= nb[:, None, None]  # (W, 2, 51)
        if beyond.any():
            g[np.broadcast_to(beyond[:, None], g.shape)] = np.nan
        row = 0
        for out in outs:
            c = out.rms.shape[0]
            out.harmonics[:] = g[:, row : row + c, 0].transpose(1, 0, 2)
            out.groups[:] = g[:, row : row + c, 1].transpose(1, 0, 2)
            if fund is not None:
                out.fundamental[:] = fund[:, row : row + c].T
            row += c


def _tables(c2: F32, n: int) -> F32:
    """Harmonic subgroups and groups of orders 0…50 from ``c2`` = |X_k|² (..., bins) of an N-cycle
    window, as (..., 2, 51) sums of |X_k|²/2 (times 2/M² they are C²): subgroup h = bins Nh−1…Nh+1
    (IEC 61000-4-7 eq. 9), group h = bins Nh−N/2…Nh+N/2 with half weight at both ends (eq. 8); order 0
    is the DC bin alone. Bins beyond ``c2`` count as zero (the caller marks those orders NaN)."""
    half = n // 2
    need = n * (MAX_ORDER + 1) + half + 1
    if c2.shape[-1] < need:
        c2 = np.concatenate((c2, np.zeros(c2.shape[:-1] + (need - c2.shape[-1],), c2.dtype)), axis=-1)
    top = n * MAX_ORDER
    out = np.empty(c2.shape[:-1] + (2, MAX_ORDER + 1), dtype=c2.dtype)
    out[..., :, 0] = 0.5 * c2[..., :1]
    out[..., 0, 1:] = c2[..., n - 1 : top : n] + c2[..., n : top + 1 : n] + c2[..., n + 1 : top + 2 : n]
    blocks = c2[..., n - half : top - half + 1 : n].copy()  # Σ bins Nh−N/2 … Nh+N/2−1
    for j in range(1, n):  # N strided adds: faster than a sum over a short last axis
        blocks += c2[..., n - half + j : top - half + j + 1 : n]
    ends = c2[..., n + half : top + half + 1 : n] - c2[..., n - half : top - half + 1 : n]
    out[..., 1, 1:] = blocks + 0.5 * ends
    return out


@lru_cache(maxsize=16)
def _reach(n: int) -> I64:
    """(2, 51) highest bin of each subgroup and group of an N-cycle window (order 0: bin 0)."""
    h = np.arange(MAX_ORDER + 1)
    reach = np.stack((n * h + 1, n * h + n // 2))
    reach[:, 0] = 0
    return reach


class RowSums:
    """Signed sums of channels, measured by RMS only: row r is ``Σ_j weights[r, j]·x[index[r, j]]``
    (a calculated neutral current, line-to-line voltages). index, weights : (rows, terms)."""

    def __init__(self, index: I64, weights: F64) -> None:
        self.index = np.asarray(index, dtype=np.int64)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.rows = self.index.shape[0]
        # (channel rows, weights (rows, 1, 1), +1 / −1 when all weights are that, else 0) per term
        self.terms: list[tuple[I64 | slice, F64, float]] = []
        for j in range(self.index.shape[1]):
            wt = self.weights[:, j]
            if np.any(wt != 0):
                sign = 1.0 if np.all(wt == 1.0) else -1.0 if np.all(wt == -1.0) else 0.0
                self.terms.append((_rows(self.index[:, j]), wt[:, None, None], sign))
        # rows that add k consecutive channels, the same k for all: a reshaped sum (e.g. neutrals)
        k = self.index.shape[1]
        first = int(self.index[0, 0]) if self.index.size else 0
        self.blocks: slice | None = None
        if self.index.size and np.all(self.weights == 1.0):
            if np.array_equal(self.index, first + np.arange(self.rows * k).reshape(self.rows, k)):
                self.blocks = slice(first, first + self.rows * k)


@dataclass
class Measured:
    """What :func:`measure_all` returns (W windows).

    u, i : voltage and current windows; p : (current channels, W) active power [W];
    u_sums, i_sums : (rows, W) RMS of the requested :class:`RowSums` of voltages [V] and currents [A]
    """

    u: ChannelWindows
    i: ChannelWindows
    p: F64
    u_sums: F64
    i_sums: F64


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
    """Voltage windows, current windows and active power per current channel, in one pass
    (:func:`measure_all` without row sums)."""
    m = measure_all(
        v,
        i,
        v_of_i,
        bounds,
        cycles,
        spectrum=spectrum,
        cycles_per_sample=cycles_per_sample,
        voltages=voltages,
    )
    return m.u, m.i, m.p


def measure_all(
    v: F64,
    i: F64,
    v_of_i: I64,
    bounds: I64,
    cycles: int,
    *,
    spectrum: bool = True,
    cycles_per_sample: F64 | None = None,
    voltages: bool = True,
    u_sums: RowSums | None = None,
    i_sums: RowSums | None = None,
) -> Measured:
    """Voltage windows, current windows, active power per current channel and the RMS of signed sums
    of channels, in one pass over the samples.

    Parameters
    ----------
    v : (voltage channels, samples) [V]; i : (current channels, samples) [A]
    v_of_i : voltage channel of each current channel, −1 for none (power 0)
    bounds : (windows + 1,) increasing sample indices of the gapless windows
    cycles : N, cycles per window (10 or 12) [-]
    spectrum : compute spectra (False for DC systems)
    cycles_per_sample : (windows,) fundamental cycles per sample in each window, N/(exact window
        length) [1/samples]; given, the DFT spans the whole number of samples nearest N cycles
        (:func:`dft_lengths`) and the fundamental's leakage is removed
    voltages : measure the voltage channels too (False: only used for power)
    u_sums, i_sums : sums of voltage / current channels whose RMS is wanted (e.g. U L1-L2, calculated
        neutral current)

    The samples are walked in chunks of about 128 Ki samples of consecutive windows, each measured
    completely while it is in cache.
    """
    nv, ni = v.shape[0], i.shape[0]
    nw = bounds.size - 1
    uo = empty_windows(nv if voltages else 0, nw)
    io = empty_windows(ni, nw)
    p = np.zeros((ni, nw))
    us = np.zeros((0 if u_sums is None else u_sums.rows, max(nw, 0)))
    is_ = np.zeros((0 if i_sums is None else i_sums.rows, max(nw, 0)))
    out = Measured(uo, io, p, us, is_)
    if nw <= 0:
        return out
    cps = None if cycles_per_sample is None else np.asarray(cycles_per_sample, dtype=np.float64)
    dft_len = dft_lengths(bounds, cycles, cps)
    end = min(v.shape[1], i.shape[1])
    dft_len = np.where(bounds[:-1] + dft_len <= end, dft_len, np.diff(bounds))
    groups = _power_groups(tuple(np.asarray(v_of_i).tolist()))
    spectra = _Spectra([v, i] if voltages else [i], cycles, dft_len) if spectrum else None
    for w0, w1, m in _chunks(bounds, nv + ni):
        s = int(bounds[w0])
        vw = _view(v, s, w1 - w0, m, m)
        iw = _view(i, s, w1 - w0, m, m)
        if voltages:
            _time_domain(uo, vw, w0, w1)
        _time_domain(io, iw, w0, w1)
        for vi, cs in groups:
            p[cs, w0:w1] = np.vecdot(vw[vi], iw[cs]) / m
        if u_sums is not None and u_sums.rows:
            us[:, w0:w1] = _sum_rms(vw, u_sums)
        if i_sums is not None and i_sums.rows:
            is_[:, w0:w1] = _sum_rms(iw, i_sums)
        if spectra is not None:
            spectra.add(w0, w1, s, m)
    if spectra is not None:
        spectra.finish([uo, io] if voltages else [io], cps)
    return out


@lru_cache(maxsize=64)
def _power_groups(v_of_i: tuple[int, ...]) -> list[tuple[int, I64 | slice]]:
    """(voltage channel, its current channels) for the active power of each current channel."""
    a = np.array(v_of_i, dtype=np.int64)
    return [(int(vi), _rows(np.flatnonzero(a == vi))) for vi in np.unique(a) if vi >= 0]


def _time_domain(out: ChannelWindows, w: F64, w0: int, w1: int) -> None:
    """RMS, peak and mean of the windows ``w`` (channels, windows, length) into columns w0…w1−1."""
    if w.shape[0] == 0:
        return
    m = w.shape[-1]
    out.rms[:, w0:w1] = np.sqrt(np.vecdot(w, w) / m)  # vecdot and @: BLAS dot products
    out.dc[:, w0:w1] = (w @ _ones(m)) / m
    out.peak[:, w0:w1] = np.maximum(w.max(axis=-1), -w.min(axis=-1))


@lru_cache(maxsize=64)
def _ones(m: int) -> F64:
    return np.ones(m)


def _sum_rms(xw: F64, sums: RowSums) -> F64:
    """RMS (rows, windows) of the signed sums ``sums`` of the windows ``xw`` (channels, windows, m)."""
    if sums.blocks is not None:
        k = sums.index.shape[1]
        acc = xw[sums.blocks].reshape((sums.rows, k) + xw.shape[1:]).sum(axis=1)
        return np.sqrt(np.vecdot(acc, acc) / xw.shape[-1])
    terms = sums.terms
    sel, wt, sign = terms[0]
    acc = np.array(xw[sel]) if sign > 0 else -xw[sel] if sign < 0 else xw[sel] * wt
    for sel, wt, sign in terms[1:]:  # over the ≤ 3 terms of a sum
        if sign > 0:
            acc += xw[sel]
        elif sign < 0:
            acc -= xw[sel]
        else:
            acc += xw[sel] * wt
    return np.sqrt(np.vecdot(acc, acc) / xw.shape[-1])


def rms_of_sums(x: F64, idx: I64, weights: F64, bounds: I64) -> F64:
    """RMS over the windows of the signed sums ``Σ_j weights[r, j]·x[idx[r, j]]`` [unit].

    x : (channels, samples); idx, weights : (rows, terms) — e.g. a calculated neutral current
    (the sample-wise sum of the phase currents) or line-to-line voltages. Returns (rows, windows).
    """
    nw = bounds.size - 1
    out = np.zeros((idx.shape[0], max(nw, 0)))
    if nw <= 0 or idx.shape[0] == 0:
        return out
    sums = RowSums(idx, weights)
    for w0, w1, m in _chunks(bounds, x.shape[0] + 2 * idx.shape[0]):
        out[:, w0:w1] = _sum_rms(_view(x, int(bounds[w0]), w1 - w0, m, m), sums)
    return out


def rms_only(x: F64, bounds: I64) -> F64:
    """RMS of ``x`` (channels, samples) over the windows ``bounds`` [unit]."""
    n = x.shape[0]
    return rms_of_sums(x, np.arange(n, dtype=np.int64)[:, None], np.ones((n, 1)), bounds)
