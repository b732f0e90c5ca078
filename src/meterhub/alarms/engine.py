"""The alarm engine: GOOD readings → conditions → timers → ISA-18.2 states → :class:`AlarmEvent` s.

Evaluation is vectorised: the rules are packed into arrays (series index, condition code, low, high,
deadband, "in condition" for the hysteresis), one slot per watched series, ordered by device and then by
quantity, so the slots of one device — what one poll touches — are one contiguous slice with the rules of
each quantity side by side. A batch updates the value table of the series it carries (only
``Quality.GOOD`` readings: docs/ARCHITECTURE.md "Invalid readings"), then the slice of each device it
touched is compared in a handful of numpy operations and reduced to one condition per alarm
(``np.logical_or.reduceat`` for one phase or ``any``, ``logical_and`` for ``all``). The timers (on-delay,
recovery, reminder, shelve end) are arrays too; Python runs only for the alarms that change state.

Timers (seed 001's alarm setup; ISA-18.2 / IEC 62682 §10 for the states)
--------------------------------------------------------------------------
* on-delay: the condition must hold this long before the alarm is raised (``raised``: → unack-active);
* deadband: once in the condition, the value must come back past ``limit ∓ deadband`` to leave it;
* recovery: once raised, the condition must stay away this long before the alarm clears (``cleared``:
  unack-active → rtn-unack, ack-active → normal); a shorter return does not clear it;
* reminder: while raised, one ``reminder`` event per reminder time.

Overlays: a shelved alarm (until a time, then it comes back by itself), a suppressed one (its device is
offline, or the site is out: inhibition) and one out of service keep their base state, evaluated silently
(out of service: not evaluated), and report their overlay as the state; they emit no ``raised``,
``reminder`` or ``cleared``. Leaving the overlay emits ``unshelved`` / ``unsuppressed`` / ``in-service``
with the base state, so a receiver learns what it missed.

Every event gets the next sequence number; the changed alarm and the number are committed to the state
file (:mod:`meterhub.alarms.state`) before the listeners hear of it. A listener's exception is logged and
does not stop the others.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from meterhub.alarms.model import AlarmEvent, AlarmListener, AlarmState, EventKind, Severity
from meterhub.alarms.rules import AlarmDef, Code, Mode
from meterhub.alarms.state import AlarmRecord, AlarmStateStore
from meterhub.alarms.texts import render, shown
from meterhub.errors import ConflictError, InputError, NotFoundError
from meterhub.model.audit import AuditEntry, Auditor
from meterhub.model.readings import Quality, Reading

__all__ = ["MAX_SHELVE", "AlarmEngine", "AlarmView", "LoggingAuditor"]

log = logging.getLogger("meterhub.alarms")

#: The longest shelve [s] (ISA-18.2 §11.3: shelving is time limited): 30 days.
MAX_SHELVE = 30 * 86400.0

_NORMAL = AlarmState.NORMAL.value
_UNACK = AlarmState.UNACK_ACTIVE.value
_ACK = AlarmState.ACK_ACTIVE.value
_RTN = AlarmState.RTN_UNACK.value


class LoggingAuditor:
    """The auditor used until the durable audit log is wired: each entry is one INFO line in the log."""

    def record(self, entry: AuditEntry) -> None:
        log.info(
            "audit: %s %s %s (%s → %s)%s",
            entry.actor,
            entry.action,
            entry.target,
            entry.before,
            entry.after,
            f": {entry.comment}" if entry.comment else "",
        )


class AlarmView(dict[str, Any]):
    """One alarm as the API lists it (a JSON-ready mapping)."""


class AlarmEngine:
    """Alarm states of a site (see the module docstring).

    Parameters
    ----------
    defs : the alarms (:func:`meterhub.alarms.rules.expand_rules` + ``system_alarms``).
    store : the state file (None: states live in memory only, e.g. the benchmark).
    clock : time source [s since the epoch, UTC].
    listeners : receivers of every event, in order.
    auditor : receives an audit entry for every acknowledge, shelve, unshelve and service change.
    timezone : the site's zone, for the ``{time}`` placeholder.
    """

    def __init__(
        self,
        defs: Sequence[AlarmDef],
        *,
        store: AlarmStateStore | None = None,
        clock: Callable[[], float] = time.time,
        listeners: Iterable[AlarmListener] = (),
        auditor: Auditor | None = None,
        timezone: str = "UTC",
    ) -> None:
        self.clock = clock
        self.listeners: list[AlarmListener] = list(listeners)
        self.auditor: Auditor = auditor or LoggingAuditor()
        self.store = store
        self._tz = ZoneInfo(timezone)
        self.seq = 0
        self.events_emitted = 0
        self.listener_errors = 0
        self.store_errors = 0
        self.last_store_error: str | None = None
        kept: dict[str, AlarmRecord] = {}
        if store is not None:
            self.seq, kept = store.load()
            ids = {d.alarm_id for d in defs}
            stale = [a for a in kept if a not in ids]
            if stale:  # rules removed from the site file while the gateway was stopped
                log.info(
                    "forgetting the state of %d alarm(s) whose rule is gone: %s",
                    len(stale),
                    ", ".join(stale[:5]),
                )
                store.remove(stale)
        self._build(defs, kept, old=None)

    # -- layout ----------------------------------------------------------------------------------------
    def _build(self, defs: Sequence[AlarmDef], kept: dict[str, AlarmRecord], old: AlarmEngine | None) -> None:
        # ordered by (device, quantity): a device's poll touches one contiguous slice, its quantities in it
        # side by side
        measured = sorted(
            (d for d in defs if d.mode is not Mode.EXTERNAL), key=lambda d: (d.device or "", d.quantity or "")
        )
        external = [d for d in defs if d.mode is Mode.EXTERNAL]
        self.defs: list[AlarmDef] = measured + external
        self.index: dict[str, int] = {d.alarm_id: i for i, d in enumerate(self.defs)}
        n = len(self.defs)
        # series table
        self.series: dict[tuple[Any, ...], int] = {}
        slot_series: list[int] = []
        slot_alarm: list[int] = []
        codes: list[int] = []
        lows: list[float] = []
        highs: list[float] = []
        bands: list[float] = []
        alarm_first_slot = np.zeros(n, dtype=np.int64)
        #: device → group number; per group (slot start, slot end, alarm start, alarm end)
        keys: dict[str, int] = {}
        self.groups: list[tuple[int, int, int, int]] = []
        #: series index → the group its slots are in (a series is one circuit's, so one device's)
        self.series_group: list[int] = []
        for i, d in enumerate(measured):
            alarm_first_slot[i] = len(slot_series)
            g = keys.setdefault(d.device or "", len(keys))
            if g == len(self.groups):
                self.groups.append((len(slot_series), 0, i, 0))
            s0, _, a0, _ = self.groups[g]
            for slot in d.slots:
                k = self.series.setdefault(slot.series, len(self.series))
                if k == len(self.series_group):
                    self.series_group.append(g)
                slot_series.append(k)
                slot_alarm.append(i)
                codes.append(int(slot.code))
                lows.append(slot.low)
                highs.append(slot.high)
                bands.append(slot.deadband)
            self.groups[g] = (s0, len(slot_series), a0, i + 1)
        ns = len(self.series)
        self.values = np.full(ns, np.nan)
        self.value_ts = np.full(ns, np.nan)
        self.rates = np.full(ns, np.nan)  # change per minute [unit/min]
        self.slot_series = np.asarray(slot_series, dtype=np.int64)
        self.slot_alarm = np.asarray(slot_alarm, dtype=np.int64)
        self.slot_code = np.asarray(codes, dtype=np.int8)
        self.slot_low = np.asarray(lows, dtype=np.float64)
        self.slot_high = np.asarray(highs, dtype=np.float64)
        self.slot_band = np.asarray(bands, dtype=np.float64)
        self.slot_in = np.zeros(len(slot_series), dtype=bool)
        self.first_slot = alarm_first_slot
        self.mode = np.array([int(d.mode) for d in self.defs], dtype=np.int8)
        self.on_delay = np.array([d.on_delay for d in self.defs], dtype=np.float64)
        self.recovery = np.array([d.recovery for d in self.defs], dtype=np.float64)
        self.reminder = np.array(
            [d.reminder if d.reminder > 0 else np.inf for d in self.defs], dtype=np.float64
        )
        self.cond = np.zeros(n, dtype=bool)
        self.cond_since = np.full(n, np.nan)
        self.clear_since = np.full(n, np.nan)
        self.raised = np.zeros(n, dtype=bool)
        self.last_notice = np.full(n, np.nan)
        self.silent = np.zeros(n, dtype=bool)  # out of service: not evaluated
        self.ext_value = np.full(n, np.nan)  # external alarms: the value that decided [unit]
        self.ext_limit = np.full(n, np.nan)
        self.records: list[AlarmRecord] = []
        self.suppressed = np.zeros(n, dtype=bool)
        self.shelved: set[int] = set()
        self.by_device: dict[str, list[int]] = {}
        for i, d in enumerate(self.defs):
            if d.device is not None:
                self.by_device.setdefault(d.device, []).append(i)
            rec = kept.get(d.alarm_id) or AlarmRecord(d.alarm_id)
            if not d.enabled and rec.base != _NORMAL:  # a disabled rule's alarm is out of service, not active
                rec.base, rec.raised, rec.last_notice, rec.since = _NORMAL, False, None, None
            self.records.append(rec)
            if rec.raised:
                self.raised[i] = True
                self.cond[i] = True  # still present until a reading says otherwise
                self.cond_since[i] = rec.since if rec.since is not None else np.nan
                self.last_notice[i] = rec.last_notice if rec.last_notice is not None else np.nan
            if rec.shelved_until is not None:
                self.shelved.add(i)
            self.silent[i] = rec.out_of_service or not d.enabled
            if old is not None and d.alarm_id in old.index:
                j = old.index[d.alarm_id]
                self.suppressed[i] = old.suppressed[j]
                self.cond[i], self.cond_since[i] = old.cond[j], old.cond_since[j]
                self.clear_since[i] = old.clear_since[j]
        if old is not None:  # carry the measured values of series that are still watched
            for key, k in self.series.items():
                o = old.series.get(key)
                if o is not None:
                    self.values[k], self.value_ts[k], self.rates[k] = (
                        old.values[o],
                        old.value_ts[o],
                        old.rates[o],
                    )

    def reconfigure(self, defs: Sequence[AlarmDef]) -> None:
        """Take a changed set of alarms: alarms that stay keep their state; an alarm whose rule is gone and
        that was not normal is announced ``out-of-service`` (comment "rule removed") and forgotten."""
        new_ids = {d.alarm_id for d in defs}
        gone = [i for i, d in enumerate(self.defs) if d.alarm_id not in new_ids]
        for i in gone:
            if self.state_of(i) is not AlarmState.NORMAL:
                rec = self.records[i]
                rec.base, rec.raised, rec.shelved_until, rec.out_of_service = _NORMAL, False, None, True
                self.silent[i] = True
                self._emit(EventKind.OUT_OF_SERVICE, i, comment="rule removed")
        if self.store is not None and gone:
            self.store.remove([self.defs[i].alarm_id for i in gone])
        disabled = {d.alarm_id for d in defs if not d.enabled}
        for i, d in enumerate(self.defs):
            if d.alarm_id in disabled and d.enabled and self.state_of(i) is not AlarmState.NORMAL:
                self.silent[i] = True
                self._emit(EventKind.OUT_OF_SERVICE, i, comment="rule disabled")
        gone_set = set(gone)
        kept = {r.alarm_id: r for i, r in enumerate(self.records) if i not in gone_set}
        self._build(defs, kept, old=self._snapshot())

    def _snapshot(self) -> AlarmEngine:
        snap = object.__new__(AlarmEngine)
        snap.__dict__.update(self.__dict__)
        return snap

    # -- the state of one alarm ----------------------------------------------------------------------
    def state_of(self, i: int) -> AlarmState:
        """The reported state: out of service, shelved, suppressed, else the base state."""
        rec = self.records[i]
        if self.silent[i]:
            return AlarmState.OUT_OF_SERVICE
        if rec.shelved_until is not None:
            return AlarmState.SHELVED
        if self.suppressed[i]:
            return AlarmState.SUPPRESSED
        return AlarmState(rec.base)

    def _quiet(self, i: int) -> bool:
        return bool(self.silent[i] or self.suppressed[i] or self.records[i].shelved_until is not None)

    def find(self, alarm_id: str) -> int:
        i = self.index.get(alarm_id)
        if i is None:
            raise NotFoundError(f"unknown alarm {alarm_id!r}")
        return i

    # -- readings ------------------------------------------------------------------------------------
    def update(self, batch: Sequence[Reading], now: float | None = None) -> int:
        """Take the GOOD readings of ``batch`` that some rule watches, evaluate the quantities they touched;
        return the number of events emitted."""
        series = self.series
        group_of = self.series_group
        good = Quality.GOOD
        idx: list[int] = []
        vals: list[float] = []
        tss: list[float] = []
        touched: set[int] = set()
        for r in batch:
            if r.quality != good:
                continue
            k = series.get((r.circuit, r.quantity, r.phase))
            if k is None:
                continue
            idx.append(k)
            vals.append(r.value)
            tss.append(r.ts)
            touched.add(group_of[k])
        if not idx:
            return 0
        ki = np.asarray(idx, dtype=np.int64)
        v = np.asarray(vals, dtype=np.float64)
        t = np.asarray(tss, dtype=np.float64)
        prev_v, prev_t = self.values[ki], self.value_ts[ki]
        dt = t - prev_t
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(dt > 0, (v - prev_v) / dt * 60.0, self.rates[ki])
        newer = ~(dt < 0)  # NaN (first value) counts as newer; an older reading is ignored
        ki, v, t, rate = ki[newer], v[newer], t[newer], rate[newer]
        self.values[ki] = v
        self.value_ts[ki] = t
        self.rates[ki] = rate
        now = self.clock() if now is None else now
        emitted = 0
        for g in touched:
            emitted += self._evaluate_group(g, now)
        return emitted

    def _evaluate_group(self, group: int, now: float) -> int:
        s0, s1, a0, a1 = self.groups[group]
        ser = self.slot_series[s0:s1]
        code = self.slot_code[s0:s1]
        x = self.values[ser]
        rate = code == Code.RATE
        if rate.any():
            x = np.where(rate, np.abs(self.rates[ser]), x)
        valid = ~np.isnan(x)
        band = np.where(self.slot_in[s0:s1], self.slot_band[s0:s1], 0.0)
        viol = (x > self.slot_high[s0:s1] - band) | (x < self.slot_low[s0:s1] + band)
        self.slot_in[s0:s1] = np.where(valid, viol, self.slot_in[s0:s1])
        starts = self.first_slot[a0:a1] - s0
        any_v = np.logical_or.reduceat(viol, starts)
        all_v = np.logical_and.reduceat(viol & valid, starts)
        any_valid = np.logical_or.reduceat(valid, starts)
        cond = np.where(self.mode[a0:a1] == Mode.ALL, all_v, any_v)
        self.cond[a0:a1] = np.where(any_valid, cond, self.cond[a0:a1])
        return self._timers(a0, a1, now)

    def set_condition(
        self, alarm_id: str, present: bool, value: float | None = None, limit: float | None = None
    ) -> None:
        """Set the condition of an external (system) alarm; its timers run at the next :meth:`tick`."""
        i = self.index.get(alarm_id)
        if i is None:
            return
        self.cond[i] = present
        self.ext_value[i] = np.nan if value is None else value
        self.ext_limit[i] = np.nan if limit is None else limit

    def set_suppressed(self, i: int, suppressed: bool) -> None:
        """Suppress (inhibit) alarm ``i`` or lift it; announced only when its base state is not normal."""
        if bool(self.suppressed[i]) == suppressed:
            return
        self.suppressed[i] = suppressed
        if self.records[i].base != _NORMAL and not self.silent[i] and self.records[i].shelved_until is None:
            self._emit(EventKind.SUPPRESSED if suppressed else EventKind.UNSUPPRESSED, i)

    def tick(self, now: float | None = None) -> int:
        """Run every alarm's timers (on-delay, recovery, reminder, shelve end) at ``now``; return the number
        of events emitted. Called every second by the sink."""
        now = self.clock() if now is None else now
        n = 0
        for i in sorted(self.shelved):
            until = self.records[i].shelved_until
            if until is not None and now >= until:
                n += self._unshelve(i, None, "the shelve time ran out")
        return n + self._timers(0, len(self.defs), now)

    def _timers(self, a0: int, a1: int, now: float) -> int:
        cond = self.cond[a0:a1]
        raised = self.raised[a0:a1]
        cs = self.cond_since[a0:a1]
        cl = self.clear_since[a0:a1]
        cs[cond & np.isnan(cs)] = now
        cs[~cond & ~raised] = np.nan
        cl[raised & ~cond & np.isnan(cl)] = now
        cl[cond | ~raised] = np.nan
        live = ~self.silent[a0:a1]
        raise_due = live & ~raised & cond & (now - cs >= self.on_delay[a0:a1])
        clear_due = live & raised & ~cond & (now - cl >= self.recovery[a0:a1])
        remind_due = live & raised & ~clear_due & (now - self.last_notice[a0:a1] >= self.reminder[a0:a1])
        if not (raise_due.any() or clear_due.any() or remind_due.any()):
            return 0
        n = 0
        for j in np.flatnonzero(raise_due):
            n += self._raise(a0 + int(j), now)
        for j in np.flatnonzero(clear_due):
            n += self._clear(a0 + int(j), now)
        for j in np.flatnonzero(remind_due):
            n += self._remind(a0 + int(j), now)
        return n

    # -- transitions ---------------------------------------------------------------------------------
    def _measure(self, i: int, *, crossing: bool) -> tuple[float | None, float | None]:
        """The value and limit of alarm ``i`` in its unit: of the first slot beyond its limit (``crossing``),
        else of the first slot with a value."""
        d = self.defs[i]
        if d.mode is Mode.EXTERNAL:
            v, lim = self.ext_value[i], self.ext_limit[i]
            return (None if np.isnan(v) else float(v)), (None if np.isnan(lim) else float(lim))
        s0 = int(self.first_slot[i])
        best: tuple[float | None, float | None] = (None, None)
        for k, slot in enumerate(d.slots):
            s = int(self.slot_series[s0 + k])
            x = float(abs(self.rates[s]) if slot.code is Code.RATE else self.values[s])
            if math.isnan(x):
                continue
            limit = slot.high if (x > slot.high or not math.isfinite(slot.low)) else slot.low
            out = (x / d.factor, limit / d.factor if math.isfinite(limit) else None)
            if not crossing or bool(self.slot_in[s0 + k]):
                return out
            if best[0] is None:
                best = out
        return best

    def _raise(self, i: int, now: float) -> int:
        rec = self.records[i]
        self.raised[i] = True
        self.last_notice[i] = now
        rec.raised, rec.base, rec.since, rec.last_notice = True, _UNACK, now, now
        rec.acked_by = rec.ack_comment = None
        rec.value, rec.limit = self._measure(i, crossing=True)
        return self._emit(EventKind.RAISED, i, silent=self._quiet(i))

    def _clear(self, i: int, now: float) -> int:
        rec = self.records[i]
        self.raised[i] = False
        self.last_notice[i] = np.nan
        self.cond_since[i] = self.clear_since[i] = np.nan
        rec.raised, rec.last_notice = False, None
        rec.base = _RTN if rec.base == _UNACK else _NORMAL
        rec.since = now
        rec.value, rec.limit = self._measure(i, crossing=False)
        return self._emit(EventKind.CLEARED, i, silent=self._quiet(i))

    def _remind(self, i: int, now: float) -> int:
        self.last_notice[i] = now
        self.records[i].last_notice = now
        return self._emit(EventKind.REMINDER, i, silent=self._quiet(i))

    def _unshelve(self, i: int, user: str | None, comment: str | None) -> int:
        rec = self.records[i]
        rec.shelved_until = rec.shelved_by = rec.shelve_comment = None
        self.shelved.discard(i)
        return self._emit(EventKind.UNSHELVED, i, user=user, comment=comment)

    def _emit(
        self,
        kind: EventKind,
        i: int,
        *,
        user: str | None = None,
        comment: str | None = None,
        silent: bool = False,
    ) -> int:
        """Persist alarm ``i`` with the next sequence number, then tell the listeners (unless ``silent``:
        a transition under an overlay is kept, not announced)."""
        rec = self.records[i]
        if silent:
            self._persist(rec)
            return 0
        self.seq += 1
        self._persist(rec)
        event = self._event(kind, i, user=user, comment=comment)
        self.last_event = event
        self.events_emitted += 1
        for listener in list(self.listeners):
            try:
                listener.on_event(event)
            except Exception:
                self.listener_errors += 1
                log.exception(
                    "alarm listener %s failed on event %d (%s)",
                    type(listener).__name__,
                    event.seq,
                    event.alarm_id,
                )
        return 1

    def _persist(self, rec: AlarmRecord) -> None:
        if self.store is None:
            return
        try:
            self.store.save([rec], self.seq)
            self.last_store_error = None
        except Exception as exc:  # the engine goes on; health shows that states are not kept
            self.store_errors += 1
            self.last_store_error = str(exc)
            log.error("%s", exc)

    def _fields(self, i: int, ts: float) -> dict[str, Any]:
        d, rec = self.defs[i], self.records[i]
        when = datetime.fromtimestamp(rec.since if rec.since is not None else ts, UTC).astimezone(self._tz)
        return {
            "value": f"{rec.value:.4g}" if rec.value is not None else "–",
            "limit": f"{rec.limit:.4g}" if rec.limit is not None else "–",
            "unit": d.unit or "",
            "target": d.target,
            "phase": d.phase or "",
            "quantity": d.quantity or "",
            "time": when.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "rule": d.rule,
            "severity": d.severity.value,
        }

    def _event(self, kind: EventKind, i: int, *, user: str | None, comment: str | None) -> AlarmEvent:
        d, rec = self.defs[i], self.records[i]
        ts = self.clock()
        f = self._fields(i, ts)
        return AlarmEvent(
            seq=self.seq,
            alarm_id=d.alarm_id,
            rule=d.rule,
            kind=kind,
            state=self.state_of(i),
            severity=d.severity,
            target=d.target,
            phase=d.phase,
            quantity=d.quantity,
            value=shown(rec.value),
            limit=shown(rec.limit),
            unit=d.unit,
            ts=ts,
            title=render(d.title, f),
            message=render(d.message, f),
            user=user,
            comment=comment,
        )

    # -- people --------------------------------------------------------------------------------------
    def _audit(
        self, user: str, action: str, i: int, before: AlarmState, comment: str | None, **extra: Any
    ) -> None:
        entry = AuditEntry(
            ts=self.clock(),
            actor=user,
            action=action,
            target=self.defs[i].alarm_id,
            before=before.value,
            after=self.state_of(i).value,
            comment=comment,
            extra=extra,
        )
        try:
            self.auditor.record(entry)
        except Exception:
            log.exception("the auditor failed to record %s of %s by %s", action, entry.target, user)

    def acknowledge(self, alarm_id: str, user: str, comment: str | None = None) -> AlarmEvent | None:
        """Acknowledge an alarm: unack-active → ack-active, rtn-unack → normal. Raise
        :class:`NotFoundError` for an unknown alarm, :class:`ConflictError` when nothing waits for it."""
        i = self.find(alarm_id)
        before = self.state_of(i)
        rec = self.records[i]
        if before in (AlarmState.SHELVED, AlarmState.OUT_OF_SERVICE):
            raise ConflictError(
                f"alarm {alarm_id!r} is {before.value}; unshelve it or put it in service first"
            )
        if rec.base not in (_UNACK, _RTN):
            raise ConflictError(f"alarm {alarm_id!r} is {rec.base}: nothing to acknowledge")
        rec.base = _ACK if rec.base == _UNACK else _NORMAL
        rec.acked_by, rec.ack_comment = user, comment
        if rec.base == _NORMAL:
            rec.since = self.clock()
        self._emit(EventKind.ACKNOWLEDGED, i, user=user, comment=comment)
        self._audit(user, "alarm.ack", i, before, comment)
        return self.last_event

    def shelve(self, alarm_id: str, user: str, duration: float, comment: str | None = None) -> None:
        """Shelve an alarm for ``duration`` [s] (at most :data:`MAX_SHELVE`); it comes back by itself."""
        i = self.find(alarm_id)
        if not (0 < duration <= MAX_SHELVE) or not math.isfinite(duration):
            raise InputError(
                f"duration_s {duration:g} s: a shelve lasts more than 0 s and at most {MAX_SHELVE:g} s"
            )
        before = self.state_of(i)
        if before is AlarmState.OUT_OF_SERVICE:
            raise ConflictError(f"alarm {alarm_id!r} is out of service; it cannot be shelved")
        rec = self.records[i]
        rec.shelved_until = self.clock() + duration
        rec.shelved_by, rec.shelve_comment = user, comment
        self.shelved.add(i)
        self._emit(EventKind.SHELVED, i, user=user, comment=comment)
        self._audit(user, "alarm.shelve", i, before, comment, duration_s=duration, until=rec.shelved_until)

    def unshelve(self, alarm_id: str, user: str, comment: str | None = None) -> None:
        """Take an alarm back from the shelf before its time."""
        i = self.find(alarm_id)
        before = self.state_of(i)
        if self.records[i].shelved_until is None:
            raise ConflictError(f"alarm {alarm_id!r} is not shelved")
        self._unshelve(i, user, comment)
        self._audit(user, "alarm.unshelve", i, before, comment)

    def set_in_service(self, alarm_id: str, user: str, in_service: bool, comment: str | None = None) -> None:
        """Take an alarm out of service (not evaluated; maintenance) or put it back."""
        i = self.find(alarm_id)
        before = self.state_of(i)
        rec = self.records[i]
        if not self.defs[i].enabled:
            raise ConflictError(
                f"alarm {alarm_id!r}: its rule {self.defs[i].rule!r} is disabled in the site file"
            )
        if rec.out_of_service != in_service:
            raise ConflictError(f"alarm {alarm_id!r} is already {'in' if in_service else 'out of'} service")
        rec.out_of_service = not in_service
        self.silent[i] = not in_service
        if not in_service:  # its timers restart when it is back
            rec.raised, rec.base, rec.last_notice = False, _NORMAL, None
            self.raised[i], self.cond[i] = False, False
            self.cond_since[i] = self.clear_since[i] = self.last_notice[i] = np.nan
        self._emit(
            EventKind.IN_SERVICE if in_service else EventKind.OUT_OF_SERVICE, i, user=user, comment=comment
        )
        self._audit(user, "alarm.in-service" if in_service else "alarm.out-of-service", i, before, comment)

    # -- reading the states --------------------------------------------------------------------------
    last_event: AlarmEvent | None = None

    def view(self, i: int) -> AlarmView:
        """Alarm ``i`` as the API lists it."""
        d, rec = self.defs[i], self.records[i]
        f = self._fields(i, self.clock())
        return AlarmView(
            id=d.alarm_id,
            rule=d.rule,
            target=d.target,
            phase=d.phase,
            quantity=d.quantity,
            state=self.state_of(i).value,
            severity=d.severity.value,
            value=shown(rec.value),
            limit=shown(rec.limit),
            unit=d.unit,
            since=rec.since,
            acked_by=rec.acked_by,
            ack_comment=rec.ack_comment,
            shelved_until=rec.shelved_until,
            shelved_by=rec.shelved_by,
            title=render(d.title, f),
            message=render(d.message, f),
        )

    def alarms(self, *, include_normal: bool = False) -> list[AlarmView]:
        """The alarms that need attention (not normal, or shelved, or out of service), worst first; every
        alarm with ``include_normal``."""
        rank = {s: k for k, s in enumerate(Severity)}
        out = [
            self.view(i)
            for i, rec in enumerate(self.records)
            if include_normal or rec.base != _NORMAL or rec.out_of_service or rec.shelved_until is not None
        ]
        out.sort(key=lambda a: (rank[Severity(a["severity"])], -(a["since"] or 0.0), a["id"]))
        return out

    def counts(self) -> dict[str, int]:
        """Alarms per reported state [count] (``unacknowledged``: the badge's number)."""
        out = {s.value: 0 for s in AlarmState}
        unack = 0
        for i in range(len(self.defs)):
            s = self.state_of(i)
            out[s.value] += 1
            unack += s.unacknowledged
        out["unacknowledged"] = unack
        return out
