"""Voltage events: Urms(½), dips, swells and interruptions (IEC 61000-4-30 §5.4, §5.5).

* ``Urms(½)`` (§5.4.1): RMS over one cycle, starting at a fundamental zero crossing and refreshed every
  half cycle. Each value is time-stamped at the middle of its cycle, which centres the error of the
  detected start and end at ±¼ cycle for abrupt changes.
* Dip (§5.4.2.1, polyphase): starts when Urms(½) of one or more channels falls below the dip threshold
  and ends when all channels are at or above threshold + hysteresis. Residual = lowest Urms(½).
* Swell (§5.4.3.1): starts when one channel rises above the swell threshold, ends when all channels are
  at or below threshold − hysteresis. Extreme = highest Urms(½).
* Interruption (§5.5.1): starts when all channels are below the interruption threshold, ends when any
  channel is at or above threshold + hysteresis. Extreme = lowest Urms(½).

* Frequency deviation (EN 50160 §4.2.1, IEC 61000-4-30 §5.1): the frequency over each 10-s interval of
  the clock leaves nominal ± 1 % (:class:`FrequencyDeviationDetector`). Extreme = the 10-s value
  furthest from nominal.

Defaults (issue 3): dip 90 %, swell 110 %, interruption 5 % of the declared voltage, hysteresis 2 %.
Detection is a vectorised hold-state (set/reset forward fill); :class:`EventDetector` carries open
events across calls so streamed blocks give the same events as one record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Event",
    "EventDetector",
    "EventThresholds",
    "FrequencyDeviationDetector",
    "FrequencyEvent",
    "urms_half",
]

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class EventThresholds:
    """Thresholds in % of the declared voltage ``declared`` [V]."""

    declared: float
    dip: float = 90.0
    swell: float = 110.0
    interruption: float = 5.0
    hysteresis: float = 2.0


@dataclass(slots=True)
class Event:
    """One event.

    kind : "dip" | "swell" | "interruption"
    channel : index of the channel where the extreme occurred
    start : start time [s] (time base of the caller: record seconds or Unix time)
    duration : [s]
    extreme : residual (dip, interruption) or maximum (swell) Urms(½) [V]
    """

    kind: str
    channel: int
    start: float
    duration: float
    extreme: float


def urms_half(x: F64, half_bounds: NDArray[np.int64]) -> F64:
    """Urms(½) values of channels ``x`` (channels, samples) [unit].

    half_bounds : sample indices of successive half-cycle boundaries (first one a positive zero
        crossing); value k covers ``[half_bounds[k], half_bounds[k+2])``. Returns (channels, len−2).
    """
    hb = half_bounds
    end = int(hb[-1]) if hb.size else 0
    seg = x[:, :end]
    c = np.zeros((x.shape[0], end + 1))
    np.cumsum(seg * seg, axis=1, out=c[:, 1:])
    n = (hb[2:] - hb[:-2]).astype(np.float64)
    return np.sqrt(np.maximum(c[:, hb[2:]] - c[:, hb[:-2]], 0.0) / n)


@dataclass
class _Open:
    start: float
    extreme: float
    channel: int


@dataclass
class EventDetector:
    """Polyphase dip/swell/interruption detector over successive Urms(½) blocks."""

    thresholds: EventThresholds
    _open: dict[str, _Open | None] = field(
        default_factory=lambda: {"dip": None, "swell": None, "interruption": None}
    )

    def process(self, u: F64, t: F64) -> tuple[list[Event], NDArray[np.bool_]]:
        """Detect events in Urms(½) values ``u`` (channels, H) time-stamped ``t`` (H,) [s].

        Returns the events that *ended* in this block and a flag per value that is True while any
        event is in progress (for IEC 61000-4-30 §4.7 flagging).
        """
        th = self.thresholds
        d = th.declared / 100.0
        lo = u.min(axis=0)
        hi = u.max(axis=0)
        lo_ch = u.argmin(axis=0)
        hi_ch = u.argmax(axis=0)
        rules = {
            "dip": (lo < th.dip * d, lo >= (th.dip + th.hysteresis) * d, lo, lo_ch, False),
            "swell": (hi > th.swell * d, hi <= (th.swell - th.hysteresis) * d, hi, hi_ch, True),
            "interruption": (
                hi < th.interruption * d,
                hi >= (th.interruption + th.hysteresis) * d,
                lo,
                lo_ch,
                False,
            ),
        }
        events: list[Event] = []
        active = np.zeros(u.shape[1], dtype=bool)
        for kind, (set_, reset, val, ch, is_max) in rules.items():
            state = self._hold(set_, reset, self._open[kind] is not None)
            active |= state
            events.extend(self._segments(kind, state, val, ch, t, is_max))
        events.sort(key=lambda e: e.start)
        return events, active

    @staticmethod
    def _hold(set_: NDArray[np.bool_], reset: NDArray[np.bool_], initial: bool) -> NDArray[np.bool_]:
        idx = np.where(set_ | reset, np.arange(set_.size), -1)
        last = np.maximum.accumulate(idx) if idx.size else idx
        return np.where(last >= 0, set_[np.maximum(last, 0)], initial)

    def _segments(
        self, kind: str, state: NDArray[np.bool_], val: F64, ch: NDArray[np.int64], t: F64, is_max: bool
    ) -> list[Event]:
        """Close finished runs of ``state`` into events; keep the last run open if it reaches the end."""
        op = self._open[kind]
        events: list[Event] = []
        if state.size == 0:
            return events
        d = np.diff(np.concatenate(([op is not None], state)).astype(np.int8))
        rises = np.flatnonzero(d == 1)
        falls = np.flatnonzero(d == -1)  # first index outside the run; the event ends at t[fall]
        starts = ([-1] if op is not None else []) + rises.tolist()
        pick = np.argmax if is_max else np.argmin
        for j, a in enumerate(starts):
            b = int(falls[j]) if j < falls.size else state.size
            lo = max(a, 0)
            if b > lo:
                k = lo + int(pick(val[lo:b]))
                cur = _Open(float(t[a]) if a >= 0 else 0.0, float(val[k]), int(ch[k]))
            else:
                cur = _Open(0.0, float("nan"), 0)
            if a < 0 and op is not None:
                better = b > lo and (cur.extreme > op.extreme if is_max else cur.extreme < op.extreme)
                cur = _Open(
                    op.start, cur.extreme if better else op.extreme, cur.channel if better else op.channel
                )
            if j < falls.size:
                events.append(Event(kind, cur.channel, cur.start, float(t[b]) - cur.start, cur.extreme))
                op = None
            else:
                op = cur
        self._open[kind] = op
        return events


@dataclass(frozen=True, slots=True)
class FrequencyEvent:
    """A frequency deviation: start [s], duration [s] (whole 10-s intervals), extreme — the interval
    value furthest from nominal [Hz] — and the limit it crossed [Hz]."""

    start: float
    duration: float
    extreme: float
    limit: float


@dataclass
class FrequencyDeviationDetector:
    """Frequency deviations over streamed analysis windows (EN 50160 §4.2.1: 50 Hz ± 1 % for 99.5 % of
    a year in interconnected systems).

    The frequency of each ``interval`` of the clock (10 s, IEC 61000-4-30 §5.1) is the duration-weighted
    mean of the windows that start in it (their frequency measured over whole cycles, so this is the
    ratio of cycles to time the standard asks for, within a window's edge). A deviation starts with the
    first interval outside f_nominal ± ``band`` % and ends with the first one back inside; an interval
    without a valid window (no synchronisation) ends it too.

    f_nominal : [Hz]. band : [% of f_nominal]. interval : [s].
    """

    f_nominal: float
    band: float = 1.0
    interval: float = 10.0
    _k: int | None = None  # the interval being accumulated (index of the clock's interval)
    _sum: float = 0.0  # Σ frequency·duration of its windows [Hz·s]
    _dur: float = 0.0  # Σ duration [s]
    _open: tuple[float, float, float, float] | None = None  # start, extreme, limit, end [s, Hz, Hz, s]

    def process(self, t: F64, duration: F64, frequency: F64) -> list[FrequencyEvent]:
        """Windows starting at ``t`` [s, the clock's time base] lasting ``duration`` [s] with
        ``frequency`` [Hz] (NaN: not measured); returns the deviations that ended."""
        ok = np.isfinite(frequency) & (duration > 0)
        t, duration, frequency = t[ok], duration[ok], frequency[ok]
        events: list[FrequencyEvent] = []
        if t.size == 0:
            return events
        k = np.floor(t / self.interval).astype(np.int64)
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        sums = np.add.reduceat(frequency * duration, starts)
        durs = np.add.reduceat(duration, starts)
        for kk, fs, ds in zip(k[starts].tolist(), sums.tolist(), durs.tolist(), strict=True):
            if self._k is not None and kk != self._k:
                self._close(events, kk)
            if self._k is None or kk != self._k:
                self._k, self._sum, self._dur = kk, 0.0, 0.0
            self._sum += fs
            self._dur += ds
        return events

    def _close(self, events: list[FrequencyEvent], next_k: int) -> None:
        """The accumulated interval is complete (a window of interval ``next_k`` arrived)."""
        k = self._k
        if k is None or self._dur <= 0:
            return
        f = self._sum / self._dur
        start = k * self.interval
        lo = self.f_nominal * (1 - self.band / 100)
        hi = self.f_nominal * (1 + self.band / 100)
        op = self._open
        if f < lo or f > hi:
            limit = lo if f < lo else hi
            if op is None:
                self._open = (start, f, limit, start + self.interval)
            else:
                far = abs(f - self.f_nominal) > abs(op[1] - self.f_nominal)
                self._open = (op[0], f if far else op[1], limit if far else op[2], start + self.interval)
        elif op is not None:
            events.append(FrequencyEvent(op[0], op[3] - op[0], op[1], op[2]))
            self._open = None
        o = self._open
        if o is not None and next_k != k + 1:  # intervals without a measurement follow: it ended here
            events.append(FrequencyEvent(o[0], o[3] - o[0], o[1], o[2]))
            self._open = None
