"""IO points and 1-wire probes configured through the API (admin only; issue 16).

* ``GET /api/v1/config/io`` — the site file's ``io`` section as written: every point with all its
  settings (pulse inputs with weight, unit and medium, digital inputs, relay and analog outputs, analog
  inputs, 1-wire temperature points), and the devices that can carry points.
* ``POST /api/v1/config/io/points`` — add a point; ``PUT /api/v1/config/io/points/{id}`` — replace one
  (its id and kind stay); ``DELETE /api/v1/config/io/points/{id}`` — remove one. A point that an alarm
  rule, a control rule (linkage, interlock, program, output limits, demand-limit load) or a simulated
  load's ``enable`` names is not removed: 409 naming each user.
* ``GET /api/v1/config/onewire`` — the probes found on the 1-wire bus (``io.w1_root``: the Linux w1 sysfs
  folder, or the demo's simulated one in its data folder), each with its temperature now [°C] and the
  point it is assigned to, if any; configured probes that are missing are listed too.

Changes take the audited configuration path of every other editor (:class:`meterhub.web.deps.ConfigView`):
the point is checked by the ``io`` schema (422 whose ``loc`` names the field, e.g. ``["body", "weight"]``),
the whole site by the site checks (a channel the device does not have, a probe used twice …), the site
file written back with a backup, one ``config.write`` audit entry (section ``io``), and acquisition
restarted with it: a point is read from the next poll on, no restart of meterhub is needed
(``applied`` in the answer says so).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, Field, ValidationError

from meterhub.config.edit import InvalidEdit
from meterhub.config.io import (
    AnalogInPoint,
    AnalogOutPoint,
    DigitalPoint,
    IOSection,
    PulsePoint,
    RelayPoint,
    TemperaturePoint,
)
from meterhub.config.loader import ConfigError, ConfigIssue
from meterhub.config.schema import BusKind, SiteConfig
from meterhub.drivers.io.config import RAW_QUANTITY, IOPoint, io_section
from meterhub.drivers.io.errors import OneWireError
from meterhub.drivers.io.onewire import FAMILIES, ONEWIRE_PROFILE, discover, read_probe
from meterhub.errors import ConflictError, NotFoundError
from meterhub.profiles import get_profile
from meterhub.profiles.schema import ProfileError
from meterhub.web.auth import Principal, require_admin
from meterhub.web.deps import Config, Runtime

__all__ = ["point_users", "router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["configuration"])
ADMIN = Annotated[Principal, Depends(require_admin)]

#: The schema of each point kind, by its ``kind`` (the discriminator of ``io.points``).
_MODELS: dict[str, type[Any]] = {
    get_args(m.model_fields["kind"].annotation)[0]: m
    for m in (PulsePoint, DigitalPoint, RelayPoint, AnalogInPoint, AnalogOutPoint, TemperaturePoint)
}
#: What the answer of a change says about when it takes effect.
APPLIED = "applied now: acquisition restarted with it, read from the next poll (no restart needed)"


class IODeviceOut(BaseModel):
    id: str
    name: str
    profile: str
    bus: str
    onewire: bool = Field(description="the 1-wire master (profile linux-w1 on a bus of kind io)")
    channels: dict[str, list[int]] = Field(
        default_factory=dict,
        description="per point kind (pulse, digital, relay, analog-in, analog-out) the 1-based inputs or "
        "outputs the device's profile has (outputs: writable ones); empty for a device without IO",
    )


class IOConfigOut(BaseModel):
    w1_root: str = Field(description="the 1-wire sysfs folder as configured (relative: in the data folder)")
    points: list[dict[str, Any]] = Field(description="the io.points of the site file, every setting")
    devices: list[IODeviceOut]


class PointChangeOut(BaseModel):
    point: dict[str, Any]
    applied: str = Field(description="when the change takes effect")


class ProbeOut(BaseModel):
    sensor: str = Field(description="w1 id: family code '-' 48-bit serial")
    family: str = Field(description="sensor type from the family code, e.g. DS18B20")
    present: bool = Field(description="found on the bus now")
    temperature: float | None = Field(description="[°C]; null when it could not be read (see error)")
    error: str | None
    point: str | None = Field(description="the temperature point using this probe; null: unassigned")
    point_name: str | None


class OneWireOut(BaseModel):
    root: str = Field(description="the folder searched (io.w1_root resolved)")
    masters: list[IODeviceOut] = Field(description="devices a temperature point can name")
    probes: list[ProbeOut]
    error: str | None = Field(description="why no probe can be found, e.g. the folder does not exist")


def _dump(p: IOPoint) -> dict[str, Any]:
    out: dict[str, Any] = p.model_dump(mode="json")
    return out


def _validated_point(body: dict[str, Any]) -> IOPoint:
    """``body`` as a point of its ``kind``; :class:`InvalidEdit` names each refused field."""
    kind = body.get("kind")
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        kinds = ", ".join(_MODELS)
        raise InvalidEdit([ConfigIssue("<edit>", None, ("kind",), f"kind must be one of {kinds}")])
    try:
        point: IOPoint = model.model_validate(body)
    except ValidationError as exc:
        raise InvalidEdit(
            [
                ConfigIssue("<edit>", None, tuple(e["loc"]), e["msg"].removeprefix("Value error, "))
                for e in exc.errors(include_url=False)
            ]
        ) from None
    return point


def _with_points(cfg: SiteConfig, points: list[IOPoint]) -> SiteConfig:
    new = cfg.model_copy(deep=True)
    section = cfg.io if cfg.io is not None else IOSection()
    new.io = section.model_copy(update={"points": points})
    return new


async def _apply(cfg: Config, new: SiteConfig, index: int) -> SiteConfig:
    """Apply ``new``; site-check issues about point ``index`` are located inside the point (``channel``,
    not ``io.points[7].channel``), so the form marks the field."""
    try:
        return await cfg.apply(new)
    except ConfigError as exc:
        here = ("io", "points", index)
        issues = [
            ConfigIssue(i.file, i.line, i.loc[3:], i.message) if i.loc[:3] == here else i for i in exc.issues
        ]
        raise ConfigError(issues) from None


def point_users(config: SiteConfig, point_id: str) -> list[str]:
    """Where the site names IO point ``point_id``: alarm rules, control rules, simulated loads."""
    users: list[str] = []
    for rule in config.alarms.rules if config.alarms is not None else ():
        if rule.target in (point_id, f"point:{point_id}"):
            users.append(f"alarm rule {rule.id!r}")
    control = config.control
    if control is not None:
        for link in control.linkage:
            if link.when.input == point_id or link.then.point == point_id:
                users.append(f"linkage rule {link.id!r}")
        for lock in control.interlocks:
            if point_id in (lock.point, lock.requires):
                users.append(f"interlock of {lock.point!r}")
        for program in control.programs:
            if program.point == point_id:
                users.append(f"program {program.id!r}")
        for limits in control.outputs:
            if limits.point == point_id:
                users.append("control.outputs (minimum on/off times)")
        if control.demand_limit is not None and any(x.point == point_id for x in control.demand_limit.loads):
            users.append("the demand limit's loads")
    sim = config.simulation
    for circuit, spec in sim.loads.items() if sim is not None else ():
        if spec.enable == point_id:
            users.append(f"simulated load {circuit!r} (enable)")
    return users


def _channels(profile_id: str) -> dict[str, list[int]]:
    """The IO channels of a device profile per point kind, as :func:`check_io` accepts them."""
    try:
        profile = get_profile(profile_id)
    except ProfileError:  # not a Modbus profile (the 1-wire master, the ADC board) or a broken one
        return {}
    out: dict[str, list[int]] = {}
    for kind, raw in RAW_QUANTITY.items():
        channels = {e.channel for e in profile.registers if e.quantity == raw and e.channel is not None}
        if kind in ("relay", "analog-out"):  # an output must be writable
            channels &= {w.channel for w in profile.writable if w.quantity == raw}
        if channels:
            out[kind] = sorted(channels)
    return out


def _devices(config: SiteConfig) -> list[IODeviceOut]:
    buses = {b.id: b for b in config.buses}
    out = []
    for d in config.devices:
        bus = buses.get(d.bus)
        onewire = d.profile == ONEWIRE_PROFILE and bus is not None and bus.kind is BusKind.IO
        out.append(
            IODeviceOut(
                id=d.id,
                name=d.name or d.id,
                profile=d.profile,
                bus=d.bus,
                onewire=onewire,
                channels={} if onewire else _channels(d.profile),
            )
        )
    return out


@router.get(
    "/config/io", response_model=IOConfigOut, summary="The io section: every IO point's settings (admin)"
)
def get_io(cfg: Config, _: ADMIN) -> IOConfigOut:
    section = io_section(cfg.config)
    return IOConfigOut(
        w1_root=section.w1_root,
        points=[_dump(p) for p in section.points],
        devices=_devices(cfg.config),
    )


_POINT_BODY = Body(
    description="one point of io.points with its `kind`: pulse, digital, relay, analog-in, analog-out or "
    "temperature (fields as in the site file, e.g. {kind: pulse, id: gas, device: conc1, channel: 1, "
    "medium: gas, unit: m3, weight: 0.01})",
    examples=[
        {
            "kind": "pulse",
            "id": "gas",
            "device": "pulses",
            "channel": 4,
            "medium": "gas",
            "unit": "m3",
            "weight": 0.01,
        }
    ],
)


@router.post(
    "/config/io/points",
    response_model=PointChangeOut,
    status_code=201,
    summary="Add an IO point: pulse input, digital input, relay, analog in/out, 1-wire probe (admin)",
    responses={409: {"description": "the id exists"}, 422: {"description": "invalid field (`loc` names it)"}},
)
async def add_point(body: Annotated[dict[str, Any], _POINT_BODY], cfg: Config, _: ADMIN) -> PointChangeOut:
    point = _validated_point(body)
    points = list(io_section(cfg.config).points)
    if any(p.id == point.id for p in points):
        raise ConflictError(f"IO point {point.id!r} exists")
    now = await _apply(cfg, _with_points(cfg.config, [*points, point]), len(points))
    log.info("IO point %s (%s) added", point.id, point.kind)
    return PointChangeOut(point=_dump(_find(now, point.id)), applied=APPLIED)


def _find(config: SiteConfig, point_id: str) -> IOPoint:
    for p in io_section(config).points:
        if p.id == point_id:
            return p
    raise NotFoundError(f"unknown IO point {point_id!r}")


def _index(config: SiteConfig, point_id: str) -> int:
    for i, p in enumerate(io_section(config).points):
        if p.id == point_id:
            return i
    raise NotFoundError(f"unknown IO point {point_id!r}")


@router.put(
    "/config/io/points/{point_id}",
    response_model=PointChangeOut,
    summary="Replace an IO point's settings; its id and kind stay (admin)",
    responses={404: {"description": "unknown point"}, 422: {"description": "invalid field (`loc` names it)"}},
)
async def put_point(
    point_id: str, body: Annotated[dict[str, Any], _POINT_BODY], cfg: Config, _: ADMIN
) -> PointChangeOut:
    i = _index(cfg.config, point_id)
    old = io_section(cfg.config).points[i]
    body = {**body, "id": body.get("id", point_id), "kind": body.get("kind", old.kind)}
    if body["id"] != point_id:
        msg = f"the id cannot change ({point_id!r}); add a new point and remove this one"
        raise InvalidEdit([ConfigIssue("<edit>", None, ("id",), msg)])
    if body["kind"] != old.kind:
        msg = f"the kind cannot change ({old.kind}); add a new point and remove this one"
        raise InvalidEdit([ConfigIssue("<edit>", None, ("kind",), msg)])
    point = _validated_point(body)
    points = list(io_section(cfg.config).points)
    points[i] = point
    now = await _apply(cfg, _with_points(cfg.config, points), i)
    log.info("IO point %s changed", point_id)
    return PointChangeOut(point=_dump(_find(now, point_id)), applied=APPLIED)


@router.delete(
    "/config/io/points/{point_id}",
    status_code=204,
    summary="Remove an IO point (admin)",
    responses={
        404: {"description": "unknown point"},
        409: {"description": "alarm or control rules use the point (named in the answer)"},
    },
)
async def delete_point(point_id: str, cfg: Config, _: ADMIN) -> None:
    i = _index(cfg.config, point_id)
    users = point_users(cfg.config, point_id)
    if users:
        raise ConflictError(
            f"IO point {point_id!r} is used by {', '.join(users)}; change or remove them first"
        )
    points = list(io_section(cfg.config).points)
    del points[i]
    await cfg.apply(_with_points(cfg.config, points))
    log.info("IO point %s removed", point_id)


def _read(root: Path, sensor: str) -> tuple[float | None, str | None]:
    try:
        return read_probe(root, sensor).temperature, None
    except OneWireError as exc:
        return None, str(exc)


@router.get(
    "/config/onewire",
    response_model=OneWireOut,
    summary="1-wire probes found on the bus, their temperature now and the point using each (admin)",
)
async def onewire(cfg: Config, rt: Runtime, _: ADMIN) -> OneWireOut:
    section = io_section(cfg.config)
    root = section.w1_folder(rt.data_dir)
    masters = [d for d in _devices(cfg.config) if d.onewire]
    error = None
    if not root.is_dir():
        error = f"{root} does not exist: no 1-wire master is loaded (Linux: modprobe w1-gpio w1-therm)"
    found = await asyncio.to_thread(discover, root) if error is None else []
    assigned = {p.sensor: p for p in section.points if isinstance(p, TemperaturePoint)}
    probes = []
    for sensor in sorted(set(found) | set(assigned)):
        present = sensor in found
        # a real conversion blocks for up to 750 ms: in a worker thread
        temp, why = (
            await asyncio.to_thread(_read, root, sensor) if present else (None, "not found on the bus")
        )
        p = assigned.get(sensor)
        probes.append(
            ProbeOut(
                sensor=sensor,
                family=FAMILIES.get(sensor[:2], sensor[:2]),
                present=present,
                temperature=temp,
                error=why,
                point=p.id if p is not None else None,
                point_name=(p.name or p.id) if p is not None else None,
            )
        )
    return OneWireOut(root=str(root), masters=masters, probes=probes, error=error)
