"""Configuration through the public API (admin only, never public): devices, circuits, tariffs.

Routes here translate HTTP only. Every change is a pure edit of :mod:`meterhub.config.edit` (a new
:class:`~meterhub.config.schema.SiteConfig`, each item checked by the schema), put into force by the
configuration's ``apply`` (:class:`meterhub.web.deps.ConfigView`: the same cross-reference checks as the
site file, the file written back, acquisition restarted, so a changed CT ratio takes effect at the next
poll). Refusals are answered by :mod:`meterhub.web.errors`: 404 for an unknown item, 409 for a conflict,
422 whose ``loc`` names the field. A CT or VT ratio change on a device whose profile says it reports
primary values (it applies its own ratio, or its CT is built in) is a 409 naming where the ratio is set
instead (:func:`meterhub.profiles.transformers.fixed_ratio_reason`): stored, it would change nothing.

CT ratio changes are effective-dated (``ct.ratio_from``, ``ct.ratio_history`` in the site file) and apply
from the change on: **stored readings are never rescaled**, and the register of a device that reports
secondary values continues across the change (:mod:`meterhub.energy.ratio_changes`). Tariff changes are
effective-dated the same way (``effective_from``, ``energy.tariff_history``): energy is priced with the
tariff in force when it was used.

The CT picker offers the current sensors of :mod:`meterhub.metering.ct_presets` (seed 000 §4.6: Enertrek
CTO, CTOV, CTF and the 5 A adapter, with their ratio and phase error), plus plain 5 A secondaries.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from meterhub.config import edit
from meterhub.config.schema import Bus, Circuit, SiteConfig
from meterhub.config.types import Ratio
from meterhub.drivers.modbus.ratio_write import write_ratio
from meterhub.drivers.modbus.scan import parse_units
from meterhub.drivers.modbus.transport import ModbusError
from meterhub.energy.config import (
    BillingSettings,
    DemandSettings,
    EnergyConfig,
    ProfileSpec,
    Rate,
    TariffSettings,
)
from meterhub.errors import ConflictError
from meterhub.metering.ct_presets import ct_presets
from meterhub.model.quantities import CATALOGUE, Kind
from meterhub.profiles import get_profile, profile_ids
from meterhub.profiles.schema import ProfileError
from meterhub.profiles.transformers import fixed_ratio_reason
from meterhub.web.auth import Principal, require_admin
from meterhub.web.deps import Config, Control, Controls, Energy, Live, Runtime, Status
from meterhub.web.live_api import CircuitOut, DeviceOut, circuit_out, device_out

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["configuration"])
ADMIN = Annotated[Principal, Depends(require_admin)]


class CTPresetOut(BaseModel):
    """One current sensor of the CT picker (:mod:`meterhub.metering.ct_presets`)."""

    id: str
    label: str
    kind: str
    ratio: str = Field(description="primary/secondary: A/A, A/V (voltage output, Rogowski)")
    rated_current: float | None = Field(description="[A]")
    phase_error: float = Field(description="phase error at rated current [°]")
    source: str


class CTPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: (
        Literal["current-output", "voltage-output", "rogowski", "adapter-5a", "built-in", "direct"] | None
    ) = None
    ratio: str | float | None = Field(default=None, description='"800/5" or a number')
    rated_current: float | None = Field(default=None, gt=0, description="[A]")
    burden: float | None = Field(default=None, gt=0, description="[Ω]")
    phase_error: float | None = Field(default=None, ge=-10, le=10, description="[°]")


class CircuitPatch(BaseModel):
    """Fields of a circuit to change; omitted fields stay, ``null`` clears an optional one."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    wiring: Literal["1P2W", "1P3W", "3P4W", "3P3W", "DC"] | None = None
    channels: list[int] | None = Field(default=None, min_length=1, max_length=4)
    phases: list[Literal["L1", "L2", "L3"]] | None = None
    ct: CTPatch | None = None
    vt_ratio: str | float | None = Field(default=None, description='"20000/100" or a number')
    reversed: list[bool] | bool | None = None
    purpose: Literal["grid", "consumable", "renewable"] | None = None
    zone: str | None = Field(default=None, max_length=100)
    panel: str | None = None
    tariff: str | None = None
    voltage_reference: str | None = None


class CircuitIn(CircuitPatch):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    device: str


class DevicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    panel: str | None = None
    bus: str | None = None
    unit: int | None = Field(default=None, ge=0, le=247)
    profile: str | None = Field(default=None, max_length=100)
    poll_interval: float | None = Field(default=None, gt=0, le=86400, description="[s]")
    priority: int | None = Field(default=None, ge=0, le=9)
    enabled: bool | None = None


class DeviceIn(DevicePatch):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    bus: str
    profile: str = Field(max_length=100)


class ProfileOut(BaseModel):
    id: str
    vendor: str | None = None
    model: str | None = None
    description: str | None = None
    error: str | None = None


class BusOut(BaseModel):
    id: str
    kind: str
    host: str
    port: int | None
    serial: str | None
    devices: list[str]


# -- whole configuration ------------------------------------------------------------------------------
@router.get("/config", summary="The whole site configuration (admin)")
def get_config(cfg: Config, _: ADMIN) -> dict[str, Any]:
    data: dict[str, Any] = cfg.config.model_dump(mode="json", exclude_none=True)
    dsn = data.get("storage", {}).get("dsn")
    if dsn:  # never echo a database password
        data["storage"]["dsn"] = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)
        data["storage"]["dsn"] = re.sub(r"(password=)\S+", r"\1***", data["storage"]["dsn"])
    return data


@router.get(
    "/config/ct-presets", response_model=list[CTPresetOut], summary="Current sensors for the CT picker"
)
def get_ct_presets(_: ADMIN) -> list[CTPresetOut]:
    return [
        CTPresetOut(
            id=p.id,
            label=p.label,
            kind=p.kind.value,
            ratio=p.ratio,
            rated_current=p.rated_current,
            phase_error=round(p.phase_error, 3),
            source=p.source,
        )
        for p in ct_presets()
    ]


@router.get(
    "/config/profiles", response_model=list[ProfileOut], summary="Device profiles for the profile picker"
)
def profiles(_: ADMIN) -> list[ProfileOut]:
    out = []
    for pid in profile_ids():
        try:
            p = get_profile(pid)
        except Exception as exc:  # a broken profile file is listed with its error, not fatal
            out.append(ProfileOut(id=pid, error=str(exc)))
            continue
        out.append(
            ProfileOut(
                id=pid,
                vendor=p.vendor,
                model=p.model,
                description=p.description or None,
            )
        )
    return out


@router.get("/config/buses", response_model=list[BusOut], summary="Buses and their devices")
def buses(cfg: Config, _: ADMIN) -> list[BusOut]:
    config = cfg.config
    return [
        BusOut(
            id=b.id,
            kind=b.kind.value,
            host=b.host,
            port=b.port,
            serial=b.serial,
            devices=[d.id for d in config.devices if d.bus == b.id],
        )
        for b in config.buses
    ]


class ScanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    units: str = Field(
        default="1-32", max_length=200, description='unit ids to probe, e.g. "1-32" or "1-10,20"'
    )
    timeout: float = Field(default=0.3, gt=0, le=5, description="response timeout per request [s]")


class ScanDevice(BaseModel):
    unit: int
    profile: str | None = Field(description="the profile when exactly one matched")
    candidates: list[str]
    sure: bool = Field(description="true when the model code matched (not only a plausibility check)")
    info: dict[str, float]
    duplicate: str | None
    configured: str | None = Field(description="id of the configured device with this unit id, if any")


class ScanOut(BaseModel):
    bus: str
    devices: list[ScanDevice]
    silent: int = Field(description="unit ids that did not answer")
    duplicates: list[int] = Field(description="unit ids probably used twice")


@router.post(
    "/config/buses/{bus_id}/scan",
    response_model=ScanOut,
    summary="Scan a Modbus bus: which unit ids answer and which profile each is (admin)",
    responses={
        404: {"description": "unknown bus"},
        409: {"description": "not a Modbus bus"},
        503: {"description": "the bus's line cannot be opened"},
    },
)
async def scan_bus(bus_id: str, body: ScanIn, cfg: Config, control: Controls, _: ADMIN) -> ScanOut:
    try:
        units = parse_units(body.units)
    except ValueError as exc:
        raise HTTPException(
            422, [{"loc": ["body", "units"], "msg": str(exc), "type": "value_error"}]
        ) from None
    try:
        bus, result = await control.scan(bus_id, units, timeout=body.timeout)
    except ModbusError as exc:  # the line itself is unusable (no route, no serial port): retry later
        raise HTTPException(503, f"cannot scan bus {bus_id!r}: {exc}") from None
    by_unit = {d.unit: d.id for d in cfg.config.devices if d.bus == bus.id}
    return ScanOut(
        bus=bus.id,
        devices=[ScanDevice(**h.as_dict(), configured=by_unit.get(h.unit)) for h in result.hits],
        silent=result.silent,
        duplicates=result.duplicate_units(),
    )


# -- circuits -----------------------------------------------------------------------------------------
@router.patch(
    "/circuits/{circuit_id}",
    response_model=CircuitOut,
    summary="Change a circuit: wiring, CT kind and ratio, VT ratio, purpose, zone … (admin)",
    description="A CT ratio change applies from now on and is recorded with its time in the site file "
    "(`ct.ratio_from`, `ct.ratio_history`); stored readings are never rescaled.",
    responses={
        404: {"description": "unknown circuit"},
        409: {"description": "a CT/VT ratio the device applies itself and meterhub cannot set"},
        422: {"description": "invalid value"},
        502: {"description": "the device did not keep the ratio written to it"},
    },
)
async def patch_circuit(
    circuit_id: str, body: CircuitPatch, cfg: Config, live: Live, control: Controls, rt: Runtime, _: ADMIN
) -> CircuitOut:
    changes = body.model_dump(exclude_unset=True)
    new = edit.patch_circuit(cfg.config, circuit_id, changes, now=rt.clock())
    await _ratios_apply(new, new.circuit(circuit_id), before=cfg.config.circuit(circuit_id), control=control)
    now = await cfg.apply(new)
    log.info("circuit %s changed: %s", circuit_id, ", ".join(changes))
    return circuit_out(now, live, circuit_id)


@router.post("/circuits", response_model=CircuitOut, status_code=201, summary="Add a circuit (admin)")
async def add_circuit(body: CircuitIn, cfg: Config, live: Live, control: Controls, _: ADMIN) -> CircuitOut:
    new = edit.add_circuit(cfg.config, body.model_dump(exclude_none=True))
    await _ratios_apply(new, new.circuit(body.id), before=None, control=control)
    now = await cfg.apply(new)
    return circuit_out(now, live, body.id)


async def _ratios_apply(
    config: SiteConfig, circuit: Circuit, *, before: Circuit | None, control: Control
) -> None:
    """A CT or VT ratio change on a device that applies its ratio itself (its profile's ``transformers``
    says it reports primary values): written to the device and read back where the profile names the
    register, else refused (409) with the reason — stored, it would change nothing."""
    device = next((d for d in config.devices if d.id == circuit.device), None)
    if device is None:
        return
    try:
        profile = get_profile(device.profile)
    except ProfileError:
        return  # not a Modbus profile (e.g. the ADC board): the waveform source applies the CT itself
    t = profile.transformers
    for vt, old, ratio in (
        (False, before.ct.ratio if before is not None else None, circuit.ct.ratio),
        (True, before.vt_ratio if before is not None else None, circuit.vt_ratio),
    ):
        unchanged = ratio.value == old.value if old is not None else ratio.value == 1.0
        if unchanged:
            continue
        reason = fixed_ratio_reason(profile, circuit, vt=vt)
        if reason is None:
            continue  # meterhub applies it to the device's secondary values
        what = "VT" if vt else "CT"
        register = None if t is None else (t.vt_register if vt else t.ct_register)
        port = control.outputs().ports.get(device.bus)
        if register is None or port is None or not device.enabled:
            why = reason if register is None else f"bus {device.bus!r} is not being read now to write it"
            raise ConflictError(
                f"{what} ratio {_ratio_text(ratio)} refused for circuit {circuit.id!r} on device "
                f"{device.id!r}: {why}"
            )
        unit = device.unit if device.unit is not None else profile.defaults.unit
        kept = await write_ratio(
            port, unit, register, ratio, word_order=profile.defaults.word_order, what=what
        )
        log.info("device %s: %s ratio %s written and read back (%g)", device.id, what, ratio, kept)


def _ratio_text(r: Ratio) -> str:
    return f"{r.primary:g}/{r.secondary:g}"


@router.delete("/circuits/{circuit_id}", status_code=204, summary="Remove a circuit (admin)")
async def delete_circuit(circuit_id: str, cfg: Config, _: ADMIN) -> None:
    await cfg.apply(edit.remove_circuit(cfg.config, circuit_id))


# -- devices ------------------------------------------------------------------------------------------
@router.patch(
    "/devices/{device_id}",
    response_model=DeviceOut,
    summary="Change a device: name, profile, address, poll interval, enabled (admin)",
    responses={404: {"description": "unknown device"}, 422: {"description": "invalid value"}},
)
async def patch_device(
    device_id: str, body: DevicePatch, cfg: Config, status: Status, energy: Energy, _: ADMIN
) -> DeviceOut:
    new = edit.patch_device(
        cfg.config, device_id, body.model_dump(exclude_unset=True), profiles=profile_ids()
    )
    now = await cfg.apply(new)
    return device_out(now, status, device_id, energy)


@router.post("/devices", response_model=DeviceOut, status_code=201, summary="Add a device (admin)")
async def add_device(body: DeviceIn, cfg: Config, status: Status, energy: Energy, _: ADMIN) -> DeviceOut:
    now = await cfg.apply(
        edit.add_device(cfg.config, body.model_dump(exclude_none=True), profiles=profile_ids())
    )
    return device_out(now, status, body.id, energy)


@router.delete(
    "/devices/{device_id}",
    status_code=204,
    summary="Remove a device (admin)",
    responses={409: {"description": "circuits still use the device"}},
)
async def delete_device(device_id: str, cfg: Config, _: ADMIN) -> None:
    await cfg.apply(edit.remove_device(cfg.config, device_id))


# -- tariffs ------------------------------------------------------------------------------------------
class TariffsIn(TariffSettings):
    """The whole new ``energy.tariffs`` section. ``rates`` must be given: a body without it (``{}``) is
    refused rather than read as "no rates", which would delete every rate; send ``"rates": []`` to
    remove them on purpose. Unknown keys are refused.

    ``effective_from`` (default: now) is when the new tariff takes effect: a date (local midnight of the
    site) or a date-time with a UTC offset, in the past or the future. The tariff in force until then
    moves into ``energy.tariff_history``, so energy used before keeps its price in every report; the
    current tariff's own ``effective_from`` corrects it in place; an earlier time is refused (422)."""

    rates: list[Rate] = Field(max_length=5, description="the time-of-use rates (required; [] for none)")


class TariffPeriodOut(BaseModel):
    """One tariff period: ``tariffs`` in force from ``from`` (null: since ever) until ``until`` (null: now
    and on)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    start: str | None = Field(alias="from")
    until: str | None
    tariffs: TariffSettings


@router.get(
    "/config/tariffs", response_model=TariffSettings, summary="Tariffs: rates, time of use, charges (admin)"
)
def get_tariffs(cfg: Config, _: ADMIN) -> TariffSettings:
    energy = cfg.config.energy
    return energy.tariffs if energy is not None else TariffSettings()


@router.get(
    "/config/tariffs/history",
    response_model=list[TariffPeriodOut],
    summary="Every tariff period, oldest first, the current one last (admin)",
)
def get_tariff_history(cfg: Config, _: ADMIN) -> list[TariffPeriodOut]:
    energy = cfg.config.energy
    if energy is None:
        return [TariffPeriodOut(start=None, until=None, tariffs=TariffSettings())]
    starts = [p.start for p in energy.tariff_history] + [energy.tariffs.effective_from]
    tariffs = [p.tariffs for p in energy.tariff_history] + [energy.tariffs]
    return [
        TariffPeriodOut(start=starts[i], until=starts[i + 1] if i + 1 < len(starts) else None, tariffs=t)
        for i, t in enumerate(tariffs)
    ]


@router.put(
    "/config/tariffs",
    response_model=TariffSettings,
    summary="Change the tariffs from `effective_from` (default now) on (admin; `rates` is required)",
    responses={
        422: {
            "description": "invalid tariffs, `rates` missing, or `effective_from` before the current tariff's start"
        }
    },
)
async def put_tariffs(body: TariffsIn, cfg: Config, rt: Runtime, _: ADMIN) -> TariffSettings:
    changes = body.model_dump(mode="json", exclude_unset=True)
    now = await cfg.apply(edit.replace_tariffs(cfg.config, changes, now=rt.clock()))
    return now.energy.tariffs if now.energy is not None else TariffSettings()


# -- billing ------------------------------------------------------------------------------------------
@router.get(
    "/config/billing",
    response_model=BillingSettings,
    summary="Monthly billing: day, hour, automatic, demand reset, periods kept (admin)",
)
def get_billing(cfg: Config, _: ADMIN) -> BillingSettings:
    energy = cfg.config.energy
    return energy.billing if energy is not None else BillingSettings()


@router.put(
    "/config/billing",
    response_model=BillingSettings,
    summary="Change the monthly billing schedule (admin)",
    description="Day 1–28 and hour 0–23 of the site's local time (seed 002 appendix 4). The billing count "
    "and the periods already closed are kept; the next automatic billing follows the new schedule.",
    responses={422: {"description": "day, hour or history out of range, or an unknown key"}},
)
async def put_billing(body: BillingSettings, cfg: Config, _: ADMIN) -> BillingSettings:
    new = cfg.config.model_copy(deep=True)
    energy = new.energy if new.energy is not None else EnergyConfig()
    new.energy = energy.model_copy(update={"billing": body})
    now = await cfg.apply(new)
    log.info("billing schedule changed: day %d, hour %d", body.day, body.hour)
    return now.energy.billing if now.energy is not None else body


# -- demand -------------------------------------------------------------------------------------------
#: What a demand change does, said with every answer (energy/pipeline.py ``_apply_config``).
DEMAND_EFFECT = (
    "applied now: the demand windows open at the change start anew with the new interval and method; "
    "the maximum demands measured so far are kept until they are reset"
)


class DemandOut(DemandSettings):
    """The demand settings (``energy.demand``), the registers demand can be measured for, and what a
    change does."""

    registers: list[str] = Field(description="registers that have a demand quantity (for `quantities`)")
    effect: str = Field(description="when and how a change takes effect")


def _demand_out(settings: DemandSettings) -> DemandOut:
    registers = sorted(k for k, e in CATALOGUE.items() if e.kind is Kind.CUMULATIVE and e.demand)
    return DemandOut(**settings.model_dump(), registers=registers, effect=DEMAND_EFFECT)


@router.get(
    "/config/demand",
    response_model=DemandOut,
    summary="Demand measurement: interval, block/sliding/thermal, subintervals, registers (admin)",
)
def get_demand(cfg: Config, _: ADMIN) -> DemandOut:
    energy = cfg.config.energy
    return _demand_out(energy.demand if energy is not None else DemandSettings())


@router.put(
    "/config/demand",
    response_model=DemandOut,
    summary="Change the demand measurement (admin)",
    description="Interval 1, 5, 10, 15, 30 or 60 min; method block, sliding (with `subintervals` that "
    "divide the interval into whole seconds) or thermal. "
    + DEMAND_EFFECT[0].upper()
    + DEMAND_EFFECT[1:]
    + ".",
    responses={422: {"description": "interval, subintervals or a register refused (`loc` names it)"}},
)
async def put_demand(body: DemandSettings, cfg: Config, _: ADMIN) -> DemandOut:
    new = cfg.config.model_copy(deep=True)
    energy = new.energy if new.energy is not None else EnergyConfig()
    new.energy = energy.model_copy(update={"demand": body})
    now = await cfg.apply(new)
    log.info(
        "demand settings changed: %d min %s, %d subintervals", body.interval, body.method, body.subintervals
    )
    return _demand_out(now.energy.demand if now.energy is not None else body)


# -- capacity tariff ----------------------------------------------------------------------------------
class CapacityIn(BaseModel):
    """The capacity tariff's settings (``energy.capacity_minimum``): the floor each monthly 15-min peak is
    raised to before the rolling 12-month mean is taken (e.g. 2.5 kW in the Flemish capaciteitstarief)."""

    model_config = ConfigDict(extra="forbid")

    minimum: float = Field(ge=0, le=1e10, description="floor of each monthly peak [W]")


@router.get("/config/capacity", response_model=CapacityIn, summary="Capacity tariff settings (admin)")
def get_capacity(cfg: Config, _: ADMIN) -> CapacityIn:
    energy = cfg.config.energy
    return CapacityIn(minimum=energy.capacity_minimum if energy is not None else 0.0)


@router.put(
    "/config/capacity",
    response_model=CapacityIn,
    summary="Change the capacity tariff's floor of the monthly peaks (admin)",
    description="Used by `GET /reports/capacity` for the rolling 12-month mean from then on (it is a "
    "report setting: stored readings are not changed).",
    responses={422: {"description": "negative or unknown key"}},
)
async def put_capacity(body: CapacityIn, cfg: Config, _: ADMIN) -> CapacityIn:
    new = cfg.config.model_copy(deep=True)
    energy = new.energy if new.energy is not None else EnergyConfig()
    new.energy = energy.model_copy(update={"capacity_minimum": body.minimum})
    now = await cfg.apply(new)
    return CapacityIn(minimum=now.energy.capacity_minimum if now.energy is not None else body.minimum)


# -- load profiles ------------------------------------------------------------------------------------
class LoadProfilesIn(BaseModel):
    """The configured load profiles (``energy.profiles``, seed 002 appendix 5): per circuit the capture
    interval and quantities that ``GET /reports/profile`` uses when the request names none. A circuit
    without one gets 15 min of import and export energy and active power."""

    model_config = ConfigDict(extra="forbid")

    profiles: list[ProfileSpec] = Field(max_length=1000)


@router.get("/config/load-profiles", response_model=LoadProfilesIn, summary="Load-profile settings (admin)")
def get_load_profiles(cfg: Config, _: ADMIN) -> LoadProfilesIn:
    energy = cfg.config.energy
    return LoadProfilesIn(profiles=list(energy.profiles) if energy is not None else [])


@router.put(
    "/config/load-profiles",
    response_model=LoadProfilesIn,
    summary="Replace the load-profile settings (admin)",
    responses={422: {"description": "unknown circuit or quantity, interval not 1, 5, 10, 15, 30 or 60 min"}},
)
async def put_load_profiles(body: LoadProfilesIn, cfg: Config, _: ADMIN) -> LoadProfilesIn:
    circuits = [p.circuit for p in body.profiles]
    twice = sorted({c for c in circuits if circuits.count(c) > 1})
    if twice:
        i = circuits.index(twice[0], circuits.index(twice[0]) + 1)
        raise HTTPException(
            422,
            [
                {
                    "loc": ["body", "profiles", i, "circuit"],
                    "msg": f"circuit {twice[0]!r} has a load profile already",
                    "type": "value_error",
                }
            ],
        )
    new = cfg.config.model_copy(deep=True)
    energy = new.energy if new.energy is not None else EnergyConfig()
    new.energy = energy.model_copy(update={"profiles": body.profiles})
    now = await cfg.apply(new)
    return LoadProfilesIn(profiles=list(now.energy.profiles) if now.energy is not None else [])


# -- buses --------------------------------------------------------------------------------------------
@router.post(
    "/config/buses",
    response_model=BusOut,
    status_code=201,
    summary="Add a bus: a Modbus TCP endpoint, an RS485 line, a DLMS or MQTT connection … (admin)",
    responses={409: {"description": "the id exists"}, 422: {"description": "invalid field"}},
)
async def add_bus(body: Bus, cfg: Config, _: ADMIN) -> BusOut:
    if any(b.id == body.id for b in cfg.config.buses):
        raise ConflictError(f"bus {body.id!r} exists")
    new = cfg.config.model_copy(deep=True)
    new.buses.append(body)
    await cfg.apply(new)
    log.info("bus %s (%s) added", body.id, body.kind.value)
    return BusOut(
        id=body.id, kind=body.kind.value, host=body.host, port=body.port, serial=body.serial, devices=[]
    )


@router.delete(
    "/config/buses/{bus_id}",
    status_code=204,
    summary="Remove a bus (admin)",
    responses={404: {"description": "unknown bus"}, 409: {"description": "devices still use the bus"}},
)
async def delete_bus(bus_id: str, cfg: Config, _: ADMIN) -> None:
    i = edit.index_of(cfg.config.buses, bus_id, "bus")
    users = [d.id for d in cfg.config.devices if d.bus == bus_id]
    if users:
        raise ConflictError(f"devices {', '.join(users)} use bus {bus_id!r}; move or remove them first")
    new = cfg.config.model_copy(deep=True)
    del new.buses[i]
    await cfg.apply(new)
