"""Wiring and supervision: one asyncio process from sources through energy to sinks.

``Gateway`` owns the bus, the live cache, storage, the energy pipeline and one supervised task per
source; sinks (storage, live) each have their own bounded queue. ``stop()`` shuts down gracefully: sources
stop, whatever is queued for storage is written, registers are persisted, storage is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from meterhub.bus import Bus, Overflow, Subscription
from meterhub.checks import parse_site
from meterhub.config.schema import SiteConfig
from meterhub.drivers.base import DeviceStatus, Source, SourceContext, source_factory
from meterhub.live import LiveCache
from meterhub.model.readings import Reading, Spectrum
from meterhub.storage.base import Storage

__all__ = ["DRIVER_MODULES", "Gateway", "load_plugins", "supervise"]

log = logging.getLogger("meterhub.runtime")

#: Modules that register sources and simulators when imported (explicit, not discovered by name).
DRIVER_MODULES = (
    "meterhub.drivers.modbus",
    "meterhub.drivers.waveform",
    "meterhub.drivers.io",
)
SIMULATOR_MODULES = ("meterhub.sim.modbus_server", "meterhub.sim.adc")


def load_plugins(modules: Sequence[str]) -> list[str]:
    """Import registration modules; return those that are not available (logged, not fatal)."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                missing.append(name)
            else:
                raise
    return missing


async def supervise(
    name: str,
    factory: Callable[[], Awaitable[None]],
    *,
    initial_backoff: float = 1.0,
    max_backoff: float = 30.0,
    healthy_after: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``factory()`` forever; when it fails or returns, restart it after an exponential backoff.

    The backoff [s] doubles per consecutive failure up to ``max_backoff`` and resets once a run has
    lasted ``healthy_after`` seconds. Cancellation stops it.
    """
    backoff = initial_backoff
    while True:
        started = clock()
        try:
            await factory()
            log.warning("task ended; restarting", extra={"task": name})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a task must never take the gateway down
            log.exception("task failed: %s", exc, extra={"task": name})
        if clock() - started >= healthy_after:
            backoff = initial_backoff
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff)


class Gateway:
    """The running system. The web layer reads its attributes; see the module docstring."""

    def __init__(
        self,
        config: SiteConfig,
        *,
        data_dir: Path,
        config_path: Path | None = None,
        storage: Storage | None = None,
        demo: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.demo = demo
        self.clock = clock
        self.started_at = clock()
        self.bus = Bus()
        self.live = LiveCache()
        self.status: dict[str, DeviceStatus] = {}
        self._storage = storage
        self.energy: Any = None
        self.sources: list[Source] = []
        self._source_tasks: list[asyncio.Task[None]] = []
        self._sink_tasks: list[asyncio.Task[None]] = []
        self._storage_sub: Subscription | None = None
        self._reset_status()

    # -- state ------------------------------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        if self._storage is None:
            from meterhub.storage import open_storage

            self._storage = open_storage(
                self.config.storage, self.data_dir, timezone=self.config.site.timezone
            )
        return self._storage

    def _reset_status(self) -> None:
        old = self.status
        self.status = {}
        for d in self.config.devices:
            prev = old.get(d.id)
            st = DeviceStatus(id=d.id, name=d.name or d.id, profile=d.profile, bus=d.bus)
            if prev is not None:
                st.online, st.last_seen = prev.online, prev.last_seen
            self.status[d.id] = st

    # -- data path --------------------------------------------------------------------------------
    def emit(self, batch: Sequence[Reading]) -> None:
        """Entry point for every source: energy processing, then the live cache and the bus."""
        readings = list(batch)
        if self.energy is not None:
            try:
                readings = self.energy.process(readings)
            except Exception:  # the energy stage must not stop acquisition; pass raw values on
                log.exception("energy pipeline failed on a batch of %d readings", len(readings))
        self.live.update(readings)
        self.bus.publish(readings)

    def emit_spectra(self, batch: Sequence[Spectrum]) -> None:
        """Entry point for harmonic spectra: the live cache only (not stored, not on the bus)."""
        self.live.update_spectra(batch)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        missing = load_plugins(DRIVER_MODULES)
        if missing:
            log.info("driver modules not available: %s", ", ".join(missing))
        self.energy = self._make_energy()
        self._storage_sub = self.bus.subscribe(
            "storage", maxsize=2000, overflow=Overflow.SPILL, spool=self.data_dir / "storage-spool.jsonl"
        )
        self._sink_tasks = [
            asyncio.create_task(supervise("sink:storage", self._storage_sink), name="sink:storage"),
            asyncio.create_task(supervise("flush", self._flusher), name="flush"),
        ]
        self._start_sources()

    def _make_energy(self) -> Any:
        try:
            from meterhub.energy.pipeline import EnergyPipeline
        except ModuleNotFoundError:
            log.info("energy pipeline not available; cumulative registers pass through unguarded")
            return None
        return EnergyPipeline(self.config, self.storage, clock=self.clock)

    def _start_sources(self) -> None:
        for bus in self.config.buses:
            devices = [d for d in self.config.devices if d.bus == bus.id and d.enabled]
            factory = source_factory(bus.kind)
            if factory is None:
                log.error("no driver for bus %r of kind %s; its devices stay offline", bus.id, bus.kind.value)
                continue
            ctx = SourceContext(
                self.config, bus, devices, self.status, self.data_dir, publish_spectra=self.emit_spectra
            )
            try:
                sources = list(factory(ctx))
            except Exception:
                log.exception("cannot create the source for bus %r", bus.id)
                continue
            for source in sources:
                self.sources.append(source)
                task = asyncio.create_task(
                    supervise(f"source:{source.name}", lambda s=source: s.run(self.emit)),  # type: ignore[misc]
                    name=f"source:{source.name}",
                )
                self._source_tasks.append(task)

    async def _stop_sources(self) -> None:
        for t in self._source_tasks:
            t.cancel()
        await asyncio.gather(*self._source_tasks, return_exceptions=True)
        for s in self.sources:
            with contextlib.suppress(Exception):
                await s.close()
        self._source_tasks, self.sources = [], []

    async def _storage_sink(self) -> None:
        sub = self._storage_sub
        if sub is None:
            return
        while True:
            batch = await sub.get()
            self.storage.write(batch)

    async def _flusher(self) -> None:
        interval = self.config.storage.flush_interval
        last_retention = 0.0
        while True:
            await asyncio.sleep(interval)
            await self.flush_async()
            now = self.clock()
            if now - last_retention > 3600:
                await asyncio.to_thread(self.storage.apply_retention, now)
                last_retention = now

    def _stage_flush(self) -> None:
        """Hand what is queued for storage and the registers to the storage buffer (on the event loop,
        where the energy state lives; no database work)."""
        if self._storage_sub is not None:
            pending = self._storage_sub.drain()
            if pending:
                self.storage.write(pending)
        if self.energy is not None:
            self.storage.save_registers(self.energy.registers())

    def flush(self) -> None:
        """Write everything queued for storage and persist the registers (one transaction)."""
        self._stage_flush()
        self.storage.flush()

    async def flush_async(self) -> None:
        """:meth:`flush` with the database transaction in a worker thread, so that the event loop keeps
        acquiring and serving while it is written (storage.write never waits for a flush)."""
        self._stage_flush()
        await asyncio.to_thread(self.storage.flush)

    async def stop(self) -> None:
        """Graceful shutdown: stop sources, flush what is buffered, persist registers, close storage."""
        await self._stop_sources()
        for t in self._sink_tasks:
            t.cancel()
        await asyncio.gather(*self._sink_tasks, return_exceptions=True)
        try:
            # A flush the cancelled flusher left running in its thread finishes first (flushes are
            # serialised); this one then writes everything staged since.
            await self.flush_async()
        finally:
            if self.energy is not None and hasattr(self.energy, "close"):
                self.energy.close()
            await asyncio.to_thread(self.storage.close)
        log.info("gateway stopped; data flushed to %s", self.data_dir)

    async def update_config(self, new_config: SiteConfig) -> None:
        """Apply a changed configuration: validate it, write the site file back, restart acquisition."""
        text = yaml.safe_dump(new_config.model_dump(mode="json", exclude_none=True), sort_keys=False)
        validated = parse_site(text, str(self.config_path or "<api>"))  # cross-reference checks too
        if self.config_path is not None:
            tmp = self.config_path.with_suffix(self.config_path.suffix + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(self.config_path)
        await self._stop_sources()
        self.config = validated
        self._reset_status()
        self.live.clear_spectra()  # a circuit may have moved to a device that measures none
        if self.energy is not None and hasattr(self.energy, "reconfigure"):
            self.energy.reconfigure(validated)
        self._start_sources()
        log.info("configuration applied; acquisition restarted")
