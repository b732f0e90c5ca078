"""The alarm sink (``SinkKind.ALARMS``): the bus → the alarm engine and the system rules.

Every gateway runs it (the system rules — device offline, site outage … — need no configuration). Its
subscription drops the oldest batch when full (counted in its health): an alarm is about the present, and
a backlog evaluated late would raise alarms for a past that is already gone. ``deliver`` hands the batch to
the system monitor and the engine on the event loop; a ticker runs the timers and the system rules once
a second. The state file is ``DATA/alarms-state.sqlite`` (:mod:`meterhub.alarms.state`).

The receivers of the events (alarm log, notifications, relays) are added with :meth:`AlarmSink.add_listener`
and the audit trail is set with :attr:`AlarmSink.auditor` by whoever composes the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from meterhub.alarms.engine import AlarmEngine
from meterhub.alarms.model import AlarmListener
from meterhub.alarms.rules import expand_rules, system_alarms
from meterhub.alarms.state import AlarmStateStore
from meterhub.alarms.system import SystemMonitor
from meterhub.bus import Batch, Overflow, ReadingBus, Subscription
from meterhub.config.alarms import AlarmsConfig
from meterhub.config.schema import SiteConfig
from meterhub.errors import StorageError
from meterhub.model.audit import Auditor
from meterhub.model.health import Health, HealthState

__all__ = ["ALARM_QUEUE", "STATE_FILE", "TICK", "AlarmSink"]

log = logging.getLogger("meterhub.alarms")

#: Batches queued for the engine before the oldest is dropped (a minute of 100 devices at 1 Hz, ×1.6).
ALARM_QUEUE = 10_000
#: The state file in the data folder.
STATE_FILE = "alarms-state.sqlite"
#: How often timers and system rules run [s].
TICK = 1.0


class AlarmSink:
    """See the module docstring. ``device_status``: the devices' statuses now (id → DeviceStatus)."""

    name = "alarms"

    def __init__(
        self,
        config: SiteConfig,
        bus: ReadingBus,
        data_dir: Path,
        *,
        device_status: Callable[[], Mapping[str, Any]],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self._clock = clock
        self._device_status = device_status
        self._sub = bus.subscribe("alarms", maxsize=ALARM_QUEUE, overflow=Overflow.DROP_OLDEST)
        self.store_error: str | None = None
        store: AlarmStateStore | None
        try:
            store = AlarmStateStore(self.data_dir / STATE_FILE)
        except StorageError as exc:  # alarms still work; health says that their states are not kept
            log.error("%s; alarm states are kept in memory only", exc)
            self.store_error, store = str(exc), None
        self.engine = AlarmEngine(
            expand_rules(config) + system_alarms(config),
            store=store,
            clock=clock,
            timezone=config.site.timezone,
        )
        self.monitor = SystemMonitor(config, self.engine, device_status, self.data_dir, clock())
        self._bus_state: Callable[[], Mapping[str, Any]] = dict
        self._ticker: asyncio.Task[None] | None = None
        self.ticks = 0

    # -- wiring ------------------------------------------------------------------------------------------
    @property
    def subscription(self) -> Subscription:
        return self._sub

    def add_listener(self, listener: AlarmListener) -> None:
        """Hand every future event to ``listener`` (in ``seq`` order, on the event loop)."""
        self.engine.listeners.append(listener)

    def remove_listener(self, listener: AlarmListener) -> None:
        """Stop handing events to ``listener`` (no error when it was not added)."""
        if listener in self.engine.listeners:
            self.engine.listeners.remove(listener)

    def set_bus_state(self, bus_state: Callable[[], Mapping[str, Any]]) -> None:
        """Where the bus supervision alarms read each Modbus bus's state (bus id → ``BusWatch``)."""
        self._bus_state = bus_state
        self.monitor.bus_state = bus_state

    @property
    def auditor(self) -> Auditor:
        return self.engine.auditor

    @auditor.setter
    def auditor(self, auditor: Auditor) -> None:
        self.engine.auditor = auditor

    @property
    def reader_can_ack(self) -> bool:
        """Readers may acknowledge (``alarms.reader_can_ack``)."""
        return (self.config.alarms or AlarmsConfig()).reader_can_ack

    def reconfigure(self, config: SiteConfig) -> None:
        """Take a changed site: alarms that stay keep their states (see :meth:`AlarmEngine.reconfigure`)."""
        self.config = config
        self.engine.reconfigure(expand_rules(config) + system_alarms(config))
        self.monitor = SystemMonitor(config, self.engine, self._device_status, self.data_dir, self._clock())
        self.monitor.bus_state = self._bus_state

    # -- the Sink contract -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_forever(), name="alarms-tick")

    async def deliver(self, batch: Batch) -> None:
        now = self._clock()
        self.monitor.observe(batch, now)
        self.engine.update(batch, now)

    def tick(self) -> None:
        """Run the system rules and every timer now (the ticker calls this each :data:`TICK`)."""
        now = self._clock()
        self.monitor.tick(now)
        self.engine.tick(now)
        self.ticks += 1

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self.tick()
            except Exception:  # a bug in one tick must not end the timers
                log.exception("alarm timers failed")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self.engine.store is not None:
            self.engine.store.close()

    def health(self) -> Health:
        counts = self.engine.counts()
        st = self._sub.stats
        counters = {
            "alarms": len(self.engine.defs),
            "active": counts["unack-active"] + counts["ack-active"],
            "unacknowledged": counts["unacknowledged"],
            "events": self.engine.events_emitted,
            "delivered": st.delivered,
            "dropped": st.dropped,
            "listener_errors": self.engine.listener_errors,
        }
        summary = f"{counters['active']} active, {counters['unacknowledged']} unacknowledged of {counters['alarms']} alarms"
        if self.store_error is not None or self.engine.last_store_error is not None:
            why = self.store_error or self.engine.last_store_error
            return Health(HealthState.DEGRADED, f"{summary}; states not persisted: {why}", counters)
        if st.dropped:
            return Health(
                HealthState.DEGRADED, f"{summary}; {st.dropped} batches dropped (engine behind)", counters
            )
        return Health(HealthState.OK, summary, counters)
