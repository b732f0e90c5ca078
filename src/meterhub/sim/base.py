"""The contract between ``meterhub demo``/``meterhub simulate`` and protocol-true device simulators.

A simulator serves the devices of one configured bus over that bus's real protocol (Modbus TCP,
RTU over TCP, a serial pty, the ADC board's sample stream …), taking its values from the shared
physical model :class:`meterhub.sim.physics.SiteModel`. The gateway then reads it exactly as it would
read hardware. Simulators are registered per :class:`~meterhub.config.BusKind`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

from meterhub.config.schema import Bus, BusKind, Device, SiteConfig

if TYPE_CHECKING:
    from meterhub.sim.physics import SiteModel

__all__ = ["SimContext", "SimServer", "SimulatorFactory", "register_simulator", "simulator_factory"]


@dataclass
class SimContext:
    config: SiteConfig
    bus: Bus
    devices: list[Device]
    model: SiteModel
    data_dir: Path | None = None  # the gateway's data folder (relative paths of simulators resolve here)


class SimServer(abc.ABC):
    """A running simulator; ``endpoint`` says where it listens, e.g. ``tcp://127.0.0.1:15020``."""

    endpoint: str

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop serving and release the port."""


class TcpSessionServer(SimServer):
    """A simulator on a TCP port that runs one :meth:`session` per connection (the DLMS meter, the
    IEC 62056-21 optical bridge): it keeps the sessions' tasks, closes each connection when its session
    ends and cancels the ones still running on :meth:`close`."""

    def __init__(self) -> None:
        self.endpoint = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> Self:
        self._server = await asyncio.start_server(self._client, host, port)
        h, p = self._server.sockets[0].getsockname()[:2]
        self.endpoint = f"tcp://{h}:{p}"
        return self

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    @abc.abstractmethod
    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection until the peer leaves (the connection is closed afterwards)."""

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self.session(reader, writer)
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None


SimulatorFactory = Callable[[SimContext], Awaitable[SimServer]]
_SIMS: dict[BusKind, SimulatorFactory] = {}


def register_simulator(kind: BusKind, factory: SimulatorFactory) -> None:
    if kind in _SIMS and _SIMS[kind] is not factory:
        raise ValueError(f"a simulator for {kind.value} is already registered")
    _SIMS[kind] = factory


def simulator_factory(kind: BusKind) -> SimulatorFactory | None:
    return _SIMS.get(kind)
