"""One audited path for every output change: remote control, linkage rules, time programs, demand limiting.

Whoever acts on a relay or an analog output — a user through ``POST /api/v1/devices/{id}/outputs/{point}``,
a linkage rule (``rule:<id>``), a time program (``schedule:<id>``) or the demand limiter (``demand-limit``) —
calls :meth:`ControlService.command`. It applies the rules of the site's ``control:`` section
(:mod:`meterhub.config.control`) in this order, then writes through
:class:`meterhub.drivers.io.control.OutputControl` (write, read back, emit the confirmed state):

1. the point exists and the action fits it (a latched relay is switched, a pulse-mode relay pulsed, an
   analog output set);
2. **interlocks**: a point is switched on only while its ``requires`` point is in the required state;
3. **manual override**: after a user's switch, automatic actions on that point are refused for
   ``control.override`` seconds (the user's decision holds);
4. **minimum on/off times**: an output that changed less than ``min_on``/``min_off`` ago keeps its state
   (a user may force it);
5. an automatic action that would not change the known state is skipped (nothing to do, nothing logged).

Every action carried out, and every refused command (a user's, a linkage rule's; programs and the demand
limiter ask :meth:`ControlService.blocked` first and wait), is one :class:`~meterhub.model.audit.AuditEntry`
to the :class:`~meterhub.model.audit.Auditor`: actor, ``relay.switch`` / ``relay.pulse`` / ``analog.set``, the point,
the state before and after, and in ``extra`` whether the device confirmed it by read-back
(``confirmed``), and why it was refused or failed (``result``: ``done``, ``refused``, ``failed``).

Automatic actions are queued (:meth:`ControlService.submit`) and carried out one at a time by
:meth:`ControlService.run`, so an alarm listener or a bus sink never waits for a Modbus round trip.
:class:`ControlSink` is the bus sink that feeds the service (input edges for linkage, confirmed relay
states, the demand readings for the limiter), ticks the time programs and the limiter once a second, and
runs the queue; the runtime registers it when the site has a ``control:`` section (docs/control.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from meterhub.alarms.demand_limit import DEMAND_LIMIT_ACTOR, DemandLimiter
from meterhub.alarms.model import AlarmEvent, EventKind
from meterhub.bus import Batch, Overflow, ReadingBus, SinkContext, Subscription
from meterhub.config.control import (
    WEEKDAYS,
    Action,
    ControlConfig,
    LinkageRule,
    Program,
    Trigger,
)
from meterhub.config.io import AnalogOutPoint, RelayMode, RelayPoint
from meterhub.config.schema import SiteConfig
from meterhub.drivers.io.errors import IOPointError, OutputWriteError, ReadbackMismatch
from meterhub.drivers.io.relay import RelayChange
from meterhub.drivers.modbus.transport import ModbusTimeout
from meterhub.errors import ConflictError, NotFoundError
from meterhub.model.audit import AuditEntry, Auditor
from meterhub.model.health import Health, HealthState
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading

__all__ = [
    "ControlResult",
    "ControlService",
    "ControlSink",
    "ExternalSwitch",
    "LoggingAuditor",
    "OutputDriver",
    "ProgramClock",
    "ProgramRunner",
    "control_sink",
    "limiter_for",
    "program_state",
    "window_instants",
]

log = logging.getLogger("meterhub.control")

#: An automatic action that failed on the device is retried no sooner than this [s].
RETRY_AFTER = 30.0


class OutputDriver(Protocol):
    """What writes outputs (:class:`meterhub.drivers.io.control.OutputControl` of the running gateway)."""

    async def switch(self, point_id: str, energised: bool) -> RelayChange: ...

    async def pulse(
        self, point_id: str, duration: float | None = None
    ) -> tuple[RelayChange, RelayChange]: ...

    async def set_analog(self, point_id: str, value: float) -> Reading: ...


class LoggingAuditor:
    """An auditor that only logs (until the durable audit log is wired in); keeps the last entries."""

    def __init__(self, keep: int = 1000) -> None:
        self.entries: list[AuditEntry] = []
        self.keep = keep

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)
        del self.entries[: -self.keep]
        log.info(
            "audit: %s %s %s: %s → %s %s",
            entry.actor,
            entry.action,
            entry.target,
            entry.before,
            entry.after,
            entry.extra,
        )


@dataclass(frozen=True, slots=True)
class ControlResult:
    """What became of one action: ``done`` (and ``confirmed`` by read-back), ``refused`` (``reason``),
    ``skipped`` (already in that state) or ``failed`` (``reason``: the device error)."""

    point: str
    action: str
    result: str
    before: Any = None
    after: Any = None
    confirmed: bool = False
    reason: str | None = None


@dataclass
class _Point:
    """What the service knows of one point: its state [0/1 or the analog value], when it last changed,
    and a user's override."""

    state: float | None = None
    changed: float | None = None  # when the state last changed [s]
    override_until: float = -math.inf
    override_by: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True, slots=True)
class _Job:
    point: str
    action: Action
    value: float | None
    duration: float | None
    actor: str
    comment: str | None
    done: Callable[[ControlResult], None] | None = None


def _is_automatic(actor: str) -> bool:
    return actor.startswith(("rule:", "schedule:")) or actor == DEMAND_LIMIT_ACTOR


class ControlService:
    """The one path through which outputs change (see the module docstring).

    Parameters
    ----------
    config : the site (its ``io`` points and ``control`` section).
    outputs : returns the driver that writes outputs, asked at each action (the gateway's sources may
        restart, so their links are looked up when needed).
    auditor : where audit entries go (the durable audit log; :class:`LoggingAuditor` until it is wired).
    clock : time [s since the epoch]; injectable for tests.
    """

    def __init__(
        self,
        config: SiteConfig,
        outputs: Callable[[], OutputDriver],
        auditor: Auditor,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.section = config.control or ControlConfig()
        self.outputs = outputs
        self.auditor = auditor
        self.clock = clock
        self.io_points = {p.id: p for p in (config.io.points if config.io is not None else [])}
        self._points: dict[str, _Point] = {}
        self._queue: asyncio.Queue[_Job] | None = None
        self._inputs: dict[str, bool] = {}  # digital input → last GOOD state
        self.counters = {"done": 0, "refused": 0, "failed": 0, "skipped": 0, "events": 0}
        self.programs = ProgramRunner(self)
        self.last_error: str | None = None

    def reconfigure(self, config: SiteConfig) -> None:
        """Take a changed site (known states, overrides and programs' last actions are kept)."""
        self.config = config
        self.section = config.control or ControlConfig()
        self.io_points = {p.id: p for p in (config.io.points if config.io is not None else [])}
        clocks = self.programs.clocks
        self.programs = ProgramRunner(self)
        for pid, clk in clocks.items():
            if pid in self.programs.clocks:
                self.programs.clocks[pid] = clk

    # -- state ----------------------------------------------------------------------------------
    def _pt(self, point: str) -> _Point:
        return self._points.setdefault(point, _Point())

    def state(self, point: str) -> float | None:
        """The last known state of ``point``: 1.0/0.0 for a relay or digital input (active), the value of
        an analog output; None before anything was read or confirmed."""
        p = self._points.get(point)
        return None if p is None else p.state

    def since(self, point: str) -> float | None:
        """When ``point`` last changed state [s], as far as the service saw it."""
        p = self._points.get(point)
        return None if p is None else p.changed

    def override(self, point: str) -> tuple[str, float] | None:
        """(user, until [s]) while a user's switch holds ``point`` against automatic actions."""
        p = self._points.get(point)
        if p is None or p.override_by is None or self.clock() >= p.override_until:
            return None
        return p.override_by, p.override_until

    def _set_state(self, point: str, value: float, ts: float) -> None:
        p = self._pt(point)
        if p.state is None or p.state != value:
            # the first state seen has no known start: count it from then (a restart holds min times)
            p.changed = ts
        p.state = value

    def observe(self, readings: Sequence[Reading]) -> list[tuple[str, bool]]:
        """Take relay and digital input states from readings (GOOD ones only); returns the digital input
        edges ``(point, active)`` seen (the first value of an input is a state, not an edge)."""
        edges: list[tuple[str, bool]] = []
        for r in readings:
            if r.quality is not Quality.GOOD or r.circuit not in self.io_points:
                continue
            if r.quantity == Q.RELAY_OUTPUT or r.quantity == Q.ANALOG_OUTPUT:
                known = self._points.get(r.circuit)
                if known is not None and known.changed is not None and r.ts < known.changed:
                    continue  # a poll from before the last confirmed command, delivered after it
                self._set_state(r.circuit, float(r.value), float(r.ts))
            elif r.quantity == Q.DIGITAL_INPUT:
                active = bool(r.value)
                prev = self._inputs.get(r.circuit)
                self._inputs[r.circuit] = active
                self._set_state(r.circuit, float(active), float(r.ts))
                if prev is not None and prev != active:
                    edges.append((r.circuit, active))
        return edges

    # -- linkage ---------------------------------------------------------------------------------
    def _fire(self, rule: LinkageRule, why: str) -> None:
        then = rule.then
        self.submit(
            then.point, then.action, then.value, actor=f"rule:{rule.id}", duration=then.duration, comment=why
        )

    def on_event(self, event: AlarmEvent) -> None:
        """:class:`~meterhub.alarms.model.AlarmListener`: queue the linkage actions of an alarm event
        (raised → ``state: active``, cleared → ``state: cleared``); never blocks."""
        trigger = {EventKind.RAISED: Trigger.ACTIVE, EventKind.CLEARED: Trigger.CLEARED}.get(event.kind)
        if trigger is None:
            return
        self.counters["events"] += 1
        for rule in self.section.linkage:
            if rule.enabled and rule.when.alarm == event.rule and rule.when.state is trigger:
                self._fire(rule, f"alarm {event.alarm_id} {event.kind.value} (seq {event.seq})")

    def on_input(self, point: str, active: bool) -> None:
        """Queue the linkage actions of a digital input edge."""
        trigger = Trigger.ON if active else Trigger.OFF
        for rule in self.section.linkage:
            if rule.enabled and rule.when.input == point and rule.when.state is trigger:
                self._fire(rule, f"input {point} {'on' if active else 'off'}")

    # -- the queue ---------------------------------------------------------------------------------
    def submit(
        self,
        point: str,
        action: Action,
        value: float | None = None,
        *,
        actor: str,
        duration: float | None = None,
        comment: str | None = None,
        done: Callable[[ControlResult], None] | None = None,
    ) -> None:
        """Queue an automatic action (never blocks); :meth:`run` carries it out."""
        if self._queue is None:
            self._queue = asyncio.Queue()
        self._queue.put_nowait(_Job(point, action, value, duration, actor, comment, done))

    def pending(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    async def _do(self, job: _Job) -> None:
        try:
            result = await self.command(
                job.point,
                job.action,
                job.value,
                actor=job.actor,
                duration=job.duration,
                comment=job.comment,
                automatic=True,
            )
        except Exception as exc:  # a bad action (an unknown point …) must not stop the queue
            log.error("control: %s on %s by %s: %s", job.action.value, job.point, job.actor, exc)
            result = ControlResult(job.point, job.action.value, "failed", reason=str(exc))
        if job.done is not None:
            job.done(result)

    async def run(self) -> None:
        """Carry out queued actions one at a time, until cancelled. A failure is audited and logged."""
        if self._queue is None:
            self._queue = asyncio.Queue()
        while True:
            job = await self._queue.get()
            try:
                await self._do(job)
            finally:
                self._queue.task_done()

    async def idle(self) -> None:
        """Wait until every queued action was carried out (by :meth:`run`)."""
        if self._queue is not None:
            await self._queue.join()

    async def drain(self) -> None:
        """Carry out what is queued now, here (when :meth:`run` is not running, e.g. at stop)."""
        while self._queue is not None and not self._queue.empty():
            job = self._queue.get_nowait()
            try:
                await self._do(job)
            finally:
                self._queue.task_done()

    # -- one action --------------------------------------------------------------------------------
    def _audit(self, actor: str, verb: str, point: str, res: ControlResult, comment: str | None) -> None:
        extra: dict[str, Any] = {"result": res.result, "confirmed": res.confirmed}
        if res.reason:
            extra["reason"] = res.reason
        try:
            self.auditor.record(
                AuditEntry(
                    ts=self.clock(),
                    actor=actor,
                    action=verb,
                    target=point,
                    before=res.before,
                    after=res.after,
                    comment=comment,
                    extra=extra,
                )
            )
        except Exception:  # an audit log outage must not stop control; logged with its traceback
            log.exception("control: the audit entry for %s on %s by %s was not recorded", verb, point, actor)

    def check(self, point: str, action: Action, value: float | None = None, *, automatic: bool) -> str | None:
        """Why ``actor`` may not do ``action`` on ``point`` now (interlock, override, minimum on/off
        time), or None. Raises :class:`NotFoundError` / :class:`ConflictError` for an action that does
        not fit the point at all."""
        p = self.io_points.get(point)
        if not isinstance(p, RelayPoint | AnalogOutPoint):
            outs = sorted(k for k, x in self.io_points.items() if isinstance(x, RelayPoint | AnalogOutPoint))
            what = "no such point" if p is None else f"it is a {p.kind} point"
            raise NotFoundError(f"cannot drive {point!r}: {what}; output points: {', '.join(outs) or 'none'}")
        if isinstance(p, AnalogOutPoint) and action is not Action.SET:
            raise ConflictError(f"output {point!r} is an analog output; its action is 'set' with a value")
        if isinstance(p, RelayPoint) and action is Action.SET:
            raise ConflictError(f"output {point!r} is a relay; it is switched on or off, or pulsed")
        if isinstance(p, RelayPoint) and p.mode is RelayMode.PULSE and action is not Action.PULSE:
            raise ConflictError(f"relay {point!r} is a pulse-mode output; it cannot be latched on or off")
        now = self.clock()
        st = self._pt(point)
        turning_on = action in (Action.ON, Action.PULSE) or (
            action is Action.SET
            and value is not None
            and isinstance(p, AnalogOutPoint)
            and value != p.range[0]
        )
        if turning_on:
            for lock in self.section.interlocks:
                if lock.point != point:
                    continue
                need = lock.state is Trigger.ON
                have = self.state(lock.requires)
                if have is None:
                    return f"interlock: the state of {lock.requires!r} is not known yet (needs {lock.state.value})"
                if bool(have) != need:
                    return (
                        f"interlock: {lock.requires!r} must be {lock.state.value} for {point!r} to switch on"
                    )
        if automatic and now < st.override_until:
            return f"manual override by {st.override_by} until {_hms(st.override_until)} UTC"
        if action in (Action.ON, Action.OFF) and st.state is not None and st.changed is not None:
            on_now = bool(st.state)
            want_on = action is Action.ON
            if on_now != want_on:
                limits = self.section.limits_of(point)
                hold = limits.min_on if on_now else limits.min_off
                left = st.changed + hold - now
                if left > 0:
                    return f"minimum {'on' if on_now else 'off'} time {hold:g} s: {left:.0f} s left"
        return None

    def blocked(self, point: str, action: Action, value: float | None = None) -> str | None:
        """Why an automatic action would be refused now (None: it would go ahead). Automatic actors that
        poll (programs, the demand limiter) ask first, so a held output does not fill the audit log with
        refusals; an action that does not fit the point counts as blocked."""
        try:
            return self.check(point, action, value, automatic=True)
        except (NotFoundError, ConflictError) as exc:
            return str(exc)

    async def command(
        self,
        point: str,
        action: Action,
        value: float | None = None,
        *,
        actor: str,
        duration: float | None = None,
        comment: str | None = None,
        force: bool = False,
        automatic: bool | None = None,
    ) -> ControlResult:
        """Do ``action`` on output ``point`` for ``actor`` (a user name, ``rule:<id>``,
        ``schedule:<id>`` or ``demand-limit``); audited. ``automatic`` says whether the actor is a rule
        (default: from the actor's form; the API passes False). ``force`` (users only) passes minimum
        on/off times, never an interlock.

        Raises :class:`NotFoundError` / :class:`ConflictError` when the action does not fit the point,
        and re-raises the driver's :class:`~meterhub.drivers.io.errors.IOPointError` for a user's
        action (after auditing it), so the API can answer with the device's error.
        """
        verb = {Action.SET: "analog.set", Action.PULSE: "relay.pulse"}.get(action, "relay.switch")
        automatic = _is_automatic(actor) if automatic is None else automatic
        st = self._pt(point)
        async with st.lock:
            why = self.check(point, action, value, automatic=automatic)
            if why is not None and force and not automatic and not why.startswith("interlock"):
                why = None
            before = st.state if st.state is None or action is Action.SET else bool(st.state)
            if why is not None:
                res = ControlResult(point, action.value, "refused", before, before, reason=why)
                self.counters["refused"] += 1
                self._audit(actor, verb, point, res, comment)
                log.info("control: %s on %s by %s refused: %s", action.value, point, actor, why)
                return res
            target = {Action.ON: 1.0, Action.OFF: 0.0}.get(action)
            if automatic and target is not None and st.state == target:
                self.counters["skipped"] += 1
                return ControlResult(point, action.value, "skipped", before, before)
            driver = self.outputs()
            try:
                if action is Action.SET:
                    if value is None:
                        raise ConflictError(f"setting {point!r} needs a value")
                    reading = await driver.set_analog(point, value)
                    after: Any = reading.value
                    self._set_state(point, float(reading.value), self.clock())
                elif action is Action.PULSE:
                    on, off = await driver.pulse(point, duration)
                    after = {"pulsed": round(off.ts - on.ts, 3)}
                    self._set_state(point, float(off.energised), self.clock())
                else:
                    change = await driver.switch(point, action is Action.ON)
                    after = change.energised
                    self._set_state(point, float(change.energised), self.clock())
            except IOPointError as exc:
                res = ControlResult(
                    point,
                    action.value,
                    "failed",
                    before,
                    None,
                    confirmed=False,
                    reason=(f"{point}: " if point not in str(exc) else "")
                    + ("write not confirmed by read-back: " if isinstance(exc, ReadbackMismatch) else "")
                    + str(exc),
                )
                self.counters["failed"] += 1
                self.last_error = f"{point}: {exc}"
                self._audit(actor, verb, point, res, comment)
                log.warning("control: %s on %s by %s failed: %s", action.value, point, actor, exc)
                if automatic:
                    return res
                raise
            if not automatic and self.section.override > 0:
                st.override_until = self.clock() + self.section.override
                st.override_by = actor
            res = ControlResult(point, action.value, "done", before, after, confirmed=True)
            self.counters["done"] += 1
            self._audit(actor, verb, point, res, comment)
            return res

    def health(self) -> Health:
        c = dict(self.counters)
        c["pending"] = self.pending()
        if self.last_error is not None and c["failed"]:
            return Health(HealthState.DEGRADED, f"last failure: {self.last_error}", c)
        return Health(HealthState.OK, f"{c['done']} actions, {c['refused']} refused", c)


def _hms(ts: float) -> str:
    return datetime.fromtimestamp(ts, ZoneInfo("UTC")).strftime("%H:%M:%S")


# -- time programs ---------------------------------------------------------------------------------
def _instant(d: date, hm: tuple[int, int], tz: ZoneInfo) -> float:
    """The instant [s] local wall time ``hm`` on day ``d`` means: the first occurrence of a repeated time
    (autumn, fold 0), the moment the clock jumps past a skipped one (spring)."""
    h, m = hm
    if h == 24:
        d, h = d + timedelta(days=1), 0
    naive = datetime.combine(d, dtime(h, m))
    ts = naive.replace(tzinfo=tz, fold=0).timestamp()
    if datetime.fromtimestamp(ts, tz).replace(tzinfo=None) == naive:
        return ts
    lo, hi = naive.replace(tzinfo=tz, fold=1).timestamp(), ts  # the jump lies between the two readings
    lo, hi = min(lo, hi), max(lo, hi)
    while hi - lo > 0.5:
        mid = (lo + hi) / 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return float(round(hi))


def window_instants(program: Program, day: date, tz: ZoneInfo) -> list[tuple[float, float]]:
    """The windows of ``program`` that start on local day ``day``, as [start, end) instants [s]."""
    out = []
    name = WEEKDAYS[day.weekday()]
    for w in program.schedule:
        if name not in w.days:
            continue
        start, end = w.bounds()
        s = _instant(day, (start.hour, start.minute), tz)
        over_midnight = end <= (start.hour, start.minute)
        e = _instant(day + timedelta(days=1) if over_midnight else day, end, tz)
        out.append((s, e))
    return out


def program_state(program: Program, ts: float, tz: ZoneInfo) -> bool:
    """Inside one of the program's windows at ``ts`` [s]."""
    today = datetime.fromtimestamp(ts, tz).date()
    for day in (today - timedelta(days=1), today):
        for s, e in window_instants(program, day, tz):
            if s <= ts < e:
                return True
    return False


@dataclass
class ProgramClock:
    """What a program last applied (None before its first action) and when it may retry."""

    applied: bool | None = None
    pending: bool = False
    retry_at: float = -math.inf


class ProgramRunner:
    """Applies each time program's state: on each :meth:`tick`, a program whose wanted state differs from
    what it last applied queues the action (``schedule:<id>``) once nothing holds the output (override,
    minimum time, interlock: :meth:`ControlService.blocked`). A failed action is retried at most every
    :data:`RETRY_AFTER` seconds; a state another actor set is left alone until the program's state
    changes."""

    def __init__(self, service: ControlService) -> None:
        self.service = service
        self.tz = ZoneInfo(service.config.site.timezone)
        self.clocks: dict[str, ProgramClock] = {p.id: ProgramClock() for p in service.section.programs}

    def wanted(self, program: Program, ts: float) -> bool:
        return program_state(program, ts, self.tz)

    def tick(self, now: float) -> None:
        for prog in self.service.section.programs:
            if not prog.enabled:
                continue
            clk = self.clocks[prog.id]
            want = self.wanted(prog, now)
            if clk.pending or want == clk.applied or now < clk.retry_at:
                continue
            p = self.service.io_points.get(prog.point)
            if isinstance(p, AnalogOutPoint):
                action, value = Action.SET, prog.value if want else prog.off_value
            else:
                action, value = (Action.ON if want else Action.OFF), None
            if self.service.blocked(prog.point, action, value) is not None:
                continue  # held (override, minimum time, interlock): try again next tick, nothing to log
            clk.pending = True

            def done(res: ControlResult, clk: ProgramClock = clk, want: bool = want) -> None:
                clk.pending = False
                if res.result in ("done", "skipped"):
                    clk.applied = want
                else:
                    clk.retry_at = self.service.clock() + RETRY_AFTER

            window = "inside" if want else "outside"
            self.service.submit(
                prog.point,
                action,
                value,
                actor=f"schedule:{prog.id}",
                comment=f"{window} its windows",
                done=done,
            )


# -- the bus sink ------------------------------------------------------------------------------------
class ControlSink:
    """The control path on the bus: feeds readings to the service (input edges → linkage, relay states)
    and to the demand limiter, ticks programs and the limiter every ``tick`` seconds and runs the queue.

    A sink of kind ``control`` (drop-oldest: only recent states matter), subscribed only when the site
    has io points; ``limiter`` is a :class:`meterhub.alarms.demand_limit.DemandLimiter` or None. A site
    that gains its first io points through a configuration change is watched after a restart (until then
    the service knows the states it commanded itself).
    """

    name = "control"

    def __init__(
        self,
        service: ControlService,
        bus: ReadingBus,
        *,
        limiter: DemandLimiter | None = None,
        tick: float = 1.0,
    ) -> None:
        self.service = service
        self.limiter = limiter
        self.tick_every = tick
        self.subscription: Subscription = bus.subscribe(
            "control", maxsize=2000, overflow=Overflow.DROP_OLDEST
        )
        if not service.io_points:  # nothing to switch or watch: take no readings (publish does the same)
            bus.unsubscribe(self.subscription)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.service.run(), name="control-queue"),
            asyncio.create_task(self._ticker(), name="control-tick"),
        ]

    def tick(self) -> None:
        now = self.service.clock()
        self.service.programs.tick(now)
        if self.limiter is not None:
            self.limiter.tick(now)

    async def _ticker(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # a bug in one tick must not stop control; logged with its traceback
                log.exception("control: tick failed")
            await asyncio.sleep(self.tick_every)

    async def deliver(self, batch: Batch) -> None:
        good = [r for r in batch if r.quality is Quality.GOOD]
        for point, active in self.service.observe(good):
            self.service.on_input(point, active)
        if self.limiter is not None:
            self.limiter.observe(good)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []

    def health(self) -> Health:
        h = self.service.health()
        if self.limiter is None:
            return h
        lh = self.limiter.health()
        state = h.state if h.state is not HealthState.OK else lh.state
        return Health(state, f"{h.message}; demand limit: {lh.message}", {**h.counters, **lh.counters})

    def reconfigure(self, config: SiteConfig) -> None:
        """Take a changed site: its io points and control section (what the service knows of the points'
        states and overrides, and which loads the limiter shed, are kept)."""
        self.service.reconfigure(config)
        old = self.limiter
        self.limiter = limiter_for(config, self.service)
        if old is not None and self.limiter is not None:
            shed = {ld.spec.point: ld.shed_at for ld in old.loads}
            for ld in self.limiter.loads:
                ld.shed_at = shed.get(ld.spec.point)
            self.limiter.peak = old.peak


class ExternalSwitch:
    """The relay switch an external master uses (the Modbus server's coils, written by a BMS): a latched
    relay switched through the audited path as ``actor``, a manual action (its override holds against
    automation). A refusal raises :class:`ConflictError`; a device that does not answer raises the
    driver's :class:`~meterhub.drivers.modbus.transport.ModbusTimeout`, other failures their
    :class:`~meterhub.drivers.io.errors.IOPointError`."""

    def __init__(self, service: ControlService, actor: str) -> None:
        self.service = service
        self.actor = actor

    async def switch(self, point_id: str, energised: bool) -> RelayChange:
        action = Action.ON if energised else Action.OFF
        try:
            res = await self.service.command(point_id, action, actor=self.actor, automatic=False)
        except OutputWriteError as exc:
            if isinstance(exc.__cause__, ModbusTimeout):
                raise exc.__cause__ from exc
            raise
        if res.result == "refused":
            raise ConflictError(f"relay {point_id}: {res.reason}")
        return RelayChange(self.service.clock(), point_id, bool(res.after))


def _not_wired() -> OutputDriver:
    raise IOPointError("outputs are not wired to a running gateway")


def limiter_for(config: SiteConfig, service: ControlService) -> DemandLimiter | None:
    """The demand limiter of a site with an enabled ``control.demand_limit``, else None."""
    section = config.control
    if section is None or section.demand_limit is None or not section.demand_limit.enabled:
        return None
    return DemandLimiter(config, service)


def control_sink(ctx: SinkContext) -> ControlSink:
    """The control path of a gateway (:data:`meterhub.runtime.sinks.SINK_FACTORIES`). Its service writes
    nothing until the runtime sets ``service.outputs`` (the gateway's
    :class:`~meterhub.drivers.io.control.OutputControl`) and audits to a :class:`LoggingAuditor` until the
    durable audit log replaces ``service.auditor``."""
    service = ControlService(ctx.config, _not_wired, LoggingAuditor(), clock=ctx.clock)
    return ControlSink(service, ctx.bus, limiter=limiter_for(ctx.config, service))
