"""Alarm notifications by webhook: every notifying event is POSTed as JSON, signed with HMAC-SHA256.

Each ``notifications.webhooks`` entry has its own durable outbox (``DATA/outbox-notify-webhook-<id>.sqlite``,
name ``notify webhook <id>``), one row per event. A delivery task sends the rows oldest first, one POST
each (the standard library's ``urllib`` in a worker thread, as the HTTP upload does), and deletes a row
only when the receiver answered 2xx.

The body (``Content-Type: application/json``) is ``AlarmEvent.as_dict()`` plus ``site`` (the site's name)
and ``delivery`` (``<webhook id>:<outbox id>``: the same on every retry of the same event). Headers:

* ``X-Meterhub-Event``: the event kind (``raised`` …); ``X-Meterhub-Delivery``: the delivery id;
* ``X-Meterhub-Timestamp``: when this attempt was signed [s since the epoch, integer];
* ``X-Meterhub-Signature``: ``sha256=`` + hex HMAC-SHA256 (RFC 2104) keyed with the webhook's secret over
  ``<timestamp>.<body bytes>`` — as Stripe signs (``t.payload``) and GitHub names (``sha256=``). A receiver
  recomputes it over the raw body, compares in constant time and refuses timestamps older than a few
  minutes (replays). Without a secret no signature header is sent.

Answers: 2xx delivered; 4xx other than 408/429 a refusal (kept, health DOWN with the answer, tried again
every 60 s); anything else — 5xx, 408, 429, timeouts, connection errors — retried after a capped exponential
backoff (1, 2, 4 … 60 s, ±20 % jitter; health DEGRADED).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import meterhub
from meterhub.alarms.model import AlarmEvent
from meterhub.alarms.smtp import failure_health, idle
from meterhub.config.notify import NotificationsConfig, WebhookSettings
from meterhub.model.health import Health, HealthState
from meterhub.storage.outbox import Message, Outbox, OutboxError, StoredMessage

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookChannel", "outbox_path", "sign", "webhook_body"]

log = logging.getLogger("meterhub.notify")

SIGNATURE_HEADER = "X-Meterhub-Signature"
TIMESTAMP_HEADER = "X-Meterhub-Timestamp"
BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0
_RETRYABLE_4XX = (408, 429)
ANSWER_SHOWN = 200


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``b"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook_body(row: StoredMessage, hook_id: str, site: str) -> bytes:
    """The JSON body of one outbox row: the event's fields, ``site`` and ``delivery``."""
    doc = json.loads(row.payload)
    doc["site"] = site
    doc["delivery"] = f"{hook_id}:{row.id}"
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def outbox_path(data_dir: Path, hook_id: str) -> Path:
    """``DATA/outbox-notify-webhook-<id>.sqlite``."""
    return Path(data_dir) / f"outbox-notify-webhook-{hook_id}.sqlite"


class _Refused(Exception):
    """The receiver refused the event for good (4xx other than 408/429)."""


class WebhookChannel:
    """One webhook (see the module docstring).

    cfg : the notifications section (default kinds); hook : this webhook's settings.
    outbox : its outbox; site : the site's name; secret : the HMAC key (None: unsigned).
    error : why it cannot deliver at all (a secret that cannot be read): health DOWN, rows kept.
    """

    def __init__(
        self,
        cfg: NotificationsConfig,
        hook: WebhookSettings,
        outbox: Outbox,
        *,
        site: str,
        secret: str | None,
        error: str | None = None,
        backoff: tuple[float, float] = (BACKOFF_MIN, BACKOFF_MAX),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hook = hook
        self.outbox = outbox
        self.site = site
        parts = urlsplit(hook.url)
        self.endpoint = f"{parts.scheme}://{parts.netloc}{parts.path}"
        self._secret = secret
        self._kinds = {k.value for k in (hook.kinds or cfg.kinds)}
        self._severities = {s.value for s in hook.severities}
        self._backoff_min, self._backoff_max = backoff
        self._clock = clock
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()  # set by halt(): ends a backoff wait at once
        self.stopping = False
        self._failures = 0
        self._context: ssl.SSLContext | None = None
        self.error = error
        if parts.scheme == "https" and error is None:
            try:
                self._context = ssl.create_default_context(cafile=hook.ca_file)
            except (OSError, ssl.SSLError) as exc:
                self.error = f"the CA file {hook.ca_file} cannot be used: {exc}"
        self.refused: str | None = None
        self.last_error: str | None = None
        self.events = 0
        self.sent = 0
        self.failures = 0
        self.last_sent: float | None = None

    @property
    def name(self) -> str:
        return f"notify webhook {self.hook.id}"

    def wants(self, event: AlarmEvent) -> bool:
        return event.kind.value in self._kinds and (
            not self._severities or event.severity.value in self._severities
        )

    def put(self, event: AlarmEvent) -> int:
        if not self.wants(event):
            return 0
        payload = json.dumps(event.as_dict(), separators=(",", ":")).encode()
        self.outbox.put([Message(topic="event", payload=payload)])
        self.events += 1
        self._wake.set()
        return 1

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled or :meth:`halt`."""
        while self.error is None and not self.stopping:
            self._wake.clear()  # before reading: an event queued from here on wakes the wait below
            try:
                rows = await asyncio.to_thread(self.outbox.peek, 0, 1)
            except OutboxError as exc:
                self.error = str(exc)
                log.error("%s: %s; delivery stopped", self.name, exc)
                return
            if not rows:
                await idle(self._wake, 1.0)
                continue
            wait = await self._send(rows[0])
            if wait > 0:
                self._stop.clear()
                await idle(self._stop, wait)

    def halt(self) -> None:
        """Stop after the POST in flight (the loop ends; what waits stays in the outbox)."""
        self.stopping = True
        self._wake.set()
        self._stop.set()

    async def _send(self, row: StoredMessage) -> float:
        body = webhook_body(row, self.hook.id, self.site)
        delivery = f"{self.hook.id}:{row.id}"
        try:
            status = await asyncio.to_thread(self._post, body, delivery, self._event_kind(row))
        except _Refused as exc:
            reason = f"{self.endpoint} refused delivery {delivery}: {exc}"
            if self.refused != reason:
                log.warning("%s: %s (kept; trying again every %g s)", self.name, reason, self._backoff_max)
            self.refused = self.last_error = reason
            self.failures += 1
            return self._backoff_max
        except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
            reason = f"cannot deliver to {self.endpoint}: {_reason(exc)}"
            self._failures += 1
            self.failures += 1
            if self.last_error != reason:
                log.warning(
                    "%s: %s (%d event(s) wait; retrying with backoff up to %g s)",
                    self.name,
                    reason,
                    self.outbox.stats().backlog,
                    self._backoff_max,
                )
            self.refused = None
            self.last_error = reason
            base = min(self._backoff_max, self._backoff_min * 2 ** min(self._failures - 1, 30))
            return float(min(self._backoff_max, max(self._backoff_min, base * random.uniform(0.8, 1.2))))
        try:
            await asyncio.to_thread(self.outbox.ack, [row.id])
        except OutboxError as exc:
            self.error = str(exc)
            log.error("%s: %s; delivery stopped", self.name, exc)
            return 0.0
        if self.last_error is not None:
            log.info(
                "%s: delivering to %s again (HTTP %d; was: %s)",
                self.name,
                self.endpoint,
                status,
                self.last_error,
            )
        self._failures = 0
        self.refused = self.last_error = None
        self.sent += 1
        self.last_sent = self._clock()
        return 0.0

    @staticmethod
    def _event_kind(row: StoredMessage) -> str:
        try:
            return str(json.loads(row.payload).get("kind", ""))
        except ValueError:
            return ""

    def _post(self, body: bytes, delivery: str, kind: str) -> int:
        ts = int(self._clock())
        headers = dict(self.hook.headers)
        headers.update(
            {
                "Content-Type": "application/json",
                "User-Agent": f"meterhub/{meterhub.__version__}",
                "X-Meterhub-Event": kind,
                "X-Meterhub-Delivery": delivery,
                TIMESTAMP_HEADER: str(ts),
            }
        )
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, ts, body)
        request = urllib.request.Request(self.hook.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.hook.timeout, context=self._context) as resp:
                status = int(resp.status)
                resp.read(64 * 1024)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
            try:
                answer = exc.read(4096).decode("utf-8", "replace")
            except OSError:
                answer = ""
            finally:
                exc.close()
            text = " ".join(answer.split())[:ANSWER_SHOWN] or "(no answer body)"
            if 400 <= status < 500 and status not in _RETRYABLE_4XX:
                raise _Refused(f"HTTP {status} {exc.reason}: {text}") from None
            raise OSError(f"HTTP {status} {exc.reason}: {text}") from None
        if not 200 <= status < 300:
            raise OSError(f"HTTP {status}")
        return status

    def health(self) -> Health:
        stats = self.outbox.stats()
        counters = {
            "queued": self.events,
            "sent": self.sent,
            "failures": self.failures,
            "backlog": stats.backlog,
            "dropped": stats.dropped,
        }
        where = f"{self.name} ({self.endpoint})"
        failing = failure_health(where, counters, self.error, self.refused, self.last_error)
        if failing is not None:
            return failing
        if stats.dropped and self.outbox.last_drop_warning:
            return Health(HealthState.DEGRADED, self.outbox.last_drop_warning, counters)
        return Health(
            HealthState.OK, f"{where}: {self.sent} event(s) sent, {stats.backlog} waiting", counters
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        inner = exc.reason
        return (
            f"connection failed: {inner.strerror if isinstance(inner, OSError) and inner.strerror else inner}"
        )
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
