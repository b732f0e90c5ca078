"""The built-in rules (``alarms.system``): conditions the engine cannot read from one series.

:class:`SystemMonitor` sees every batch (GOOD and INVALID readings) and, once a second, the devices'
statuses (the same :class:`~meterhub.drivers.base.DeviceStatus` objects ``GET /api/v1/devices`` shows),
and sets the condition of each system alarm; the engine's timers do the rest. It also applies the
inhibition: a device that is offline suppresses the alarms of its circuits and points, and a site-level
outage (most devices offline at once) suppresses the devices' own offline alarms, so the site shows one
alarm, not forty.

=======================  ============================================================================
device_offline/<dev>     the device's status is offline (once it failed, or 10 s / three poll intervals
                         after the start without an answer)
site_outage/site         at least ``fraction`` of the enabled devices (and ``min_devices``) are offline
no_valid_data/<dev>      the device is online but none of its circuits sent a GOOD value for ``after`` s
                         (at least three poll intervals)
register_quarantine/<c>  the register guard quarantined a step of an energy register of circuit ``c``
                         (an INVALID reading of a cumulative quantity on the bus); the condition is
                         present in the second it arrives, and ``recovery`` (900 s) holds the alarm
unmetered/site           Σ grid − Σ renewable − Σ consumable active power (the demo's ``unmetered``
                         virtual circuit: a renewable circuit reads negative while it generates) is
                         above ``percent`` of the consumption Σ grid − Σ renewable, while that is above
                         ``min_power``
storage_spool/site       ``DATA/storage-spool.jsonl`` (batches waiting for the database) > ``max_mb``
clock_drift/<dev>        the device's newest reading is more than ``max_s`` away from the gateway's clock
bus_new_device/<bus>     bus supervision (drivers/modbus/supervision.py): an address that is not
                         configured answers on the Modbus bus (value: the lowest such address)
bus_vanished/<bus>       ... a configured device that answered no longer does (value: its address)
bus_conflict/<bus>       ... two devices seem to answer at one address (value: the address)
=======================  ============================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from meterhub.alarms.engine import AlarmEngine
from meterhub.alarms.rules import SystemKind
from meterhub.config.alarms import SITE_TARGET, AlarmsConfig
from meterhub.config.schema import SiteConfig
from meterhub.model.quantities import CATALOGUE, Kind, Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase, Purpose

__all__ = ["SPOOL_FILE", "STARTUP_GRACE", "SystemMonitor"]

#: The storage sink's spool file in the data folder (runtime/sinks.py ``storage_sink``).
SPOOL_FILE = "storage-spool.jsonl"

#: How long after the start a device that has neither answered nor failed yet is not counted offline [s].
STARTUP_GRACE = 10.0

_CUMULATIVE = frozenset(q.id for q in CATALOGUE.values() if q.kind is Kind.CUMULATIVE)


def _aid(kind: SystemKind, target: str) -> str:
    return f"system:{kind.value}/{target}"


class SystemMonitor:
    """Conditions of the built-in rules (see the module docstring).

    Parameters
    ----------
    config : the site. engine : where the conditions go. device_status : the devices' statuses now
    (device id → an object with ``online``). data_dir : the data folder (spool file). now : start [s].
    """

    def __init__(
        self,
        config: SiteConfig,
        engine: AlarmEngine,
        device_status: Callable[[], Mapping[str, Any]],
        data_dir: Path,
        now: float,
    ) -> None:
        self.engine = engine
        self.device_status = device_status
        self.started = now
        #: a device not yet heard of is offline once it failed, or after this long [s]
        self.grace = {d.id: max(STARTUP_GRACE, 3 * d.poll_interval) for d in config.devices}
        self.spool = Path(data_dir) / SPOOL_FILE
        self.settings = (config.alarms or AlarmsConfig()).system
        self.devices = [d for d in config.devices if d.enabled]
        self.device_of: dict[str, str] = {c.id: c.device for c in config.circuits}
        if config.io is not None:
            self.device_of.update({p.id: p.device for p in config.io.points})
        fed = set(self.device_of.values())
        after = self.settings.no_valid_data.after
        #: device → how long without a GOOD value before "no valid data" [s]
        self.valid_window = {d.id: max(after, 3 * d.poll_interval) for d in self.devices if d.id in fed}
        self.last_good: dict[str, float] = {d: now for d in self.valid_window}
        self.newest_ts: dict[str, float] = {}
        self.quarantined: set[str] = set()
        self._quarantine_on: set[str] = set()
        self.main = {c.id for c in config.circuits if c.purpose is Purpose.GRID}
        self.renewable = {c.id for c in config.circuits if c.purpose is Purpose.RENEWABLE}
        self.consumable = {c.id for c in config.circuits if c.purpose is Purpose.CONSUMABLE}
        self.power: dict[str, float] = {}
        self._balance = self.main | self.renewable | self.consumable
        self.modbus_buses = [b.id for b in config.buses if b.kind.value.startswith("modbus")]
        #: bus id → its supervision state (an object with ``new``, ``vanished`` and ``conflicts``: unit →
        #: …, :class:`meterhub.drivers.modbus.supervision.BusWatch`); set by whoever composes the gateway
        self.bus_state: Callable[[], Mapping[str, Any]] = dict

    def observe(self, batch: Sequence[Reading], now: float) -> None:
        """Take what the system rules need from a batch (every quality)."""
        device_of = self.device_of
        good = Quality.GOOD
        for r in batch:
            dev = device_of.get(r.circuit)
            if r.quality == good:
                if dev is not None:
                    self.last_good[dev] = now
                    if r.ts > self.newest_ts.get(dev, -math.inf):
                        self.newest_ts[dev] = r.ts
                if r.quantity == Q.ACTIVE_POWER and r.phase is Phase.TOTAL and r.circuit in self._balance:
                    self.power[r.circuit] = r.value
            elif r.quality == Quality.INVALID and r.quantity in _CUMULATIVE:
                self.quarantined.add(r.circuit)

    def tick(self, now: float) -> None:
        """Set every system alarm's condition and the suppressions for ``now`` [s]."""
        eng = self.engine
        statuses = self.device_status()
        offline = {d.id for d in self.devices if self._offline(statuses.get(d.id), d.id, now)}
        s = self.settings
        n = len(self.devices)
        need = max(s.site_outage.min_devices, math.ceil(s.site_outage.fraction * n))
        outage = s.site_outage.enabled and n >= s.site_outage.min_devices and len(offline) >= need
        eng.set_condition(_aid(SystemKind.SITE_OUTAGE, SITE_TARGET), outage, len(offline), need)
        for d in self.devices:
            off = d.id in offline
            aid = _aid(SystemKind.DEVICE_OFFLINE, d.id)
            eng.set_condition(aid, off)
            i = eng.index.get(aid)
            if i is not None:
                eng.set_suppressed(i, outage)
            for j in eng.by_device.get(d.id, ()):
                eng.set_suppressed(j, off)
            window = self.valid_window.get(d.id)
            if window is not None:
                idle = now - self.last_good[d.id]
                eng.set_condition(
                    _aid(SystemKind.NO_VALID_DATA, d.id), not off and idle > window, idle, window
                )
            newest = self.newest_ts.pop(d.id, None)
            if newest is not None:
                drift = newest - now
                eng.set_condition(
                    _aid(SystemKind.CLOCK_DRIFT, d.id),
                    abs(drift) > s.clock_drift.max_s,
                    drift,
                    s.clock_drift.max_s,
                )
        seen, self.quarantined = self.quarantined, set()
        for c in seen | self._quarantine_on:
            eng.set_condition(_aid(SystemKind.REGISTER_QUARANTINE, c), c in seen)
        self._quarantine_on = seen
        try:
            size = self.spool.stat().st_size / 2**20
        except OSError:
            size = 0.0
        eng.set_condition(
            _aid(SystemKind.STORAGE_SPOOL, SITE_TARGET),
            size > s.storage_spool.max_mb,
            size,
            s.storage_spool.max_mb,
        )
        self._unmetered()
        self._buses(now)

    def _buses(self, now: float) -> None:
        """The bus supervision alarms: present while the bus's set is not empty; value the lowest address."""
        states = self.bus_state()
        for bus in self.modbus_buses:
            st = states.get(bus)
            expire = getattr(st, "expire", None)
            if callable(expire):
                expire(now)
            for kind, attr in (
                (SystemKind.BUS_NEW_DEVICE, "new"),
                (SystemKind.BUS_VANISHED, "vanished"),
                (SystemKind.BUS_CONFLICT, "conflicts"),
            ):
                units = getattr(st, attr, None) or {}
                self.engine.set_condition(_aid(kind, bus), bool(units), float(min(units)) if units else None)

    def _offline(self, status: Any, device: str, now: float) -> bool:
        """Offline: the status says so, and the device was asked and failed, or had time to answer since
        the start (a device not polled yet is not offline: no outage alarm in the first second)."""
        if status is None:
            return now - self.started > self.grace[device]
        if getattr(status, "online", False):
            return False
        return getattr(status, "errors", 0) > 0 or now - self.started > self.grace[device]

    def _unmetered(self) -> None:
        if not self.main or any(c not in self.power for c in self.main):
            return
        main = sum(self.power[c] for c in self.main) + sum(
            abs(self.power.get(c, 0.0)) for c in self.renewable
        )
        metered = sum(self.power.get(c, 0.0) for c in self.consumable)
        rule = self.settings.unmetered
        if main <= rule.min_power:
            present, pct = False, 0.0
        else:
            pct = (main - metered) / main * 100.0
            present = pct > rule.percent
        self.engine.set_condition(_aid(SystemKind.UNMETERED, SITE_TARGET), present, pct, rule.percent)
