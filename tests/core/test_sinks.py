"""Sinks: the live cache and storage consume the bus through their own subscriptions (the Sink contract)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from meterhub.bus import ReadingBus, SinkKind, drain_into, pump
from meterhub.config.loader import parse_config
from meterhub.drivers.base import DeviceStatus, device_health
from meterhub.live import live_cache
from meterhub.model.health import HealthState, worst
from meterhub.model.readings import Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.runtime import CORE_SINKS, SINK_FACTORIES, Gateway, StorageSink
from meterhub.storage import open_storage

T0 = 1_763_784_000.0
SITE = """
site: {name: Sink test, timezone: UTC}
buses: []
devices: []
circuits: []
"""


def power(ts: float, watts: float, circuit: str = "c1") -> list[Reading]:
    return [Reading(ts, circuit, "active_power", Phase.TOTAL, watts)]


def test_live_cache_reads_what_was_published_before_its_pump_ran():
    bus = ReadingBus()
    live = live_cache(bus)
    bus.publish(power(T0, 100.0))
    bus.publish(power(T0 + 1, 250.0))
    r = live.get(SeriesKey("c1", "active_power", Phase.TOTAL))
    assert r is not None and r.value == 250.0
    assert live.updated == T0 + 1
    assert live.subscription.pending == 0  # the read applied both queued batches


def test_live_cache_drops_the_oldest_batches_when_full_and_says_so():
    bus = ReadingBus()
    live = live_cache(bus, maxsize=3)
    for i in range(5):
        bus.publish(power(T0 + i, float(i), circuit=f"c{i}"))
    h = live.health()
    assert h.state is HealthState.DEGRADED and h.counters["dropped"] == 2
    # batches 0 and 1 were dropped: their series never reached the cache; 2, 3, 4 did
    assert sorted(r.circuit for r in live.readings()) == ["c2", "c3", "c4"]
    assert live.health().state is HealthState.OK


def test_pump_delivers_batches_in_order_until_cancelled():
    async def go() -> list[float]:
        bus = ReadingBus()
        live = live_cache(bus)
        seen: list[float] = []
        original = live.deliver

        async def record(batch: list[Reading]) -> None:
            seen.extend(r.value for r in batch)
            await original(batch)

        live.deliver = record  # type: ignore[method-assign]
        task = asyncio.create_task(pump(live))
        for i in range(4):
            bus.publish(power(T0 + i, float(i)))
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        task.cancel()
        bus.publish(power(T0 + 9, 9.0))
        assert await drain_into(live) == 1
        return seen

    assert asyncio.run(go()) == [0.0, 1.0, 2.0, 3.0, 9.0]


def test_every_sink_kind_has_a_factory_and_the_gateway_composes_the_core_sinks(tmp_path: Path):
    assert set(SINK_FACTORIES) == set(SinkKind)
    cfg = parse_config(SITE, "site.yaml")
    gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path))
    assert tuple(gw.sinks) == CORE_SINKS
    assert gw.sinks[SinkKind.LIVE] is gw.live
    assert isinstance(gw.sinks[SinkKind.STORAGE], StorageSink)
    assert [s.name for s in gw.bus.subscriptions] == ["live", "storage", "alarms"]
    gw.storage.close()


def test_gateway_stop_stores_what_was_still_queued_and_the_live_view_keeps_it(tmp_path: Path):
    cfg = parse_config(SITE, "site.yaml")

    async def go() -> tuple[list[float], float | None]:
        storage = open_storage(cfg.storage, tmp_path)
        gw = Gateway(cfg, data_dir=tmp_path, storage=storage)
        await gw.start()
        for i in range(3):
            gw.emit(power(T0 + i, 1000.0 + i))  # no await in between: all three still queued
        await gw.stop()
        reopened = open_storage(cfg.storage, tmp_path)
        points = reopened.history(SeriesKey("c1", "active_power", Phase.TOTAL), T0, T0 + 10)
        reopened.close()
        latest = gw.live.get(SeriesKey("c1", "active_power", Phase.TOTAL))
        return [p.last for p in points], latest.value if latest else None

    stored, latest = asyncio.run(go())
    assert stored == [1000.0, 1001.0, 1002.0]
    assert latest == 1002.0


def test_a_failed_sink_task_shows_as_down_with_its_error(tmp_path: Path):
    cfg = parse_config(SITE, "site.yaml")

    async def go() -> dict[str, object]:
        gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path))

        async def broken(batch: list[Reading]) -> None:
            raise OSError("disk full")

        gw.live.deliver = broken  # type: ignore[method-assign]
        await gw.start()
        gw.emit(power(T0, 1.0))
        await asyncio.sleep(0.05)  # the pump fails on the batch and waits 1 s before restarting
        health = {k: h.as_dict() for k, h in gw.health().items()}
        await gw.stop()
        return health

    health = asyncio.run(go())
    live = health["sink:live"]
    assert isinstance(live, dict)
    assert live["state"] == "down" and live["message"] == "failed (OSError: disk full); restarting"
    assert health["sink:storage"] == {
        "state": "ok",
        "message": "writing",
        "counters": {"delivered": 1, "spilled": 0, "pending": 0},
    }


def test_device_health_counts_online_devices_and_names_the_failing_ones():
    a = DeviceStatus("a", "A", "p", "bus")
    b = DeviceStatus("b", "B", "p", "bus")
    assert device_health([]).state is HealthState.OK
    assert device_health([a, b]).message == "waiting for the first answer"
    a.ok(T0)
    a.requests = 10
    b.requests = 10
    b.failed("timeout after 1.0 s", timeout=True)
    h = device_health([a, b])
    assert h.state is HealthState.DEGRADED
    assert h.message == "1 of 2 devices online; b: timeout after 1.0 s"
    assert dict(h.counters) == {"devices": 2, "online": 1, "requests": 20, "errors": 1, "timeouts": 1}
    a.failed("CRC error")
    assert device_health([a, b]).state is HealthState.DOWN
    assert worst([HealthState.OK, HealthState.DOWN, HealthState.DEGRADED]) is HealthState.DOWN
