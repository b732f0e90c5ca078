"""Typed FastAPI dependencies: what a route may use of the running gateway, and nothing more.

This is the only web module that touches the :class:`~meterhub.runtime.Gateway` object. Routes declare
what they need as annotated parameters and get typed views:

=================  ============================================================  =============================
parameter type     what                                                          from the gateway
=================  ============================================================  =============================
:data:`Config`     :class:`ConfigView`: the site configuration, its file, and     ``config``, ``config_path``,
                   ``apply(new)`` to validate, write and put a changed one        ``update_config``
                   into force
:data:`Runtime`    :class:`RuntimeInfo`: data folder, demo flag, clock, start     ``data_dir``, ``demo``,
                                                                                  ``clock``, ``started_at``
:data:`Live`       :class:`~meterhub.live.LiveCache`: latest readings, spectra    ``live``
:data:`Store`      :class:`~meterhub.storage.base.Storage`: history, registers    ``storage``
:data:`Energy`     :class:`~meterhub.energy.pipeline.EnergyPipeline` or None      ``energy``
:data:`Pipeline`   the pipeline, or 503 when it is not running                    ``energy``
:data:`Status`     device id → :class:`~meterhub.drivers.base.DeviceStatus`       ``status``
:data:`Alarms`     :class:`~meterhub.alarms.sink.AlarmSink`: the alarm engine,       ``alarms``
                   its states, acknowledge, shelve, audit
:data:`Controls`   :class:`Control`: relay outputs and Modbus bus scans           ``sources``, ``emit``
:data:`Receiver`   :class:`IngestTarget`: readings received by ``/ingest``        ``storage``, ``flush_async``
:data:`Auditing`   :class:`~meterhub.model.audit.Auditor`: the audit log             ``auditor``
:data:`Logs`       :class:`~meterhub.storage.events.EventStore`: the alarm, audit   ``storage``
                   and power-quality logs (503 when the storage keeps none)
:class:`Monitor`   read-through view for ``/metrics``: component health,          ``health()``, ``sinks``
                   storage flushes, and the views above at scrape time
:data:`Publishing` :class:`PublishView`: the running publish sink and the site's   ``sinks``, ``config``
                   ``publish:`` instances
=================  ============================================================  =============================

Every dependency takes an :class:`~starlette.requests.HTTPConnection`, so WebSocket routes use them too.
The helpers below them (:func:`query_time`, :func:`reading_json`, :func:`bad_param`) are shared request
parsing and answer shapes.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from starlette.requests import HTTPConnection

from meterhub.alarms.control import ControlService
from meterhub.alarms.demand_limit import DemandLimiter
from meterhub.alarms.sink import AlarmSink
from meterhub.bus import SinkKind
from meterhub.config.publish import PublishInstance
from meterhub.config.schema import Bus, BusKind, SiteConfig
from meterhub.drivers.base import DeviceStatus
from meterhub.drivers.io.control import OutputControl
from meterhub.drivers.modbus.scan import ScanResult, scan_line
from meterhub.drivers.modbus.supervision import BusWatch
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind, with_framing
from meterhub.energy.pipeline import EnergyPipeline
from meterhub.errors import ConflictError, NotFoundError
from meterhub.live import LiveCache
from meterhub.model import quantities
from meterhub.model.audit import Auditor
from meterhub.model.health import Health
from meterhub.model.readings import Reading, SeriesKey, iso_utc
from meterhub.profiles import all_profiles
from meterhub.publish.sink import PublishSink
from meterhub.runtime import Gateway
from meterhub.runtime.sinks import StorageSink
from meterhub.storage.base import Storage
from meterhub.storage.events import EventStore
from meterhub.web.auth import principal_of
from meterhub.web.config_audit import audit_config_write

__all__ = [
    "Alarms",
    "Auditing",
    "BusWatches",
    "Config",
    "ConfigView",
    "Control",
    "Controls",
    "Energy",
    "FlushStats",
    "IngestTarget",
    "Live",
    "Logs",
    "Monitor",
    "Monitored",
    "Pipeline",
    "PublishView",
    "Publishing",
    "Receiver",
    "Runtime",
    "RuntimeInfo",
    "Status",
    "Store",
    "attach",
    "bad_param",
    "get_monitor",
    "query_time",
    "reading_json",
]


def attach(app: FastAPI, gateway: Gateway) -> None:
    """Make ``gateway`` the one the app's dependencies serve (called by :func:`meterhub.web.app.create_app`)."""
    app.state.gateway = gateway


def _gateway(conn: HTTPConnection) -> Gateway:
    gw: Gateway = conn.app.state.gateway
    return gw


# -- configuration ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConfigView:
    """The site configuration as a route sees it.

    Attributes
    ----------
    config : the configuration in force when the request started.
    path : the site file it was read from (None: none, e.g. a test or an in-memory demo).
    apply : ``await apply(new)`` validates ``new`` with every cross-reference check, writes the site file
        and restarts acquisition with it; returns the configuration now in force. Refusals are
        :class:`~meterhub.config.loader.ConfigError` naming each field. Every applied change is in the
        audit log: one ``config.write`` entry per changed section, with the requesting user, before and
        after (:mod:`meterhub.web.config_audit`).
    """

    config: SiteConfig
    path: Path | None
    apply: Callable[[SiteConfig], Awaitable[SiteConfig]]


def get_config(conn: HTTPConnection) -> ConfigView:
    gw = _gateway(conn)

    async def apply(new: SiteConfig) -> SiteConfig:
        before = gw.config
        await gw.update_config(new)
        # Only routes that required a user get here; their CSRF token was checked then.
        who = principal_of(conn, check_csrf=False)
        audit_config_write(
            get_auditor(conn),
            actor=(who.username if who is not None else None) or "anonymous",
            before=before,
            after=gw.config,
            ts=gw.clock(),
            where=f"{conn.scope.get('method', 'GET')} {conn.url.path}",
        )
        return gw.config

    return ConfigView(config=gw.config, path=gw.config_path, apply=apply)


@dataclass(frozen=True, slots=True)
class RuntimeInfo:
    """Facts of the running process.

    Attributes
    ----------
    data_dir : the data folder (database, users, logo, display settings).
    demo : True when the gateway runs against simulated devices.
    clock : the gateway's clock, Unix time [s] (injected in tests).
    started_at : when the gateway started, Unix time [s].
    """

    data_dir: Path
    demo: bool
    clock: Callable[[], float]
    started_at: float


def get_runtime(conn: HTTPConnection) -> RuntimeInfo:
    gw = _gateway(conn)
    return RuntimeInfo(data_dir=gw.data_dir, demo=gw.demo, clock=gw.clock, started_at=gw.started_at)


# -- data ---------------------------------------------------------------------------------------------
def get_live(conn: HTTPConnection) -> LiveCache:
    return _gateway(conn).live


def get_storage(conn: HTTPConnection) -> Storage:
    return _gateway(conn).storage


def get_energy(conn: HTTPConnection) -> EnergyPipeline | None:
    energy: EnergyPipeline | None = _gateway(conn).energy
    return energy


def require_energy(conn: HTTPConnection) -> EnergyPipeline:
    energy = get_energy(conn)
    if energy is None:
        raise HTTPException(503, "the energy pipeline is not running")
    return energy


class _StatusView(Mapping[str, DeviceStatus]):
    """Device id → status, read through to the gateway: a configuration applied during the request
    replaces the gateway's table, and the answer must show the new one."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def __getitem__(self, device_id: str) -> DeviceStatus:
        return self._gateway.status[device_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._gateway.status)

    def __len__(self) -> int:
        return len(self._gateway.status)


def get_alarms(conn: HTTPConnection) -> AlarmSink:
    return _gateway(conn).alarms


def get_status(conn: HTTPConnection) -> Mapping[str, DeviceStatus]:
    return _StatusView(_gateway(conn))


# -- logs ---------------------------------------------------------------------------------------------
def get_auditor(conn: HTTPConnection) -> Auditor:
    """The gateway's auditor: every entry goes to the audit log."""
    auditor: Auditor = _gateway(conn).auditor
    return auditor


def get_logs(conn: HTTPConnection) -> EventStore:
    """The storage's alarm, audit and power-quality logs; 503 when the storage keeps none."""
    storage = _gateway(conn).storage
    if not isinstance(storage, EventStore):
        raise HTTPException(503, f"the {type(storage).__name__} storage keeps no event logs")
    return storage


def get_bus_watches(conn: HTTPConnection) -> Mapping[str, BusWatch]:
    """Bus supervision of each running Modbus line (bus id → watch)."""
    return _gateway(conn).bus_watches()


# -- monitoring ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FlushStats:
    """The storage sink's commits since start.

    last : when the last one succeeded, Unix time [s] (None: none yet); last_duration : how long it took
    [s]; count : successful commits [count]; seconds : their total duration [s].
    """

    last: float | None
    last_duration: float | None
    count: int
    seconds: float


class Monitor:
    """What ``GET /metrics`` reads, each time it is asked (it is built once per app and outlives
    configuration changes and the start of the energy stage, so every attribute reads through)."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    @property
    def config(self) -> SiteConfig:
        return self._gateway.config

    @property
    def started_at(self) -> float:
        """When the gateway started, Unix time [s]."""
        return self._gateway.started_at

    def now(self) -> float:
        """The gateway's clock, Unix time [s]."""
        return self._gateway.clock()

    @property
    def status(self) -> Mapping[str, DeviceStatus]:
        return _StatusView(self._gateway)

    @property
    def live(self) -> LiveCache:
        return self._gateway.live

    @property
    def energy(self) -> EnergyPipeline | None:
        energy: EnergyPipeline | None = self._gateway.energy
        return energy

    @property
    def storage(self) -> Storage:
        return self._gateway.storage

    def health(self) -> dict[str, Health]:
        """``Gateway.health()``: ``source:NAME`` / ``sink:NAME`` → :class:`~meterhub.model.health.Health`."""
        return self._gateway.health()

    def flushes(self) -> FlushStats | None:
        """The storage sink's commits (None when the site runs none)."""
        sink = self._gateway.sinks.get(SinkKind.STORAGE)
        if not isinstance(sink, StorageSink):
            return None
        return FlushStats(sink.last_flush, sink.last_flush_duration, sink.flushes, sink.flush_seconds)


def get_monitor(conn: HTTPConnection) -> Monitor:
    """A :class:`Monitor` of the app's gateway."""
    return Monitor(_gateway(conn))


# -- control ------------------------------------------------------------------------------------------
#: Bus kinds a scan can probe, and the Modbus transport of each.
SCAN_TRANSPORT: dict[BusKind, TransportKind] = {
    BusKind.MODBUS_TCP: TransportKind.TCP,
    BusKind.MODBUS_RTU: TransportKind.RTU,
    BusKind.MODBUS_RTU_OVER_TCP: TransportKind.RTU_OVER_TCP,
}


class Control:
    """What acts on devices: relay and analog outputs, and scans of a Modbus bus."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def outputs(self) -> OutputControl:
        """The outputs of the site, written through the Modbus lines its running sources poll."""
        return OutputControl.for_gateway(self._gateway)

    def service(self) -> ControlService:
        """The gateway's one audited control path (interlocks, minimum times, override, audit log)."""
        return self._gateway.control

    def limiter(self) -> DemandLimiter | None:
        """The gateway's demand limiter (None without ``control.demand_limit``)."""
        return self._gateway.control_limiter

    def control_health(self) -> Health:
        return self._gateway.control_health()

    async def scan(self, bus_id: str, units: list[int], *, timeout: float) -> tuple[Bus, ScanResult]:
        """Probe ``units`` on bus ``bus_id`` over a link of its own (``timeout`` per request [s]).

        Raises :class:`~meterhub.errors.NotFoundError` for an unknown bus,
        :class:`~meterhub.errors.ConflictError` for a bus that is not Modbus, and
        :class:`~meterhub.drivers.modbus.transport.ModbusError` when the line cannot be used.
        """
        config = self._gateway.config
        bus = next((b for b in config.buses if b.id == bus_id), None)
        if bus is None:
            raise NotFoundError(f"unknown bus {bus_id!r}")
        transport = SCAN_TRANSPORT.get(bus.kind)
        if transport is None:
            raise ConflictError(f"bus {bus_id!r} is {bus.kind.value}; only Modbus buses can be scanned")
        link = ModbusLink(
            with_framing(transport, bus.modbus_framing),
            host=bus.host,
            port=bus.port or 502,
            serial=bus.serial,
            baud=bus.baud,
            parity=bus.parity,
            stopbits=bus.stopbits,
            timeout=timeout,
            bytesize=bus.bytesize,
        )
        try:
            result = await scan_line(link, units, all_profiles())
        finally:
            await link.close()
        return bus, result


def get_control(conn: HTTPConnection) -> Control:
    return Control(_gateway(conn))


# -- ingest -------------------------------------------------------------------------------------------
class IngestTarget:
    """Where ``POST /api/v1/ingest`` puts readings received from another gateway: the storage, committed
    by the gateway's own flush (so they are durable when the answer is sent)."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def stored(self, key: SeriesKey, ts: float) -> bool:
        """True if the series has a valid value at exactly ``ts`` [s] (blocking: a database read)."""
        found = self._gateway.storage.value_at(key, ts)
        return found is not None and abs(found[0] - ts) < 0.0005

    async def write(self, readings: Sequence[Reading]) -> None:
        """Store and commit ``readings`` (the transaction in a worker thread). Raises
        :class:`~meterhub.storage.base.StorageError` when they cannot be committed."""
        self._gateway.storage.write(readings)
        await self._gateway.flush_async()


def get_ingest_target(conn: HTTPConnection) -> IngestTarget:
    return IngestTarget(_gateway(conn))


# -- publish ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PublishView:
    """The publish instances as ``/api/v1/publish`` sees them: ``sink`` (None when the gateway runs
    none), the site file's ``instances`` (enabled or not) and the gateway's clock [s since the epoch]."""

    sink: PublishSink | None
    instances: list[PublishInstance]
    clock: Callable[[], float]


def get_publish(conn: HTTPConnection) -> PublishView:
    gw = _gateway(conn)
    sink = gw.sinks.get(SinkKind.PUBLISH)
    return PublishView(
        sink if isinstance(sink, PublishSink) else None, list(gw.config.publish or []), gw.clock
    )


Config = Annotated[ConfigView, Depends(get_config)]
Monitored = Annotated[Monitor, Depends(get_monitor)]
Runtime = Annotated[RuntimeInfo, Depends(get_runtime)]
Live = Annotated[LiveCache, Depends(get_live)]
Store = Annotated[Storage, Depends(get_storage)]
Energy = Annotated[EnergyPipeline | None, Depends(get_energy)]
Pipeline = Annotated[EnergyPipeline, Depends(require_energy)]
Status = Annotated[Mapping[str, DeviceStatus], Depends(get_status)]
BusWatches = Annotated[Mapping[str, BusWatch], Depends(get_bus_watches)]
Alarms = Annotated[AlarmSink, Depends(get_alarms)]
Controls = Annotated[Control, Depends(get_control)]
Receiver = Annotated[IngestTarget, Depends(get_ingest_target)]
Auditing = Annotated[Auditor, Depends(get_auditor)]
Logs = Annotated[EventStore, Depends(get_logs)]
Publishing = Annotated[PublishView, Depends(get_publish)]


# -- request parsing and answer shapes ----------------------------------------------------------------
def bad_param(where: str, name: str, message: str, status: int = 422) -> HTTPException:
    """An error in FastAPI's validation shape, so clients see one format for every bad parameter."""
    return HTTPException(
        status_code=status,
        detail=[{"loc": [where, name], "msg": message, "type": "value_error"}],
    )


def query_time(text: str, name: str) -> float:
    """Parse a time given as Unix seconds or ISO 8601 into Unix seconds [s].

    ``"1763784000"``, ``"1763784000.5"``, ``"2026-11-22T04:00:00Z"`` and ``"2026-11-22T05:00:00+01:00"``
    are accepted; an ISO time without an offset is taken as UTC. Raises a 422 naming ``name``.
    """
    s = text.strip()
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or not -1e11 < value < 1e11:
            raise bad_param("query", name, f"{text!r} is not a usable Unix time [s]")
        return value
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise bad_param(
            "query", name, f"{text!r} is neither Unix seconds nor ISO 8601 (e.g. 2026-11-22T04:00:00Z)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def unit_of(quantity: str) -> str:
    """The catalogue unit of ``quantity`` ("" for an id the catalogue does not know)."""
    q = quantities.CATALOGUE.get(quantity)
    return q.unit if q is not None else ""


def reading_json(r: Reading) -> dict[str, Any]:
    """The public JSON shape of one reading (``/api/v1/live`` and the WebSocket stream)."""
    value = r.value if math.isfinite(r.value) else None
    return {
        "circuit": r.circuit,
        "quantity": r.quantity,
        "phase": r.phase.value if r.phase is not None else None,
        "value": value,
        "unit": unit_of(r.quantity),
        "ts": iso_utc(r.ts),
        "quality": r.quality.name.lower(),  # good | estimated | flagged (invalid ones are not shown)
    }
