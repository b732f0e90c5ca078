"""Synchronisation to the measured fundamental: filtered zero crossings and 10/12-cycle windows.

IEC 61000-4-30 §4.4 (Class A) asks for gapless basic windows of 10 cycles (50 Hz) or 12 cycles (60 Hz)
synchronised to the power-system fundamental, and IEC 61000-4-7 §4.4 for a window of the same length
for the DFT. We find the positive-going zero crossings of the *fundamental* of a reference voltage by
low-pass filtering it with two cascaded half-period boxcars (linear phase, so the delay is exactly known
and removed; even harmonics are nulled, the 3rd is attenuated ≈ 9× relative to the fundamental), then
interpolating linearly between the samples around each sign change. A window starts at every N-th
crossing. Where crossings are missing (interruption) synthetic ones are inserted at the last period.

Everything here is vectorised over crossings; :class:`ZeroCrossingTracker` keeps the state that makes
successive sample blocks give the same crossings as one long record.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["ZeroCrossingTracker", "cycles_per_window", "boxcar_length", "filtered", "raw_crossings"]

F64 = NDArray[np.float64]


def cycles_per_window(f_nominal: float) -> int:
    """Basic window length in cycles: 10 at 50 Hz, 12 at 60 Hz (IEC 61000-4-30 §5.1–§5.2). [-]"""
    return 12 if f_nominal >= 55.0 else 10


def boxcar_length(fs: float, f_nominal: float) -> int:
    """Length of one half-period boxcar of the synchronisation filter. [samples]"""
    return max(1, int(round(fs / (2.0 * f_nominal))))


def filtered(x: F64, length: int) -> F64:
    """Two cascaded moving averages of ``length`` samples.

    Returns the valid part: ``y[k]`` is centred on sample ``k + (length - 1)``. [same unit as x]
    """
    c = np.concatenate(([0.0], np.cumsum(x, dtype=np.float64)))
    y1 = (c[length:] - c[:-length]) / length
    c2 = np.concatenate(([0.0], np.cumsum(y1)))
    return np.asarray((c2[length:] - c2[:-length]) / length, dtype=np.float64)


def raw_crossings(y: F64, threshold: float, lookaround: int) -> F64:
    """Positive-going zero crossings of ``y`` with amplitude qualification.

    A crossing between samples k and k+1 counts when ``y`` is below ``-threshold`` ``lookaround``
    samples before and above ``+threshold`` ``lookaround`` samples after (a quarter period): noise
    around zero during an interruption gives none. Returns fractional positions in samples of ``y``.
    """
    k = np.flatnonzero((y[:-1] < 0.0) & (y[1:] >= 0.0))
    k = k[(k >= lookaround) & (k + 1 + lookaround < y.size)]
    ok = (y[k - lookaround] < -threshold) & (y[k + 1 + lookaround] > threshold)
    k = k[ok]
    y0 = y[k]
    y1 = y[k + 1]
    return k + y0 / (y0 - y1)


class ZeroCrossingTracker:
    """Finds fundamental zero crossings across successive sample blocks.

    Parameters
    ----------
    fs : sampling rate [Hz]
    f_nominal : nominal frequency, 50 or 60 [Hz]
    amplitude : expected peak amplitude of the reference signal (e.g. √2·230) [V]; crossings are
        accepted only when the filtered signal swings beyond 10 % of it on both sides.
    """

    def __init__(self, *, fs: float, f_nominal: float, amplitude: float) -> None:
        self.fs = float(fs)
        self.f_nominal = float(f_nominal)
        self.length = boxcar_length(fs, f_nominal)
        self.delay = float(self.length - 1)  # two boxcars, each (L-1)/2 [samples]
        self.quarter = max(1, int(round(fs / (4.0 * f_nominal))))
        gain = abs(np.sinc(f_nominal * self.length / fs) / np.sinc(f_nominal / fs)) ** 2
        self.threshold = 0.1 * amplitude * gain
        self.period = fs / f_nominal  # last measured period [samples]
        self._hist = np.zeros(0)
        self._hist_start = 0  # absolute index of _hist[0]
        self._last: float | None = None  # absolute position of the last crossing reported

    def feed(self, x: F64, start: int) -> F64:
        """Add samples ``x`` whose first sample has absolute index ``start``.

        Returns the new crossings (absolute fractional sample positions, increasing). Crossings need
        a quarter period of look-ahead, so each is reported one block late at most.
        """
        if self._hist.size and start != self._hist_start + self._hist.size:
            raise ValueError("samples must be contiguous")
        if not self._hist.size:
            self._hist_start = start
        buf = np.concatenate((self._hist, np.asarray(x, dtype=np.float64)))
        base = self._hist_start
        zc = np.empty(0)
        if buf.size > 2 * self.length + 2 * self.quarter + 2:
            y = filtered(buf, self.length)
            zc = raw_crossings(y, self.threshold, self.quarter) + self.delay + base
            if self._last is not None:
                zc = zc[zc > self._last + 0.5 * self.period]
            zc = self._drop_close(zc)
            end_known = base + buf.size - 1 - self.quarter - self.delay
            if zc.size == 0 and self._last is None and end_known - base > 2.5 * self.period:
                # no fundamental since the stream started (it starts in an interruption): count
                # nominal cycles from the first sample so windows, energy and events carry on
                zc = np.array([float(base)])
            zc = self._fill_gaps(zc, end_known)
        if zc.size:
            self._last = float(zc[-1])
            if zc.size >= 2:
                self.period = float(np.median(np.diff(zc[-8:]))) if zc.size > 2 else float(zc[-1] - zc[-2])
        # keep enough history to re-filter around the next crossings
        keep_from = (
            int(np.floor(self._last if self._last is not None else base))
            - 2 * self.length
            - 2 * self.quarter
            - 4
        )
        keep_from = max(base, keep_from, base + buf.size - int(4 * self.period) - 4 * self.length)
        self._hist = buf[keep_from - base :]
        self._hist_start = keep_from
        return zc

    def _drop_close(self, zc: F64) -> F64:
        """Drop crossings closer than half a period to the previous one (noise near zero)."""
        if zc.size < 2:
            return zc
        keep = np.concatenate(([True], np.diff(zc) > 0.5 * self.period))
        return zc[keep]

    def _fill_gaps(self, zc: F64, end_known: float) -> F64:
        """Insert synthetic crossings (at the last period) where more than 1.5 periods are missing."""
        period = self.period
        pts = zc if self._last is None else np.concatenate(([self._last], zc))
        if pts.size == 0:
            return zc
        # trailing gap up to the end of the known data
        tail = end_known - pts[-1]
        if tail > 1.5 * period + period:
            pts = np.concatenate((pts, [pts[-1] + period * np.floor((tail - period) / period)]))
        gaps = np.diff(pts)
        n_ins = np.where(gaps > 1.5 * period, np.round(gaps / period) - 1, 0).astype(np.int64)
        if not n_ins.any():
            out = pts
        else:
            reps = n_ins + 1
            starts = np.repeat(pts[:-1], reps)
            steps = np.repeat(gaps / reps, reps)
            offs = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
            out = np.concatenate((starts + offs * steps, pts[-1:]))
        if self._last is not None:
            out = out[1:]
        return out
