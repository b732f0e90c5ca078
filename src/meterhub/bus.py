"""The in-process bus from sources to sinks, and the :class:`Sink` contract.

Sources publish batches of :class:`~meterhub.model.Reading` (one poll or one analysis block each).
Every sink has its own bounded queue (a :class:`Subscription`), so a slow sink never stalls acquisition:

* ``Overflow.DROP_OLDEST`` — for sinks that only need the latest values (live cache, UI); the oldest
  batch is discarded and counted.
* ``Overflow.SPILL`` — for sinks that must not lose data (storage, upload); batches that do not fit
  are appended to a spool file (JSON lines) and fed back, in order, when the queue drains.

The Sink contract
-----------------
input
    batches of readings (:data:`Batch`, already through the energy stage, qualities attached) from
    the sink's own :attr:`Sink.subscription`, which the sink creates with :meth:`ReadingBus.subscribe` when it
    is constructed — its queue size and overflow policy are the sink's choice.
start
    ``await sink.start()`` once, before the first batch (open connections, start periodic work).
delivery
    the runtime runs :func:`pump` in a supervised task: ``await sink.deliver(batch)`` for each batch, in
    order, one at a time. A sink that raises loses that batch only; the pump is restarted.
stop
    the runtime cancels the pump, hands what is still queued to :meth:`Sink.deliver`
    (:func:`drain_into`), then awaits ``sink.stop()`` (flush, close).
health
    ``sink.health()`` → :class:`~meterhub.model.health.Health`, cheap and non-blocking.
output
    whatever the sink is for (rows in a database, the live view, MQTT messages); never back onto the bus.

Sinks are composed by the runtime from a registry keyed by :class:`SinkKind` (STYLE.md §6).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from meterhub.config.schema import SiteConfig
from meterhub.model.health import Health
from meterhub.model.readings import Quality, Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage.base import Storage

__all__ = [
    "Batch",
    "ReadingBus",
    "Overflow",
    "Sink",
    "SinkContext",
    "SinkFactory",
    "SinkKind",
    "Subscription",
    "SubscriptionStats",
    "drain_into",
    "pump",
]

log = logging.getLogger(__name__)

Batch = list[Reading]


class Overflow(StrEnum):
    """What a full subscription does with a new batch."""

    DROP_OLDEST = "drop-oldest"
    SPILL = "spill"


@dataclass
class SubscriptionStats:
    """Batches handed to the sink, dropped (DROP_OLDEST) and written to the spool (SPILL) [count]."""

    delivered: int = 0
    dropped: int = 0
    spilled: int = 0


def _encode(batch: Batch) -> str:
    return json.dumps(
        [
            [r.ts, r.circuit, r.quantity, r.phase.value if r.phase else None, r.value, int(r.quality)]
            for r in batch
        ]
    )


def _decode(line: str) -> Batch:
    return [
        Reading(ts, c, q, Phase(p) if p else None, v, Quality(qual))
        for ts, c, q, p, v, qual in json.loads(line)
    ]


class Subscription:
    """A sink's view of the bus: ``await sub.get()`` returns the next batch."""

    def __init__(self, name: str, maxsize: int, overflow: Overflow, spool: Path | None) -> None:
        if overflow is Overflow.SPILL and spool is None:
            raise ValueError(f"subscription {name!r}: SPILL needs a spool file")
        self.name = name
        self.maxsize = maxsize
        self.overflow = overflow
        self.spool = spool
        self.stats = SubscriptionStats()
        self._queue: asyncio.Queue[Batch] = asyncio.Queue(maxsize=maxsize)
        self._spooled = 0  # batches in the spool file not yet re-queued
        if spool is not None and spool.exists() and spool.stat().st_size:
            # A previous run left undelivered batches: deliver them first.
            self._spooled = sum(1 for _ in spool.open(encoding="utf-8"))

    def offer(self, batch: Batch) -> None:
        """Queue a batch without waiting (called by :meth:`ReadingBus.publish`); see :class:`Overflow`."""
        if self._spooled == 0:
            try:
                self._queue.put_nowait(batch)
                return
            except asyncio.QueueFull:
                pass
        if self.overflow is Overflow.DROP_OLDEST:
            self._queue.get_nowait()
            self._queue.put_nowait(batch)
            self.stats.dropped += 1
            return
        if self.spool is None:  # pragma: no cover - excluded by __init__
            raise RuntimeError(f"subscription {self.name!r} cannot spill without a spool file")
        with self.spool.open("a", encoding="utf-8") as fh:
            fh.write(_encode(batch) + "\n")
        self._spooled += 1
        self.stats.spilled += 1

    def _refill(self) -> None:
        """Move spooled batches back into the queue while there is room (order is kept)."""
        if not self._spooled or self.spool is None:
            return
        lines = self.spool.read_text(encoding="utf-8").splitlines()
        moved = 0
        for line in lines:
            if self._queue.full():
                break
            self._queue.put_nowait(_decode(line))
            moved += 1
        rest = lines[moved:]
        self.spool.write_text("".join(x + "\n" for x in rest), encoding="utf-8")
        self._spooled = len(rest)

    async def get(self) -> Batch:
        """The next batch, waiting for one."""
        if self._queue.empty():
            self._refill()
        batch = await self._queue.get()
        self.stats.delivered += 1
        return batch

    def get_nowait(self) -> Batch | None:
        """The next batch, or None when nothing is queued."""
        if self._queue.empty():
            self._refill()
        try:
            batch = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        self.stats.delivered += 1
        return batch

    def drain(self) -> Batch:
        """Everything queued (and spooled) now, as one batch — used at shutdown to flush."""
        out: Batch = []
        while (b := self.get_nowait()) is not None:
            out.extend(b)
        return out

    @property
    def pending(self) -> int:
        """Batches queued or spooled, not yet delivered [count]."""
        return self._queue.qsize() + self._spooled


class ReadingBus:
    """Fan-out of reading batches to every subscription. ``publish`` never blocks."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self.published = 0

    def subscribe(
        self,
        name: str,
        *,
        maxsize: int = 1000,
        overflow: Overflow = Overflow.DROP_OLDEST,
        spool: Path | None = None,
    ) -> Subscription:
        sub = Subscription(name, maxsize, overflow, spool)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop offering batches to ``sub`` (what it holds stays readable)."""
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, batch: Sequence[Reading]) -> None:
        """Offer a batch to every subscription; never blocks, never raises for a full queue."""
        if not batch:
            return
        b = list(batch)
        self.published += len(b)
        for sub in self._subs:
            sub.offer(b)

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subs)


# -- sinks ----------------------------------------------------------------------------------------
class SinkKind(StrEnum):
    """Every kind of sink the runtime can compose (its registry is keyed by this enum)."""

    LIVE = "live"  # the latest value of every series, for the API, WebSocket and alarms
    STORAGE = "storage"  # the database (SQLite or PostgreSQL), with the energy registers
    #: the site file's publish: instances (MQTT, HTTP upload), each through a durable outbox
    PUBLISH = "publish"
    #: the alarm engine: rules of the site file's alarms: section and the built-in system rules
    ALARMS = "alarms"
    #: the site file's modbus_server: SunSpec meters and the flat map for a BMS/SCADA (Modbus TCP/RTU)
    MODBUS_SERVER = "modbus_server"
    #: the one audited control path: remote control, linkage, time programs, demand limiting
    CONTROL = "control"


class Sink(Protocol):
    """A consumer of the bus (see the module docstring for the contract)."""

    @property
    def name(self) -> str:
        """Short id for logs and health, e.g. ``"storage"``."""
        ...

    @property
    def subscription(self) -> Subscription:
        """The sink's own queue on the bus, created when the sink was constructed."""
        ...

    async def start(self) -> None:
        """Prepare to receive batches (called once, before the first :meth:`deliver`)."""
        ...

    async def deliver(self, batch: Batch) -> None:
        """Consume one batch from :attr:`subscription` (batches arrive in order, one at a time)."""
        ...

    async def stop(self) -> None:
        """Finish: flush and release resources (called once, after the last :meth:`deliver`)."""
        ...

    def health(self) -> Health:
        """How delivery goes (cheap; called by the API)."""
        ...


@dataclass(frozen=True)
class SinkContext:
    """What a sink factory gets from the runtime.

    config : the site.
    bus : where the sink subscribes.
    data_dir : the gateway's data folder (spool files go here).
    storage : the site's storage, opened on first call.
    registers : the energy registers to persist with each storage flush (series → value in the
        catalogue unit of its quantity).
    clock : time source [s since the epoch, UTC].
    device_status : the devices' statuses now (device id → ``DeviceStatus``, the objects
        ``GET /api/v1/devices`` shows; the alarm sink's "device offline"); none by default.
    """

    config: SiteConfig
    bus: ReadingBus
    data_dir: Path
    storage: Callable[[], Storage]
    registers: Callable[[], Mapping[SeriesKey, float]]
    clock: Callable[[], float]
    device_status: Callable[[], Mapping[str, Any]] = dict


SinkFactory = Callable[[SinkContext], Sink]


async def pump(sink: Sink) -> None:
    """Deliver the sink's subscription to the sink forever (run supervised by the runtime)."""
    sub = sink.subscription
    while True:
        await sink.deliver(await sub.get())


async def drain_into(sink: Sink) -> int:
    """Deliver every batch still queued (or spooled) for ``sink`` now; return how many [count]."""
    n = 0
    while (batch := sink.subscription.get_nowait()) is not None:
        await sink.deliver(batch)
        n += 1
    return n
