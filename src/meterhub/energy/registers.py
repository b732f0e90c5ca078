"""Register guard: cumulative meter readings → continuous float64 registers that never go backwards.

A meter's energy register is read as it is (``raw``). It may wrap (a 6-digit display or an integer
register rolls over to 0), be reset, or the meter may be replaced by one that starts elsewhere; the
device may be away for hours. The guard turns the raw readings of each series into a *continuous*
register that starts where the persisted register left off and only grows:

* increase ``r ≥ raw``: Δ = r − raw (over a gap longer than ``gap`` the reading is flagged
  :attr:`Quality.ESTIMATED` — the energy of the whole gap is known from the counter, its distribution
  in time is not);
* counter wrap (decrease near a modulus ``M``: configured, or a round number 10^k or 2^16/32/48/64 ×
  10^j just above the last reading): Δ = M − raw + r;
* configured meter change (old meter's final reading, new meter's initial reading), applied to the
  first reading after the change whether the new counter reads less or more: Δ = (final − raw)
  + (r − initial);
* any other decrease is a reset or an unannounced replacement. If the new reading is what the circuit
  could have used since the last reading (at most twice its last rate, or ``reset_power``), the new
  counter started from 0 (Δ = r, exact); otherwise it is a meter that started elsewhere and the step
  is estimated from the last rate (Δ = rate · Δt, flagged). Consumption is never negative because of
  a reset, and a new meter's reading never becomes a spike;
* a step implying more than ``max_power`` is a decoding glitch and is rejected; if the next readings
  confirm the new level (``confirm`` in a row, consistent with each other), the counter is rebased with
  Δ = 0 (an unannounced replacement by a meter with a large reading).

NaN, infinite and negative readings are rejected. :func:`continuous` applies the same rules to a whole
stored series at once (used by reports on imported data).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from meterhub.model.readings import Quality, SeriesKey

__all__ = [
    "GuardEvent",
    "GuardResult",
    "MeterChange",
    "RegisterGuard",
    "RegisterState",
    "continuous",
    "wrap_modulus",
]

log = logging.getLogger(__name__)

#: Candidate rollover values: round display sizes and integer register ranges in decimal scales.
_MODULI = np.unique(
    np.concatenate(
        [
            10.0 ** np.arange(1, 16),
            *[np.array([2.0**16, 2.0**32, 2.0**48, 2.0**64]) * 10.0**j for j in range(-3, 4)],
        ]
    )
)


class GuardEvent(StrEnum):
    """What the guard decided for one reading."""

    FIRST = "first"
    NORMAL = "normal"
    GAP = "gap"
    WRAP = "wrap"
    RESET = "reset"
    CHANGE = "change"
    REBASE = "rebase"
    RESTORED = "restored"


@dataclass(frozen=True, slots=True)
class MeterChange:
    """An announced meter replacement or reset of one series.

    ts : when the change happened [s, UTC]; it applies to the first decrease after ``ts − 1 day``.
    old_final : last reading of the old counter [unit of the quantity].
    new_initial : first reading of the new counter [unit of the quantity].
    """

    ts: float
    old_final: float
    new_initial: float


@dataclass(frozen=True, slots=True)
class GuardResult:
    """Outcome of one accepted reading: continuous register value and the step it added."""

    value: float
    delta: float
    event: GuardEvent
    quality: Quality


@dataclass(slots=True)
class RegisterState:
    """Per-series state. raw/value in the unit of the quantity; ts [s]."""

    raw: float | None  # last accepted raw reading (None: restored register, raw baseline unknown)
    value: float  # continuous register
    ts: float | None
    pending: list[tuple[float, float]] = field(default_factory=list)  # rejected (ts, raw) glitches
    rate: float | None = None  # rate of the last exact step [unit per hour]


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


class RegisterGuard:
    """Stateful guard over many series (the live pipeline's view).

    Parameters
    ----------
    gap : readings further apart than this are flagged estimated [s].
    max_power : largest plausible rate of change [unit per hour, i.e. W for Wh registers].
    confirm : consecutive consistent implausible readings that rebase the counter [-].
    reset_power : a decrease is a reset to 0 when the new reading implies at most
        max(2 × the last rate, reset_power) since the previous reading [unit per hour].
    moduli : configured rollover value per series [unit].
    changes : announced meter changes per series.
    """

    def __init__(
        self,
        *,
        gap: float = 900.0,
        max_power: float = 1e8,
        confirm: int = 3,
        reset_power: float = 1000.0,
        moduli: Mapping[SeriesKey, float] | None = None,
        changes: Mapping[SeriesKey, Iterable[MeterChange]] | None = None,
    ) -> None:
        self.gap = gap
        self.max_power = max_power
        self.confirm = confirm
        self.reset_power = reset_power
        self.moduli = dict(moduli or {})
        self.changes = {k: sorted(v, key=lambda c: c.ts) for k, v in (changes or {}).items()}
        self._state: dict[SeriesKey, RegisterState] = {}

    # -- persistence --------------------------------------------------------------------------
    def restore(
        self, registers: Mapping[SeriesKey, float], raw: Mapping[SeriesKey, float] | None = None
    ) -> None:
        """Continue from persisted registers (and, where known, the raw readings they came from)."""
        for key, value in registers.items():
            if not math.isfinite(value):
                log.warning("register %s: persisted value %r ignored", key, value)
                continue
            base = (raw or {}).get(key)
            self._state[key] = RegisterState(raw=base, value=float(value), ts=None)

    def adopt(self, other: RegisterGuard) -> None:
        """Continue the series of ``other`` (a guard built for the previous configuration)."""
        self._state = other._state

    def registers(self) -> dict[SeriesKey, float]:
        """Current continuous register of every series."""
        return {k: s.value for k, s in self._state.items()}

    def raw_baselines(self) -> dict[SeriesKey, float]:
        """Last accepted raw reading of every series (persist with the registers for exact restarts)."""
        return {k: s.raw for k, s in self._state.items() if s.raw is not None}

    def state(self, key: SeriesKey) -> RegisterState | None:
        return self._state.get(key)

    # -- the rules ----------------------------------------------------------------------------
    def update(self, key: SeriesKey, ts: float, raw: float) -> GuardResult | None:
        """Accept one raw reading [unit] at ``ts`` [s]; None if it is rejected (logged with the series)."""
        if not (math.isfinite(raw) and math.isfinite(ts)):
            log.warning("register %s: non-finite reading %r at %r rejected", key, raw, ts)
            return None
        if raw < 0:
            log.warning("register %s: negative reading %r at %s rejected", key, raw, ts)
            return None
        st = self._state.get(key)
        if st is None:
            self._state[key] = RegisterState(raw=raw, value=raw, ts=ts)
            return GuardResult(raw, 0.0, GuardEvent.FIRST, Quality.GOOD)
        if st.ts is not None and ts <= st.ts:
            log.debug("register %s: reading at %s not after %s skipped", key, ts, st.ts)
            return None
        if st.raw is None:
            # Restored without the raw baseline: a meter that was never reset reads the register itself.
            delta = raw - st.value if raw >= st.value else 0.0
            return self._accept(st, ts, raw, delta, GuardEvent.RESTORED, Quality.ESTIMATED)
        dt = None if st.ts is None else ts - st.ts
        quality = Quality.ESTIMATED if dt is not None and dt > self.gap else Quality.GOOD
        change = self._change_for(key, st, ts, decreased=raw < st.raw)
        if change is not None:
            delta = max(change.old_final - st.raw, 0.0) + max(raw - change.new_initial, 0.0)
            return self._accept(st, ts, raw, delta, GuardEvent.CHANGE, quality)
        if raw >= st.raw:
            delta = raw - st.raw
            if self._plausible(delta, dt):
                event = GuardEvent.GAP if quality is Quality.ESTIMATED else GuardEvent.NORMAL
                return self._accept(st, ts, raw, delta, event, quality)
            return self._implausible(key, st, ts, raw)
        m = wrap_modulus(st.raw, raw, self.moduli.get(key))
        if m is not None:
            delta = m - st.raw + raw
            if self._plausible(delta, dt):
                return self._accept(st, ts, raw, delta, GuardEvent.WRAP, quality)
        # A counter that restarted from 0 cannot have counted faster than the circuit ran before.
        rate = st.rate if st.rate is not None else 0.0
        if dt is not None and dt > 0 and raw * 3600.0 / dt <= max(2.0 * rate, self.reset_power):
            log.info(
                "register %s: counter went from %r to %r at %s: reset, counting from 0", key, st.raw, raw, ts
            )
            return self._accept(st, ts, raw, raw, GuardEvent.RESET, quality)
        expected = rate * dt / 3600.0 if dt is not None and dt > 0 else 0.0
        log.info(
            "register %s: counter went from %r to %r at %s: replaced, rebased (%.6g estimated from the last rate)",
            key,
            st.raw,
            raw,
            ts,
            expected,
        )
        return self._accept(st, ts, raw, expected, GuardEvent.REBASE, Quality.ESTIMATED)

    def _plausible(self, delta: float, dt: float | None) -> bool:
        if dt is None or dt <= 0:
            return True
        return delta * 3600.0 / dt <= self.max_power

    def _accept(
        self, st: RegisterState, ts: float, raw: float, delta: float, event: GuardEvent, q: Quality
    ) -> GuardResult:
        if st.ts is not None and ts > st.ts and event is not GuardEvent.REBASE:
            st.rate = delta * 3600.0 / (ts - st.ts)
        st.raw, st.ts = raw, ts
        st.value += delta
        st.pending.clear()
        return GuardResult(st.value, delta, event, q)

    def _implausible(self, key: SeriesKey, st: RegisterState, ts: float, raw: float) -> GuardResult | None:
        if st.pending:
            pts, praw = st.pending[-1]
            if not (raw >= praw and self._plausible(raw - praw, ts - pts)):
                st.pending.clear()
        st.pending.append((ts, raw))
        if len(st.pending) >= self.confirm:
            t_first, r_first = st.pending[0]
            log.warning("register %s: counter jumped to %r at %s and stayed: rebased", key, r_first, t_first)
            delta = raw - r_first
            return self._accept(st, ts, raw, delta, GuardEvent.REBASE, Quality.ESTIMATED)
        log.warning("register %s: implausible step %r → %r at %s rejected", key, st.raw, raw, ts)
        return None

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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the guard rules to a whole stored series.

    Parameters
    ----------
    ts : sample times, ascending [s].
    raw : register readings [unit].
    gap, max_power, modulus, changes : as :class:`RegisterGuard`.

    Returns
    -------
    (ts, value, estimated) of the accepted samples: ``value`` is the continuous register starting at
    the first accepted reading [unit]; ``estimated`` marks samples whose step from the previous one is
    not exact (gap, rebase).
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
        moduli={key: modulus} if modulus is not None else None,
        changes={key: changes},
    )
    out_t: list[float] = []
    out_v: list[float] = []
    out_e: list[bool] = []
    for t, r in zip(ts.tolist(), raw.tolist(), strict=True):
        res = guard.update(key, t, r)
        if res is None:
            continue
        out_t.append(t)
        out_v.append(res.value)
        out_e.append(res.quality is not Quality.GOOD)
    return np.array(out_t), np.array(out_v), np.array(out_e, dtype=bool)
