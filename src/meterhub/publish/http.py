"""The HTTP side of a publish instance (``transport: http``): POST the outbox in batches to a URL.

:class:`HttpLink` runs one thread of its own (the standard library's ``urllib``, so no new runtime
dependency), which reads the oldest ``batch`` messages of the outbox, sends them as one JSON array of
meterhub-json messages, gzip-compressed (``Content-Encoding: gzip``), with

* ``Authorization: Bearer <token>`` (from ``token_env`` or ``token_file``; never logged or shown),
* ``Idempotency-Key: <instance>:<first id>-<last id>`` — the outbox ids the batch holds, so a receiver
  that saw the batch already can answer it without storing it twice,

and deletes the batch from the outbox only when the server answered 2xx. The link counts as connected
once a POST was answered 2xx, until one fails, and again once one succeeds (HTTP has no connection to
watch); before the first answer it is "connecting" — nothing is known about the server yet. Then:

* **4xx other than 408 and 429** (a wrong token, a URL that is not a receiver, a batch the server refuses):
  the batch stays, the server's answer is logged once (a WARNING naming the instance, the status and the
  start of the answer) and the health is DOWN with it — a misconfigured token must not silently drop
  data. The request is repeated every :data:`BACKOFF_MAX` seconds, so fixing the server side resumes delivery.
* **413** (the body is over the server's limit): batches are halved (down to one message) and sent again
  at once; a single message answered 413 is a refusal as above.
* **5xx, 408, 429, timeouts and connection errors**: the batch stays and is sent again after a capped
  exponential backoff (1, 2, 4 … 60 s, ±20 % jitter); the health is DEGRADED with the backlog.

Order and duplicates: batches leave oldest first and one at a time. A batch whose answer was lost (a
timeout after the server stored it) is sent again with the same ids, hence the same Idempotency-Key as long
as the outbox holds the same messages; each meterhub-json message also carries its ``key``
(``<site>/<circuit>/<ts>``), which the receiver deduplicates by whatever the batch boundaries.
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import random
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

import meterhub
from meterhub.config.publish import PublishInstance
from meterhub.config.secrets import SecretError, read_secret
from meterhub.publish.mqtt import CONNECTING, LinkState, PublishCredentialsError
from meterhub.storage.outbox import Outbox, OutboxError, StoredMessage, wait_drained

__all__ = ["BACKOFF_MAX", "BACKOFF_MIN", "HttpLink", "batch_body", "idempotency_key", "read_token"]

log = logging.getLogger("meterhub.publish")

#: Backoff after a failed POST: first and largest wait [s].
BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0
#: The answer of a refusing server kept for the log and the health message [characters].
ANSWER_SHOWN = 300
#: Status codes of the 4xx range that mean "try again later", not "wrong request".
_RETRYABLE_4XX = (408, 429)


def read_token(inst: PublishInstance, environ: dict[str, str] | None = None) -> str | None:
    """The instance's bearer token from ``token_env`` or ``token_file`` (surrounding blanks removed).

    Raises :class:`~meterhub.publish.mqtt.PublishCredentialsError` naming the variable or file (never
    the value) when it is missing, unreadable or empty."""
    try:
        return read_secret(
            f"publish {inst.id}", "token", inst.token_env, inst.token_file, environ=environ, blank_ok=False
        )
    except SecretError as exc:
        raise PublishCredentialsError(str(exc)) from None


def idempotency_key(instance: str, batch: list[StoredMessage]) -> str:
    """``<instance>:<first id>-<last id>`` of a non-empty batch."""
    return f"{instance}:{batch[0].id}-{batch[-1].id}"


def batch_body(batch: list[StoredMessage]) -> bytes:
    """The gzip-compressed JSON array of the batch's payloads (each one meterhub-json message)."""
    return gzip.compress(b"[" + b",".join(m.payload for m in batch) + b"]", compresslevel=6)


class _Refused(Exception):
    """The server refused the batch for good (4xx other than 408/429)."""


class _TooLarge(_Refused):
    """413: the batch is over the server's body limit."""


class HttpLink:
    """Drain one outbox to one URL (see the module docstring).

    inst : the publish instance (url, TLS, batch, timeout).
    outbox : where the messages wait.
    token : from :func:`read_token` (None: no Authorization header).
    backoff : first and largest wait after a failure [s] (tests shorten them).
    clock : time source [s since the epoch].

    Offers what :class:`~meterhub.publish.mqtt.MqttLink` offers the sink: ``start``, ``wake``, ``flush``,
    ``stop``, ``state``, ``endpoint`` and ``failed`` (the reason delivery is refused or stopped).
    """

    def __init__(
        self,
        inst: PublishInstance,
        outbox: Outbox,
        *,
        token: str | None,
        backoff: tuple[float, float] = (BACKOFF_MIN, BACKOFF_MAX),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if inst.url is None:
            raise ValueError(f"publish {inst.id}: an HTTP instance needs a url")
        self.inst = inst
        self.outbox = outbox
        self.url = inst.url
        parts = urlsplit(inst.url)
        self.endpoint = f"{parts.scheme}://{parts.netloc}{parts.path}"
        self._token = token
        self._backoff_min, self._backoff_max = backoff
        self._clock = clock
        self._context: ssl.SSLContext | None = None
        if parts.scheme == "https":
            tls = inst.tls
            try:
                self._context = ssl.create_default_context(cafile=tls.ca_file if tls else None)
                if tls is not None and tls.cert_file is not None:
                    self._context.load_cert_chain(tls.cert_file, tls.key_file)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise PublishCredentialsError(f"publish {inst.id}: TLS files cannot be used: {exc}") from None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Connected once a POST was answered 2xx, until one fails; before the first answer the link is
        # "connecting" (last_error CONNECTING): nothing is known about the server yet.
        self._connected = False
        self._failures = 0
        self._batch = inst.batch  # halved when the server answers 413
        self.sent = 0
        self.acked = 0
        self.posts = 0
        self.last_publish: float | None = None
        self.last_error: str | None = CONNECTING
        self.failed: str | None = None  # a refusal (4xx) or an outbox that cannot be used: health DOWN

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self.outbox.on_commit = self.wake  # staged messages are sent as soon as they are committed
        self._thread = threading.Thread(target=self._run, name=f"publish-{self.inst.id}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New messages are in the outbox."""
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait until the outbox is empty (or ``timeout`` [s]); True if so."""
        return wait_drained(self.outbox, self._trying, timeout)

    def _trying(self) -> bool:
        """Connected, or the first POST is still to be answered (no failure yet)."""
        return self._connected or self.last_error == CONNECTING

    def stop(self, timeout: float = 2.0) -> None:
        """Stop sending; what was not acknowledged stays in the outbox for the next start."""
        if self._trying():
            self.flush(timeout)
        self._stopping.set()
        self._wake.set()
        self.outbox.on_commit = None
        if self._thread is not None:
            self._thread.join(timeout=self.inst.timeout + 1)
        self._connected = False

    def state(self) -> LinkState:
        return LinkState.of(self._connected, self.last_publish, self.sent, self.acked, self.last_error)

    # -- the sender thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                batch = self.outbox.peek(0, limit=self._batch)
                if not batch:
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
                delay = self._send(batch)
                if delay > 0:
                    self._stopping.wait(delay)
        except OutboxError as exc:
            self.failed = str(exc)
            log.error("publish %s: %s; delivery stopped", self.inst.id, exc)

    def _send(self, batch: list[StoredMessage]) -> float:
        """POST one batch; return how long to wait before the next attempt [s] (0: go on)."""
        key = idempotency_key(self.inst.id, batch)
        try:
            status, answer = self._post(batch_body(batch), key)
        except _TooLarge as exc:
            if len(batch) > 1:  # the server's body limit: halve the batches and go on at once
                self._batch = max(1, len(batch) // 2)
                log.warning(
                    "publish %s: %s: batch %s of %d messages is too large (%s); sending %d at a time",
                    self.inst.id,
                    self.endpoint,
                    key,
                    len(batch),
                    exc,
                    self._batch,
                )
                return 0.0
            reason = str(exc)
            if self.failed != reason:
                log.warning(
                    "publish %s: %s refused message %s as too large, kept: %s",
                    self.inst.id,
                    self.endpoint,
                    key,
                    reason,
                )
            self.failed = reason
            self.last_error = reason
            self._connected = False
            return self._backoff_max
        except _Refused as exc:
            reason = str(exc)
            if self.failed != reason:  # once per cause, not on every retry
                log.warning(
                    "publish %s: %s refused batch %s (%d message(s), kept): %s",
                    self.inst.id,
                    self.endpoint,
                    key,
                    len(batch),
                    reason,
                )
            self.failed = reason
            self.last_error = reason
            self._connected = False
            return self._backoff_max
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError is an OSError
            reason = _reason(exc)
            self._failures += 1
            wait = self._wait()
            if self.last_error != reason:
                log.warning(
                    "publish %s: cannot deliver to %s: %s (%d message(s) wait; retrying with backoff up to %g s)",
                    self.inst.id,
                    self.endpoint,
                    reason,
                    self.outbox.stats().backlog,
                    self._backoff_max,
                )
            self.last_error = reason
            self._connected = False
            return wait
        was = self.last_error
        self.outbox.ack(m.id for m in batch)
        self.posts += 1
        self.sent += len(batch)
        self.acked += len(batch)
        self.last_publish = self._clock()
        self._failures = 0
        self.failed = None
        self.last_error = None
        if not self._connected:
            log.info(
                "publish %s: delivering to %s (HTTP %d)%s",
                self.inst.id,
                self.endpoint,
                status,
                f" (was: {was})" if was else "",
            )
        self._connected = True
        log.debug("publish %s: batch %s: HTTP %d %s", self.inst.id, key, status, answer[:ANSWER_SHOWN])
        return 0.0

    def _wait(self) -> float:
        base = min(self._backoff_max, self._backoff_min * 2 ** min(self._failures - 1, 30))
        return float(min(self._backoff_max, max(self._backoff_min, base * random.uniform(0.8, 1.2))))

    def _post(self, body: bytes, key: str) -> tuple[int, str]:
        """Send one body; return (status, answer) for a 2xx, raise :class:`_Refused` for a refusal and
        OSError/URLError (or an HTTPError, which is both) for anything to try again."""
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Idempotency-Key": key,
            "User-Agent": f"meterhub/{meterhub.__version__}",
            "Accept": "application/json",
        }
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.inst.timeout, context=self._context) as resp:
                status = int(resp.status)
                answer = resp.read(64 * 1024).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
            try:
                answer = exc.read(64 * 1024).decode("utf-8", "replace")
            except OSError:
                answer = ""
            finally:
                exc.close()
            if status == 413:
                raise _TooLarge(f"HTTP 413 {exc.reason}: {_short(answer)}") from None
            if 400 <= status < 500 and status not in _RETRYABLE_4XX:
                raise _Refused(f"HTTP {status} {exc.reason}: {_short(answer)}") from None
            raise OSError(f"HTTP {status} {exc.reason}: {_short(answer)}") from None
        if not 200 <= status < 300:  # 1xx/3xx that urllib did not follow: not delivered
            raise OSError(f"HTTP {status}: {_short(answer)}")
        return status, answer


def _short(answer: str) -> str:
    """The server's answer for a log line: its ``detail`` if it is JSON with one, cut to a readable size."""
    text = answer.strip()
    try:
        doc = json.loads(text)
    except ValueError:
        pass
    else:
        if isinstance(doc, dict) and "detail" in doc:
            text = json.dumps(doc["detail"], ensure_ascii=False)
    text = " ".join(text.split())
    return text[:ANSWER_SHOWN] + ("…" if len(text) > ANSWER_SHOWN else "") if text else "(no answer body)"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        inner = exc.reason
        if isinstance(inner, ssl.SSLCertVerificationError):  # the same words as the MQTT link
            return f"connection failed: TLS: certificate verify failed: {inner.verify_message}"
        return (
            f"connection failed: {inner.strerror if isinstance(inner, OSError) and inner.strerror else inner}"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"connection failed: TLS: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
