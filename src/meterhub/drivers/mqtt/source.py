"""The MQTT ingest source: one broker connection (a ``kind: mqtt`` bus) for the devices on it.

paho-mqtt v2 runs its network loop in its own thread (``loop_start``: connect, reconnect with a capped
backoff of 1, 2, 4 … 30 s); its ``on_message`` hands each message to the event loop through a bounded
queue (``call_soon_threadsafe``), where :class:`MqttSource` decodes it with the device's
:class:`~meterhub.drivers.mqtt.decode.PayloadDecoder` and emits the readings. Subscriptions are QoS 1
on a persistent session (clean_session false, a stable client id), so the broker keeps what arrives
while the gateway is away.

A bad payload never stops the source: it is counted in the device's :class:`DeviceStatus` (``errors``,
``last_error``) and logged once per topic and reason with a sample of at most 200 characters. A device
is online while messages arrive: it goes offline after ``timeout`` (default 3 × ``interval``) without one.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from meterhub.config.mqtt import MqttDeviceSpec
from meterhub.config.schema import Bus, Device
from meterhub.config.secrets import SecretError, read_secret
from meterhub.drivers.base import DeviceStatus, Emit, Source, SourceContext, device_health
from meterhub.drivers.mqtt.decode import PayloadDecoder
from meterhub.model.health import Health, HealthState

__all__ = ["QUEUE_LIMIT", "SAMPLE_CHARS", "IngestCredentialsError", "MqttSource", "mqtt_sources"]

log = logging.getLogger("meterhub.drivers.mqtt")

#: Messages waiting for the event loop at most; more are dropped and counted [count].
QUEUE_LIMIT = 10_000
#: Characters of a bad payload shown in its log line at most.
SAMPLE_CHARS = 200
#: Reconnect backoff of the client: first and largest wait [s].
BACKOFF_MIN, BACKOFF_MAX = 1, 30
#: Keep-alive of the connection [s].
KEEPALIVE = 30


class IngestCredentialsError(Exception):
    """The bus's password or TLS files cannot be read (names the variable or file, never the value)."""


def _password(bus: Bus) -> str | None:
    try:
        return read_secret(f"mqtt bus {bus.id}", "password", bus.password_env, bus.password_file)
    except SecretError as exc:
        raise IngestCredentialsError(str(exc)) from None


def _sample(payload: bytes) -> str:
    text = payload[: SAMPLE_CHARS * 4].decode("utf-8", errors="replace")
    return text[:SAMPLE_CHARS] + ("…" if len(text) > SAMPLE_CHARS or len(payload) > SAMPLE_CHARS * 4 else "")


@dataclass
class _Subscribed:
    device: Device
    spec: MqttDeviceSpec
    decoder: PayloadDecoder
    status: DeviceStatus


class MqttSource(Source):
    """Subscribe to every device topic of one ``kind: mqtt`` bus and emit what the payloads hold.

    ctx : the bus, its devices (those with an ``mqtt:`` block and enabled), their statuses.
    clock : time source [Unix s] (receive time of messages without a timestamp of their own).
    """

    def __init__(self, ctx: SourceContext, *, clock: Callable[[], float] = time.time) -> None:
        self.bus = ctx.bus
        self.name = f"mqtt:{ctx.bus.id}"
        self._clock = clock
        self.endpoint = f"{ctx.bus.host}:{ctx.bus.mqtt_port}"
        self.client_id = ctx.bus.client_id or f"meterhub-ingest-{ctx.bus.id}"
        self.devices: list[_Subscribed] = []
        for d in ctx.devices:
            if not d.enabled or d.mqtt is None:
                continue
            status = ctx.status.get(d.id)
            if status is None:
                status = DeviceStatus(
                    d.id, d.name or d.id, f"mqtt:{d.mqtt.format}" if d.mqtt else "mqtt", ctx.bus.id
                )
                ctx.status[d.id] = status
            circuits = [c for c in ctx.config.circuits if c.device == d.id]
            self.devices.append(_Subscribed(d, d.mqtt, PayloadDecoder(d.id, d.mqtt, circuits), status))
        self.monitored = tuple(s.status for s in self.devices)
        self.connected = False
        self.last_error: str | None = "connecting"
        self.messages = 0  # received
        self.bad_payloads = 0  # with at least one problem
        self.dropped = 0  # queue full
        self.unmatched = 0  # matched no device's topic filter
        self._logged: set[tuple[str, str]] = set()  # (topic, reason) already logged
        self._client: paho.Client | None = None

    # -- paho callbacks (paho's network thread) --------------------------------------------------
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            error = f"broker {self.endpoint} refused the connection: {reason}"
            if self.last_error != error:
                log.warning("mqtt bus %s: %s", self.bus.id, error)
            self.last_error = error
            return
        topics = sorted({s.spec.topic for s in self.devices})
        if topics:
            client.subscribe([(t, 1) for t in topics])
        was, self.connected, self.last_error = self.last_error, True, None
        log.info(
            "mqtt bus %s: connected to %s, subscribed to %s%s",
            self.bus.id,
            self.endpoint,
            ", ".join(topics) or "nothing",
            f" (was: {was})" if was and was != "connecting" else "",
        )

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        error = f"cannot connect to {self.endpoint} (retrying with backoff up to {BACKOFF_MAX} s)"
        if self.last_error != error:
            log.warning("mqtt bus %s: %s", self.bus.id, error)
        self.last_error = error

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self.connected:
            log.warning("mqtt bus %s: lost the connection to %s: %s", self.bus.id, self.endpoint, reason)
            self.last_error = f"connection to {self.endpoint} lost ({reason})"
        self.connected = False

    # -- the source --------------------------------------------------------------------------------
    def _make_client(self, on_message: Callable[[paho.Client, Any, paho.MQTTMessage], None]) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=False,
        )
        if self.bus.username is not None:
            client.username_pw_set(self.bus.username, _password(self.bus))
        tls = self.bus.tls
        if tls is not None:
            try:
                client.tls_set(
                    ca_certs=tls.ca_file,
                    certfile=tls.cert_file,
                    keyfile=tls.key_file,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise IngestCredentialsError(
                    f"mqtt bus {self.bus.id}: TLS files cannot be used: {exc}"
                ) from None
        client.reconnect_delay_set(BACKOFF_MIN, BACKOFF_MAX)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = on_message
        return client

    async def run(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, bytes, float]] = asyncio.Queue(QUEUE_LIMIT)

        def put(item: tuple[str, bytes, float]) -> None:  # on the loop
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning(
                        "mqtt bus %s: %d messages dropped (the gateway is too slow)",
                        self.bus.id,
                        self.dropped,
                    )

        def on_message(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
            try:
                loop.call_soon_threadsafe(put, (msg.topic, bytes(msg.payload), self._clock()))
            except RuntimeError:
                pass  # the loop is closing: the broker delivers it again to our persistent session

        client = self._make_client(on_message)
        self._client = client
        client.connect_async(self.bus.host, self.bus.mqtt_port, keepalive=KEEPALIVE)
        client.loop_start()
        try:
            tick = min([s.spec.silence_limit for s in self.devices] + [4.0]) / 4
            while True:
                try:
                    topic, payload, received = await asyncio.wait_for(queue.get(), tick)
                except TimeoutError:
                    self._check_silence()
                    continue
                self._handle(topic, payload, received, emit)
                if queue.empty():
                    self._check_silence()
        finally:
            client.loop_stop()
            client.disconnect()
            self._client = None
            self.connected = False

    def _handle(self, topic: str, payload: bytes, received: float, emit: Emit) -> None:
        self.messages += 1
        matched = False
        for s in self.devices:
            if not paho.topic_matches_sub(s.spec.topic, topic):
                continue
            matched = True
            s.status.requests += 1
            decoded = s.decoder.decode(payload, received)
            for skipped in decoded.skipped:
                self._once(logging.INFO, s, topic, f"skipped {skipped}", "no circuit of this device", payload)
            if decoded.problems:
                self.bad_payloads += 1
                s.status.errors += 1
                first = decoded.problems[0]
                more = f" (+{len(decoded.problems) - 1} more)" if len(decoded.problems) > 1 else ""
                s.status.last_error = f"bad payload on {topic}: {first.message}{more}"[:300]
                for p in decoded.problems:
                    self._once(logging.WARNING, s, topic, p.reason, p.message, payload)
            if decoded.readings:
                s.status.ok(received)
                if not decoded.problems:
                    s.status.last_error = None
                emit(decoded.readings)
        if not matched:
            self.unmatched += 1

    def _once(
        self, level: int, s: _Subscribed, topic: str, reason: str, message: str, payload: bytes
    ) -> None:
        key = (topic, reason)
        if key in self._logged:
            return
        if len(self._logged) < 10_000:  # a flood of topics must not grow memory without bound
            self._logged.add(key)
        log.log(
            level, "mqtt device %s: topic %s: %s; payload: %s", s.device.id, topic, message, _sample(payload)
        )

    def _check_silence(self) -> None:
        now = self._clock()
        for s in self.devices:
            st = s.status
            limit = s.spec.silence_limit
            if st.online and st.last_seen is not None and now - st.last_seen > limit:
                st.online = False
                st.timeouts += 1
                st.last_error = (
                    f"no message on {s.spec.topic} for {now - st.last_seen:.0f} s (timeout {limit:g} s)"
                )
                log.warning("mqtt device %s: %s", s.device.id, st.last_error)

    def health(self) -> Health:
        h = device_health(self.monitored)
        counters = {
            **h.counters,
            "messages": self.messages,
            "bad_payloads": self.bad_payloads,
            "dropped": self.dropped,
            "unmatched": self.unmatched,
        }
        if not self.connected:
            why = self.last_error or "not connected"
            state = HealthState.DEGRADED if why == "connecting" else HealthState.DOWN
            return Health(state, f"broker {self.endpoint}: {why}", counters)
        return Health(h.state, h.message, counters)


def mqtt_sources(ctx: SourceContext) -> list[Source]:
    """The factory registered for ``kind: mqtt``: one source per bus (one broker connection)."""
    return [MqttSource(ctx)]
