"""The running system: one asyncio process from sources through the energy stage to the sinks.

``Gateway`` owns the bus, the sinks (composed from :data:`~meterhub.runtime.sinks.SINK_FACTORIES`: the
live cache, storage), the energy pipeline and one supervised task per source and per sink. Every
source batch goes through :meth:`Gateway.emit`: the energy stage (registers, demand, plausibility),
then the bus, where each sink has its own bounded queue. ``stop()`` shuts down gracefully: sources
stop, every sink gets what is still queued for it, registers are persisted, storage is closed.

The composition root: importing this module imports the driver packages, whose import registers their
source factories by :class:`~meterhub.config.BusKind` (``meterhub.drivers.base.register_source``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import meterhub.drivers.dlms
import meterhub.drivers.iec62056
import meterhub.drivers.io
import meterhub.drivers.modbus
import meterhub.drivers.mqtt
import meterhub.drivers.waveform  # noqa: F401 - importing the driver packages registers their sources
from meterhub.alarms.control import ControlService, ControlSink, ExternalSwitch
from meterhub.alarms.demand_limit import DemandLimiter
from meterhub.alarms.notify import Notifier
from meterhub.alarms.sink import AlarmSink
from meterhub.bus import ReadingBus, Sink, SinkContext, SinkKind, drain_into, pump
from meterhub.checks import SITE_CHECKS, parse_site
from meterhub.config.schema import SiteConfig
from meterhub.config.store import render_site_file, write_site_file
from meterhub.drivers.base import DeviceStatus, Source, SourceContext, source_factory
from meterhub.drivers.io.control import OutputControl
from meterhub.drivers.modbus.source import ModbusSource
from meterhub.drivers.modbus.supervision import BusWatch
from meterhub.drivers.modbus.transport import RegisterLink
from meterhub.energy.pipeline import EnergyPipeline
from meterhub.live import LiveCache
from meterhub.model.health import Health, HealthState
from meterhub.model.pq import PqEvent
from meterhub.model.readings import Reading, SeriesKey, Spectrum
from meterhub.publish.modbus_gateway import ModbusGatewayServer
from meterhub.publish.modbus_server import ModbusServerSink
from meterhub.publish.sink import PublishSink
from meterhub.runtime.sinks import (
    CORE_SINKS,
    SINK_FACTORIES,
    StorageSink,
    computed_registers,
    seed_computed,
    seed_gap_fill,
)
from meterhub.runtime.supervise import TaskRecord, cancel_and_wait, supervise
from meterhub.storage import open_storage
from meterhub.storage.base import Storage, StorageError
from meterhub.storage.events import AlarmLogListener, EventStore, EventWriter, StorageAuditor
from meterhub.storage.outbox import Message

__all__ = ["Gateway"]

log = logging.getLogger("meterhub.runtime")

_S = TypeVar("_S")
#: The actor of relay switches by a Modbus client of the Modbus server, in the audit log.
MODBUS_CLIENT_ACTOR = "modbus-client"

#: How long shutdown waits for a source or sink task to end, and for a source to close [s]; what does
#: not stop in time is logged and left behind, so the data is still flushed.
STOP_TIMEOUT = 10.0


class Gateway:
    """The running system. The web layer reads it through ``meterhub.web.deps`` only.

    Parameters
    ----------
    config : the validated site.
    data_dir : the data folder (database, spool files, state, logs).
    config_path : the site file :meth:`update_config` writes back (None: changes stay in memory).
    storage : an open storage (tests); default: opened from ``config.storage`` on first use.
    demo : True when the sources read the demo's simulators.
    clock : time source [s since the epoch, UTC] (injected for tests).
    """

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
        self.bus = ReadingBus()
        self.status: dict[str, DeviceStatus] = {}
        self._storage = storage
        self.energy: EnergyPipeline | None = None
        self.sources: list[Source] = []
        #: the Modbus gateway of ``modbus_gateway:`` (forwarding to the running lines), once started
        self.modbus_gateway: ModbusGatewayServer | None = None
        self._source_tasks: list[asyncio.Task[None]] = []
        self._sink_tasks: list[asyncio.Task[None]] = []
        self._records: dict[str, TaskRecord] = {}
        #: called with the configuration in force after every :meth:`update_config` (the demo's simulated
        #: devices follow it; commissioning re-checks)
        self.config_listeners: list[Callable[[SiteConfig], None]] = []
        ctx = SinkContext(
            config=config,
            bus=self.bus,
            data_dir=self.data_dir,
            storage=lambda: self.storage,
            registers=self._registers,
            clock=clock,
            device_status=lambda: self.status,
        )
        # Sinks subscribe when they are built, so a batch emitted before start() still reaches them.
        self.sinks: dict[SinkKind, Sink] = {kind: SINK_FACTORIES[kind](ctx) for kind in CORE_SINKS}
        self.live: LiveCache = self._sink(SinkKind.LIVE, LiveCache)
        modbus = self.sinks.get(SinkKind.MODBUS_SERVER)
        if isinstance(modbus, ModbusServerSink):  # relays a BMS may switch: through the audited control path
            modbus.set_control(lambda: ExternalSwitch(self.control, MODBUS_CLIENT_ACTOR))
        self._storage_sink: StorageSink = self._sink(SinkKind.STORAGE, StorageSink)
        self.alarms: AlarmSink = self._sink(SinkKind.ALARMS, AlarmSink)
        # every output change goes through this one audited path (API, linkage, programs, demand limit)
        self._control_sink: ControlSink = self._sink(SinkKind.CONTROL, ControlSink)
        self.control: ControlService = self._control_sink.service
        self.control.outputs = lambda: OutputControl.for_gateway(self)
        self.alarms.add_listener(self.control)  # linkage: alarm raised / cleared → an output
        self.alarms.set_bus_state(self.bus_watches)  # bus supervision alarms (issue 13)
        # registers the sources compute, stored with every flush; those of stopped sources are kept
        self._computed_kept: dict[SeriesKey, float] = {}
        self._storage_sink.computed = self._computed_registers
        # The alarm, audit and power-quality logs, written in a thread of their own
        # (meterhub.storage.events); alarm listeners and auditors of every layer hand records to it.
        # PostgreSQL may be away: what meets an outage waits in a spool file in the data folder.
        remote = config.storage.backend == "postgres"
        self.event_log = EventWriter(
            self._event_store, spool=self.data_dir / "event-log-spool.sqlite" if remote else None
        )
        self.auditor = StorageAuditor(self.event_log)
        self.alarms.add_listener(AlarmLogListener(self.event_log))  # every alarm transition is logged
        self.alarms.auditor = self.auditor  # acknowledge, shelve, service changes, rule edits
        self.control.auditor = self.auditor  # every output change: API, linkage, programs, demand limit
        #: email and webhooks for alarm events (alarms.notifications), each through a durable outbox
        self.notifier: Notifier | None = self._make_notifier(config)
        if self.notifier is not None:
            self.alarms.add_listener(self.notifier)
        #: Who else takes power-quality events besides the log (e.g. the alarm engine's PQ rule).
        self.pq_listeners: list[Callable[[Sequence[PqEvent]], None]] = [self.alarms.pq_events]
        self._reset_status()

    def _make_notifier(self, config: SiteConfig) -> Notifier | None:
        section = config.alarms.notifications if config.alarms is not None else None
        if section is None:
            return None
        return Notifier(section, data_dir=self.data_dir, site=config.site.name, timezone=config.site.timezone)

    async def _renew_notifier(self, config: SiteConfig) -> None:
        """A changed ``alarms.notifications`` section: the old notifier stops (what it has not delivered
        stays in its outboxes, which the new one opens again) and the new one takes over."""
        old_section = self.config.alarms.notifications if self.config.alarms is not None else None
        new_section = config.alarms.notifications if config.alarms is not None else None
        if old_section == new_section:
            return
        if self.notifier is not None:
            self.alarms.remove_listener(self.notifier)
            await self.notifier.stop()
        self.notifier = self._make_notifier(config)
        if self.notifier is not None:
            self.alarms.add_listener(self.notifier)
            if self._sink_tasks:  # running
                await self.notifier.start()
                self._attach_mqtt_notifications()

    def _attach_mqtt_notifications(self) -> None:
        """``alarms.notifications.mqtt``: hand the notifier's MQTT channel the outbox of the publish
        instance it names (alarms and publish are siblings: only the runtime knows both). An instance that
        is not running leaves the events waiting in the channel's own outbox, with the reason in health."""
        channel = self.notifier.mqtt if self.notifier is not None else None
        if channel is None:
            return
        wanted = channel.settings.publish
        sink = self.sinks.get(SinkKind.PUBLISH)
        runners = sink.runners if isinstance(sink, PublishSink) else []
        runner = next((r for r in runners if r.inst.id == wanted), None)
        if runner is None:
            why = f"publish instance {wanted!r} is not running (not in the site file, or disabled)"
            log.error("notify mqtt: %s; alarm events wait in its outbox", why)
            channel.detach(why)
            return
        outbox = runner.outbox
        if outbox is None:
            why = f"publish instance {wanted!r} cannot run: {runner.error or 'its outbox is not open'}"
            log.error("notify mqtt: %s; alarm events wait in its outbox", why)
            channel.detach(why)
            return

        def forward(messages: Sequence[Message]) -> None:
            outbox.put(messages)
            if runner.link is not None:
                runner.link.wake()

        channel.attach(forward, runner.prefix)

    async def _reconfigure_publish(self, config: SiteConfig) -> None:
        """Publish instances added, enabled, changed, disabled or removed take effect now: the sink starts
        and stops them; a sink that subscribed to nothing (no instance at start) gets its subscription
        and a pump for it; the alarm notifier's MQTT channel follows a restarted instance's outbox."""
        sink = self.sinks.get(SinkKind.PUBLISH)
        if not isinstance(sink, PublishSink):
            return
        replaced = await sink.reconfigure(config)
        if not self._sink_tasks:  # not running: start() spawns the pumps and attaches the channel
            return
        if replaced:
            key = f"sink:{sink.name}"
            old = [t for t in self._sink_tasks if t.get_name() == key]
            await cancel_and_wait(old, timeout=STOP_TIMEOUT)  # it waited on the old, empty subscription
            self._sink_tasks = [t for t in self._sink_tasks if t not in old]
            self._sink_tasks.append(self._spawn(key, partial(pump, sink)))
        self._attach_mqtt_notifications()

    def _sink(self, kind: SinkKind, cls: type[_S]) -> _S:
        sink = self.sinks[kind]
        if not isinstance(sink, cls):  # the registry is typed by Sink; the gateway needs the concrete view
            raise TypeError(f"sink {kind.value} is a {type(sink).__name__}, expected {cls.__name__}")
        return sink

    # -- state ------------------------------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        """The site's storage, opened on first use."""
        if self._storage is None:
            self._storage = open_storage(
                self.config.storage, self.data_dir, timezone=self.config.site.timezone
            )
        return self._storage

    def _event_store(self) -> EventStore:
        storage = self.storage
        if not isinstance(storage, EventStore):
            raise StorageError(f"the {type(storage).__name__} storage keeps no event logs")
        return storage

    def _registers(self) -> Mapping[SeriesKey, float]:
        return self.energy.registers() if self.energy is not None else {}

    def _computed_registers(self) -> dict[SeriesKey, float]:
        return {**self._computed_kept, **computed_registers(self.sources)}

    def _reset_status(self) -> None:
        old = self.status
        self.status = {}
        for d in self.config.devices:
            prev = old.get(d.id)
            # an MQTT device has no register profile: it is shown by the payload format it decodes
            profile = d.profile or (f"mqtt:{d.mqtt.format}" if d.mqtt is not None else "")
            st = DeviceStatus(id=d.id, name=d.name or d.id, profile=profile, bus=d.bus)
            if prev is not None:
                st.online, st.last_seen = prev.online, prev.last_seen
            self.status[d.id] = st

    def health(self) -> dict[str, Health]:
        """Health of every source (``source:NAME``) and sink (``sink:NAME``), for the API and logs.

        A component whose task failed and waits to be restarted is DOWN with the failure's message,
        whatever it says about itself.
        """
        out: dict[str, Health] = {}
        for source in self.sources:
            key = f"source:{source.name}"
            out[key] = self._supervised(key, source.health())
        for sink in self.sinks.values():
            key = f"sink:{sink.name}"
            out[key] = self._supervised(key, sink.health())
        out["sink:event-log"] = self.event_log.health()
        if self.modbus_gateway is not None:
            out["service:modbus_gateway"] = self.modbus_gateway.health()
        if self.notifier is not None:
            out.update({f"service:{k}": h for k, h in self.notifier.components().items()})
        return out

    def modbus_links(self) -> dict[str, RegisterLink]:
        """The link each running Modbus source polls its line with (bus id → link)."""
        return {s.ctx.bus.id: s.link for s in self.sources if isinstance(s, ModbusSource)}

    @property
    def control_limiter(self) -> DemandLimiter | None:
        """The demand limiter of ``control.demand_limit`` (None when the site has none)."""
        return self._control_sink.limiter

    def control_health(self) -> Health:
        """Health of the control path (its queue, failures, the demand limiter)."""
        return self._supervised(f"sink:{self._control_sink.name}", self._control_sink.health())

    def bus_watches(self) -> dict[str, BusWatch]:
        """The supervision state of each running Modbus line (bus id → watch; drivers/modbus/supervision.py)."""
        return {s.ctx.bus.id: s.watch for s in self.sources if isinstance(s, ModbusSource)}

    def _supervised(self, key: str, health: Health) -> Health:
        rec = self._records.get(key)
        if rec is None or rec.running or rec.failures == 0:
            return health
        counters = {**health.counters, "restarts": rec.failures}
        return Health(HealthState.DOWN, f"failed ({rec.last_error}); restarting", counters)

    # -- data path --------------------------------------------------------------------------------
    def emit(self, batch: Sequence[Reading]) -> None:
        """Entry point for every source: the energy stage, then the bus (every sink, the live cache too)."""
        readings = list(batch)
        if self.energy is not None:
            try:
                readings = self.energy.process(readings)
            except Exception:  # the energy stage must not stop acquisition; pass raw values on
                log.exception("energy pipeline failed on a batch of %d readings", len(readings))
        self.bus.publish(readings)

    def device_serial(self, device: str, serial: str) -> None:
        """Entry point for a serial number a source read from a device: the energy stage (a new serial
        number is a new meter, whose registers start elsewhere)."""
        if self.energy is not None:
            self.energy.device_serial(device, serial)

    def emit_spectra(self, batch: Sequence[Spectrum]) -> None:
        """Entry point for harmonic spectra: the live cache only (not stored, not on the bus)."""
        self.live.update_spectra(batch)

    def emit_pq_events(self, events: Sequence[PqEvent]) -> None:
        """Entry point for power-quality events a source detected: the power-quality log, then every
        listener in :attr:`pq_listeners` (one failing does not keep the events from the others)."""
        self.event_log.pq(events)
        for listener in self.pq_listeners:
            try:
                listener(events)
            except Exception:
                log.exception("a power-quality listener failed on %d events", len(events))

    # -- lifecycle --------------------------------------------------------------------------------
    def _spawn(self, key: str, factory: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        rec = self._records[key] = TaskRecord(key)
        return asyncio.create_task(supervise(key, factory, record=rec), name=key)

    async def start(self) -> None:
        """Open the energy stage, start every sink and its pump, then every source and the Modbus
        gateway. If any of them cannot start (a Modbus port in use), what was started is stopped again
        (data flushed, storage closed) before the error is raised."""
        try:
            await self._start()
        except BaseException:
            try:
                await self.stop()
            except Exception:
                log.exception("cleaning up after a failed start")
            raise

    async def _start(self) -> None:
        self.energy = EnergyPipeline(self.config, self.storage, clock=self.clock)
        if self.control_limiter is not None:  # the month's peak so far survives a restart
            self.control_limiter.seed_maxima(self.energy.max_demand())
        if self.notifier is not None:  # before the alarm sink: events of the first poll are delivered
            await self.notifier.start()
        for sink in self.sinks.values():
            await sink.start()
            self._sink_tasks.append(self._spawn(f"sink:{sink.name}", partial(pump, sink)))
        self._attach_mqtt_notifications()  # the publish instances run now
        self._start_sources()
        section = self.config.modbus_gateway
        if section is not None and section.enabled:
            timeouts = {b.id: b.timeout for b in self.config.buses}
            gateway = ModbusGatewayServer(section, self.modbus_links, timeouts)
            await gateway.start()  # a port in use: a ConfigurationError, like the web port
            self.modbus_gateway = gateway

    def _start_sources(self) -> None:
        for bus in self.config.buses:
            devices = [d for d in self.config.devices if d.bus == bus.id and d.enabled]
            factory = source_factory(bus.kind)
            if factory is None:
                log.error("no driver for bus %r of kind %s; its devices stay offline", bus.id, bus.kind.value)
                continue
            ctx = SourceContext(
                self.config,
                bus,
                devices,
                self.status,
                self.data_dir,
                publish_spectra=self.emit_spectra,
                device_serial=self.device_serial,
                meter_billing=self.energy,  # meters' own billing snapshots into the billing history
                publish_pq_events=self.emit_pq_events,
                publish_device_events=self.event_log.device,  # a meter's own event logs
                publish_filled=self.event_log.filled,  # ranges filled from a meter's load profile
            )
            try:
                sources = list(factory(ctx))
            except Exception:
                log.exception("cannot create the source for bus %r", bus.id)
                continue
            # before they run: registers the sources compute never go back
            accepted = {k: b[0] for k, b in self.energy.guard.raw_baselines().items()} if self.energy else {}
            seed_computed(sources, self.storage, self.clock(), accepted)
            seed_gap_fill(sources, self.storage, self.clock())  # a restart is a gap a meter can fill
            monitored = tuple(self.status[d.id] for d in devices if d.id in self.status)
            for source in sources:
                source.monitored = monitored
                self.sources.append(source)
                self._source_tasks.append(
                    self._spawn(f"source:{source.name}", partial(source.run, self.emit))
                )

    async def _stop_sources(self) -> None:
        await cancel_and_wait(self._source_tasks, timeout=STOP_TIMEOUT)
        for s in self.sources:
            try:
                await asyncio.wait_for(s.close(), STOP_TIMEOUT)
            except Exception:  # one driver failing to close must not keep the others open
                log.exception("source %s did not close cleanly", s.name)
        self._computed_kept.update(computed_registers(self.sources))  # for the final flush
        for s in self.sources:
            self._records.pop(f"source:{s.name}", None)
        self._source_tasks, self.sources = [], []

    def flush(self) -> None:
        """Write everything queued for storage and persist the registers (one transaction), blocking."""
        self._storage_sink.flush()

    async def flush_async(self) -> None:
        """:meth:`flush` with the database transaction in a worker thread (the loop keeps running)."""
        await self._storage_sink.flush_async()

    async def stop(self) -> None:
        """Graceful shutdown: stop sources, give every sink what is queued for it and stop it (storage
        flushes and persists the registers), then close the energy stage and storage.

        Every sink is stopped even if one fails; the first failure is raised at the end.
        """
        if self.modbus_gateway is not None:
            await self.modbus_gateway.stop()
            self.modbus_gateway = None
        await self._stop_sources()
        await cancel_and_wait(self._sink_tasks, timeout=STOP_TIMEOUT)
        self._sink_tasks = []
        if self.notifier is not None and self.notifier.mqtt is not None:
            # the publish sink stops before the alarm sink: alarm events of the last batches wait in the
            # MQTT channel's own outbox for the next start
            self.notifier.mqtt.detach("the gateway is stopping")
        failure: BaseException | None = None
        try:
            for sink in self.sinks.values():
                try:
                    await drain_into(sink)
                    await sink.stop()
                except Exception as exc:
                    log.exception("sink %s did not stop cleanly", sink.name)
                    failure = failure or exc
        finally:
            if self.notifier is not None:  # what is not delivered stays in its outboxes
                try:
                    await self.notifier.stop()
                except Exception:
                    log.exception("the alarm notifier did not stop cleanly")
            if self.energy is not None:
                self.energy.close()
            await asyncio.to_thread(self.event_log.close)  # the logs' last records, before storage closes
            await asyncio.to_thread(self.storage.close)
        if failure is not None:
            raise failure
        log.info("gateway stopped; data flushed to %s", self.data_dir)

    async def update_config(self, new_config: SiteConfig) -> None:
        """Apply a changed configuration: validate it, write the site file back, restart acquisition.

        The site file is edited in place (comments and order kept, a timestamped backup beside it) and
        only when the edited file reads back as ``new_config`` with every site check; otherwise nothing
        is written or applied and the :class:`~meterhub.config.loader.ConfigError` says why."""
        if self.config_path is not None:
            written = await asyncio.to_thread(
                write_site_file, self.config_path, new_config, checks=SITE_CHECKS
            )
            validated = written.config
            if written.backup is not None:
                log.info("site file %s updated; the previous one is %s", written.path, written.backup.name)
        else:
            validated = parse_site(render_site_file(None, new_config), "<api>")  # cross-reference checks too
        await self._stop_sources()
        await self._renew_notifier(validated)
        self.config = validated
        self._reset_status()
        self.live.clear_spectra()  # a circuit may have moved to a device that measures none
        if self.energy is not None:
            self.energy.reconfigure(validated)
        self.alarms.reconfigure(validated)
        self._control_sink.reconfigure(validated)
        for listener in self.config_listeners:
            listener(validated)
        self._start_sources()
        modbus = self.sinks.get(SinkKind.MODBUS_SERVER)
        if isinstance(modbus, ModbusServerSink):
            modbus.reconfigure(validated)
        await self._reconfigure_publish(validated)
        if self.modbus_gateway is not None and validated.modbus_gateway is not None:
            self.modbus_gateway.reconfigure(
                validated.modbus_gateway, {b.id: b.timeout for b in validated.buses}
            )
        elif (self.modbus_gateway is None) != (validated.modbus_gateway is None):
            log.warning("modbus_gateway: added or removed; restart meterhub to apply it")
        log.info("configuration applied; acquisition restarted")
