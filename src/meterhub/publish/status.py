"""What the publish page and ``GET /api/v1/publish`` show of each ``publish:`` instance, and the test
message of ``POST /api/v1/publish/{id}/test``.

:func:`instance_status` reads the running sink (:class:`~meterhub.publish.sink.PublishSink`) without
blocking: the link's state and counters and the outbox's in-memory statistics. The state is one of

* ``connected`` — the MQTT client is connected to the broker, or the last HTTP POST was answered 2xx;
* ``connecting`` — the first connection attempt since start is still under way (HTTP: no POST was
  answered yet), or an instance enabled by a configuration change is being started;
* ``down`` — the instance could not start (a password or token variable missing, TLS files unusable,
  the outbox file unusable), its outbox cannot be written, the broker refused or cannot be reached, the connection was lost and is
  retried, a TLS handshake failed (``certificate verify failed …``) or an HTTP server refuses the batches;
  ``message`` says which, naming the instance;
* ``disabled`` — ``enabled: false`` in the site file.

:func:`send_test` puts one message into the instance's outbox — behind anything already waiting, so it
travels the same path as the data — and waits for its delivery: the broker's PUBACK (the message is
always QoS 1) or the server's 2xx. MQTT: topic ``<prefix>/test``, a small JSON object. HTTP: a batch of
one valid meterhub-json/1 message of circuit ``publish-test`` with no values, so a meterhub receiver
accepts it and stores nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from meterhub.config.publish import PublishInstance, PublishTransport
from meterhub.errors import ConflictError, NotFoundError, StorageError
from meterhub.model.formats import METERHUB_JSON_SCHEMA
from meterhub.model.readings import iso_utc
from meterhub.publish.sink import InstanceRunner, PublishSink
from meterhub.storage.outbox import Message, OutboxError

__all__ = [
    "TEST_CIRCUIT",
    "TEST_TIMEOUT",
    "InstanceStatus",
    "LinkStateName",
    "TestResult",
    "instance_status",
    "send_test",
    "statuses",
    "test_message",
]

#: How long ``POST /api/v1/publish/{id}/test`` waits for the acknowledgement [s].
TEST_TIMEOUT = 10.0
#: The circuit id of an HTTP test message (a valid meterhub-json circuit id with no values).
TEST_CIRCUIT = "publish-test"


class LinkStateName:
    """The four states (plain strings in the API)."""

    CONNECTED = "connected"
    CONNECTING = "connecting"
    DOWN = "down"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """One instance as the publish page shows it.

    endpoint : the broker (``mqtt://host:port``) or the upload URL without its query.
    last_sent : when a message was last acknowledged [s since the epoch] or None (none since start).
    backlog : messages waiting in the outbox [count]; oldest : creation time of the oldest [s since the
    epoch] or None; oldest_age_s : its age [s] (0 when none waits).
    dropped : messages the outbox dropped when full, ever [count]; sent_total : messages acknowledged by
    the broker or server since start [count].
    """

    id: str
    name: str
    transport: str
    formats: tuple[str, ...]
    enabled: bool
    endpoint: str
    state: str
    message: str
    last_sent: float | None
    backlog: int
    oldest: float | None
    oldest_age_s: float
    dropped: int
    sent_total: int


@dataclass(frozen=True, slots=True)
class TestResult:
    """The outcome of a test message: its outbox id, where it went (topic or URL), whether it was
    acknowledged within the wait, how long that took [s], and a sentence for people."""

    instance: str
    message_id: int
    target: str
    acknowledged: bool
    seconds: float
    message: str


def _endpoint(inst: PublishInstance) -> str:
    if inst.transport is PublishTransport.HTTP:
        return (inst.url or "").split("?", 1)[0]
    addr = inst.address
    return f"{addr.scheme}://{addr.host}:{addr.port}"


def _idle(inst: PublishInstance, state: str, message: str) -> InstanceStatus:
    """An instance without a running link (disabled, or not running)."""
    return InstanceStatus(
        id=inst.id,
        name=inst.name or inst.id,
        transport=inst.transport.value,
        formats=tuple(f.value for f in inst.formats),
        enabled=inst.enabled,
        endpoint=_endpoint(inst),
        state=state,
        message=message,
        last_sent=None,
        backlog=0,
        oldest=None,
        oldest_age_s=0.0,
        dropped=0,
        sent_total=0,
    )


def instance_status(inst: PublishInstance, runner: InstanceRunner | None, now: float) -> InstanceStatus:
    """The status of ``inst`` (``runner`` None: the instance is disabled) at ``now`` [s since the epoch]."""
    if runner is None or not inst.enabled:
        return _idle(inst, LinkStateName.DISABLED, f"publish {inst.id}: disabled in the site file")
    health = runner.health(now)
    outbox, link = runner.outbox, runner.link
    st = outbox.stats() if outbox is not None else None
    ls = link.state() if link is not None else None
    if (
        runner.error is not None
        or link is None
        or link.failed is not None
        or (outbox is not None and outbox.failed is not None)
    ):
        state = LinkStateName.DOWN
    elif ls is not None and ls.connected:
        state = LinkStateName.CONNECTED
    elif ls is None or ls.connecting:
        state = LinkStateName.CONNECTING
    else:
        state = LinkStateName.DOWN
    oldest = st.oldest if st is not None else None
    return InstanceStatus(
        id=inst.id,
        name=inst.name or inst.id,
        transport=inst.transport.value,
        formats=tuple(f.value for f in inst.formats),
        enabled=inst.enabled,
        endpoint=_endpoint(inst),
        state=state,
        message=health.message,
        last_sent=ls.last_publish if ls is not None else None,
        backlog=st.backlog if st is not None else 0,
        oldest=oldest,
        oldest_age_s=round(max(0.0, now - oldest), 1) if oldest is not None else 0.0,
        dropped=st.dropped if st is not None else 0,
        sent_total=ls.acked if ls is not None else 0,
    )


def statuses(sink: PublishSink | None, instances: list[PublishInstance], now: float) -> list[InstanceStatus]:
    """Every configured instance, in the site file's order: running ones from ``sink``, the others
    disabled. An instance enabled by a configuration change starts with it
    (:meth:`~meterhub.publish.sink.PublishSink.reconfigure`); until its runner exists it shows as
    connecting."""
    runners = {r.inst.id: r for r in sink.runners} if sink is not None else {}
    out = []
    for inst in instances:
        runner = runners.get(inst.id)
        if runner is None and inst.enabled:
            out.append(_idle(inst, LinkStateName.CONNECTING, f"publish {inst.id}: starting"))
        else:
            out.append(instance_status(inst, runner, now))
    return out


def test_message(runner: InstanceRunner, now: float, by: str) -> tuple[Message, str]:
    """The test message of ``runner``'s instance and where it goes (topic or URL)."""
    inst = runner.inst
    doc: dict[str, object]
    if inst.transport is PublishTransport.HTTP:
        ts = int(now)
        doc = {
            "schema": METERHUB_JSON_SCHEMA,
            "key": f"{runner.site_id}/{TEST_CIRCUIT}/{ts}",
            "site": runner.site_id,
            "circuit": TEST_CIRCUIT,
            "name": f"test message from publish {inst.id} ({by})",
            "zone": None,
            "start": iso_utc(ts, "seconds"),
            "end": iso_utc(ts, "seconds"),
            "ts": ts,
            "interval": 1,
            "values": [],
        }
        return Message(f"{runner.prefix}/test", json.dumps(doc).encode(), 1, False), _endpoint(inst)
    topic = f"{runner.prefix}/test"
    doc = {
        "test": True,
        "instance": inst.id,
        "site": runner.site_id,
        "ts": iso_utc(now, "seconds"),
        "by": by,
        "text": "test message from meterhub",
    }
    return Message(topic, json.dumps(doc).encode(), 1, False), topic


async def send_test(
    sink: PublishSink | None,
    instances: list[PublishInstance],
    instance_id: str,
    *,
    by: str,
    now: float,
    timeout: float | None = None,
) -> TestResult:
    """Queue a test message through instance ``instance_id``'s outbox and wait up to ``timeout`` [s]
    for its acknowledgement (None: :data:`TEST_TIMEOUT`).

    Raises :class:`~meterhub.errors.NotFoundError` for an unknown id, :class:`~meterhub.errors.ConflictError`
    for a disabled instance or one that is not running, :class:`~meterhub.errors.StorageError` when the
    outbox cannot take the message."""
    inst = next((i for i in instances if i.id == instance_id), None)
    if inst is None:
        known = ", ".join(i.id for i in instances) or "none"
        raise NotFoundError(f"no publish instance {instance_id!r} (known: {known})")
    if not inst.enabled:
        raise ConflictError(f"publish {instance_id} is disabled (enabled: false in the site file)")
    runner = next((r for r in (sink.runners if sink is not None else []) if r.inst.id == instance_id), None)
    if runner is None or runner.outbox is None or runner.link is None:
        why = runner.error if runner is not None and runner.error else "not running"
        raise ConflictError(f"publish {instance_id} cannot send: {why}")
    outbox, link = runner.outbox, runner.link
    if timeout is None:
        timeout = TEST_TIMEOUT
    message, target = test_message(runner, now, by)
    try:
        (message_id,) = await asyncio.to_thread(outbox.put, [message])
    except OutboxError as exc:
        raise StorageError(str(exc)) from None
    link.wake()
    started = time.monotonic()
    acknowledged = False
    while True:
        try:
            waiting = await asyncio.to_thread(outbox.holds, message_id)
        except OutboxError as exc:
            raise StorageError(str(exc)) from None
        if not waiting:
            acknowledged = True
            break
        if time.monotonic() - started >= timeout:
            break
        await asyncio.sleep(0.05)
    seconds = round(time.monotonic() - started, 3)
    if acknowledged:
        how = (
            "the broker acknowledged it (PUBACK)"
            if inst.transport is PublishTransport.MQTT
            else "the server answered 2xx"
        )
        text = f"publish {inst.id}: test message {message_id} to {target}: {how} after {seconds:.2f} s"
    else:
        backlog = outbox.stats().backlog
        text = (
            f"publish {inst.id}: test message {message_id} to {target} not acknowledged within {timeout:g} s "
            f"({backlog} message(s) wait, this one included; it stays in the outbox and is sent when the link "
            f"works): {runner.health(now).message}"
        )
    return TestResult(inst.id, message_id, target, acknowledged, seconds, text)
