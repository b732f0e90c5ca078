"""A Modbus server sink running in its own event loop thread, so that blocking peers (pysunspec2, mbpoll,
pymodbus's synchronous client) can talk to it from the test."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from meterhub.bus import ReadingBus, SinkContext
from meterhub.checks import parse_site
from meterhub.config.schema import SiteConfig
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase
from meterhub.publish.modbus_server import ModbusServerSink, modbus_server_sink

T = TypeVar("T")

#: Three circuits, one per meter model family: a 3P4W incomer (203), a single-phase circuit on L2
#: served as float (211), a 3P3W motor measured in Aron connection (204).
SITE = """\
site: {name: Lab}
buses:
  - {id: b, kind: modbus-tcp, port: 1502}
devices:
  - {id: m3, bus: b, unit: 1, profile: eastron-sdm630, poll_interval: 2.0}
  - {id: m1, bus: b, unit: 2, profile: eastron-sdm120}
  - {id: md, bus: b, unit: 3, profile: eastron-sdm630}
circuits:
  - {id: grid, device: m3, channels: [1, 2, 3], wiring: 3P4W}
  - {id: office, device: m1, wiring: 1P2W, phases: [L2]}
  - {id: motor, device: md, channels: [1, 3], wiring: 3P3W}
modbus_server:
  tcp: {host: 127.0.0.1, port: 0}
  circuits:
    - {circuit: grid, unit: 1}
    - {circuit: office, unit: 2, encoding: float}
    - {circuit: motor, unit: 3}
"""

#: Time of the readings [s since the epoch]; the fake clock starts 0.5 s later.
T0 = 1_800_000_000.0


def r(
    circuit: str,
    quantity: str,
    phase: Phase,
    value: float,
    quality: Quality = Quality.GOOD,
    *,
    ts: float = T0,
) -> Reading:
    return Reading(ts, circuit, quantity, phase, value, quality)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Served:
    """The running sink: ``port`` its TCP port, ``clock`` the fake time it sees, ``call`` runs a
    coroutine in its loop."""

    def __init__(self, config: SiteConfig, clock: Clock) -> None:
        self.clock = clock
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.bus = ReadingBus()

        async def build() -> ModbusServerSink:
            ctx = SinkContext(config, self.bus, None, None, dict, clock)  # type: ignore[arg-type]
            return modbus_server_sink(ctx)

        self.sink = self.call(build())
        try:
            self.call(self.sink.start())
        except BaseException:
            self.close()
            raise

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def publish(self, batch: list[Reading]) -> None:
        async def deliver() -> None:
            self.bus.publish(batch)
            while (b := self.sink.subscription.get_nowait()) is not None:
                await self.sink.deliver(b)

        self.call(deliver())

    @property
    def port(self) -> int:
        return int(self.sink.endpoints[0].rsplit(":", 1)[1])

    def close(self) -> None:
        self.call(self.sink.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def serve(text: str = SITE) -> Served:
    return Served(parse_site(text, "lab.yaml"), Clock(T0 + 0.5))


@pytest.fixture
def served() -> Iterator[Served]:
    s = serve()
    try:
        yield s
    finally:
        s.close()
