"""The contract between ``meterhub demo``/``meterhub simulate`` and protocol-true device simulators.

A simulator serves the devices of one configured bus over that bus's real protocol (Modbus TCP,
RTU over TCP, a serial pty, the ADC board's sample stream …), taking its values from the shared
physical model :class:`meterhub.sim.physics.SiteModel`. The gateway then reads it exactly as it would
read hardware. Simulators are registered per :class:`~meterhub.config.BusKind`.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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


SimulatorFactory = Callable[[SimContext], Awaitable[SimServer]]
_SIMS: dict[BusKind, SimulatorFactory] = {}


def register_simulator(kind: BusKind, factory: SimulatorFactory) -> None:
    if kind in _SIMS and _SIMS[kind] is not factory:
        raise ValueError(f"a simulator for {kind.value} is already registered")
    _SIMS[kind] = factory


def simulator_factory(kind: BusKind) -> SimulatorFactory | None:
    return _SIMS.get(kind)
