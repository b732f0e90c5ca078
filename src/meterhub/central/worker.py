"""A central worker: MQTT v5 shared subscription in, batched idempotent PostgreSQL writes out.

Every worker of the fleet subscribes to the same shared subscriptions
(``$share/<group>/<root>/+/circuits/+`` and the gateways' diagnostic state and status, MQTT v5 §4.8.2),
so the broker hands each message to one of them: adding a worker adds capacity, and a worker that stops
leaves the others the whole stream.

At-least-once, end to end:

* the client connects with a fixed client id (``worker_id``), Clean Start 0 and a Session Expiry of a
  week, so the broker keeps the worker's subscriptions and queues its messages while it is away
  (a restart after ``kill -9`` receives them);
* acknowledgement is manual (paho ``manual_ack``): a message is PUBACKed only after the transaction that
  stored it committed, in the order received (MQTT v5 §4.6). A worker killed before its commit leaves
  the messages unacknowledged; the broker sends them again; the writes are idempotent
  (:mod:`meterhub.central.store`), so nothing is lost and nothing is stored twice;
* a message received on an earlier connection is never acknowledged on a later one (packet ids are
  per connection): the broker redelivers it and the idempotent write absorbs it.

A refused payload (not meterhub-json/1, or a site that disagrees with its topic) is acknowledged — it
would be refused again — counted on its topic's site and logged once per site with a sample.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from meterhub.central.config import CentralConfig, protocol_problem
from meterhub.central.payload import (
    PayloadError,
    TopicKind,
    parse_circuit_message,
    parse_gateway_state,
    parse_topic,
)
from meterhub.central.store import Batch, CentralStore, CentralStoreError
from meterhub.config.publish import parse_broker
from meterhub.config.secrets import SecretError, read_secret
from meterhub.errors import ConfigurationError

__all__ = ["CentralWorker", "WorkerStats", "subscriptions"]

log = logging.getLogger("meterhub.central")

#: Session Expiry Interval [s]: how long the broker keeps a stopped worker's session and queue.
SESSION_EXPIRY = 7 * 86400
#: Lag samples kept for the p50/p99 of the status [count].
LAG_WINDOW = 10_000
#: Pause before writing again after the database failed [s].
RETRY_PAUSE = 1.0
#: A payload whose interval ends further in the future than this is refused [s].
FUTURE_TOLERANCE = 86400


def subscriptions(cfg: CentralConfig) -> list[str]:
    """The shared subscriptions of every worker."""
    share = f"$share/{cfg.share_group}/" if cfg.share_group else ""
    base = f"{share}{cfg.topic_root}/+"
    return [f"{base}/circuits/+", f"{base}/ha/_gateway/state", f"{base}/status"]


@dataclass
class _Inbound:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float  # [Unix s]
    generation: int  # the connection it came on


@dataclass
class WorkerStats:
    """Counters of one worker since it started (``GET /api/v1/central``)."""

    connected: bool = False
    received: int = 0  # messages from the broker
    stored_messages: int = 0  # distinct messages first stored by this worker
    duplicates: int = 0  # messages already stored (redelivery, replay)
    points: int = 0  # points written (new ones)
    refused: int = 0
    batches: int = 0
    db_errors: int = 0
    last_error: str | None = None
    last_commit_s: float = 0.0  # duration of the last transaction [s]
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_WINDOW))
    """commit time − interval end of each new message [s]."""

    def as_dict(self) -> dict[str, Any]:
        lags = sorted(self.lags)

        def pct(p: float) -> float | None:
            return round(lags[min(len(lags) - 1, int(p * len(lags)))], 3) if lags else None

        return {
            "connected": self.connected,
            "received": self.received,
            "stored_messages": self.stored_messages,
            "duplicates": self.duplicates,
            "points": self.points,
            "refused": self.refused,
            "batches": self.batches,
            "db_errors": self.db_errors,
            "last_error": self.last_error,
            "last_commit_s": round(self.last_commit_s, 4),
            "lag_p50_s": pct(0.5),
            "lag_p99_s": pct(0.99),
        }


class CentralWorker:
    """One worker: a paho network thread and a writer thread (:meth:`start`, :meth:`stop`)."""

    def __init__(self, cfg: CentralConfig, *, store: CentralStore | None = None) -> None:
        self.cfg = cfg
        self.store = store or CentralStore(cfg.dsn)
        self.stats = WorkerStats()
        self._inbox: queue.Queue[_Inbound] = queue.Queue()
        self._stop = threading.Event()
        self._generation = 0
        self._ack_lock = threading.Lock()
        self._logged_refusals: set[str] = set()
        self._writer = threading.Thread(target=self._write_loop, name=f"central-{cfg.worker_id}", daemon=True)
        problem = protocol_problem(cfg)
        if problem:
            raise ConfigurationError(f"central.yaml share_group: {problem}")
        self._v5 = cfg.mqtt_version == "5"
        password = None
        if cfg.password_env:
            try:
                password = read_secret("central", "password", cfg.password_env, None)
            except SecretError as exc:
                raise ConfigurationError(f"central.yaml password_env: {exc}") from None
        if self._v5:
            client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=cfg.worker_id,
                protocol=MQTTProtocolVersion.MQTTv5,
                manual_ack=True,
            )
        else:
            # MQTT 3.1.1 §3.1.2.4: Clean Session 0 keeps the subscriptions and queues the QoS 1 messages
            # of a stopped worker (no expiry to set: the broker keeps the session until it is cleaned).
            client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=cfg.worker_id,
                protocol=MQTTProtocolVersion.MQTTv311,
                clean_session=False,
                manual_ack=True,
            )
        if cfg.username:
            client.username_pw_set(cfg.username, password)
        client.reconnect_delay_set(1, 5)  # back soon after a broker restart
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect to the database (the schema is created), then to the broker, and start writing."""
        self.store.connect()
        addr = parse_broker(self.cfg.mqtt)
        if self._v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY
            props.ReceiveMaximum = self.cfg.receive_maximum
            self.client.connect_async(addr.host, addr.port, keepalive=30, clean_start=False, properties=props)
        else:  # 3.1.1: the broker's own bound on unacknowledged messages applies (RabbitMQ: mqtt.prefetch)
            self.client.connect_async(addr.host, addr.port, keepalive=30)
        self.client.loop_start()
        self._writer.start()
        log.info(
            "central worker %s: %s (MQTT %s) → %s",
            self.cfg.worker_id,
            self.cfg.mqtt,
            self.cfg.mqtt_version,
            self.store.layout,
        )

    def stop(self) -> None:
        """Write and acknowledge what was received, then disconnect (the session stays on the broker)."""
        self._stop.set()
        if self._writer.is_alive():
            self._writer.join(30)
        self.client.disconnect()
        self.client.loop_stop()
        self.store.close()

    # -- paho callbacks (network thread) -----------------------------------------------------------
    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self.stats.last_error = f"broker {self.cfg.mqtt} refused the connection: {rc}"
            log.warning("central worker %s: %s", self.cfg.worker_id, self.stats.last_error)
            return
        with self._ack_lock:
            self._generation += 1
        self.stats.connected = True
        if self._v5:
            opts = SubscribeOptions(qos=1)
            client.subscribe([(t, opts) for t in subscriptions(self.cfg)])
        else:
            client.subscribe([(t, 1) for t in subscriptions(self.cfg)])

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.stats.connected = False
        if not self._stop.is_set():
            log.warning("central worker %s: disconnected from %s (%s)", self.cfg.worker_id, self.cfg.mqtt, rc)

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        self.stats.received += 1
        self._inbox.put(
            _Inbound(msg.mid, msg.qos, msg.topic, bytes(msg.payload), time.time(), self._generation)
        )

    # -- writer thread ----------------------------------------------------------------------------
    def _next_batch(self) -> list[_Inbound]:
        try:
            first = self._inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        items = [first]
        deadline = time.monotonic() + self.cfg.batch_delay
        while len(items) < self.cfg.batch_messages:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                items.append(self._inbox.get(timeout=left))
            except queue.Empty:
                break
        return items

    def _write_loop(self) -> None:
        while True:
            items = self._next_batch()
            if not items:
                if self._stop.is_set():
                    return
                continue
            batch = self._batch_of(items)
            while True:
                t0 = time.monotonic()
                try:
                    res = self.store.write(batch)
                    break
                except Exception as exc:  # the database, or a bug: the batch stays unacknowledged
                    self.stats.db_errors += 1
                    if not isinstance(exc, CentralStoreError):
                        log.error("central worker %s: cannot write a batch", self.cfg.worker_id, exc_info=exc)
                        exc = CentralStoreError(f"internal error: {type(exc).__name__}: {exc}")
                    if self.stats.last_error != str(exc):
                        log.warning(
                            "central worker %s: %s; retrying every %.0f s",
                            self.cfg.worker_id,
                            exc,
                            RETRY_PAUSE,
                        )
                    self.stats.last_error = str(exc)
                    if self._stop.wait(RETRY_PAUSE):
                        return  # stopping: leave them unacknowledged; the broker sends them again
            now = time.time()
            self.stats.last_commit_s = time.monotonic() - t0
            self.stats.batches += 1
            self.stats.stored_messages += res.new_messages
            self.stats.duplicates += res.messages - res.new_messages
            self.stats.points += res.new_points
            self.stats.last_error = None
            for m in batch.messages:
                self.stats.lags.append(now - m.ts)
            self._ack(items)

    def _ack(self, items: list[_Inbound]) -> None:
        with self._ack_lock:
            generation = self._generation
            for it in items:
                if it.qos > 0 and it.generation == generation:
                    self.client.ack(it.mid, it.qos)

    def _batch_of(self, items: list[_Inbound]) -> Batch:
        batch = Batch()
        horizon = time.time() + FUTURE_TOLERANCE
        for it in items:
            parsed = parse_topic(it.topic, self.cfg.topic_root)
            if parsed is None:
                continue
            kind, site, circuit = parsed
            try:
                if kind is TopicKind.CIRCUIT:
                    assert circuit is not None  # parse_topic gives circuits a circuit
                    msg = parse_circuit_message(it.payload, site, circuit)
                    if msg.ts > horizon:
                        raise PayloadError(f"ts {msg.ts} is more than a day in the future")
                    batch.messages.append(msg)
                elif kind is TopicKind.GATEWAY_STATE:
                    state = parse_gateway_state(it.payload, site)
                    if state is not None:
                        batch.states.append(state)
                elif it.payload in (b"online", b"offline"):
                    batch.statuses[site] = it.payload.decode()
            except PayloadError as exc:
                self.stats.refused += 1
                n, _ = batch.refused.get(site, (0, ""))
                reason = f"{it.topic}: {exc}".replace("\x00", "\\0")
                batch.refused[site] = (n + 1, reason[:500])
                if site not in self._logged_refusals:
                    self._logged_refusals.add(site)
                    log.warning(
                        "central: refused a message of site %r (%s); sample: %r — further refusals of this "
                        "site are only counted (GET /api/v1/sites)",
                        site,
                        reason,
                        it.payload[:200],
                    )
        return batch
