"""Alarm notifications: the :class:`Notifier` listens to alarm events and delivers them by email and webhooks.

The notifier is an :class:`~meterhub.alarms.model.AlarmListener`: ``on_event`` commits the event to each
channel's durable outbox (:mod:`meterhub.storage.outbox`) and returns; delivery tasks send it from there
(:mod:`meterhub.alarms.smtp`, :mod:`meterhub.alarms.webhook`). An SMTP or webhook outage therefore delays
a notification but never loses it, a restart sends what waited, and the order is kept (oldest first).

It never evaluates rules: which events exist is the engine's business; which of them notify, whom and
how often is the ``alarms.notifications`` section's (:mod:`meterhub.config.notify`,
docs/alarms-notifications.md).

Wiring (the runtime, ``runtime/gateway.py``)::

    notifier = Notifier(config.alarms.notifications, data_dir=data_dir, site=config.site.name,
                        timezone=config.site.timezone, base_url=None)
    self.alarms.add_listener(notifier)    # AlarmSink: on_event(AlarmEvent) for every event
    await notifier.start()                # in Gateway.start(): the delivery tasks
    out.update({f"service:{k}": h for k, h in notifier.components().items()})   # in Gateway.health()
    await notifier.stop()                 # in Gateway.stop(), after the alarm sink: undelivered stays queued

Events handed over before ``start()`` are queued and go once it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from zoneinfo import ZoneInfo

from meterhub.alarms import smtp, webhook
from meterhub.alarms.model import AlarmEvent
from meterhub.config.notify import NotificationsConfig
from meterhub.config.secrets import SecretError, read_secret
from meterhub.model.health import Health, HealthState, worst
from meterhub.storage.outbox import Outbox, OutboxError

__all__ = ["STOP_GRACE", "Notifier"]

log = logging.getLogger("meterhub.notify")

_DAY = 86400.0
#: How long :meth:`Notifier.stop` lets a mail or POST in flight finish before cancelling it [s].
STOP_GRACE = 2.0


class _Broken:
    """A channel whose outbox cannot be opened: it takes nothing and reports why."""

    def __init__(self, name: str, error: str) -> None:
        self.name = name
        self.error = error

    def health(self) -> Health:
        return Health(HealthState.DOWN, f"{self.name}: {self.error}")


class Notifier:
    """Deliver alarm events by email and webhooks (see the module docstring).

    cfg : the ``alarms.notifications`` section.
    data_dir : the data folder (outboxes ``outbox-notify-email.sqlite``, ``outbox-notify-webhook-<id>.sqlite``).
    site : the site's name (subjects, bodies, webhook ``site``); timezone : the site's IANA time zone.
    base_url : the web UI's public address (e.g. ``https://meter.example.net``), for a link to the
        alarms page in mails; None: no link.
    environ : where ``*_env`` secrets are looked up (default: the process environment).
    backoff : first and largest wait after a failed delivery [s]; clock : [s since the epoch].

    A secret that cannot be read or an outbox that cannot be opened does not raise: that channel is DOWN
    with the reason in its health (the others work), and events it cannot take are logged.
    """

    name = "notify"

    def __init__(
        self,
        cfg: NotificationsConfig,
        *,
        data_dir: Path,
        site: str,
        timezone: str = "UTC",
        base_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        backoff: tuple[float, float] = (smtp.BACKOFF_MIN, smtp.BACKOFF_MAX),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.data_dir = Path(data_dir)
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        self.email: smtp.EmailChannel | None = None
        self.webhooks: list[webhook.WebhookChannel] = []
        self._broken: list[_Broken] = []
        self.lost = 0  # events a channel could not queue (outbox write failed), logged each
        max_age = cfg.outbox.max_days * _DAY
        tz = ZoneInfo(timezone)
        if cfg.email is not None:
            e = cfg.email
            error: str | None = None
            password: str | None = None
            try:
                password = read_secret(
                    f"notify email ({e.endpoint})",
                    "password",
                    e.password_env,
                    e.password_file,
                    environ=environ,
                )
            except SecretError as exc:
                error = str(exc)
                log.error("%s; mails wait in the outbox", exc)
            try:
                box = Outbox(
                    smtp.outbox_path(self.data_dir), name="notify email", max_age=max_age, clock=clock
                )
            except OutboxError as exc:
                log.error("notify email: %s", exc)
                self._broken.append(_Broken("notify email", str(exc)))
            else:
                self.email = smtp.EmailChannel(
                    cfg,
                    box,
                    site=site,
                    tz=tz,
                    password=password,
                    base_url=base_url,
                    error=error,
                    backoff=backoff,
                    clock=clock,
                )
        for hook in cfg.webhooks:
            name = f"notify webhook {hook.id}"
            error = None
            secret: str | None = None
            try:
                secret = read_secret(
                    name, "secret", hook.secret_env, hook.secret_file, environ=environ, blank_ok=False
                )
            except SecretError as exc:
                error = str(exc)
                log.error("%s; events wait in the outbox", exc)
            try:
                box = Outbox(
                    webhook.outbox_path(self.data_dir, hook.id), name=name, max_age=max_age, clock=clock
                )
            except OutboxError as exc:
                log.error("%s: %s", name, exc)
                self._broken.append(_Broken(name, str(exc)))
                continue
            self.webhooks.append(
                webhook.WebhookChannel(
                    cfg, hook, box, site=site, secret=secret, error=error, backoff=backoff, clock=clock
                )
            )

    # -- AlarmListener ---------------------------------------------------------------------------
    def on_event(self, event: AlarmEvent) -> None:
        """Commit ``event`` to every channel that wants it; returns once it is durable (never raises)."""
        channels: list[smtp.EmailChannel | webhook.WebhookChannel] = [*self.webhooks]
        if self.email is not None:
            channels.insert(0, self.email)
        for ch in channels:
            try:
                ch.put(event)
            except OutboxError as exc:
                self.lost += 1
                log.error(
                    "notify: alarm event %d (%s, %s) could not be queued: %s",
                    event.seq,
                    event.alarm_id,
                    event.kind.value,
                    exc,
                )

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the delivery tasks (what waited in the outboxes goes first)."""
        if self.email is not None:
            self._tasks.append(asyncio.create_task(self.email.run(), name="notify email"))
        for hook in self.webhooks:
            self._tasks.append(asyncio.create_task(hook.run(), name=hook.name))

    async def flush(self, timeout: float) -> bool:
        """Wait until every outbox is empty, at most ``timeout`` [s]; True if so (a grouping window or quiet
        hours keep mails waiting on purpose: this is for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.backlog() == 0:
                return True
            await asyncio.sleep(0.01)
        return self.backlog() == 0

    async def stop(self) -> None:
        """Stop delivering; what was not accepted yet stays in the outboxes for the next start.

        The loops are asked to end after the mail or POST in flight (at most ``STOP_GRACE`` [s]), then
        cancelled; a task that does not end is cancelled again every 0.5 s and given up after 10 s with
        an error naming it, so a stuck server never holds up the gateway's shutdown."""
        if self.email is not None:
            self.email.halt()
        for hook in self.webhooks:
            hook.halt()
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
            deadline = time.monotonic() + 10.0
            while pending and time.monotonic() < deadline:
                for task in pending:
                    task.cancel()
                _, pending = await asyncio.wait(pending, timeout=0.5)
            for task in pending:
                log.error("notify: task %s did not stop within 10 s; left behind", task.get_name())
        for task in self._tasks:
            if task.done() and not task.cancelled():
                with contextlib.suppress(asyncio.CancelledError):
                    exc = task.exception()
                    if exc is not None:
                        log.error(
                            "notify: task %s ended with %s: %s", task.get_name(), type(exc).__name__, exc
                        )
        self._tasks.clear()
        if self.email is not None:
            self.email.outbox.close()
        for hook in self.webhooks:
            hook.outbox.close()

    # -- health ----------------------------------------------------------------------------------
    def backlog(self) -> int:
        """Rows waiting in all outboxes (an email row is one event for one recipient)."""
        n = self.email.outbox.stats().backlog if self.email is not None else 0
        return n + sum(h.outbox.stats().backlog for h in self.webhooks)

    def components(self) -> dict[str, Health]:
        """One health per channel, keyed ``notify email``, ``notify webhook <id>`` (for /api/v1/health)."""
        out: dict[str, Health] = {}
        if self.email is not None:
            out["notify email"] = self.email.health()
        for hook in self.webhooks:
            out[hook.name] = hook.health()
        for b in self._broken:
            out[b.name] = b.health()
        return out

    def health(self) -> Health:
        """All channels in one: the worst state, the first problem (or a summary), summed counters."""
        parts = self.components()
        state = worst(h.state for h in parts.values())
        counters: dict[str, int] = {"lost": self.lost}
        for h in parts.values():
            for k, v in h.counters.items():
                counters[k] = counters.get(k, 0) + v
        bad = [h.message for h in parts.values() if h.state is not HealthState.OK]
        if self.lost:
            state = worst([state, HealthState.DEGRADED])
            bad.append(f"{self.lost} alarm event(s) could not be queued (see the log)")
        message = "; ".join(bad) if bad else "; ".join(h.message for h in parts.values())
        return Health(state, message, counters)
