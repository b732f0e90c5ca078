"""The sinks the runtime composes, keyed by :class:`~meterhub.bus.SinkKind` (an explicit registry).

:data:`SINK_FACTORIES` maps every kind to the function that builds it from a
:class:`~meterhub.bus.SinkContext`; :func:`enabled_sinks` says which kinds a site runs. Adding a sink is
one class implementing :class:`~meterhub.bus.Sink`, one ``SinkKind`` member, one entry here and its
place in :data:`CORE_SINKS` (see docs/ARCHITECTURE.md, "Adding a sink").

Registers the sources compute themselves (:class:`~meterhub.drivers.base.ComputesRegisters`: waveform
energy, pulse totals) are persisted here too: :func:`computed_registers` collects them for every
storage flush, which commits them in the same transaction as the readings that carry them, and
:func:`seed_computed` hands back what storage holds to each such source before it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from meterhub.alarms.control import control_sink
from meterhub.alarms.sink import AlarmSink
from meterhub.bus import Batch, Overflow, Sink, SinkContext, SinkFactory, SinkKind, Subscription
from meterhub.drivers.base import ComputesRegisters, FillsGaps
from meterhub.live import live_cache
from meterhub.model.health import Health, HealthState
from meterhub.model.readings import SeriesKey
from meterhub.publish.modbus_server import modbus_server_sink
from meterhub.publish.sink import publish_sink
from meterhub.runtime.supervise import TaskRecord, supervise
from meterhub.storage.base import Storage

__all__ = [
    "CORE_SINKS",
    "alarm_sink",
    "SINK_FACTORIES",
    "STORAGE_QUEUE",
    "StorageSink",
    "computed_registers",
    "live_sink",
    "seed_computed",
    "seed_gap_fill",
    "storage_sink",
]

log = logging.getLogger("meterhub.runtime")

#: Batches the storage sink holds in memory before spilling to its spool file.
STORAGE_QUEUE = 2000
#: How often old rows are removed by the retention policy [s].
RETENTION_INTERVAL = 3600.0


class StorageSink:
    """Writes every batch to storage; every ``flush_interval`` commits it with the energy registers
    and the registers the sources compute (``computed``, set by the runtime; none by default).

    ``deliver`` only holds the batch; every flush *stages* what was held and queued together with the
    registers as they are at that moment (so every reading committed is covered by the registers
    committed with it), then commits in a worker thread so the event loop keeps acquiring while the
    database works. Its subscription spills to ``storage-spool.jsonl`` in the
    data folder, so nothing is lost while the database is slow.
    """

    name = "storage"

    def __init__(
        self,
        subscription: Subscription,
        storage: Callable[[], Storage],
        registers: Callable[[], Mapping[SeriesKey, float]],
        *,
        flush_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._sub = subscription
        self._storage = storage
        self._registers = registers
        #: The registers the sources compute, staged with every flush (the gateway sets it).
        self.computed: Callable[[], Mapping[SeriesKey, float]] = dict
        self.flush_interval = flush_interval
        self._clock = clock
        self._held: Batch = []  # delivered since the last staging
        self._flusher: asyncio.Task[None] | None = None
        self._record = TaskRecord("flush")
        self.last_flush: float | None = None  # clock time of the last successful commit [s]
        self.last_error: str | None = None  # the last commit's error, None once one succeeds
        self.last_flush_duration: float | None = None  # the last successful commit took [s]
        self.flushes = 0  # successful commits since start [count]
        self.flush_seconds = 0.0  # their total duration [s]

    @property
    def subscription(self) -> Subscription:
        return self._sub

    async def start(self) -> None:
        self._flusher = asyncio.create_task(
            supervise("flush", self._flush_periodically, record=self._record), name="flush"
        )

    async def deliver(self, batch: Batch) -> None:
        # Held here until the next staging, not written to the storage buffer at once: a commit takes
        # the storage buffer whenever its worker thread gets to it, so a batch written meanwhile would
        # be committed with registers older than its readings, and after kill -9 the registers would
        # restart below values already stored.
        self._held.extend(batch)

    async def stop(self) -> None:
        """Stop the periodic flush, then commit everything queued and the registers."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        # A flush the cancelled flusher left running in its thread finishes first (flushes are
        # serialised by the storage); this one then writes everything staged since.
        await self.flush_async()

    def health(self) -> Health:
        st = self._sub.stats
        counters = {"delivered": st.delivered, "spilled": st.spilled, "pending": self._sub.pending}
        if self.last_error is not None:
            return Health(HealthState.DOWN, f"cannot write: {self.last_error}", counters)
        if self._sub.pending >= self._sub.maxsize:
            return Health(HealthState.DEGRADED, "behind: batches spill to the spool file", counters)
        return Health(HealthState.OK, "writing", counters)

    # -- flushing -------------------------------------------------------------------------------
    def _stage(self) -> None:
        """Hand what is queued, the registers and the sources' computed registers to the storage
        buffer (on the event loop, where the energy and source state lives; no database work).

        The computed registers are taken after the readings were drained, so they are at least as
        new as every reading committed with them."""
        storage = self._storage()
        pending, self._held = self._held, []
        pending.extend(self._sub.drain())
        if pending:
            storage.write(pending)
        registers = dict(self._registers())
        if registers:
            storage.save_registers(registers)
        computed = dict(self.computed())
        if computed:
            storage.save_computed_registers(computed)

    def flush(self) -> None:
        """Write everything queued and persist the registers (one transaction), blocking."""
        self._stage()
        self._commit()

    async def flush_async(self) -> None:
        """:meth:`flush` with the database transaction in a worker thread, so that the event loop keeps
        acquiring and serving while it is written (``Storage.write`` never waits for a flush)."""
        self._stage()
        await asyncio.to_thread(self._commit)

    def _commit(self) -> None:
        began = time.perf_counter()
        try:
            self._storage().flush()
        except Exception as exc:
            self.last_error = str(exc)
            raise
        self.last_error = None
        self.last_flush = self._clock()
        self.last_flush_duration = time.perf_counter() - began
        self.flushes += 1
        self.flush_seconds += self.last_flush_duration

    async def _flush_periodically(self) -> None:
        last_retention = 0.0
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush_async()
            now = self._clock()
            if now - last_retention > RETENTION_INTERVAL:
                await asyncio.to_thread(self._storage().apply_retention, now)
                last_retention = now


def computed_registers(sources: Iterable[object]) -> dict[SeriesKey, float]:
    """The registers every source that computes registers holds now (series → value [unit])."""
    out: dict[SeriesKey, float] = {}
    for source in sources:
        if isinstance(source, ComputesRegisters):
            try:
                out.update(source.computed_registers())
            except Exception:  # one source's bug must not stop the flush of the others' data
                log.exception("cannot collect the computed registers of %s", getattr(source, "name", source))
    return out


def seed_computed(
    sources: Iterable[object],
    storage: Storage,
    now: float,
    accepted: Mapping[SeriesKey, float] | None = None,
) -> int:
    """Seed every source that computes registers with what storage holds of them; return how many
    values were handed over.

    Per series: the computed register saved with the last flush; for a series without one (a data
    folder from before they were saved) the latest valid stored reading at or before ``now`` [s].
    ``accepted`` are the source values the energy stage accepted last (the register guard's raw
    baselines, kept in its state file at every flush): a value the source had computed and published,
    so it is taken where it is higher. Each source takes a value only where it is above its own state
    file. A storage that cannot be read is logged, and the sources continue from their state files.
    """
    computing = [s for s in sources if isinstance(s, ComputesRegisters)]
    if not computing:
        return 0
    try:
        saved = storage.load_computed_registers()
    except Exception as exc:
        log.error(
            "cannot read the computed registers from storage (%s); sources continue from their state files",
            exc,
        )
        saved = {}
    handed = 0
    for source in computing:
        name = getattr(source, "name", type(source).__name__)
        seeds: dict[SeriesKey, float] = {}
        try:
            for key in source.computed_series():
                value = saved.get(key)
                if value is None:
                    latest = storage.value_at(key, now)
                    value = latest[1] if latest is not None else None
                raw = (accepted or {}).get(key)
                if raw is not None and (value is None or raw > value):
                    value = raw
                if value is not None:
                    seeds[key] = value
        except Exception as exc:
            log.error(
                "%s: cannot read its stored registers (%s); it continues from its state file", name, exc
            )
        if seeds:
            try:
                source.seed_registers(seeds)
            except Exception:
                log.exception("%s: cannot continue from its stored registers", name)
                continue
            handed += len(seeds)
    return handed


def seed_gap_fill(sources: Iterable[object], storage: Storage, now: float) -> int:
    """Hand every source that fills gaps (:class:`~meterhub.drivers.base.FillsGaps`) the time of the
    last valid stored value of each of its series at or before ``now`` [s]; return how many series
    had one. A storage that cannot be read is logged: the source then fills only outages it sees."""
    handed = 0
    for source in sources:
        if not isinstance(source, FillsGaps):
            continue
        name = getattr(source, "name", type(source).__name__)
        last: dict[SeriesKey, float] = {}
        try:
            for key in source.gap_series():
                found = storage.value_at(key, now)
                if found is not None:
                    last[key] = found[0]
            source.seed_last_stored(last)
        except Exception as exc:
            log.error("%s: cannot read the last stored times (%s); a restart gap is not filled", name, exc)
            continue
        handed += len(last)
    return handed


def storage_sink(ctx: SinkContext) -> StorageSink:
    sub = ctx.bus.subscribe(
        "storage", maxsize=STORAGE_QUEUE, overflow=Overflow.SPILL, spool=ctx.data_dir / "storage-spool.jsonl"
    )
    return StorageSink(
        sub, ctx.storage, ctx.registers, flush_interval=ctx.config.storage.flush_interval, clock=ctx.clock
    )


def live_sink(ctx: SinkContext) -> Sink:
    return live_cache(ctx.bus)


def alarm_sink(ctx: SinkContext) -> AlarmSink:
    return AlarmSink(ctx.config, ctx.bus, ctx.data_dir, device_status=ctx.device_status, clock=ctx.clock)


#: Every sink kind → its factory. Checked complete at import (a kind without a factory is a bug).
SINK_FACTORIES: Mapping[SinkKind, SinkFactory] = {
    SinkKind.LIVE: live_sink,
    SinkKind.STORAGE: storage_sink,
    SinkKind.PUBLISH: publish_sink,  # subscribes only when the site has an enabled publish: instance
    SinkKind.ALARMS: alarm_sink,
    SinkKind.MODBUS_SERVER: modbus_server_sink,  # subscribes only when the site has a modbus_server: section
    SinkKind.CONTROL: control_sink,  # the outputs' audited path; the gateway wires its output driver
}
_missing = set(SinkKind) - set(SINK_FACTORIES)
if _missing:  # pragma: no cover - a programming error, caught by the first import in the tests
    raise RuntimeError(f"no sink factory for {sorted(_missing)}")


#: The sinks every gateway runs, in start order (the live view first: the web reads it from the start).
#: The publish and Modbus server sinks are always composed; without an enabled ``publish:`` instance or
#: ``modbus_server:`` section they subscribe to nothing. The alarm sink is always composed too: the
#: built-in system rules (device offline …) need no configuration.
CORE_SINKS: tuple[SinkKind, ...] = (
    SinkKind.LIVE,
    SinkKind.STORAGE,
    SinkKind.PUBLISH,
    SinkKind.MODBUS_SERVER,
    SinkKind.ALARMS,
    SinkKind.CONTROL,
)
