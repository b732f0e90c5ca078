"""The in-process bus from sources to sinks.

Sources publish batches of :class:`~meterhub.model.Reading` (one poll or one analysis block each).
Every sink has its own bounded queue, so a slow sink never stalls acquisition:

* ``Overflow.DROP_OLDEST`` — for sinks that only need the latest values (live hub, UI); the oldest
  batch is discarded and counted.
* ``Overflow.SPILL`` — for sinks that must not lose data (storage, upload); batches that do not fit
  are appended to a spool file (JSON lines) and fed back, in order, when the queue drains.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase

__all__ = ["Bus", "Overflow", "Subscription"]

log = logging.getLogger(__name__)

Batch = list[Reading]


class Overflow(StrEnum):
    DROP_OLDEST = "drop-oldest"
    SPILL = "spill"


@dataclass
class SubscriptionStats:
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
        self.overflow = overflow
        self.spool = spool
        self.stats = SubscriptionStats()
        self._queue: asyncio.Queue[Batch] = asyncio.Queue(maxsize=maxsize)
        self._spooled = 0  # batches in the spool file not yet re-queued
        if spool is not None and spool.exists() and spool.stat().st_size:
            # A previous run left undelivered batches: deliver them first.
            self._spooled = sum(1 for _ in spool.open(encoding="utf-8"))

    def offer(self, batch: Batch) -> None:
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
        if self._queue.empty():
            self._refill()
        batch = await self._queue.get()
        self.stats.delivered += 1
        return batch

    def get_nowait(self) -> Batch | None:
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
        return self._queue.qsize() + self._spooled


class Bus:
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
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, batch: Sequence[Reading]) -> None:
        if not batch:
            return
        b = list(batch)
        self.published += len(b)
        for sub in self._subs:
            sub.offer(b)

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subs)
