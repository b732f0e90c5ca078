"""The contract between the runtime and acquisition drivers: the :class:`Source`.

A source reads one bus (or one endpoint) and emits batches of readings named from the catalogue and
keyed by *circuit* (the runtime never sees vendor names or device channels). It never writes to
storage or knows the UI. Sources are created by the factory registered for their
:class:`~meterhub.config.BusKind` (an explicit registry, STYLE.md §6).

The Source contract
-------------------
input
    a :class:`SourceContext`: the site, the bus, the bus's enabled devices, their :class:`DeviceStatus`
    (shared with the API) and the data folder. The transport is the driver's own business (injected by
    its factory, so tests run the source in-process).
output
    ``emit(batch)`` (:data:`Emit`) with a batch of :class:`~meterhub.model.readings.Reading` per poll or
    analysis block — every value in its catalogue unit, with its quality; and, for sources that measure
    harmonic spectra, :attr:`SourceContext.publish_spectra` (:data:`SpectrumEmit`).
start
    the runtime awaits :meth:`Source.run` in a supervised task: ``run`` acquires until cancelled and must
    survive bad frames and values; if it fails or returns, the runtime restarts it with a backoff.
stop
    the runtime cancels that task, then awaits :meth:`Source.close` to release connections.
health
    :meth:`Source.health` — by default derived from the statuses of the devices on the source's bus,
    which the runtime hands over in :attr:`Source.monitored` when it creates the source; a driver with
    more to say (a stream's resync count, a link's state) or one source per device overrides it.

Registers a source computes itself
----------------------------------
A meter keeps its registers; a source that *computes* cumulative registers (the waveform source's
energy, pulse totals and run hours of IO points) must keep them across a crash itself. Such a source
also implements :class:`ComputesRegisters`: at every storage flush the runtime stages
:meth:`~ComputesRegisters.computed_registers` in the same transaction as the readings that carry them,
and before :meth:`Source.run` it hands back what storage holds with
:meth:`~ComputesRegisters.seed_registers`, which the source takes where it is above its own state
file. After ``kill -9`` such a register restarts no lower than any value stored before it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from meterhub.config.schema import Bus, BusKind, Device, SiteConfig
from meterhub.model.device_log import DeviceEvent, FilledRange
from meterhub.model.health import Health, HealthState
from meterhub.model.pq import PqEvent
from meterhub.model.readings import Reading, SeriesKey, Spectrum

__all__ = [
    "ComputesRegisters",
    "DeviceStatus",
    "Emit",
    "FillsGaps",
    "MeterBilling",
    "PqEmit",
    "Source",
    "SourceContext",
    "SourceFactory",
    "SpectrumEmit",
    "device_health",
    "register_source",
    "source_factory",
]

#: Where a source hands each batch of readings (the gateway's ``emit``: energy stage, then the bus).
Emit = Callable[[Sequence[Reading]], None]
#: Where a source that measures harmonic spectra hands them (the live cache; never the bus or storage).
SpectrumEmit = Callable[[Sequence[Spectrum]], None]
#: Where a source that detects power-quality events (dips, swells …) hands each ended event (the
#: gateway's ``emit_pq_events``: the power-quality log and whoever listens, e.g. the alarm engine).
PqEmit = Callable[[Sequence[PqEvent]], None]


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
    #: the source's own counters of this device, read when the status is shown (the waveform source:
    #: lost samples and duplicate frames); None when it has none
    extra_counters: Callable[[], Mapping[str, int]] | None = None

    def ok(self, ts: float) -> None:
        self.online = True
        self.last_seen = ts

    def failed(self, message: str, *, timeout: bool = False) -> None:
        self.errors += 1
        self.timeouts += int(timeout)
        self.last_error = message
        self.online = False


def device_health(statuses: Iterable[DeviceStatus]) -> Health:
    """The health of a group of devices (one source's).

    OK when every device is online; DEGRADED when some are offline or none has answered yet; DOWN when
    devices have been asked and none is online. Counters are the devices' totals.
    """
    devices = list(statuses)
    counters = {
        "devices": len(devices),
        "online": sum(d.online for d in devices),
        "requests": sum(d.requests for d in devices),
        "errors": sum(d.errors for d in devices),
        "timeouts": sum(d.timeouts for d in devices),
    }
    if not devices:
        return Health(HealthState.OK, "no devices to read", counters)
    offline = [d for d in devices if not d.online]
    if not offline:
        return Health(HealthState.OK, f"{len(devices)} of {len(devices)} devices online", counters)
    tried = [d for d in offline if d.errors or d.last_seen is not None]
    if not tried:
        return Health(HealthState.DEGRADED, "waiting for the first answer", counters)
    why = "; ".join(f"{d.id}: {d.last_error or 'offline'}" for d in tried[:3])
    more = f" (+{len(tried) - 3} more)" if len(tried) > 3 else ""
    online = len(devices) - len(offline)
    state = HealthState.DOWN if online == 0 and len(tried) == len(offline) else HealthState.DEGRADED
    return Health(state, f"{online} of {len(devices)} devices online; {why}{more}", counters)


@dataclass
class SourceContext:
    """What a source factory gets: the whole site, its bus, the bus's devices and their status.

    ``publish_spectra`` takes the harmonic spectra a source measures (None: nobody wants them).
    ``device_serial(device_id, serial_number)`` takes the serial number a source reads from a device
    when it identifies it (the energy stage: a changed serial means a new meter whose registers start
    elsewhere); None: nobody wants it.
    ``meter_billing`` takes the billing snapshots a meter took itself (:class:`MeterBilling`); None:
    nobody keeps them.
    ``publish_pq_events`` takes the power-quality events a source detects, once each has ended
    (:class:`~meterhub.model.pq.PqEvent`); None: nobody wants them.
    ``publish_device_events`` takes the entries of a device's own event logs
    (:class:`~meterhub.model.device_log.DeviceEvent`); ``publish_filled`` the ranges of series a
    source filled from a device's memory (:class:`~meterhub.model.device_log.FilledRange`); None:
    nobody keeps them.
    """

    config: SiteConfig
    bus: Bus
    devices: list[Device]
    status: dict[str, DeviceStatus]
    data_dir: Path
    extra: dict[str, object] = field(default_factory=dict)
    publish_spectra: SpectrumEmit | None = None
    device_serial: Callable[[str, str], object] | None = None
    meter_billing: MeterBilling | None = None
    publish_pq_events: PqEmit | None = None
    publish_device_events: Callable[[Sequence[DeviceEvent]], None] | None = None
    publish_filled: Callable[[Sequence[FilledRange]], None] | None = None


class Source(abc.ABC):
    """Something that yields readings until cancelled (see the module docstring for the contract)."""

    name: str
    #: The statuses of the enabled devices on this source's bus; set by the runtime when it creates the
    #: source, read by the default :meth:`health`.
    monitored: tuple[DeviceStatus, ...] = ()

    @abc.abstractmethod
    async def run(self, emit: Emit) -> None:
        """Acquire forever, calling ``emit`` with each batch. Must survive bad frames and values."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (called on shutdown, after :meth:`run` was cancelled)."""

    def health(self) -> Health:
        """How acquisition goes; by default from the statuses of :attr:`monitored` devices."""
        return device_health(self.monitored)


class MeterBilling(Protocol):
    """Where the billing snapshots a meter took itself go (the energy stage's billing history)."""

    def meter_billing(
        self,
        device: str,
        ts: float,
        registers: dict[str, float],
        max_demand: dict[str, dict[str, list[float | None]]],
    ) -> bool:
        """Keep the snapshot of ``device`` taken at ``ts`` [s]: ``registers`` ``"circuit/quantity/phase"``
        → value [Wh, varh]; ``max_demand`` ``"circuit/quantity"`` → {rate: [value [W], time [s]]}.
        False when it was already kept."""
        ...

    def last_meter_billing(self, device: str) -> float | None:
        """Time of the newest snapshot of ``device`` kept [s], None when there is none."""
        ...


@runtime_checkable
class FillsGaps(Protocol):
    """A source that can fill a gap in storage from the device's own memory (a meter's load profile).

    Before :meth:`Source.run`, the runtime hands it the time of the last stored value of each of its
    :meth:`gap_series` (a gateway restart is a gap too: what was not polled while the gateway was down
    is in the meter, not in storage)."""

    def gap_series(self) -> Collection[SeriesKey]:
        """The series whose last stored time says where the gap starts (known from the configuration)."""
        ...

    def seed_last_stored(self, last: Mapping[SeriesKey, float]) -> None:
        """``last``: series → time of its last valid stored value [s]; series without any are absent."""
        ...


@runtime_checkable
class ComputesRegisters(Protocol):
    """A source that computes cumulative registers itself (see "Registers a source computes itself").

    Keys are the series of the readings that carry the registers; values are in the catalogue unit of
    their quantity (Wh, varh, pulses, h).
    """

    def computed_series(self) -> Collection[SeriesKey]:
        """Every register series this source computes (known from the configuration, before any
        reading), so the runtime can look up what storage holds of each."""
        ...

    def computed_registers(self) -> Mapping[SeriesKey, float]:
        """The registers now, to be stored with the next flush (cheap: called on the event loop at
        every flush, between two batches of the source)."""
        ...

    def seed_registers(self, registers: Mapping[SeriesKey, float]) -> None:
        """Continue from ``registers`` (what storage holds) where they are above the source's own
        state; called once before :meth:`Source.run`. Keys the source does not compute are ignored."""
        ...


SourceFactory = Callable[[SourceContext], Sequence[Source]]
_FACTORIES: dict[BusKind, SourceFactory] = {}


def register_source(kind: BusKind, factory: SourceFactory) -> None:
    """Register the factory for a bus kind; registering a kind twice is a programming error."""
    if kind in _FACTORIES and _FACTORIES[kind] is not factory:
        raise ValueError(f"a source factory for {kind.value} is already registered")
    _FACTORIES[kind] = factory


def source_factory(kind: BusKind) -> SourceFactory | None:
    """The factory registered for ``kind``, or None when no driver for it is imported."""
    return _FACTORIES.get(kind)
