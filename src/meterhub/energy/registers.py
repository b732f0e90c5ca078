"""Register guard: raw cumulative meter readings → continuous float64 registers that never go backwards.

This module is the one owner of register monotonicity (drivers hand over the raw counters they read).
A meter's energy register is read as it is (``raw``). It may wrap, be reset, the meter may be replaced
by one that starts elsewhere, the device may be away for hours — and a glitching link may answer one
poll with zeros, word-swapped floats, 3.4e38 or a stale frame. The guard turns the raw readings of each
series into a *continuous* register that starts where the persisted register left off and only grows.

Rules (``high`` is the last accepted raw reading of the present counter, ``bound`` the series' rated
rate [unit per hour]: the circuit's CT primary × nominal voltage × phases × margin for energy):

* **increase** within the *envelope* — the largest rate of the last few steps, plus the register's
  resolution — is accepted at once: Δ = r − high (over a silence longer than ``gap`` the value is
  flagged :attr:`Quality.ESTIMATED`: the energy of the gap is known from the counter, its distribution
  in time is not). A first step (no rate known yet) is accepted up to ``bound``;
* an increase above the envelope but within ``bound`` (a load step — or an outlier) is **deferred**:
  it is accepted when the next reading confirms it (the same or higher, plausibly), else it is
  quarantined. So a single outlier above the register is never integrated, and a real load step is
  counted one poll later, exactly. A new series' first reading and first step have nothing but the
  rating to be judged by (after a restart the persisted envelope is used; after a confirmed new
  counter, the candidate's own steps); the same wrong value twice in a row within the rating is a
  load step that held;
* a reading **behind** the register (below ``high`` but not below the readings accepted just before:
  a stale or duplicated frame, or the truth after an outlier) is held: Δ = 0, and counting resumes
  when the counter passes ``high`` again, so nothing is counted twice;
* any other **decrease**, and any increase implying more than ``bound``, starts a *candidate* new
  counter: its readings are quarantined (never integrated) until the candidate is **confirmed** — it
  holds, consistent with itself, for ``confirm`` polls spanning ``confirm_seconds`` (defaults 3 polls
  and ≥ 30 s), or the device's serial number changed, or an operator confirms
  (:meth:`RegisterGuard.confirm`). A candidate that is contradicted is discarded (its readings count
  as quarantined outliers). When a candidate below ``high`` is confirmed, the step across is:

  - a counter **wrap** (``high`` in the top 1 % below a rollover value ``M``, configured or a round
    10^k or 2^16/32/48/64 × 10^j, and the candidate in the bottom 1 %; a guessed ``M`` only when
    M − high + r is what the circuit could have used, as for a reset): Δ = M − high + r, exact;
  - a **reset** to 0, when the candidate's first reading is no more than the circuit could have used
    since ``high`` (twice its recent rate, at least ``reset_power``, at most ``bound``): Δ = r, what
    the new counter counted (what the old counter counted after its last reading is lost);
  - otherwise a **replacement** by a meter that started elsewhere: the step is estimated from the
    recent rate (capped by ``bound``) and flagged;

  a confirmed candidate above ``high`` (a replacement reading more) is rebased the same estimated way.
  Within a confirmed candidate its own increases count exactly;
* an announced meter change (old meter's final, new meter's initial reading) applies to the first
  reading after it: Δ = (final − high) + (r − initial).

NaN, infinite and negative readings are refused. Quarantined readings, held readings and confirmed
events are counted per series (:meth:`RegisterGuard.status`), with the reason of the last quarantine
or of the pending candidate in words ("step 60.1 kWh in 1 s above the circuit's rating 69 kW"). :func:`continuous` applies the same
rules to a whole stored series (reports on imported data).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from meterhub.energy.register_events import (
    CONFIRMED_EVENTS,
    GuardEvent,
    GuardResult,
    MeterChange,
    RegisterStatus,
    amount,
)
from meterhub.model.quantities import CATALOGUE
from meterhub.model.readings import Quality, SeriesKey

__all__ = [
    "CONFIRM_POLLS",
    "CONFIRM_SECONDS",
    "GuardEvent",
    "GuardResult",
    "MeterChange",
    "RegisterGuard",
    "RegisterState",
    "RegisterStatus",
    "continuous",
    "wrap_modulus",
]

log = logging.getLogger(__name__)

#: A candidate new counter is confirmed when it holds for this many polls ...
CONFIRM_POLLS = 3
#: ... spanning at least this long [s] (both: one slow poll or a burst of fast ones is not enough).
CONFIRM_SECONDS = 30.0
#: Steps whose rates make up the envelope of a series [-].
_RATE_HISTORY = 5
#: Accepted readings remembered (the mean rate over them estimates a replacement's step) [-].
_RAW_HISTORY = 5
#: Relative resolution of a raw register: float32 has 2^-23 ≈ 1.2e-7; two units of it [-].
_RESOLUTION = 2.5e-7
#: Confirmed events kept per series for the status [-].
_EVENTS_KEPT = 10

#: Candidate rollover values: round display sizes and integer register ranges in decimal scales.
_MODULI = np.unique(
    np.concatenate(
        [
            10.0 ** np.arange(1, 16),
            *[np.array([2.0**16, 2.0**32, 2.0**48, 2.0**64]) * 10.0**j for j in range(-3, 4)],
        ]
    )
)


@dataclass(slots=True)
class RegisterState:
    """Per-series state. raw / value / pending values in the unit of the quantity; times [s]."""

    raw: float | None  # ``high``: last accepted raw reading of the present counter (None: unknown)
    value: float  # continuous register
    ts: float | None  # time of the last accepted reading
    pending: list[tuple[float, float]] = field(default_factory=list)  # candidate (ts, raw), quarantined
    direction: str | None = None  # "lower" | "higher" | "deferred" while ``pending`` is not empty
    rates: deque[float] = field(default_factory=lambda: deque(maxlen=_RATE_HISTORY))  # [unit per hour]
    history: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=_RAW_HISTORY))
    armed: str | None = None
    restored: bool = False
    # status counters
    quarantined: int = 0
    first_quarantined: float | None = None
    last_quarantined: float | None = None
    held: int = 0
    refused: int = 0
    pending_reason: str | None = None  # why the pending readings wait (see RegisterStatus.reason)
    reason: str | None = None  # why the last outliers were quarantined
    events: deque[tuple[GuardEvent, float]] = field(default_factory=lambda: deque(maxlen=_EVENTS_KEPT))

    @property
    def rate(self) -> float | None:
        """Mean rate over the remembered accepted readings [unit per hour] (None: unknown)."""
        if len(self.history) < 2:
            return self.rates[-1] if self.rates else None
        (t0, r0), (t1, r1) = self.history[0], self.history[-1]
        return (r1 - r0) * 3600.0 / (t1 - t0) if t1 > t0 and r1 >= r0 else None


def wrap_modulus(last: float, new: float, configured: float | None = None) -> float | None:
    """The rollover value ``M`` if ``last → new`` (a decrease) is a counter wrap, else None.

    A wrap is accepted when ``last`` lies in the top 1 % below ``M`` and ``new`` in the bottom 1 %.
    """
    if configured is not None:
        return configured if new < last else None
    idx = int(np.searchsorted(_MODULI, last, side="right"))
    if idx >= len(_MODULI):
        return None
    m = float(_MODULI[idx])
    if m - last <= 0.01 * m and new <= 0.01 * m:
        return m
    return None


def _unit(key: SeriesKey) -> str:
    q = CATALOGUE.get(key.quantity)
    return q.unit if q is not None else ""


def _amount(key: SeriesKey, value: float) -> str:
    """A register amount of ``key`` for people, e.g. "60.1 kWh"."""
    return amount(value, _unit(key))


def _rate(key: SeriesKey, per_hour: float) -> str:
    """A rate of ``key`` [unit per hour] for people: "69 kW" for Wh, "2 h/h" for an hour counter."""
    unit = _unit(key)
    if unit in ("Wh", "varh", "VAh"):
        return amount(per_hour, unit[:-1])
    return amount(per_hour, f"{unit}/h")


def _tolerance(raw: float) -> float:
    """Resolution of a raw register reading [unit]: differences below it are rounding."""
    return max(_RESOLUTION * abs(raw), 1e-9)


class RegisterGuard:
    """Stateful guard over many series (the live pipeline's view).

    Parameters
    ----------
    gap : readings further apart than this are flagged estimated [s].
    max_power : rated rate of a series without ``rate_limit`` [unit per hour, i.e. W for Wh registers].
    rate_limit : rated rate of each series [unit per hour] (the circuit's CT primary × nominal voltage
        × phases × margin for energy registers); default ``max_power`` for every series.
    confirm : polls a candidate new counter must hold to be confirmed [-].
    confirm_seconds : time the candidate must span to be confirmed [s].
    reset_power : a confirmed lower counter is a reset to 0 when its first reading implies at most
        max(2 × the recent rate, reset_power) since the last accepted reading [unit per hour].
    moduli : configured rollover value per series [unit].
    changes : announced meter changes per series.
    """

    def __init__(
        self,
        *,
        gap: float = 900.0,
        max_power: float = 1e8,
        rate_limit: Callable[[SeriesKey], float] | None = None,
        confirm: int = CONFIRM_POLLS,
        confirm_seconds: float = CONFIRM_SECONDS,
        reset_power: float = 1000.0,
        moduli: Mapping[SeriesKey, float] | None = None,
        changes: Mapping[SeriesKey, Iterable[MeterChange]] | None = None,
    ) -> None:
        self.gap = gap
        self.reset_power = reset_power
        self.max_power = max_power
        self.rate_limit = rate_limit
        self.confirm_polls = max(int(confirm), 1)
        self.confirm_seconds = confirm_seconds
        self.moduli = dict(moduli or {})
        self.changes = {k: sorted(v, key=lambda c: c.ts) for k, v in (changes or {}).items()}
        self._state: dict[SeriesKey, RegisterState] = {}

    # -- persistence --------------------------------------------------------------------------
    def restore(
        self,
        registers: Mapping[SeriesKey, float],
        raw: Mapping[SeriesKey, float] | None = None,
        raw_ts: Mapping[SeriesKey, float] | None = None,
        rates: Mapping[SeriesKey, float] | None = None,
    ) -> None:
        """Continue from persisted registers, and where known the raw readings they came from, their
        times [s] and the largest recent rate [unit per hour] (so the first step after a restart is
        judged as before it). Without a raw baseline the register is taken as the meter's reading."""
        for key, value in registers.items():
            if not math.isfinite(value) or value < 0:
                log.warning("register %s: persisted value %r ignored", key, value)
                continue
            base = (raw or {}).get(key)
            ts = (raw_ts or {}).get(key) if base is not None else None
            ok = base is not None and math.isfinite(base) and base >= 0
            st = RegisterState(raw=base if ok else float(value), value=float(value), ts=ts, restored=not ok)
            if ts is not None and base is not None:
                st.history.append((ts, base))
                rate = (rates or {}).get(key)
                if rate is not None and math.isfinite(rate) and rate >= 0:
                    st.rates.append(rate)
            self._state[key] = st

    def adopt(self, other: RegisterGuard) -> None:
        """Continue the series of ``other`` (a guard built for the previous configuration)."""
        self._state = other._state

    def registers(self) -> dict[SeriesKey, float]:
        """Current continuous register of every series [unit]."""
        return {k: s.value for k, s in self._state.items()}

    def raw_baselines(self) -> dict[SeriesKey, tuple[float, float | None, float | None]]:
        """(last accepted raw reading [unit], its time [s] or None, the largest recent rate [unit per
        hour] or None) of every series — persist them with the registers for exact restarts."""
        return {
            k: (s.raw, s.ts, max(s.rates) if s.rates else None)
            for k, s in self._state.items()
            if s.raw is not None
        }

    def state(self, key: SeriesKey) -> RegisterState | None:
        return self._state.get(key)

    def keys(self) -> list[SeriesKey]:
        """Every series the guard has seen or restored."""
        return list(self._state)

    # -- status and commands ------------------------------------------------------------------
    def status(self) -> dict[SeriesKey, RegisterStatus]:
        """What was quarantined, held, refused, is pending or was confirmed, per series."""
        out: dict[SeriesKey, RegisterStatus] = {}
        for key, st in self._state.items():
            out[key] = RegisterStatus(
                key=key,
                quarantined=st.quarantined,
                first_quarantined=st.first_quarantined,
                last_quarantined=st.last_quarantined,
                held=st.held,
                pending=len(st.pending) if st.direction in ("lower", "higher") else 0,
                pending_since=st.pending[0][0] if st.pending and st.direction != "deferred" else None,
                pending_direction=st.direction if st.direction != "deferred" else None,
                refused=st.refused,
                confirmed=tuple(st.events),
                armed=st.armed,
                reason=st.pending_reason if st.direction in ("lower", "higher") else st.reason,
            )
        return out

    def confirm(self, key: SeriesKey, reason: str = "operator confirmed") -> GuardResult | None:
        """Accept a reset or meter replacement of ``key`` now (an operator, or a changed serial number).

        A pending candidate counter is confirmed at once (the result says what was added); without
        one, the next reading that departs from the register (any decrease, or a step beyond the
        rated rate) is accepted as the new counter without waiting. Returns the confirmation, or None
        when the series was armed for its next reading.
        """
        st = self._state.get(key)
        if st is None:
            st = self._state[key] = RegisterState(raw=None, value=0.0, ts=None)
        if st.pending and st.direction in ("lower", "higher"):
            log.info("register %s: %s; candidate counter accepted", key, reason)
            return self._confirm_candidate(key, st)
        st.armed = reason
        log.info("register %s: %s; the next change of the counter is accepted", key, reason)
        return None

    # -- the rules ----------------------------------------------------------------------------
    def limit(self, key: SeriesKey) -> float:
        """Rated rate of ``key`` [unit per hour]."""
        return self.rate_limit(key) if self.rate_limit is not None else self.max_power

    def update(self, key: SeriesKey, ts: float, raw: float) -> GuardResult:
        """Offer one raw reading [unit] at ``ts`` [s]; the result says whether and how it was counted."""
        if not (math.isfinite(raw) and math.isfinite(ts)) or raw < 0:
            st0 = self._state.get(key)
            if st0 is not None:
                st0.refused += 1
            log.debug(
                "register %s: reading %r at %r refused (not a finite non-negative number)", key, raw, ts
            )
            return GuardResult(raw, 0.0, GuardEvent.REFUSED, Quality.INVALID, ts, accepted=False)
        st = self._state.get(key)
        if st is None:
            st = self._state[key] = RegisterState(raw=raw, value=raw, ts=ts)
            st.history.append((ts, raw))
            return GuardResult(raw, 0.0, GuardEvent.FIRST, Quality.GOOD, ts)
        if st.raw is None:  # created by confirm() before any reading: this reading is the baseline
            st.raw, st.ts = raw, ts
            st.history.append((ts, raw))
            return GuardResult(st.value, 0.0, GuardEvent.FIRST, Quality.GOOD, ts)
        last_ts = st.pending[-1][0] if st.pending else st.ts
        if last_ts is not None and ts <= last_ts:
            return GuardResult(raw, 0.0, GuardEvent.STALE, Quality.INVALID, ts, accepted=False)
        change = self._change_for(key, st, ts, decreased=raw < st.raw)
        if change is not None:
            self._drop_pending(key, st)
            delta = max(change.old_final - st.raw, 0.0) + max(raw - change.new_initial, 0.0)
            st.history.clear()
            return self._accept(key, st, ts, raw, delta, GuardEvent.CHANGE, self._gap_quality(st, ts))
        if st.pending:
            res = self._with_pending(key, st, ts, raw)
            if res is not None:
                return res
        return self._fresh(key, st, ts, raw)

    def _gap_quality(self, st: RegisterState, ts: float) -> Quality:
        return Quality.ESTIMATED if st.ts is not None and ts - st.ts > self.gap else Quality.GOOD

    def _plausible(self, key: SeriesKey, step: float, dt: float | None) -> bool:
        """A step [unit] over ``dt`` [s] within the series' rated rate (unknown dt: yes)."""
        if dt is None or dt <= 0:
            return True
        return step * 3600.0 <= self.limit(key) * dt + _tolerance(step) * 3600.0

    def _envelope(self, st: RegisterState, dt: float) -> float | None:
        """Largest step [unit] accepted at once over ``dt`` [s] (None: no rate known yet)."""
        if not st.rates:
            return None
        return max(st.rates) * dt / 3600.0 + _tolerance(st.raw or 0.0)

    def _fresh(self, key: SeriesKey, st: RegisterState, ts: float, raw: float) -> GuardResult:
        """A reading without a candidate counter pending."""
        high = st.raw if st.raw is not None else raw
        dt = None if st.ts is None else ts - st.ts
        tol = _tolerance(high)
        if raw >= high - tol:
            step = max(raw - high, 0.0)
            if st.restored:
                st.restored = False
                return self._accept(key, st, ts, max(raw, high), step, GuardEvent.RESTORED, Quality.ESTIMATED)
            if not self._plausible(key, step, dt):
                return self._candidate(key, st, ts, raw, "higher")
            # a new series' first step has only the rating to be judged by (like its first reading);
            # across a long silence nothing better than the rating is known either
            env = self._envelope(st, dt) if dt is not None else None
            if env is not None and dt is not None and dt <= self.gap and step > env:
                st.pending, st.direction = [(ts, raw)], "deferred"
                st.pending_reason = (
                    f"step {_amount(key, step)} in {dt:.3g} s above the recent rate "
                    f"{_rate(key, max(st.rates))}, not confirmed by the next reading"
                )
                return GuardResult(raw, 0.0, GuardEvent.DEFERRED, Quality.INVALID, ts, accepted=False)
            quality = self._gap_quality(st, ts)
            event = GuardEvent.GAP if quality is Quality.ESTIMATED else GuardEvent.NORMAL
            return self._accept(key, st, ts, max(raw, high), step, event, quality)
        # behind: not below the reading accepted two before the last (a stale frame is at most that
        # old; after an outlier the truth lies above the reading before it)
        floor = st.history[-min(3, len(st.history))][1] if st.history else math.inf
        if raw >= floor - tol and not st.restored:
            # the time and rate stay those of ``high``: the next increase is measured from there
            st.held += 1
            log.debug("register %s: reading %r behind the register's %r at %s; held", key, raw, high, ts)
            return GuardResult(st.value, 0.0, GuardEvent.HELD, self._gap_quality(st, ts), ts)
        return self._candidate(key, st, ts, raw, "lower")

    def _candidate(
        self, key: SeriesKey, st: RegisterState, ts: float, raw: float, direction: str
    ) -> GuardResult:
        st.pending, st.direction = [(ts, raw)], direction
        if direction == "higher" and st.raw is not None and st.ts is not None:
            st.pending_reason = (
                f"step {_amount(key, raw - st.raw)} in {ts - st.ts:.3g} s above the circuit's rating "
                f"{_rate(key, self.limit(key))}"
            )
        else:
            st.pending_reason = (
                f"reading {_amount(key, raw)} below the register's {_amount(key, st.raw or 0.0)}"
            )
        if st.armed is not None:
            log.info("register %s: %s; counter %r → %r accepted", key, st.armed, st.raw, raw)
            return self._confirm_candidate(key, st)
        log.warning(
            "register %s: reading %r at %s %s the register's %r; quarantined until confirmed",
            key,
            raw,
            ts,
            "below" if direction == "lower" else "implausibly above",
            st.raw,
        )
        return self._maybe_confirm(key, st, ts, raw)

    def _with_pending(self, key: SeriesKey, st: RegisterState, ts: float, raw: float) -> GuardResult | None:
        """A reading while a deferred step or a candidate counter is pending; None: treat it afresh."""
        pts, praw = st.pending[-1]
        consistent = raw >= praw - _tolerance(praw) and self._plausible(key, max(raw - praw, 0.0), ts - pts)
        high = st.raw if st.raw is not None else raw
        if st.direction == "lower":
            consistent = consistent and raw < high - _tolerance(
                high
            )  # back at the register: not a new counter
        elif st.direction == "higher":
            dt = None if st.ts is None else ts - st.ts
            consistent = consistent and not self._plausible(key, raw - high, dt)
        if st.direction == "deferred":
            if consistent:
                # the deferred step is confirmed by this reading: count it, then judge this one
                st.pending, st.direction = [], None
                first = self._accept(
                    key,
                    st,
                    pts,
                    praw,
                    praw - (st.raw if st.raw is not None else praw),
                    GuardEvent.NORMAL,
                    Quality.GOOD,
                )
                res = self._fresh(key, st, ts, raw)
                back = ((first.ts, first.value),) if res.accepted else ()
                if res.accepted:
                    return GuardResult(
                        res.value, res.delta + first.delta, res.event, res.quality, res.ts, True, back
                    )
                if res.event is GuardEvent.DEFERRED:
                    return GuardResult(first.value, first.delta, first.event, first.quality, first.ts)
                return GuardResult(
                    res.value, first.delta, res.event, res.quality, res.ts, False, ((first.ts, first.value),)
                )
            if high - _tolerance(high) <= raw < praw:
                self._drop_pending(key, st)  # the truth came back below it: the deferred step was an outlier
            else:
                st.pending, st.direction = [], None  # contradicted by a reading that is itself doubtful
            return None
        if consistent:
            st.pending.append((ts, raw))
            return self._maybe_confirm(key, st, ts, raw)
        self._drop_pending(key, st)
        return None

    def _maybe_confirm(self, key: SeriesKey, st: RegisterState, ts: float, raw: float) -> GuardResult:
        span = st.pending[-1][0] - st.pending[0][0]
        if len(st.pending) >= self.confirm_polls and span >= self.confirm_seconds:
            return self._confirm_candidate(key, st)
        return GuardResult(raw, 0.0, GuardEvent.QUARANTINED, Quality.INVALID, ts, accepted=False)

    def _confirm_candidate(self, key: SeriesKey, st: RegisterState) -> GuardResult:
        """Accept the pending candidate as the new counter; the step across it per the module rules.

        The candidate's own steps count exactly, except a last step above the envelope of its earlier
        ones: that reading stays deferred (like any step of a counter) until the next one confirms it.
        """
        points = list(st.pending)
        inner = [
            (r1 - r0) * 3600.0 / (t1 - t0) for (t0, r0), (t1, r1) in zip(points, points[1:], strict=False)
        ]
        tail: tuple[float, float] | None = None
        if len(points) >= 3:
            (tp, rp), (tl, rl) = points[-2], points[-1]
            if rl - rp > max(inner[:-1]) * (tl - tp) / 3600.0 + _tolerance(rl):
                tail = points.pop()
                inner.pop()
        (t1, l1), (tn, ln) = points[0], points[-1]
        direction = st.direction
        high = st.raw if st.raw is not None else l1
        dt = None if st.ts is None else t1 - st.ts
        rate = st.rate
        estimate = 0.0
        if dt is not None and dt > 0 and rate is not None:
            estimate = min(max(rate, 0.0), self.limit(key)) * dt / 3600.0
        quality = Quality.ESTIMATED
        configured = self.moduli.get(key)
        m = wrap_modulus(high, l1, configured) if direction == "lower" else None
        # what the circuit could have counted since ``high``: twice its recent rate, at least
        # ``reset_power``, at most its rating [unit per hour]
        usable = min(max(2.0 * max([*st.rates, *inner, 0.0]), self.reset_power), self.limit(key))
        # a configured rollover is believed up to the rating; a guessed one only when the step across
        # is what the circuit could have used (a reset just below a round number is no wrap)
        wrap_rate = self.limit(key) if configured is not None else usable
        if (
            m is not None
            and dt is not None
            and (m - high + l1) * 3600.0 <= wrap_rate * dt + _tolerance(m) * 3600.0
        ):
            event, step, quality = GuardEvent.WRAP, m - high + l1, self._gap_quality(st, t1)
        elif direction == "lower" and dt is not None and l1 * 3600.0 <= usable * dt + _tolerance(l1) * 3600.0:
            event, step, quality = GuardEvent.RESET, l1, self._gap_quality(st, t1)
        else:
            event, step = GuardEvent.REBASE, estimate
        log.warning(
            "register %s: counter %r → %r (%s) confirmed at %s; %.6g added across the step",
            key,
            high,
            l1,
            event.value,
            tn,
            step,
        )
        st.pending, st.direction, st.armed = [], None, None
        st.history.clear()
        if inner:  # the new counter's own rates; else the circuit's load as the old counter saw it
            st.rates.clear()
            st.rates.extend(max(r, 0.0) for r in inner)
        base = st.value + step
        grown = np.maximum.accumulate(np.array([r - l1 for _, r in points], dtype=np.float64))
        back = tuple((t, base + float(g)) for (t, _), g in zip(points[:-1], grown[:-1], strict=True))
        res = self._accept(key, st, tn, ln, step + float(grown[-1]), event, quality)
        st.history.clear()
        st.history.extend(points)
        st.events.append((event, tn))
        if tail is not None:
            st.pending, st.direction = [tail], "deferred"
        return GuardResult(res.value, res.delta, res.event, res.quality, res.ts, True, back)

    def _drop_pending(self, key: SeriesKey, st: RegisterState) -> None:
        """A pending deferred step or candidate was contradicted: its readings were outliers."""
        if not st.pending:
            return
        n = len(st.pending)
        st.quarantined += n
        if st.first_quarantined is None:
            st.first_quarantined = st.pending[0][0]
        st.last_quarantined = st.pending[-1][0]
        st.reason = st.pending_reason
        log.warning(
            "register %s: %d reading(s) from %s (%r …) were outliers; never counted",
            key,
            n,
            st.pending[0][0],
            st.pending[0][1],
        )
        st.pending, st.direction = [], None

    def _accept(
        self,
        key: SeriesKey,
        st: RegisterState,
        ts: float,
        raw: float,
        delta: float,
        event: GuardEvent,
        q: Quality,
    ) -> GuardResult:
        delta = max(delta, 0.0)
        if st.ts is not None and ts > st.ts and ts - st.ts <= self.gap and event not in CONFIRMED_EVENTS:
            st.rates.append(delta * 3600.0 / (ts - st.ts))
        st.raw, st.ts = raw, ts
        st.history.append((ts, raw))
        st.value += delta
        if event is GuardEvent.CHANGE:
            st.events.append((event, ts))
        if event not in CONFIRMED_EVENTS:
            st.armed = None if event is not GuardEvent.HELD else st.armed
        return GuardResult(st.value, delta, event, q, ts)

    def _change_for(
        self, key: SeriesKey, st: RegisterState, ts: float, *, decreased: bool
    ) -> MeterChange | None:
        """The announced change between the last reading and this one. A counter that went down
        also matches a change entered up to a day late or early (the time was written by hand)."""
        for change in self.changes.get(key, ()):
            last = st.ts if st.ts is not None else ts
            inside = last < change.ts <= ts
            near = decreased and last - 86400.0 <= change.ts <= ts + 86400.0
            if inside or near:
                self.changes[key] = [c for c in self.changes[key] if c is not change]
                return change
        return None


def continuous(
    ts: np.ndarray,
    raw: np.ndarray,
    *,
    gap: float = 900.0,
    max_power: float = 1e8,
    modulus: float | None = None,
    changes: Iterable[MeterChange] = (),
    confirm: int = CONFIRM_POLLS,
    confirm_seconds: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the guard rules to a whole stored series.

    Parameters
    ----------
    ts : sample times, ascending [s].
    raw : register readings [unit].
    gap, max_power, modulus, changes, confirm : as :class:`RegisterGuard`.
    confirm_seconds : as :class:`RegisterGuard`; 0 by default, as stored series are often sparse
        (15-min samples) and the following samples are at hand.

    Returns
    -------
    (ts, value, estimated) of the accepted samples: ``value`` is the continuous register starting at
    the first accepted reading [unit]; ``estimated`` marks samples whose step from the previous one is
    not exact (gap, reset, rebase). Samples of a candidate counter still unconfirmed at the end and
    outliers are left out.
    """
    ts = np.asarray(ts, dtype=np.float64)
    raw = np.asarray(raw, dtype=np.float64)
    if ts.size == 0:
        return ts, raw, np.zeros(0, dtype=bool)
    ok = np.isfinite(raw) & np.isfinite(ts) & (raw >= 0)
    ts, raw = ts[ok], raw[ok]
    if ts.size == 0:
        return ts, raw, np.zeros(0, dtype=bool)
    d = np.diff(raw)
    dt = np.diff(ts)
    changes = list(changes)
    simple = (
        bool(np.all(d >= 0))
        and bool(np.all(dt > 0))
        and not changes
        and bool(np.all(d * 3600.0 <= max_power * dt))
    )
    if simple:
        value = raw.copy()
        est = np.concatenate([[False], dt > gap])
        return ts, value, est
    key = SeriesKey("", "", None)
    guard = RegisterGuard(
        gap=gap,
        max_power=max_power,
        confirm=confirm,
        confirm_seconds=confirm_seconds,
        moduli={key: modulus} if modulus is not None else None,
        changes={key: changes},
    )
    out_t: list[float] = []
    out_v: list[float] = []
    out_e: list[bool] = []
    for t, r in zip(ts.tolist(), raw.tolist(), strict=True):
        res = guard.update(key, t, r)
        points = [*res.backfill, *([(res.ts, res.value)] if res.accepted else [])]
        for i, (pt, pv) in enumerate(points):
            out_t.append(pt)
            out_v.append(pv)
            out_e.append(i == 0 and res.quality is not Quality.GOOD)
    return np.array(out_t), np.array(out_v), np.array(out_e, dtype=bool)
