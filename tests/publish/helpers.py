"""Shared pieces of the publish tests: a small site with one publish instance and readings of a
three-phase circuit whose every Eniscope field can be checked by hand."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from meterhub.bus import ReadingBus, SinkContext
from meterhub.config import SiteConfig, parse_config
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase
from meterhub.publish.sink import PublishSink, publish_sink

L1, L2, L3, N, T = Phase.L1, Phase.L2, Phase.L3, Phase.N, Phase.TOTAL


def site(
    broker_url: str,
    *,
    formats: str = "[eniscope-rtdata, meterhub-json, homeassistant]",
    extra: str = "",
    circuits: str = "",
) -> SiteConfig:
    text = f"""
site: {{name: Test site}}
buses: [{{id: b, kind: modbus-tcp, port: 1502}}]
devices: [{{id: m, bus: b, unit: 1, profile: eastron-sdm630}}, {{id: m2, bus: b, unit: 2, profile: eastron-sdm630}}]
circuits:
  - {{id: main, name: Main incomer, device: m, channels: [1, 2, 3], wiring: 3P4W, zone: plant}}
{circuits}
publish:
  - id: test
    broker: {broker_url}
    site_id: site-1
    interval: 1
    qos: 1
    formats: {formats}
{extra}
"""
    return parse_config(text, "site.yaml")


def three_phase(ts: float, *, scale: float = 1.0, quality: Quality = Quality.GOOD) -> list[Reading]:
    """One poll of circuit ``main``: values a person can check (× ``scale`` for instantaneous ones)."""
    inst = {
        (Q.VOLTAGE, L1): 230.0,
        (Q.VOLTAGE, L2): 231.0,
        (Q.VOLTAGE, L3): 229.0,
        (Q.VOLTAGE, T): 230.0,
        (Q.VOLTAGE_LINE, L1): 399.0,
        (Q.VOLTAGE_LINE, L2): 400.0,
        (Q.VOLTAGE_LINE, L3): 401.0,
        (Q.CURRENT, L1): 10.0,
        (Q.CURRENT, L2): 11.0,
        (Q.CURRENT, L3): 12.0,
        (Q.CURRENT, T): 11.0,
        (Q.CURRENT, N): 1.5,
        (Q.ACTIVE_POWER, L1): 2200.0,
        (Q.ACTIVE_POWER, L2): 2400.0,
        (Q.ACTIVE_POWER, L3): 2600.0,
        (Q.ACTIVE_POWER, T): 7200.0,
        (Q.REACTIVE_POWER, L1): 300.0,
        (Q.REACTIVE_POWER, L2): 310.0,
        (Q.REACTIVE_POWER, L3): 320.0,
        (Q.REACTIVE_POWER, T): 930.0,
        (Q.APPARENT_POWER, L1): 2300.0,
        (Q.APPARENT_POWER, L2): 2541.0,
        (Q.APPARENT_POWER, L3): 2748.0,
        (Q.APPARENT_POWER, T): 7589.0,
        (Q.POWER_FACTOR, L1): 0.95,
        (Q.POWER_FACTOR, L2): 0.94,
        (Q.POWER_FACTOR, L3): 0.93,
        (Q.POWER_FACTOR, T): 0.94,
        (Q.ANGLE_VOLTAGE_CURRENT, L1): 18.2,
        (Q.ANGLE_VOLTAGE_CURRENT, L2): 19.9,
        (Q.ANGLE_VOLTAGE_CURRENT, L3): 21.6,
        (Q.FREQUENCY, T): 50.02,
    }
    regs = {}
    for q, base in (
        (Q.ENERGY_ACTIVE_IMPORT, 1000.0),
        (Q.ENERGY_ACTIVE_EXPORT, 10.0),
        (Q.ENERGY_REACTIVE_IMPORT, 200.0),
        (Q.ENERGY_REACTIVE_EXPORT, 20.0),
        (Q.ENERGY_APPARENT, 1100.0),
    ):
        for i, ph in enumerate((L1, L2, L3)):
            regs[(q, ph)] = base * (i + 1)
        regs[(q, T)] = base * 6
    out = [Reading(ts, "main", q, ph, v * scale, quality) for (q, ph), v in inst.items()]
    out += [Reading(ts, "main", q, ph, v, quality) for (q, ph), v in regs.items()]
    return out


def aligned_past(interval: float = 1.0, back: int = 5) -> float:
    """The start of an interval that ended ``back`` intervals ago [s since the epoch]."""
    return (int(time.time() // interval) - back) * interval


def make_sink(cfg: SiteConfig, data: Path, bus: ReadingBus | None = None) -> tuple[PublishSink, ReadingBus]:
    bus = bus or ReadingBus()
    ctx = SinkContext(
        config=cfg,
        bus=bus,
        data_dir=data,
        storage=lambda: (_ for _ in ()).throw(RuntimeError("no storage in publish tests")),
        registers=dict,
        clock=time.time,
    )
    return publish_sink(ctx), bus


async def feed(sink: PublishSink, bus: ReadingBus, batches: list[list[Reading]]) -> None:
    for b in batches:
        bus.publish(b)
    while (b := sink.subscription.get_nowait()) is not None:
        await sink.deliver(b)


async def wait_until(cond, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return bool(cond())


def wait_until_sync(cond, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    """``cond()`` became true within ``timeout`` [s] (polled every 50 ms, blocking)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def status_site(broker_url: str) -> SiteConfig:
    """Three instances: ``live`` (the broker at ``broker_url``), ``nowhere`` (a free port nobody listens
    on) and ``off`` (disabled); meterhub-json of circuit ``main`` every second."""
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        nowhere = int(s.getsockname()[1])
    return parse_config(
        f"""
site: {{name: Test site}}
buses: [{{id: b, kind: modbus-tcp, port: 1502}}]
devices: [{{id: m, bus: b, unit: 1, profile: eastron-sdm630}}]
circuits:
  - {{id: main, name: Main incomer, device: m, channels: [1, 2, 3], wiring: 3P4W, zone: plant}}
publish:
  - id: live
    name: Local broker
    broker: {broker_url}
    site_id: site-1
    interval: 1
    formats: [meterhub-json]
  - id: nowhere
    name: Nobody listens
    broker: mqtt://127.0.0.1:{nowhere}
    site_id: site-1
    interval: 1
    formats: [meterhub-json]
  - id: off
    enabled: false
    broker: {broker_url}
    formats: [meterhub-json]
""",
        "site.yaml",
    )
