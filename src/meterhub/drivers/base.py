"""The contract between the runtime and acquisition drivers.

A :class:`Source` reads one bus (or one endpoint) and emits batches of readings named from the
catalogue and keyed by *circuit* (the runtime never sees vendor names or device channels). It never
writes to storage or knows the UI. Sources are created by the factory registered for their
:class:`~meterhub.config.BusKind` (an explicit registry, STYLE.md §6).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from meterhub.config.schema import Bus, BusKind, Device, SiteConfig
from meterhub.model.readings import Reading, Spectrum

__all__ = [
    "DeviceStatus",
    "Emit",
    "Source",
    "SourceContext",
    "SourceFactory",
    "SpectrumEmit",
    "register_source",
    "source_factory",
]

Emit = Callable[[Sequence[Reading]], None]
#: Where a source that measures harmonic spectra hands them (the live cache; never the bus or storage).
SpectrumEmit = Callable[[Sequence[Spectrum]], None]


@dataclass
class DeviceStatus:
    """Health of one device, updated by its source and read by the API."""

    id: str
    name: str
    profile: str
    bus: str
    online: bool = False
    last_seen: float | None = None  # Unix time of the last good response [s]
    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    last_error: str | None = None

    def ok(self, ts: float) -> None:
        self.online = True
        self.last_seen = ts

    def failed(self, message: str, *, timeout: bool = False) -> None:
        self.errors += 1
        self.timeouts += int(timeout)
        self.last_error = message
        self.online = False


@dataclass
class SourceContext:
    """What a source factory gets: the whole site, its bus, the bus's devices and their status.

    ``publish_spectra`` takes the harmonic spectra a source measures (None: nobody wants them).
    """

    config: SiteConfig
    bus: Bus
    devices: list[Device]
    status: dict[str, DeviceStatus]
    data_dir: Path
    extra: dict[str, object] = field(default_factory=dict)
    publish_spectra: SpectrumEmit | None = None


class Source(abc.ABC):
    """Something that yields readings until cancelled."""

    name: str

    @abc.abstractmethod
    async def run(self, emit: Emit) -> None:
        """Acquire forever, calling ``emit`` with each batch. Must survive bad frames and values."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (called on shutdown)."""


SourceFactory = Callable[[SourceContext], Sequence[Source]]
_FACTORIES: dict[BusKind, SourceFactory] = {}


def register_source(kind: BusKind, factory: SourceFactory) -> None:
    """Register the factory for a bus kind; registering a kind twice is a programming error."""
    if kind in _FACTORIES and _FACTORIES[kind] is not factory:
        raise ValueError(f"a source factory for {kind.value} is already registered")
    _FACTORIES[kind] = factory


def source_factory(kind: BusKind) -> SourceFactory | None:
    return _FACTORIES.get(kind)
