"""Alarm notifications by email: the mail (subject, plain-text body, headers) and its delivery over SMTP.

:class:`EmailChannel` keeps one durable outbox (``DATA/outbox-notify-email.sqlite``, name
``notify email``) with **one row per event and recipient**: the row's topic is the recipient's address,
its payload the event (``AlarmEvent.as_dict()`` as JSON). A delivery task (asyncio, aiosmtplib) turns the
rows into mails and deletes rows only once the SMTP server accepted the mail that carries them (250 after
DATA). Each recipient gets mails of their own (one ``To``), so a refused address or a rate limit of one
person never holds up another.

Which rows go in one mail (docs/alarms-notifications.md, "Grouping, rate limit, quiet hours"):

* **grouping**: the recipient's oldest waiting event opens a group of ``group_window`` seconds (by the time
  it was queued); when the window has passed, every event of that recipient queued within it goes in one
  mail. ``group_window: 0`` sends one mail per event.
* **rate limit**: at most ``rate_limit`` mails per recipient in any hour. Events beyond it wait, and the
  next mail the hour allows is one summary of all of them. The times of the last hour's mails (and
  whether a summary is owed) are kept in ``DATA/notify-state.sqlite`` (:mod:`meterhub.alarms.statefile`),
  so a restart does not grant a fresh hour.
* **quiet hours**: in the daily quiet period (site time) events wait unless their severity is exempt;
  those released at its end go in one mail.

Failures: connection errors, timeouts and 4xx answers are retried after a capped exponential backoff
(1, 2, 4 … 60 s, ±20 % jitter; health DEGRADED). A 5xx answer — a wrong password (535), a refused sender
or message — is a refusal: the rows stay, the health is DOWN naming the server and the answer, and the
server is tried again every 60 s, so fixing the account resumes delivery. A recipient the server refuses
(550 on RCPT) waits the same way without holding up the others. Nothing is dropped except by the
outbox's age bound (``outbox.max_days``, counted and logged).

Duplicates: a mail the server accepted but whose rows were not yet deleted (a crash in between) is sent
again after a restart with the same ``Message-ID`` (derived from the events' ``seq`` and the recipient),
so a person or a mail filter can recognise it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib

import meterhub
from meterhub.alarms.model import AlarmEvent, AlarmState, EventKind, Severity
from meterhub.alarms.statefile import StateFile
from meterhub.config.notify import EmailSettings, NotificationsConfig, QuietHours, SmtpSecurity
from meterhub.model.health import Health, HealthState
from meterhub.storage.outbox import Message, Outbox, OutboxError, StoredMessage

__all__ = [
    "BACKOFF_MAX",
    "BACKOFF_MIN",
    "MAX_EVENTS_PER_MAIL",
    "EmailChannel",
    "MailPlan",
    "event_from_dict",
    "render_mail",
]

log = logging.getLogger("meterhub.notify")

#: Backoff after a failed delivery: first and largest wait [s]; a refusal (5xx) waits the largest.
BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0
#: Events listed in one mail at most; more wait for the next mail.
MAX_EVENTS_PER_MAIL = 100
#: Rows read from the outbox per planning round.
PEEK_ROWS = 5000
#: The rate limit's window [s].
RATE_WINDOW = 3600.0
_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}  # 0 = critical


def event_from_dict(d: dict[str, Any]) -> AlarmEvent:
    """The :class:`AlarmEvent` of ``AlarmEvent.as_dict()`` (as stored in the outbox)."""
    return AlarmEvent(
        seq=int(d["seq"]),
        alarm_id=str(d["alarm_id"]),
        rule=str(d["rule"]),
        kind=EventKind(d["kind"]),
        state=AlarmState(d["state"]),
        severity=Severity(d["severity"]),
        target=str(d["target"]),
        phase=d.get("phase"),
        quantity=d.get("quantity"),
        value=None if d.get("value") is None else float(d["value"]),
        limit=None if d.get("limit") is None else float(d["limit"]),
        unit=d.get("unit"),
        ts=float(d["ts"]),
        title=str(d["title"]),
        message=str(d["message"]),
        user=d.get("user"),
        comment=d.get("comment"),
    )


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.6g}"


def _times(ts: float, tz: ZoneInfo) -> tuple[str, str]:
    """(site time with its zone abbreviation, UTC in ISO 8601)."""
    utc = datetime.fromtimestamp(ts, UTC)
    local = utc.astimezone(tz)
    return (
        f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} ({tz.key})",
        utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def subject_fields(event: AlarmEvent, site: str) -> dict[str, str]:
    """The values of the subject placeholders (``meterhub.config.notify.SUBJECT_FIELDS``) for one event."""
    return {
        "site": site,
        "title": event.title,
        "message": event.message,
        "kind": event.kind.value,
        "state": event.state.value,
        "severity": event.severity.value,
        "alarm_id": event.alarm_id,
        "rule": event.rule,
        "target": event.target,
        "phase": event.phase or "-",
        "quantity": event.quantity or "-",
        "value": _num(event.value),
        "limit": _num(event.limit),
        "unit": event.unit or "",
        "seq": str(event.seq),
    }


def _block(event: AlarmEvent, site: str, tz: ZoneInfo, base_url: str | None) -> list[str]:
    """The documented fields of one event, one per line (docs/alarms-notifications.md, "The mail")."""
    local, utc = _times(event.ts, tz)
    unit = f" {event.unit}" if event.unit else ""
    lines = [
        f"{event.kind.value.upper()}: {event.title}",
        "",
        f"Alarm:     {event.alarm_id}",
        f"Rule:      {event.rule}",
        f"Title:     {event.title}",
        f"Message:   {event.message}",
        f"Event:     {event.kind.value} (seq {event.seq})",
        f"State:     {event.state.value}",
        f"Severity:  {event.severity.value}",
        f"Target:    {event.target}",
        f"Phase:     {event.phase or '-'}",
        f"Quantity:  {event.quantity or '-'}",
        f"Value:     {_num(event.value)}{unit if event.value is not None else ''}",
        f"Limit:     {_num(event.limit)}{unit if event.limit is not None else ''}",
        f"Unit:      {event.unit or '-'}",
        f"Time:      {local}",
        f"Time UTC:  {utc}",
        f"Site:      {site}",
    ]
    if event.user is not None:
        lines.append(f"User:      {event.user}")
    if event.comment is not None:
        lines.append(f"Comment:   {event.comment}")
    if base_url:
        lines.append(f"Alarms:    {base_url.rstrip('/')}/alarms")
    return lines


async def idle(wake: asyncio.Event, timeout: float) -> None:
    """Wait until ``wake`` is set or ``timeout`` [s] passed. ``asyncio.timeout`` rather than
    ``asyncio.wait_for``, which in Python 3.11 can lose a cancellation that arrives together with the
    result (CPython gh-86296) — a delivery loop that then never stops."""
    try:
        async with asyncio.timeout(max(0.0, timeout)):
            await wake.wait()
    except TimeoutError:
        pass


def _one_line(text: str) -> str:
    """Header-safe: line breaks and runs of blanks become one blank (a header must not break)."""
    return " ".join(text.split())[:300]


def _domain(sender: str) -> str:
    addr = parseaddr(sender)[1]
    return addr.rpartition("@")[2] or "meterhub.invalid"


def message_id(events: Sequence[AlarmEvent], recipient: str, sender: str) -> str:
    """``<meterhub.<first seq>-<last seq>.<count>.<recipient hash>@<sender's domain>>``: the same events to
    the same person always give the same id (RFC 5322 §3.6.4), so a resend is recognisable."""
    h = hashlib.sha256(recipient.lower().encode()).hexdigest()[:12]
    return f"<meterhub.{events[0].seq}-{events[-1].seq}.{len(events)}.{h}@{_domain(sender)}>"


def render_mail(
    events: Sequence[AlarmEvent],
    *,
    recipient: str,
    settings: EmailSettings,
    site: str,
    tz: ZoneInfo,
    base_url: str | None = None,
    note: str | None = None,
    date: float | None = None,
) -> EmailMessage:
    """The mail for ``events`` (oldest first) to one recipient.

    One event: the subject is the configured template (a matching route's, else ``email.subject``).
    Several: ``[<highest severity>] <site>: <n> alarm notifications`` (plus ``note``, e.g. the rate
    limit), and the body lists each event's fields. ``date``: the Date header [s since the epoch]."""
    if not events:
        raise ValueError("a mail needs at least one event")
    first = events[0]
    if len(events) == 1 and note is None:
        template = settings.subject_for(first.rule, first.severity.value)
        subject = template.format_map(subject_fields(first, site))
    else:
        top = min(events, key=lambda e: _SEVERITY_RANK[e.severity]).severity.value
        subject = f"[{top}] {site}: {len(events)} alarm notification{'s' if len(events) > 1 else ''}"
        if note:
            subject += f" ({note})"
    body: list[str] = []
    if len(events) > 1 or note:
        body += [
            f"{len(events)} alarm notification(s) from {site}" + (f" — {note}" if note else "") + ".",
            "",
        ]
    for i, ev in enumerate(events):
        if i:
            body += ["", "-" * 60, ""]
        body += _block(ev, site, tz, base_url if i == len(events) - 1 else None)
    body += ["", "--", f"meterhub {meterhub.__version__} at {site}; sent automatically, do not reply."]
    msg = EmailMessage()
    msg["Subject"] = " ".join(subject.split())[:300]
    msg["From"] = settings.from_
    msg["To"] = recipient
    msg["Date"] = formatdate(date if date is not None else time.time(), usegmt=True)
    msg["Message-ID"] = message_id(events, recipient, settings.from_)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5: no auto-replies to this
    msg["X-Meterhub-Site"] = _one_line(site)
    msg["X-Meterhub-Alarm"] = _one_line(first.alarm_id) if len(events) == 1 else f"{len(events)} alarms"
    msg["X-Meterhub-Seq"] = ",".join(str(e.seq) for e in events)[:900]
    msg.set_content("\n".join(body) + "\n")
    return msg


# -- planning: which rows go in which mail, and when --------------------------------------------------
@dataclass(slots=True)
class MailPlan:
    """One mail to send now: its recipient, the outbox rows it carries (ids) and their events."""

    recipient: str
    ids: list[int]
    events: list[AlarmEvent]
    note: str | None = None


def _in_quiet(local: datetime, quiet: QuietHours) -> bool:
    t = local.time().replace(tzinfo=None)
    start, end = quiet.start_time, quiet.end_time
    return start <= t < end if start < end else (t >= start or t < end)


def quiet_release(ts: float, quiet: QuietHours, tz: ZoneInfo) -> float | None:
    """If ``ts`` [s since the epoch] falls in the quiet hours: the end of that quiet period [s since the
    epoch]; else None."""
    local = datetime.fromtimestamp(ts, tz)
    if not _in_quiet(local, quiet):
        return None
    end = quiet.end_time
    candidate = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if candidate <= local:
        candidate = (local + timedelta(days=1)).replace(
            hour=end.hour, minute=end.minute, second=0, microsecond=0
        )
    # Wall time → instant (across a DST change the zone's rules decide; fold=0 takes the first).
    return candidate.timestamp()


@dataclass(slots=True)
class _Row:
    id: int
    event: AlarmEvent
    release: float  # when the row may go [s since the epoch]: queued time, or the end of its quiet hours
    held: bool  # held by the quiet hours


@dataclass(slots=True)
class _RecipientState:
    sent: list[float] = field(default_factory=list)  # times of the mails of the last RATE_WINDOW [s]
    limited: bool = False  # a mail was held back by the rate limit: the next one is the summary
    refused_until: float = 0.0  # the server refused this address: wait until then [s]
    refused: str | None = None


class EmailChannel:
    """Email notifications: durable queue per recipient, grouping, rate limit, SMTP delivery (see the module
    docstring).

    cfg : the notifications section (grouping, rate limit, quiet hours) with its ``email``.
    outbox : the channel's outbox (``notify email``).
    site : the site's name (subject, body); tz : the site's time zone.
    password : from the settings' ``password_env``/``password_file`` (None: no login).
    base_url : the web UI's address, for a link to the alarms page (None: no link).
    error : why the channel cannot deliver at all (a secret that cannot be read): health DOWN, rows kept.
    backoff : first and largest wait after a failure [s] (tests shorten them); clock [s since the epoch].
    state : where each recipient's mails of the last hour are kept across restarts (None: in memory).
    """

    def __init__(
        self,
        cfg: NotificationsConfig,
        outbox: Outbox,
        *,
        site: str,
        tz: ZoneInfo,
        password: str | None,
        base_url: str | None = None,
        error: str | None = None,
        backoff: tuple[float, float] = (BACKOFF_MIN, BACKOFF_MAX),
        clock: Callable[[], float] = time.time,
        state: StateFile | None = None,
    ) -> None:
        if cfg.email is None:
            raise ValueError("notifications without email settings")
        self.cfg = cfg
        self.settings: EmailSettings = cfg.email
        self.outbox = outbox
        self.site = site
        self.tz = tz
        self.base_url = base_url
        self.endpoint = self.settings.endpoint
        self._password = password
        self._backoff_min, self._backoff_max = backoff
        self._clock = clock
        self._sender = parseaddr(self.settings.from_)[1]
        self._kinds = {k.value for k in (self.settings.kinds or cfg.kinds)}
        self._recipients: dict[str, _RecipientState] = {}
        self.state = state
        self._wake = asyncio.Event()
        self.stopping = False
        self._retry_at = 0.0
        self._failures = 0
        self.error = error  # cannot deliver at all (a secret, the outbox)
        self.refused: str | None = None  # the server refused the login, the sender or a message (5xx)
        self.last_error: str | None = None
        self.events = 0  # rows queued (event × recipient)
        self.mails = 0  # mails the server accepted
        self.failures = 0  # failed attempts
        self.last_sent: float | None = None

    # -- queueing (event loop, must not block beyond the outbox's commit) --------------------------
    def wants(self, event: AlarmEvent) -> bool:
        return event.kind.value in self._kinds

    def put(self, event: AlarmEvent) -> int:
        """Queue ``event`` for each of its recipients (one committed outbox row each); return how many."""
        if not self.wants(event):
            return 0
        recipients = self.settings.recipients(event.rule, event.severity.value)
        if not recipients:
            return 0
        payload = json.dumps(event.as_dict(), separators=(",", ":")).encode()
        self.outbox.put([Message(topic=r, payload=payload) for r in recipients])
        self.events += len(recipients)
        self._wake.set()
        return len(recipients)

    # -- planning --------------------------------------------------------------------------------
    def _state(self, recipient: str) -> _RecipientState:
        key = recipient.lower()
        st = self._recipients.get(key)
        if st is None:
            st = self._recipients[key] = _RecipientState()
            kept = self.state.get(f"rate:{key}") if self.state is not None else None
            if isinstance(kept, dict):  # what the last run sent within the hour still counts
                st.sent = sorted(float(t) for t in kept.get("sent", []))
                st.limited = bool(kept.get("limited", False))
        return st

    def _keep(self, recipient: str, st: _RecipientState) -> None:
        """Persist a recipient's rate-limit state (the mails of the last hour, a summary owed)."""
        if self.state is None:
            return
        now = self._clock()
        sent = [t for t in st.sent if t > now - RATE_WINDOW]
        if sent or st.limited:
            self.state.set(f"rate:{recipient.lower()}", {"sent": sent, "limited": st.limited})
        else:
            self.state.delete(f"rate:{recipient.lower()}")

    def plan(
        self, rows: Sequence[StoredMessage], now: float
    ) -> tuple[list[MailPlan], float | None, list[int]]:
        """The mails due at ``now`` from the waiting rows (in the order of their oldest row), when the next
        one falls due [s since the epoch] (None: nothing waits), and the ids of rows that cannot be read."""
        by_rcpt: dict[str, list[_Row]] = {}
        damaged: list[int] = []
        quiet = self.cfg.quiet_hours
        exempt = {s.value for s in quiet.except_} if quiet is not None else set()
        for m in rows:
            try:
                ev = event_from_dict(json.loads(m.payload))
            except (ValueError, KeyError, TypeError) as exc:  # a damaged row must not block the queue
                log.error("notify email: outbox row %d cannot be read (%s); removed", m.id, exc)
                damaged.append(m.id)
                continue
            release, held = m.created, False
            if quiet is not None and ev.severity.value not in exempt:
                end = quiet_release(m.created, quiet, self.tz)
                if end is not None:
                    release, held = end, True
            by_rcpt.setdefault(m.topic, []).append(_Row(m.id, ev, release, held))
        plans: list[MailPlan] = []
        next_due: float | None = None

        def later(t: float) -> None:
            nonlocal next_due
            next_due = t if next_due is None else min(next_due, t)

        window = self.cfg.group_window
        limit = self.cfg.rate_limit
        for rcpt, items in by_rcpt.items():
            st = self._state(rcpt)
            if st.refused_until > now:
                later(st.refused_until)
                continue
            st.sent = [t for t in st.sent if t > now - RATE_WINDOW]
            budget = len(items) if limit is None else limit - len(st.sent)  # mails this round at most
            if budget <= 0:
                if any(r.release <= now for r in items) and not st.limited:
                    st.limited = True
                    self._keep(rcpt, st)
                oldest = st.sent[0] if st.sent else now
                later(oldest + RATE_WINDOW)
                continue
            if st.limited:  # one summary of everything the rate limit held back
                group = [r for r in items if r.release <= now][:MAX_EVENTS_PER_MAIL]
                if group:
                    note = f"summary: rate limit of {limit} mails per hour reached"
                    plans.append(MailPlan(rcpt, [r.id for r in group], [r.event for r in group], note))
                else:
                    later(min(r.release for r in items))
                continue
            waiting = sorted(items, key=lambda r: (r.release, r.id))
            while waiting and budget > 0:
                first = waiting[0]
                due = first.release + window
                if due > now:  # held by quiet hours, or its group window is still open
                    later(due)
                    break
                if window > 0:
                    group = [r for r in waiting if r.release <= due]
                elif first.held:  # released together at the end of the quiet hours: one mail
                    group = [r for r in waiting if r.held and r.release == first.release]
                else:
                    group = [first]
                group = group[:MAX_EVENTS_PER_MAIL]
                plans.append(MailPlan(rcpt, [r.id for r in group], [r.event for r in group]))
                taken = {r.id for r in group}
                waiting = [r for r in waiting if r.id not in taken]
                budget -= 1
        plans.sort(key=lambda p: p.ids[0])
        return plans, next_due, damaged

    # -- delivery --------------------------------------------------------------------------------
    async def run(self) -> None:
        """Deliver until cancelled or :meth:`halt`."""
        while not self.stopping:
            if self.error is not None:
                return  # nothing can be sent; the rows wait for a restart with a working configuration
            self._wake.clear()  # before reading: an event queued from here on wakes the wait below
            try:
                rows = await asyncio.to_thread(self.outbox.peek, 0, PEEK_ROWS)
            except OutboxError as exc:
                self.error = str(exc)
                log.error("notify email: %s; delivery stopped", exc)
                return
            now = self._clock()
            wait: float | None = None
            if rows and now < self._retry_at:
                wait = self._retry_at - now
            elif rows:
                plans, next_due, damaged = self.plan(rows, now)
                if damaged:
                    await asyncio.to_thread(self.outbox.ack, damaged)
                if plans:
                    try:
                        await self._deliver(plans)
                    except Exception as exc:  # a bug must not end delivery: log it, back off, try again
                        log.exception("notify email: delivery failed unexpectedly")
                        self._fail_transient(f"internal error: {type(exc).__name__}: {exc}")
                    continue
                wait = None if next_due is None else max(0.0, next_due - now)
            await idle(self._wake, 1.0 if wait is None else wait)

    def wake(self) -> None:
        self._wake.set()

    def halt(self) -> None:
        """Stop after the mail being sent (the loop ends; what waits stays in the outbox)."""
        self.stopping = True
        self._wake.set()

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.settings.security is SmtpSecurity.NONE:
            return None
        return ssl.create_default_context(cafile=self.settings.ca_file)

    async def _deliver(self, plans: list[MailPlan]) -> None:
        """Send the due mails over one connection; acknowledge each mail's rows once it was accepted."""
        s = self.settings
        try:
            context = self._tls_context()
        except (OSError, ssl.SSLError) as exc:
            self._fail_refused(f"the CA file {s.ca_file} cannot be used: {exc}")
            return
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.effective_port,
            username=s.username,
            password=self._password,
            use_tls=s.security is SmtpSecurity.TLS,
            start_tls=s.security is SmtpSecurity.STARTTLS,
            tls_context=context,
            timeout=s.timeout,
            local_hostname="meterhub",
        )
        try:
            await smtp.connect()
            for plan in plans:
                if self.stopping:
                    break
                now = self._clock()
                msg = render_mail(
                    plan.events,
                    recipient=plan.recipient,
                    settings=s,
                    site=self.site,
                    tz=self.tz,
                    base_url=self.base_url,
                    note=plan.note,
                    date=now,
                )
                try:
                    await smtp.send_message(msg, sender=self._sender, recipients=[plan.recipient])
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    self._recipient_refused(plan, exc)
                    continue
                self.outbox.ack(plan.ids)  # no fsync (see Outbox.ack): cheaper inline than a thread hop
                st = self._state(plan.recipient)
                st.sent.append(now)
                if plan.note is not None:
                    st.limited = False
                st.refused, st.refused_until = None, 0.0
                self._keep(plan.recipient, st)
                self.mails += 1
                self.last_sent = now
                log.debug(
                    "notify email: %s accepted %s for %s", self.endpoint, msg["Message-ID"], plan.recipient
                )
            self._ok()
        except aiosmtplib.SMTPResponseException as exc:
            text = f"{exc.code} {' '.join(str(exc.message).split())}"
            if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
                self._fail_refused(f"{self.endpoint} refused the login of {s.username}: {text}")
            elif exc.code >= 500:
                self._fail_refused(f"{self.endpoint} refused: {text}")
            else:
                self._fail_transient(f"{self.endpoint} answered {text}")
        except aiosmtplib.SMTPException as exc:
            if "AUTH extension not supported" in str(exc):  # a configuration problem, not an outage
                self._fail_refused(
                    f"{self.endpoint} offers no login (AUTH) on this connection; check security"
                )
            else:
                self._fail_transient(f"cannot deliver to {self.endpoint}: {_reason(exc)}")
        except (OSError, TimeoutError) as exc:
            self._fail_transient(f"cannot deliver to {self.endpoint}: {_reason(exc)}")
        except OutboxError as exc:
            self.error = str(exc)
            log.error("notify email: %s; delivery stopped", exc)
        finally:
            if smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    smtp.close()

    def _recipient_refused(self, plan: MailPlan, exc: aiosmtplib.SMTPRecipientsRefused) -> None:
        codes = [r.code for r in exc.recipients] or [550]
        text = "; ".join(f"{r.code} {' '.join(str(r.message).split())}" for r in exc.recipients)
        st = self._state(plan.recipient)
        reason = f"{self.endpoint} refused recipient {plan.recipient}: {text}"
        wait = self._backoff_max if min(codes) >= 500 else self._backoff_min
        if st.refused != reason:
            log.warning(
                "notify email: %s (%d event(s) kept; trying again in %g s)", reason, len(plan.ids), wait
            )
        st.refused, st.refused_until = reason, self._clock() + wait
        self.failures += 1

    def _ok(self) -> None:
        if self.last_error is not None or self.refused is not None:
            log.info(
                "notify email: delivering to %s again (was: %s)",
                self.endpoint,
                self.refused or self.last_error,
            )
        self._failures = 0
        self._retry_at = 0.0
        self.refused = None
        self.last_error = None

    def _fail_refused(self, reason: str) -> None:
        if self.refused != reason:
            log.warning(
                "notify email: %s; %d event(s) kept, trying again every %g s",
                reason,
                self.outbox.stats().backlog,
                self._backoff_max,
            )
        self.refused = reason
        self.last_error = reason
        self.failures += 1
        self._retry_at = self._clock() + self._backoff_max

    def _fail_transient(self, reason: str) -> None:
        self._failures += 1
        self.failures += 1
        base = min(self._backoff_max, self._backoff_min * 2 ** min(self._failures - 1, 30))
        wait = min(self._backoff_max, max(self._backoff_min, base * random.uniform(0.8, 1.2)))
        if self.last_error != reason:
            log.warning(
                "notify email: %s (%d event(s) wait; retrying with backoff up to %g s)",
                reason,
                self.outbox.stats().backlog,
                self._backoff_max,
            )
        self.refused = None
        self.last_error = reason
        self._retry_at = self._clock() + wait

    # -- health ----------------------------------------------------------------------------------
    def health(self) -> Health:
        stats = self.outbox.stats()
        counters = {
            "queued": self.events,
            "mails": self.mails,
            "failures": self.failures,
            "backlog": stats.backlog,
            "dropped": stats.dropped,
        }
        where = f"notify email ({self.endpoint})"
        failing = failure_health(where, counters, self.error, self.refused, self.last_error)
        if failing is not None:
            return failing
        refused = [st.refused for st in self._recipients.values() if st.refused]
        if refused:
            return Health(HealthState.DEGRADED, f"{where}: {refused[0]}", counters)
        if stats.dropped and self.outbox.last_drop_warning:
            return Health(HealthState.DEGRADED, self.outbox.last_drop_warning, counters)
        return Health(
            HealthState.OK, f"{where}: {self.mails} mail(s) sent, {stats.backlog} event(s) waiting", counters
        )


def failure_health(
    where: str, counters: dict[str, int], error: str | None, refused: str | None, last_error: str | None
) -> Health | None:
    """A channel's health while something holds its events (``counters["backlog"]`` of them): DOWN for a
    configuration error or a refusal that waits for a person, DEGRADED while it retries; None when
    nothing does."""
    backlog = counters["backlog"]
    if error is not None:
        return Health(HealthState.DOWN, f"{where}: {error}; {backlog} event(s) kept", counters)
    if refused is not None:
        return Health(HealthState.DOWN, f"{where}: {refused}; {backlog} event(s) kept", counters)
    if last_error is not None:
        return Health(HealthState.DEGRADED, f"{where}: {last_error}; {backlog} event(s) wait", counters)
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return f"timed out ({exc})" if str(exc) else "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def outbox_path(data_dir: Path) -> Path:
    """``DATA/outbox-notify-email.sqlite``."""
    return Path(data_dir) / "outbox-notify-email.sqlite"
