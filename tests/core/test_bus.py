"""The in-process bus: a slow sink never stalls publishing; durable sinks lose nothing."""

import asyncio

from meterhub.bus import Overflow, ReadingBus
from meterhub.model import Phase, Reading


def batch(i: int) -> list[Reading]:
    return [Reading(float(i), "c1", "active_power", Phase.TOTAL, float(i))]


def test_drop_oldest_keeps_the_newest_batches():
    async def go():
        bus = ReadingBus()
        sub = bus.subscribe("live", maxsize=3, overflow=Overflow.DROP_OLDEST)
        for i in range(10):
            bus.publish(batch(i))
        got = [sub.get_nowait()[0].value for _ in range(3)]
        return got, sub.stats.dropped

    got, dropped = asyncio.run(go())
    assert got == [7.0, 8.0, 9.0]
    assert dropped == 7


def test_spill_delivers_every_batch_in_order(tmp_path):
    async def go():
        bus = ReadingBus()
        sub = bus.subscribe("storage", maxsize=4, overflow=Overflow.SPILL, spool=tmp_path / "spool.jsonl")
        for i in range(25):
            bus.publish(batch(i))
        spilled = sub.stats.spilled
        out = []
        while (b := sub.get_nowait()) is not None:
            out.extend(r.value for r in b)
        return out, spilled

    out, spilled = asyncio.run(go())
    assert out == [float(i) for i in range(25)]
    assert spilled == 21


def test_spool_left_by_a_previous_run_is_delivered_first(tmp_path):
    spool = tmp_path / "spool.jsonl"

    async def first():
        bus = ReadingBus()
        bus.subscribe("storage", maxsize=1, overflow=Overflow.SPILL, spool=spool)
        for i in range(3):
            bus.publish(batch(i))

    async def second():
        bus = ReadingBus()
        sub = bus.subscribe("storage", maxsize=10, overflow=Overflow.SPILL, spool=spool)
        bus.publish(batch(99))
        return [r.value for r in sub.drain()]

    asyncio.run(first())
    assert asyncio.run(second()) == [1.0, 2.0, 99.0]  # batch 0 was in the first run's queue (lost with it)


def test_publish_fans_out_to_every_subscription():
    async def go():
        bus = ReadingBus()
        a = bus.subscribe("a")
        b = bus.subscribe("b")
        bus.publish(batch(1))
        return a.get_nowait(), b.get_nowait()

    x, y = asyncio.run(go())
    assert x == y == batch(1)
