"""The MQTT side of a publish instance: a paho-mqtt v2 client that drains the outbox to the broker.

:class:`MqttLink` runs two threads of its own, so the event loop never waits for the network: paho's
network loop (``loop_start``: connects, reconnects with a capped backoff of 1, 2, 4 … 30 s, sends the
last will) and a *drainer* that hands the outbox's oldest messages to paho in id order, at most
``window`` unacknowledged at a time (fewer if the broker's MQTT v5 Receive Maximum says so), and deletes a message from the outbox only when paho reports it
published (``on_publish``: the broker's PUBACK for QoS 1, the socket write for QoS 0), mapping paho's
``mid`` back to the outbox id.

Order and duplicates: one connection carries the messages in id order. After a lost connection paho
sends its unacknowledged QoS 1 messages again, in order, before any newer one; after a restart the outbox
sends again everything that was never acknowledged, oldest first. A receiver can therefore see a message
twice, always with the same message id — the outbox id, carried as the MQTT v5 user property
``message-id`` (and, for meterhub-json, the payload's ``key``) — and never out of order once duplicates
are removed.
"""

from __future__ import annotations

import collections
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from meterhub.config.publish import PublishInstance
from meterhub.config.secrets import SecretError, read_secret
from meterhub.storage.outbox import Outbox, OutboxError, StoredMessage, wait_drained

__all__ = [
    "CONNECTING",
    "MESSAGE_ID_PROPERTY",
    "LinkState",
    "MessageIdProperty",
    "MqttLink",
    "PublishCredentialsError",
    "read_password",
]

log = logging.getLogger("meterhub.publish")

#: The MQTT v5 user property that carries a message's outbox id.
MESSAGE_ID_PROPERTY = "message-id"
#: The drainer deletes acknowledged messages at least this often [s] (more often when many arrive).
SETTLE_TICK = 0.05
#: Acknowledged messages deleted in one transaction at most [count]: one window's worth.
DELETE_BATCH = 2000
#: Messages read from the outbox at a time [count].
READ_AHEAD = 500
#: ``last_error`` of a link whose first attempt since start is under way.
CONNECTING = "connecting"
#: Reconnect backoff of the client: first and largest wait [s].
BACKOFF_MIN, BACKOFF_MAX = 1, 30


class MessageIdProperty(Properties):
    """The PUBLISH properties of one message: only the user property ``message-id`` = the outbox id.

    paho's generic :class:`Properties` validates every attribute on assignment and packs on each send,
    which halved the publish rate in ``bench/publish.py``; this one packs once (MQTT v5 §2.2.2: variable
    byte integer length, then identifier 0x26 and a UTF-8 string pair) and is what paho sends as is."""

    message_id: int
    _packed: bytes

    def __init__(self, message_id: int) -> None:  # no super().__init__: nothing else is ever set
        key = MESSAGE_ID_PROPERTY.encode()
        value = str(message_id).encode()
        body = b"\x26" + len(key).to_bytes(2, "big") + key + len(value).to_bytes(2, "big") + value
        # Properties.__setattr__ accepts only MQTT property names: set ours past it.
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        object.__setattr__(self, "message_id", message_id)
        object.__setattr__(self, "_packed", bytes([len(body)]) + body)  # len(body) < 128: one length byte

    def pack(self) -> bytes:
        return self._packed

    def __str__(self) -> str:
        return f"[UserProperty: [('{MESSAGE_ID_PROPERTY}', '{self.message_id}')]]"


class _Client(paho.Client):
    """paho's client, remembering why the last connection attempt failed.

    paho's ``on_connect_fail`` callback gets no exception, and its network loop swallows it; without it
    the health could only say "cannot connect". ``_create_socket`` (TCP connect and TLS handshake) is
    where a refused port, an unknown host or ``certificate verify failed`` is raised."""

    connect_error: str | None = None

    def _create_socket(self) -> Any:
        try:
            sock = super()._create_socket()
        except ssl.SSLCertVerificationError as exc:
            self.connect_error = f"TLS: certificate verify failed: {exc.verify_message}"
            raise
        except (OSError, ValueError) as exc:  # ssl.SSLError and ssl.CertificateError are among these
            self.connect_error = f"{type(exc).__name__}: {exc}" if isinstance(exc, ssl.SSLError) else str(exc)
            raise
        self.connect_error = None
        return sock

    def set_inflight_limit(self, limit: int) -> None:
        """paho's limit of unacknowledged QoS 1 messages (0: none). paho's public setter refuses a change
        on an established connection, and the broker's Receive Maximum is known only from its CONNACK;
        this is called from ``on_connect``, before paho sends anything on the new connection."""
        self._max_inflight_messages = limit

    def queue_beyond(self, limit: int) -> None:
        """After a reconnect, leave at most ``limit`` unacknowledged QoS 1 messages to be sent at once and
        queue the others, in order; paho sends them as PUBACKs free room (its inflight limit).

        paho 2.2's ``_messages_reconnect_reset_out`` marks every unacknowledged message for sending
        whatever its inflight limit (its loop never counts), which would pass the broker's Receive
        Maximum (MQTT v5 §3.3.4). Called from ``on_connect``, which paho runs before it resends."""
        with self._out_message_mutex:
            n = 0
            for m in self._out_messages.values():
                if m.qos == 1 and m.state == paho.mqtt_ms_publish:
                    n += 1
                    if n > limit:
                        m.state = paho.mqtt_ms_queued


class PublishCredentialsError(Exception):
    """The password of an instance cannot be read (names the variable or file, never the value)."""


def read_password(inst: PublishInstance, environ: dict[str, str] | None = None) -> str | None:
    """The instance's password from ``password_env`` or ``password_file`` (trailing newline removed)."""
    try:
        return read_secret(
            f"publish {inst.id}", "password", inst.password_env, inst.password_file, environ=environ
        )
    except SecretError as exc:
        raise PublishCredentialsError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class LinkState:
    """connected; last_publish [s since the epoch] of the last acknowledged message or None; sent and
    acknowledged [messages since start]; last_error: the last connection problem, None when connected;
    connecting: not connected yet, and no attempt has failed since start (MQTT: the first connection
    is being made; HTTP: no POST was answered yet)."""

    connected: bool
    last_publish: float | None
    sent: int
    acked: int
    last_error: str | None
    connecting: bool = False

    @classmethod
    def of(
        cls, connected: bool, last_publish: float | None, sent: int, acked: int, last_error: str | None
    ) -> LinkState:
        """A link's state; connecting while not connected and nothing has failed since start."""
        connecting = not connected and last_error == CONNECTING
        return cls(connected, last_publish, sent, acked, last_error, connecting=connecting)


class MqttLink:
    """Drain one outbox to one broker (see the module docstring).

    inst : the publish instance (broker, TLS, credentials, client id, QoS of the status topic).
    outbox : where the messages wait.
    availability_topic : gets ``online`` (retained) on connect and ``offline`` as the last will.
    client_id : MQTT client id.
    password : from :func:`read_password`.
    window : messages handed to paho and not yet acknowledged, at most [count].
    clock : time source [s since the epoch].
    """

    def __init__(
        self,
        inst: PublishInstance,
        outbox: Outbox,
        *,
        availability_topic: str,
        client_id: str,
        password: str | None,
        window: int = 2000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inst = inst
        self.outbox = outbox
        self.availability_topic = availability_topic
        self.window = window
        self._clock = clock
        addr = inst.address
        self.endpoint = f"{addr.scheme}://{addr.host}:{addr.port}"
        # MQTT 3.1.1 (a broker without MQTT 5): paho leaves out the message-id property and the broker
        # names no Receive Maximum (_on_connect then takes 65 535)
        protocol = (
            MQTTProtocolVersion.MQTTv311 if inst.mqtt_version == "3.1.1" else MQTTProtocolVersion.MQTTv5
        )
        client = _Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        if inst.username is not None:
            client.username_pw_set(inst.username, password)
        if addr.scheme == "mqtts":
            tls = inst.tls
            try:
                client.tls_set(
                    ca_certs=tls.ca_file if tls else None,
                    certfile=tls.cert_file if tls else None,
                    keyfile=tls.key_file if tls else None,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise PublishCredentialsError(f"publish {inst.id}: TLS files cannot be used: {exc}") from None
        client.will_set(availability_topic, b"offline", qos=1, retain=True)
        client.reconnect_delay_set(BACKOFF_MIN, BACKOFF_MAX)
        # Set per connection from the broker's Receive Maximum (_on_connect).
        client.max_inflight_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_connect_fail = self._on_connect_fail
        self._client = client
        self._connected = False
        self._acks: collections.deque[int] = collections.deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._drainer: threading.Thread | None = None
        self._inflight: dict[int, int] = {}  # paho mid → outbox id (drainer thread only)
        self._ahead: collections.deque[StoredMessage] = collections.deque()  # read, not yet sent
        self._fetched = 0  # highest outbox id read into _ahead
        self._done: list[int] = []  # acknowledged, not yet deleted
        self._last_delete = time.monotonic()
        self._limit = window  # messages handed to paho and not yet acknowledged, at most
        self._acks_unseen = 0  # acknowledgements since the drainer was last woken for them
        self.sent = 0
        self.acked = 0
        self.last_publish: float | None = None
        self.last_error: str | None = CONNECTING
        self.failed: str | None = None  # the drainer's fatal error (the outbox cannot be used)

    # -- paho callbacks (paho's network thread) --------------------------------------------------
    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            error = f"broker refused the connection: {reason}"
            if self.last_error != error:  # once per cause, not on every retry
                log.warning("publish %s: %s refused the connection: %s", self.inst.id, self.endpoint, reason)
            self.last_error = error
            return
        was = self.last_error
        # MQTT v5 §3.3.4: never more unacknowledged QoS 1 messages than the broker's Receive Maximum
        # (65 535 when the broker names none). The drainer hands paho up to `window` messages; paho sends
        # at most Receive Maximum of them and the next one on each PUBACK, in its own thread — a hop to
        # the drainer per message halved the rate (bench/publish.py). paho's limit costs a scan of the
        # unacknowledged messages on every PUBACK, so it is off when the window is within the maximum.
        receive_max = getattr(props, "ReceiveMaximum", None) if props is not None else None
        limit = int(receive_max) if receive_max else 65535
        if isinstance(client, _Client):
            client.set_inflight_limit(0 if limit >= self.window else limit)
            client.queue_beyond(limit)
        self._connected = True
        self.last_error = None
        client.publish(self.availability_topic, b"online", qos=1, retain=True)
        log.info(
            "publish %s: connected to %s%s", self.inst.id, self.endpoint, f" (was: {was})" if was else ""
        )
        self._wake.set()

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        cause = getattr(client, "connect_error", None)
        reason = (
            f"cannot connect to {self.endpoint}{f': {cause}' if cause else ''} "
            f"(retrying with backoff up to {BACKOFF_MAX} s)"
        )
        if self.last_error != reason:
            log.warning("publish %s: %s", self.inst.id, reason)
        self.last_error = reason

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        was_connected, self._connected = self._connected, False
        if self._stopping.is_set():
            return
        if not was_connected and self.last_error and self.last_error.startswith("broker refused"):
            return  # the refusal says more than the disconnect that follows it
        self.last_error = f"connection lost ({reason})"
        log.warning("publish %s: lost the connection to %s: %s", self.inst.id, self.endpoint, reason)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._acks.append(mid)
        # The drainer runs every SETTLE_TICK anyway; waking it for each PUBACK costs a thread switch per
        # message. Wake it once a quarter of the window came back, so paho's queue never runs dry.
        self._acks_unseen += 1
        if self._acks_unseen >= max(1, self.window // 4):
            self._acks_unseen = 0
            self._wake.set()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (a broker that is away is retried with backoff) and start draining."""
        self.outbox.on_commit = self.wake  # staged messages are sent as soon as they are committed
        addr = self.inst.address
        try:
            self._client.connect_async(addr.host, addr.port, keepalive=30)
        except (OSError, ValueError) as exc:  # pragma: no cover - connect_async only stores the target
            self.last_error = str(exc)
        self._client.loop_start()
        self._drainer = threading.Thread(target=self._drain, name=f"publish-{self.inst.id}", daemon=True)
        self._drainer.start()

    def wake(self) -> None:
        """New messages are in the outbox."""
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait until every message in the outbox was acknowledged (or ``timeout`` [s]); True if so."""
        return wait_drained(self.outbox, lambda: self._connected, timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop draining and disconnect cleanly (``offline`` on the availability topic); what was not
        acknowledged stays in the outbox for the next start."""
        if self._connected:
            self.flush(timeout)
        self._stopping.set()
        self._wake.set()
        self.outbox.on_commit = None
        if self._drainer is not None:
            self._drainer.join(timeout=5)
        if self._connected:
            info = self._client.publish(self.availability_topic, b"offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False

    def state(self) -> LinkState:
        return LinkState.of(self._connected, self.last_publish, self.sent, self.acked, self.last_error)

    # -- the drainer thread ----------------------------------------------------------------------
    def _drain(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.wait(SETTLE_TICK)
                self._wake.clear()
                self._settle()
                if self._connected:
                    self._send()
            self._settle(force=True)
        except OutboxError as exc:
            self.failed = str(exc)
            log.error("publish %s: %s; delivery stopped", self.inst.id, exc)

    def _collect(self) -> None:
        """Turn paho's acknowledgements into outbox ids to delete (frees room in the window)."""
        while self._acks:
            oid = self._inflight.pop(self._acks.popleft(), None)
            if oid is not None:
                self._done.append(oid)

    def _settle(self, *, force: bool = False) -> None:
        """Delete acknowledged messages: in one transaction per DELETE_BATCH or SETTLE_TICK."""
        self._collect()
        if not self._done:
            return
        now = time.monotonic()
        if force or len(self._done) >= DELETE_BATCH or now - self._last_delete >= SETTLE_TICK:
            self.outbox.ack(self._done)
            self.acked += len(self._done)
            self._done = []
            self._last_delete = now
            self.last_publish = self._clock()

    def _send(self) -> None:
        """Hand messages to paho, oldest first, while fewer than the window are unacknowledged."""
        while self._connected and not self._stopping.is_set():
            if len(self._inflight) >= self._limit:
                self._collect()
                if len(self._inflight) >= self._limit:
                    return
            if not self._ahead:
                batch = self.outbox.peek(self._fetched, limit=READ_AHEAD)
                if not batch:
                    return
                self._ahead.extend(batch)
                self._fetched = batch[-1].id
            m = self._ahead[0]
            info = self._client.publish(
                m.topic, m.payload, qos=m.qos, retain=m.retain, properties=MessageIdProperty(m.id)
            )
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and (
                m.qos == 0 or info.rc != MQTTErrorCode.MQTT_ERR_NO_CONN
            ):
                return  # not queued by paho (QoS 0 while disconnected, or an error): again later
            # A QoS 1 message refused with NO_CONN is queued by paho and sent on reconnect, in order.
            self._ahead.popleft()
            self._inflight[info.mid] = m.id
            self.sent += 1
