"""Read API of the live display: health, devices, circuits, live values and history (issue 2 item 7).

These are readable by every signed-in user and, when ``web.public_live`` is on, by anyone (a lobby
screen). Times are ISO 8601 UTC in answers; inputs accept ISO 8601 or Unix seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Literal, cast

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

import meterhub
from meterhub.config.schema import BusKind, SiteConfig
from meterhub.drivers.base import DeviceStatus
from meterhub.drivers.modbus.spectra import declared_spectra
from meterhub.energy.config import energy_of
from meterhub.energy.data_status import DataStatus
from meterhub.energy.pipeline import EnergyPipeline
from meterhub.energy.virtual import FormulaError, expand
from meterhub.errors import NotFoundError
from meterhub.live import LiveCache
from meterhub.metering.spectrum import percent_of_fundamental, spectrum_thd
from meterhub.model import quantities
from meterhub.model.quantities import SPECTRUM_QUANTITIES, Q
from meterhub.model.readings import SeriesKey, iso_utc
from meterhub.model.topology import Phase
from meterhub.storage import StorageState
from meterhub.storage.base import HistoryPoint
from meterhub.storage.events import EventStore
from meterhub.storage.rollup import auto_resolution
from meterhub.web.auth import Principal, require_live
from meterhub.web.deps import (
    BusWatches,
    Config,
    Energy,
    Live,
    Monitored,
    Runtime,
    Status,
    Store,
    bad_param,
    query_time,
    reading_json,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["live"])

MAX_POINTS = 20_000


class ComponentHealthOut(BaseModel):
    state: Literal["ok", "degraded", "down"]
    message: str


class StorageHealthOut(BaseModel):
    """Where the readings go: the database, or the on-disk spool while the database is away."""

    state: Literal["connected", "spooling", "down"]
    backend: str
    buffered: int = Field(description="readings in memory, not yet flushed")
    spooled_rows: int = Field(description="readings in the on-disk spool waiting for the database")
    spool_bytes: int = Field(description="size of the spooled readings [B]")
    oldest_spooled: str | None = Field(description="oldest spooled reading, ISO 8601 UTC")
    dropped_rows: int = Field(description="readings lost since start because an outage outlasted the spool")
    last_error: str | None
    last_error_at: str | None = Field(description="time of the last storage error, ISO 8601 UTC")


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    site: str
    demo: bool
    uptime: float = Field(description="seconds since the gateway started [s]")
    devices: int
    devices_online: int
    circuits: int
    series_live: int
    storage: StorageHealthOut
    components: dict[str, ComponentHealthOut] = Field(
        default_factory=dict,
        description="every source and sink (source:NAME, sink:NAME): ok, degraded or down, with why",
    )
    time: str = Field(description="server time, ISO 8601 UTC")


class DeviceOut(BaseModel):
    id: str
    name: str
    profile: str
    bus: str
    unit: int | None
    poll_interval: float = Field(description="[s]")
    enabled: bool
    status: Literal["online", "offline"]
    last_seen: str | None = Field(description="last good response, ISO 8601 UTC")
    requests: int
    errors: int
    timeouts: int
    last_error: str | None
    data: Literal["ok", "warning", "error"] = Field(
        default="ok",
        description="whether its values are used: error = nothing usable (e.g. all values NaN), warning = "
        "values refused or register readings quarantined lately, or a register awaits confirmation",
    )
    data_message: str | None = Field(
        default=None,
        description='why, in the site\'s time zone, e.g. "3 values out of range since 10:02"; null: nothing refused',
    )
    counters: dict[str, int] = Field(
        default_factory=dict,
        description="refused_values, quarantined_steps (register outliers never counted), pending_readings "
        "(awaiting confirmation of a new counter); a waveform board adds lost_samples and duplicate_frames",
    )
    serial_number: str | None = Field(default=None, description="as the device reported it last")


class CircuitOut(BaseModel):
    id: str
    name: str
    device: str
    channels: list[int]
    wiring: str
    phases: list[str]
    purpose: str
    zone: str | None
    panel: str | None
    ct_kind: str
    ct_ratio: str
    vt_ratio: str
    tariff: str | None
    voltage_reference: str | None
    spectrum: bool = Field(
        default=False, description="its source measures harmonic spectra: GET /circuits/{id}/spectrum"
    )
    spectra: list[Literal["voltage", "current"]] = Field(
        default_factory=list, description="what it has spectra of: the `quantity` values /spectrum answers"
    )
    virtual: bool = Field(
        default=False,
        description="a virtual circuit of the energy section (e.g. `unmetered` = grid − Σ sub-circuits): "
        "no device; `active_power` and its history are computed from `members`; purpose `virtual`",
    )
    formula: str | None = Field(default=None, description="virtual circuits: the formula, e.g. `grid - hvac`")
    members: dict[str, int] = Field(
        default_factory=dict, description="virtual circuits: metered circuit → coefficient (+1 or −1)"
    )


class ReadingOut(BaseModel):
    circuit: str
    quantity: str
    phase: Literal["L1", "L2", "L3", "N", "total"] | None
    value: float | None
    unit: str
    ts: str
    quality: Literal["good", "estimated", "flagged", "invalid"] = Field(
        default="good",
        description="estimated: filled across a gap; flagged: IEC 61000-4-30 event in the window. Invalid "
        "values are not shown (the live view keeps the last usable one; /devices says why)",
    )


class LiveOut(BaseModel):
    readings: list[ReadingOut]


class HistoryPointOut(BaseModel):
    ts: str = Field(description="bucket start (or the raw timestamp), ISO 8601 UTC")
    mean: float
    min: float
    max: float
    last: float
    count: int
    quality: int = Field(description="worst quality aggregated: 0 good, 1 estimated, 2 flagged")
    delta: float | None = Field(description="cumulative quantities: increase within the bucket")

    @classmethod
    def of(cls, p: HistoryPoint) -> HistoryPointOut:
        """One stored history point as the API shows it."""
        return cls(
            ts=iso_utc(p.ts),
            mean=p.mean,
            min=p.min,
            max=p.max,
            last=p.last,
            count=p.count,
            quality=p.quality,
            delta=p.delta,
        )


class FilledOut(BaseModel):
    from_: str = Field(alias="from", description="first filled value, ISO 8601 UTC")
    to: str = Field(description="last filled value, ISO 8601 UTC (included)")
    source: str = Field(description="meter-profile: the meter's own load profile")
    device: str


class HistoryOut(BaseModel):
    circuit: str
    quantity: str
    phase: str | None
    unit: str
    resolution: str
    start: str
    end: str
    points: list[HistoryPointOut]
    filled: list[FilledOut] = Field(
        default=[],
        description="ranges of this series within start…end whose values were filled from a device's "
        "memory (a meter's load profile after an outage or a restart), oldest first",
    )


class QuantityOut(BaseModel):
    id: str
    unit: str
    kind: str
    description: str
    phases: list[str]
    obis: str | None


def device_out(
    config: SiteConfig,
    status: Mapping[str, DeviceStatus],
    device_id: str,
    energy: EnergyPipeline | None = None,
    data: Mapping[str, DataStatus] | None = None,
) -> DeviceOut:
    """The public shape of device ``device_id`` (which exists in ``config``) and its status; with the
    energy pipeline (``energy``, or its ``data`` status of every device), why its data is (not) used."""
    d = config.device(device_id)
    st = status.get(d.id)
    online = bool(st and st.online)
    if data is None and energy is not None:
        data = energy.data_status()
    ds = (data or {}).get(d.id) or DataStatus()
    counters = {
        "refused_values": ds.refused,
        "quarantined_steps": ds.quarantined,
        "pending_readings": ds.pending,
    }
    if st is not None and st.extra_counters is not None:
        counters |= dict(st.extra_counters())
    return DeviceOut(
        id=d.id,
        name=d.name or d.id,
        profile=d.profile,
        bus=d.bus,
        unit=d.unit,
        poll_interval=d.poll_interval,
        enabled=d.enabled,
        status="online" if online else "offline",
        last_seen=iso_utc(st.last_seen) if st and st.last_seen is not None else None,
        requests=st.requests if st else 0,
        errors=st.errors if st else 0,
        timeouts=st.timeouts if st else 0,
        last_error=st.last_error if st else None,
        data=ds.state.value,
        data_message=ds.message,
        counters=counters,
        serial_number=energy.serial(d.id) if energy is not None else None,
    )


def circuit_out(config: SiteConfig, live: LiveCache, circuit_id: str) -> CircuitOut:
    """The public shape of circuit ``circuit_id`` (which exists in ``config``)."""
    c = config.circuit(circuit_id)
    kinds = spectrum_kinds(config, live, circuit_id)
    return CircuitOut(
        id=c.id,
        name=c.name or c.id,
        device=c.device,
        channels=list(c.channels),
        wiring=c.wiring.value,
        phases=[p.value for p in c.supply_phases],
        purpose=c.purpose.value,
        zone=c.zone,
        panel=c.panel,
        ct_kind=c.ct.kind.value,
        ct_ratio=str(c.ct.ratio),
        vt_ratio=str(c.vt_ratio),
        tariff=c.tariff,
        voltage_reference=c.voltage_reference,
        spectrum=bool(kinds),
        spectra=[k for k in (Q.CURRENT, Q.VOLTAGE) if k in kinds],
    )


def series_ids(config: SiteConfig) -> set[str]:
    """Ids that series are keyed by: circuits, virtual circuits (energy section), devices
    (device-level values such as a voltage unit's) and IO points (pulse meters, inputs, probes)."""
    ids = {c.id for c in config.circuits} | {d.id for d in config.devices}
    if config.energy is not None:
        ids |= {v.id for v in config.energy.virtual}
    if config.io is not None:
        ids |= {p.id for p in config.io.points}
    return ids


def known_circuit(config: SiteConfig, circuit_id: str, *, series: bool = False) -> None:
    """:class:`NotFoundError` unless ``circuit_id`` is a circuit (or, with ``series``, any id series are
    keyed by)."""
    if any(c.id == circuit_id for c in config.circuits):
        return
    if series and circuit_id in series_ids(config):
        return
    raise NotFoundError(f"unknown circuit {circuit_id!r}")


LIVE = Annotated[Principal, Depends(require_live)]


@router.get("/health", response_model=Health, summary="Gateway health")
def health(cfg: Config, rt: Runtime, live: Live, status: Status, store: Store, monitor: Monitored) -> Health:
    now = time.time()
    config = cfg.config
    online = sum(1 for st in status.values() if st.online)
    enabled = sum(1 for d in config.devices if d.enabled)
    sh = store.health()
    storage = StorageHealthOut(
        state=sh.state.value,
        backend=sh.backend,
        buffered=sh.buffered,
        spooled_rows=sh.spooled_rows,
        spool_bytes=sh.spool_bytes,
        oldest_spooled=iso_utc(sh.oldest_spooled) if sh.oldest_spooled is not None else None,
        dropped_rows=sh.dropped_rows,
        last_error=sh.last_error,
        last_error_at=iso_utc(sh.last_error_at) if sh.last_error_at is not None else None,
    )
    components = {
        name: ComponentHealthOut(state=h.state.value, message=h.message)
        for name, h in monitor.health().items()
    }
    healthy = all(c.state == "ok" for c in components.values())
    return Health(
        status="ok" if online >= enabled and sh.state is StorageState.CONNECTED and healthy else "degraded",
        version=meterhub.__version__,
        site=config.site.name,
        demo=rt.demo,
        uptime=max(0.0, rt.clock() - rt.started_at),
        devices=len(config.devices),
        devices_online=online,
        circuits=len(config.circuits),
        series_live=len(live),
        storage=storage,
        components=components,
        time=iso_utc(now),
    )


@router.get("/devices", response_model=list[DeviceOut], summary="Devices and their status")
def devices(cfg: Config, status: Status, energy: Energy, _: LIVE) -> list[DeviceOut]:
    data = energy.data_status() if energy is not None else {}
    return [device_out(cfg.config, status, d.id, energy, data) for d in cfg.config.devices]


class BusAddressOut(BaseModel):
    """An address in one of bus supervision's sets: since when (UTC), and why."""

    unit: int
    device: str | None
    since: str
    message: str


class BusEventOut(BaseModel):
    """One change bus supervision saw (``kind``: new_device, gone, vanished, back, conflict,
    conflict_cleared)."""

    ts: str
    kind: str
    unit: int
    device: str | None
    message: str


class BusSupervisionOut(BaseModel):
    """One running Modbus line: addresses that are new, vanished or in conflict now, its background scan
    (null: off) and the recent events, newest first."""

    bus: str
    new: list[BusAddressOut]
    vanished: list[BusAddressOut]
    conflicts: list[BusAddressOut]
    scan: dict[str, float] | None
    events: list[BusEventOut]


@router.get(
    "/bus-supervision",
    response_model=list[BusSupervisionOut],
    summary="Bus supervision: new, vanished and doubly used addresses of each Modbus line",
)
def bus_supervision(cfg: Config, watches: BusWatches, _: LIVE) -> list[BusSupervisionOut]:
    out: list[BusSupervisionOut] = []
    for bus in cfg.config.buses:
        w = watches.get(bus.id)
        if w is None:
            continue
        w.expire()

        conf = w.configured

        def rows(d: Mapping[int, tuple[float, str]], conf: Mapping[int, str] = conf) -> list[BusAddressOut]:
            return [
                BusAddressOut(unit=u, device=conf.get(u), since=iso_utc(ts), message=m)
                for u, (ts, m) in sorted(d.items())
            ]

        scan = None
        if bus.scan is not None and bus.scan.enabled:
            scan = {"share": bus.scan.share, "addresses": float(len(bus.scan.units)), **w.scan}
        out.append(
            BusSupervisionOut(
                bus=bus.id,
                new=rows(w.new),
                vanished=rows(w.vanished),
                conflicts=rows(w.conflicts),
                scan=scan,
                events=[
                    BusEventOut(
                        ts=iso_utc(e.ts), kind=e.kind.value, unit=e.unit, device=e.device, message=e.message
                    )
                    for e in reversed(w.events)
                ],
            )
        )
    return out


def virtual_circuits_out(config: SiteConfig) -> list[CircuitOut]:
    """The virtual circuits of the energy section (``unmetered`` in the demo) in the circuit shape."""
    section = energy_of(config)
    formulas = {v.id: v.formula for v in section.virtual}
    out = []
    for v in section.virtual:
        try:
            members = expand(v.id, formulas)
        except FormulaError:  # a cycle: the energy pipeline logs it; listed without members
            members = {}
        out.append(
            CircuitOut(
                id=v.id,
                name=v.name or v.id,
                device="",
                channels=[],
                wiring="virtual",
                phases=[],
                purpose="virtual",
                zone=v.zone,
                panel=None,
                ct_kind="",
                ct_ratio="",
                vt_ratio="",
                tariff=None,
                voltage_reference=None,
                virtual=True,
                formula=v.formula,
                members=members,
            )
        )
    return out


@router.get(
    "/circuits",
    response_model=list[CircuitOut],
    summary="Circuits (metering points), then the virtual circuits (`virtual: true`, e.g. `unmetered`)",
)
def circuits(cfg: Config, live: Live, _: LIVE) -> list[CircuitOut]:
    metered = [circuit_out(cfg.config, live, c.id) for c in cfg.config.circuits]
    return metered + virtual_circuits_out(cfg.config)


@router.get("/circuits/{circuit_id}", response_model=CircuitOut, summary="One circuit")
def circuit(circuit_id: str, cfg: Config, live: Live, _: LIVE) -> CircuitOut:
    known_circuit(cfg.config, circuit_id)
    return circuit_out(cfg.config, live, circuit_id)


@router.get("/quantities", response_model=list[QuantityOut], summary="The quantity catalogue")
def catalogue(_: LIVE) -> list[QuantityOut]:
    return [
        QuantityOut(
            id=q.id,
            unit=q.unit,
            kind=q.kind.value,
            description=q.description,
            phases=[p.value for p in q.phases],
            obis=q.obis,
        )
        for q in quantities.CATALOGUE.values()
    ]


@router.get("/live", response_model=LiveOut, summary="Latest value of every series")
def live(
    cfg: Config,
    cache: Live,
    _: LIVE,
    circuit: Annotated[str | None, Query(description="only this circuit", max_length=64)] = None,
) -> LiveOut:
    if circuit is not None:
        known_circuit(cfg.config, circuit, series=True)
    rows = sorted(cache.readings(circuit), key=lambda r: (r.circuit, r.quantity, r.phase or ""))
    return LiveOut(readings=[ReadingOut(**reading_json(r)) for r in rows])


def _phase_param(quantity: quantities.Quantity, phase: str | None) -> Phase | None:
    if phase is None or phase == "":
        return Phase.TOTAL if Phase.TOTAL in quantity.phases else quantity.phases[0]
    if phase.lower() in ("none", "null", "-"):
        return None
    try:
        p = Phase("total" if phase.lower() == "total" else phase.upper())
    except ValueError:
        raise bad_param("query", "phase", f"{phase!r} is not one of L1, L2, L3, N, total, none") from None
    if p not in quantity.phases:
        allowed = ", ".join(x.value for x in quantity.phases)
        raise bad_param("query", "phase", f"{quantity.id} has no phase {p.value}; it has {allowed}")
    return p


@router.get(
    "/circuits/{circuit_id}/history",
    response_model=HistoryOut,
    summary="History of one series",
    responses={404: {"description": "unknown circuit"}, 422: {"description": "a parameter is not usable"}},
)
def history(
    circuit_id: str,
    cfg: Config,
    rt: Runtime,
    storage: Store,
    _: LIVE,
    quantity: Annotated[str, Query(description="catalogue id", max_length=64)] = Q.ACTIVE_POWER,
    phase: Annotated[
        str | None, Query(description="L1, L2, L3, N, total or none (default: total)", max_length=8)
    ] = None,
    start: Annotated[str | None, Query(description="ISO 8601 or Unix seconds (default end − 1 h)")] = None,
    end: Annotated[str | None, Query(description="ISO 8601 or Unix seconds (default now)")] = None,
    resolution: Annotated[
        Literal["auto", "raw", "1min", "15min", "1h", "1d"], Query(description="bucket size")
    ] = "auto",
) -> HistoryOut:
    """``circuit_id`` may also be a virtual circuit of the energy section or a device id (device-level
    values such as a voltage unit's)."""
    known_circuit(cfg.config, circuit_id, series=True)
    q = quantities.CATALOGUE.get(quantity)
    if q is None:
        raise bad_param("query", "quantity", str(quantities.UnknownQuantityError(quantity)))
    ph = _phase_param(q, phase)
    t_end = query_time(end, "end") if end is not None else rt.clock()
    t_start = query_time(start, "start") if start is not None else t_end - 3600
    if t_start >= t_end:
        raise bad_param("query", "start", "start must be before end")
    res = auto_resolution(t_start, t_end) if resolution == "auto" else resolution
    if res == "raw" and t_end - t_start > 31 * 86400:
        raise bad_param(
            "query", "resolution", "raw data is limited to 31 days per request; use 1min or coarser"
        )
    try:
        points = storage.history(SeriesKey(circuit_id, q.id, ph), t_start, t_end, res)
    except ValueError as exc:
        raise bad_param("query", "resolution", str(exc)) from None
    if len(points) > MAX_POINTS:  # keep answers bounded: thin evenly, always keeping the last point
        step = -(-len(points) // MAX_POINTS)
        points = points[::step] if (len(points) - 1) % step == 0 else [*points[::step], points[-1]]
    filled = (
        storage.filled_ranges(str(SeriesKey(circuit_id, q.id, ph)), t_start, t_end)
        if isinstance(storage, EventStore)
        else []
    )
    return HistoryOut(
        filled=[
            FilledOut.model_validate(
                {"from": iso_utc(f.start), "to": iso_utc(f.end), "source": f.source, "device": f.device}
            )
            for f in filled
        ],
        circuit=circuit_id,
        quantity=q.id,
        phase=ph.value if ph else None,
        unit=q.unit,
        resolution=res,
        start=iso_utc(t_start),
        end=iso_utc(t_end),
        points=[HistoryPointOut.of(p) for p in points],
    )


class SpectrumOut(BaseModel):
    circuit: str
    available: bool = Field(description="false when the device reports no spectrum (the lists are empty)")
    quantity: str | None
    phase: str
    unit: str | None
    orders: list[int]
    values: list[float | None]
    ts: str | None


#: ``?quantity=`` of ``/harmonics``: the catalogue's spectrum quantities (an enum, so the OpenAPI
#: document lists them).
SpectrumQuantity = StrEnum(  # type: ignore[misc]
    "SpectrumQuantity", {q.upper(): q for q in SPECTRUM_QUANTITIES}
)

#: The spectrum ``/harmonics`` answers with when none is asked for: the first the live cache has, current
#: before voltage and % of the fundamental before RMS.
HARMONICS_PREFERENCE: tuple[str, ...] = (
    Q.HARMONICS_CURRENT_PERCENT,
    Q.HARMONICS_CURRENT,
    Q.HARMONICS_VOLTAGE_PERCENT,
    Q.HARMONICS_VOLTAGE,
)


@router.get(
    "/circuits/{circuit_id}/harmonics",
    response_model=SpectrumOut,
    summary="Latest harmonic spectrum of one phase (orders 0…50), when the device reports one",
    responses={404: {"description": "unknown circuit"}},
)
def harmonics(
    circuit_id: str,
    cfg: Config,
    live: Live,
    _: LIVE,
    phase: Annotated[Literal["L1", "L2", "L3", "N"], Query(description="phase")] = "L1",
    quantity: Annotated[
        SpectrumQuantity | None,
        Query(description="default: the first reported of current %, current, voltage %, voltage"),
    ] = None,
) -> SpectrumOut:
    """One catalogue spectrum series as stored in the live cache (``values[k]`` is order k = 0…50, the
    harmonic subgroup of IEC 61000-4-7 §3.2.3); ``available`` is false when there is none.
    ``GET /circuits/{id}/spectrum`` gives RMS, percent and THD together."""
    known_circuit(cfg.config, circuit_id)
    for q in (str(quantity.value),) if quantity is not None else HARMONICS_PREFERENCE:
        found = live.spectrum(circuit_id, q, Phase(phase))
        if found is not None:
            return SpectrumOut(
                circuit=circuit_id,
                available=True,
                quantity=q,
                phase=phase,
                unit=quantities.get(q).unit,
                orders=list(found.orders),
                values=_finite(found.values),
                ts=iso_utc(found.ts),
            )
    return SpectrumOut(
        circuit=circuit_id,
        available=False,
        quantity=None,
        phase=phase,
        unit=None,
        orders=[],
        values=[],
        ts=None,
    )


# -- harmonic spectrum of one phase ------------------------------------------------------------

#: Bus kinds whose sources measure harmonic spectra: the waveform source publishes voltage and current
#: spectra of every circuit and phase each second. A Modbus circuit has the spectra its device's
#: profile declares (:func:`spectrum_kinds`).
SPECTRUM_BUSES = frozenset({BusKind.WAVEFORM})

#: ``?quantity=`` → catalogue ids of its RMS spectrum and its spectrum in % of the fundamental
SPECTRUM_IDS: dict[str, tuple[str, str]] = {
    Q.VOLTAGE: (Q.HARMONICS_VOLTAGE, Q.HARMONICS_VOLTAGE_PERCENT),
    Q.CURRENT: (Q.HARMONICS_CURRENT, Q.HARMONICS_CURRENT_PERCENT),
}


class HarmonicSpectrumOut(BaseModel):
    circuit: str
    quantity: Literal["voltage", "current"]
    phase: Literal["L1", "L2", "L3"]
    unit: str = Field(description="unit of `rms`: V or A")
    ts: str = Field(description="end of the interval the spectrum was aggregated over, ISO 8601 UTC")
    orders: list[int] = Field(description="harmonic order of each value: 0 (DC), 1 (fundamental) … 50")
    rms: list[float | None] = Field(
        description="RMS of each order, the harmonic subgroup of IEC 61000-4-7 §3.2.3 [V or A]; "
        "null where not measured"
    )
    percent_of_fundamental: list[float | None] = Field(
        description="each order in % of order 1 [%]; null when order 1 is zero"
    )
    thd: float | None = Field(
        description="THD of this spectrum: √Σ(h=2…50) rms² / rms of order 1 (IEC 61000-4-7 §3.3.2) [%]; "
        "null when order 1 is zero"
    )
    stale: bool = Field(
        default=False,
        description="true when the circuit's device is offline now: this is its last spectrum (see `ts`)",
    )


def spectrum_kinds(config: SiteConfig, live: LiveCache, circuit_id: str) -> frozenset[str]:
    """What the circuit has harmonic spectra of: ``"voltage"``, ``"current"``, both or neither.

    A waveform circuit has both (see :data:`SPECTRUM_BUSES`); a Modbus circuit what its device's profile
    (and its voltage unit's) maps harmonics of (:func:`meterhub.drivers.modbus.spectra.declared_spectra`),
    whether or not a spectrum has arrived yet; any circuit also what its source has already published.
    """
    c = config.circuit(circuit_id)
    device = next((d for d in config.devices if d.id == c.device), None)
    bus = next((b for b in config.buses if device is not None and b.id == device.bus), None)
    if device is not None and device.enabled and bus is not None and bus.kind in SPECTRUM_BUSES:
        return frozenset(SPECTRUM_IDS)
    kinds = set(declared_spectra(config, circuit_id))
    for s in live.spectra(circuit_id):
        kinds.update(k for k, ids in SPECTRUM_IDS.items() if s.quantity in ids)
    return frozenset(kinds)


def _finite(values: Sequence[float] | np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def _no_source(config: SiteConfig, circuit_id: str, quantity: str, kinds: frozenset[str]) -> NotFoundError:
    circuit = config.circuit(circuit_id)
    d = next((x for x in config.devices if x.id == circuit.device), None)
    if d is not None and not d.enabled:
        why = f"its device {d.id!r} is disabled"
    else:
        what = f" ({d.profile} on bus {d.bus!r})" if d is not None else ""
        if kinds:
            (other,) = kinds  # both would include ``quantity``
            source = "device" if quantity == Q.CURRENT else "voltage source"
            return NotFoundError(
                f"no {quantity} harmonic spectrum for circuit {circuit_id!r}: its {source} reports no "
                f"{quantity} harmonics (device {circuit.device!r}{what}); its {other} spectrum is available"
            )
        why = f"its device {circuit.device!r}{what} does not report harmonic spectra"
    return NotFoundError(
        f"no harmonic spectrum source for circuit {circuit_id!r}: {why} "
        "(its THD, where reported, is in GET /api/v1/live as thd_voltage and thd_current)"
    )


@router.get(
    "/circuits/{circuit_id}/spectrum",
    response_model=HarmonicSpectrumOut,
    summary="Latest harmonic spectrum (orders 0…50) of the voltage or current of one phase",
    responses={
        404: {"description": "unknown circuit, or its device measures no harmonic spectrum"},
        422: {"description": "a bad quantity or phase, or a phase the circuit does not have"},
        503: {"description": "the circuit's source measures spectra but has sent none yet"},
    },
)
def spectrum(
    circuit_id: str,
    cfg: Config,
    live: Live,
    status: Status,
    _: LIVE,
    quantity: Annotated[Literal["voltage", "current"], Query(description="voltage or current")] = "current",
    phase: Annotated[
        Literal["L1", "L2", "L3"] | None,
        Query(description="supply phase (default: the circuit's first phase)"),
    ] = None,
) -> HarmonicSpectrumOut:
    """The latest spectrum the circuit's source measured (the simulated or real ADC board: every second,
    aggregated over that second by IEC 61000-4-30 §4.5), with each order in % of the fundamental and the
    spectrum's THD (:mod:`meterhub.metering.spectrum`). Spectra live in the live cache only; they have no
    history."""
    config = cfg.config
    known_circuit(config, circuit_id)
    circuit = config.circuit(circuit_id)
    own = [p.value for p in circuit.supply_phases]
    if phase is not None and phase not in own:
        raise bad_param(
            "query", "phase", f"circuit {circuit_id!r} has no phase {phase}; it has {', '.join(own)}"
        )
    ph = Phase(phase) if phase is not None else circuit.supply_phases[0]
    kinds = spectrum_kinds(config, live, circuit_id)
    if quantity not in kinds:
        raise _no_source(config, circuit_id, quantity, kinds)
    rms_id, pct_id = SPECTRUM_IDS[quantity]
    rms = live.spectrum(circuit_id, rms_id, ph)
    pct = live.spectrum(circuit_id, pct_id, ph)
    if rms is not None:
        h = np.asarray(rms.values, dtype=np.float64)
        if pct is not None and pct.ts == rms.ts and len(pct.values) == h.size:
            percent = _finite(pct.values)  # the source's own, of the same spectrum
        else:  # a source that publishes RMS only: the same definition, from the same spectrum
            percent = _finite(percent_of_fundamental(h))
        latest, rms_values = rms, _finite(rms.values)
    elif pct is not None:  # a device that reports % only and no RMS to scale it by: THD is the same
        h = np.asarray(pct.values, dtype=np.float64)
        latest, rms_values, percent = pct, [None] * h.size, _finite(pct.values)
    else:
        raise HTTPException(
            503,
            f"no {quantity} spectrum of circuit {circuit_id!r} phase {ph.value} measured yet; retry shortly",
            headers={"Retry-After": "2"},
        )
    thd = float(spectrum_thd(h))
    st = status.get(circuit.device)
    return HarmonicSpectrumOut(
        circuit=circuit_id,
        quantity=quantity,
        phase=cast(Literal["L1", "L2", "L3"], ph.value),
        unit=quantities.get(rms_id).unit,
        ts=iso_utc(latest.ts),
        orders=list(latest.orders),
        rms=rms_values,
        percent_of_fundamental=percent,
        thd=thd if math.isfinite(thd) else None,
        stale=not (st is not None and st.online),
    )
