"""The MQTT ingest source against a private Mosquitto, with ``mosquitto_pub`` as the publisher."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from meterhub.checks import parse_site
from meterhub.config.schema import SiteConfig
from meterhub.drivers.base import DeviceStatus, SourceContext, source_factory
from meterhub.drivers.mqtt.source import MqttSource
from meterhub.model.formats import RTDATA_FIELDS
from meterhub.model.health import HealthState
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase

from .conftest import Broker, free_port

T, L1 = Phase.TOTAL, Phase.L1


def site(port: int, timeout: str = "") -> SiteConfig:
    return parse_site(
        f"""
site: {{name: Ingest}}
buses: [{{id: broker, kind: mqtt, port: {port}}}]
devices:
  - {{id: eni, bus: broker, mqtt: {{topic: "eniscope/+/rtdata", format: eniscope-rtdata, interval: 10 {timeout}}}}}
  - id: plug
    bus: broker
    mqtt:
      topic: plugs/1
      format: json
      mapping:
        - {{path: "meters[0].power", quantity: active_power, phase: total, unit: kW}}
        - {{path: "meters[0].total", quantity: energy_active_import, phase: total, unit: kWh}}
circuits:
  - {{id: office, device: eni, channels: [1, 2, 3], wiring: 3P4W}}
  - {{id: plug, device: plug}}
""",
        "site.yaml",
    )


def make_source(cfg: SiteConfig, tmp_path: Path) -> tuple[MqttSource, dict[str, DeviceStatus]]:
    bus = cfg.buses[0]
    status = {d.id: DeviceStatus(d.id, d.id, d.profile, bus.id) for d in cfg.devices}
    ctx = SourceContext(cfg, bus, list(cfg.devices), status, tmp_path)
    factory = source_factory(bus.kind)  # registered by importing meterhub.drivers.mqtt
    assert factory is not None
    (source,) = factory(ctx)
    assert isinstance(source, MqttSource)
    return source, status


def rtdata(p1: float, e: float) -> str:
    entry: dict[str, object] = {"uid": "00:01:02:03:04:05:00:01", "did": 1, "ts": 1_790_000_060}
    entry.update({f.name: None for f in RTDATA_FIELDS})
    entry.update(P1=p1, E=e)
    return json.dumps({"rtdata": [entry]})


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def running(
    source: MqttSource, body: Callable[[list[Sequence[Reading]]], Awaitable[None]]
) -> list[Sequence[Reading]]:
    batches: list[Sequence[Reading]] = []

    async def go() -> None:
        task = asyncio.create_task(source.run(batches.append))
        try:
            await until(lambda: source.connected)
            await asyncio.sleep(0.1)  # the SUBACK
            await body(batches)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await source.close()

    asyncio.run(go())
    return batches


def test_rtdata_published_by_mosquitto_pub_becomes_readings(broker: Broker, tmp_path: Path) -> None:
    source, status = make_source(site(broker.port), tmp_path)

    async def body(batches: list[Sequence[Reading]]) -> None:
        await asyncio.to_thread(broker.publish, "eniscope/hub-7/rtdata", rtdata(1000, 12345))
        await until(lambda: len(batches) == 1)

    batches = running(source, body)
    got = {(r.circuit, r.quantity, r.phase): (r.value, r.ts) for r in batches[0]}
    assert got == {
        ("office", Q.ACTIVE_POWER, L1): (1000.0, 1_790_000_060.0),
        ("office", Q.ENERGY_ACTIVE_IMPORT, T): (12345.0, 1_790_000_060.0),
    }
    assert status["eni"].online and status["eni"].requests == 1 and status["eni"].errors == 0
    assert source.messages == 1


def test_a_declared_mapping_published_in_kw_arrives_in_w(broker: Broker, tmp_path: Path) -> None:
    source, status = make_source(site(broker.port), tmp_path)

    async def body(batches: list[Sequence[Reading]]) -> None:
        await asyncio.to_thread(broker.publish, "plugs/1", '{"meters": [{"power": 0.75, "total": 3.5}]}')
        await until(lambda: len(batches) == 1)

    before = time.time()
    batches = running(source, body)
    got = {(r.quantity, r.phase): r.value for r in batches[0]}
    assert got == {(Q.ACTIVE_POWER, T): 750.0, (Q.ENERGY_ACTIVE_IMPORT, T): 3500.0}
    assert all(before <= r.ts <= time.time() for r in batches[0])  # no timestamp path: the receive time
    assert status["plug"].online


def test_garbage_is_logged_once_per_topic_and_reason_counted_and_survived(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, status = make_source(site(broker.port), tmp_path)
    garbage = [
        ("plugs/1", "this is not json " + "x" * 500),
        ("plugs/1", '{"meters": [{"power": "lots", "total": 1}]}'),
        ("eniscope/a/rtdata", '{"rtdata": "nope"}'),
    ]

    async def body(batches: list[Sequence[Reading]]) -> None:
        for _ in range(2):  # each garbage payload twice: still one log line each
            for topic, payload in garbage:
                await asyncio.to_thread(broker.publish, topic, payload)
        await asyncio.to_thread(broker.publish, "plugs/1", '{"meters": [{"power": 2, "total": 10}]}')
        await until(lambda: source.messages == 7)

    with caplog.at_level(logging.WARNING, logger="meterhub.drivers.mqtt"):
        batches = running(source, body)
    bad = [r.getMessage() for r in caplog.records if "payload:" in r.getMessage()]
    assert len(bad) == 3, bad
    assert "topic plugs/1: not JSON" in bad[0]
    sample = bad[0].split("payload: ", 1)[1]
    assert sample == ("this is not json " + "x" * 500)[:200] + "…"  # a sample of at most 200 characters
    assert "meters[0].power = 'lots' is not a number" in bad[1]
    assert "topic eniscope/a/rtdata: no 'rtdata' list" in bad[2]
    assert status["plug"].errors == 4 and status["eni"].errors == 2
    assert source.bad_payloads == 6
    assert "bad payload on eniscope/a/rtdata" in (status["eni"].last_error or "")
    # the good message after the garbage is decoded: 2 kW, 10 kWh
    assert {(r.quantity, r.value) for r in batches[-1]} == {
        (Q.ACTIVE_POWER, 2000.0),
        (Q.ENERGY_ACTIVE_IMPORT, 10000.0),
    }
    # one good value in the mix: the partially bad message still gave its good one (total 1 kWh)
    assert any(r.value == 1000.0 for b in batches for r in b)


def test_a_device_goes_offline_after_its_timeout_without_a_message(broker: Broker, tmp_path: Path) -> None:
    source, status = make_source(site(broker.port, timeout=", timeout: 0.5"), tmp_path)

    async def body(batches: list[Sequence[Reading]]) -> None:
        await asyncio.to_thread(broker.publish, "eniscope/hub-7/rtdata", rtdata(1, 2))
        await until(lambda: status["eni"].online)
        await until(lambda: not status["eni"].online, timeout=3)

    running(source, body)
    assert status["eni"].timeouts == 1
    assert "no message on eniscope/+/rtdata" in (status["eni"].last_error or "")
    assert "timeout 0.5 s" in (status["eni"].last_error or "")


def test_health_says_the_broker_is_unreachable(tmp_path: Path) -> None:
    source, _ = make_source(site(free_port()), tmp_path)

    async def go() -> None:
        task = asyncio.create_task(source.run(lambda b: None))
        try:
            await until(lambda: source.last_error != "connecting", timeout=5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(go())
    h = source.health()
    assert h.state is HealthState.DOWN
    assert "cannot connect to 127.0.0.1:" in h.message and h.counters["messages"] == 0


def test_the_source_reconnects_after_a_broker_restart_and_resumes(broker: Broker, tmp_path: Path) -> None:
    source, status = make_source(site(broker.port), tmp_path)

    async def body(batches: list[Sequence[Reading]]) -> None:
        await asyncio.to_thread(broker.stop)
        await until(lambda: not source.connected)
        assert source.health().state is HealthState.DOWN
        await asyncio.to_thread(broker.start)
        await until(lambda: source.connected, timeout=10)  # backoff 1, 2 … 30 s: the first retries
        await asyncio.sleep(0.1)
        await asyncio.to_thread(broker.publish, "eniscope/hub-7/rtdata", rtdata(500, 777))
        await until(lambda: len(batches) == 1)

    batches = running(source, body)
    assert {(r.quantity, r.value) for r in batches[0]} == {
        (Q.ACTIVE_POWER, 500.0),
        (Q.ENERGY_ACTIVE_IMPORT, 777.0),
    }
    assert status["eni"].online
