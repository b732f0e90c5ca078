"""Configuration through the public API (admin only, never public): devices, circuits, tariffs.

Every change builds a new :class:`~meterhub.config.schema.SiteConfig`, validates it with the same
schema and cross-reference checks as the site file, and applies it with
:meth:`meterhub.runtime.Gateway.update_config`, which writes the site file back and restarts
acquisition (so a changed CT ratio takes effect at the next poll). Errors are 422 answers whose
``loc`` names the field.

The CT picker offers the current sensors of seed 000 §4.6 (Enertrek CTO, CTOV, CTF and the 5 A
adapter) with their ratio and phase error, plus plain 5 A secondaries for conventional CTs.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meterhub.config.schema import Circuit, Device, SiteConfig
from meterhub.energy.config import EnergyConfig, TariffSettings
from meterhub.model.topology import PHASES_OF_WIRING, Wiring
from meterhub.runtime import Gateway
from meterhub.web.auth import Principal, require_admin
from meterhub.web.deps import get_gateway
from meterhub.web.live_api import CircuitOut, DeviceOut, circuit_out, device_out
from meterhub.web.site_api import apply_config

__all__ = ["CT_PRESETS", "router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["configuration"])
GW = Annotated[Gateway, Depends(get_gateway)]
ADMIN = Annotated[Principal, Depends(require_admin)]


class CTPreset(BaseModel):
    id: str
    label: str
    kind: str
    ratio: str = Field(description="primary/secondary: A/A, A/V (voltage output, Rogowski)")
    rated_current: float | None = Field(description="[A]")
    phase_error: float = Field(description="phase error at rated current [°]")
    source: str


def _preset(
    pid: str, label: str, kind: str, ratio: str, rated: float | None, phase_min: float, src: str
) -> CTPreset:
    return CTPreset(
        id=pid,
        label=label,
        kind=kind,
        ratio=ratio,
        rated_current=rated,
        phase_error=round(phase_min / 60.0, 3),
        source=src,
    )


_SEED = "seed 000 §4.6"
#: Current sensors for the CT picker (phase error given in the datasheet in arc minutes).
CT_PRESETS: list[CTPreset] = [
    _preset("built-in", "Built-in CT (M10…M40 modules)", "built-in", "1/1", None, 0, "seed 000 §4.1"),
    _preset("direct", "Direct connection (no CT)", "direct", "1/1", None, 0, "-"),
    _preset(
        "cto-100", "Enertrek CTO-100 split-core, 100 A / 25 mA", "current-output", "100/0.025", 100, 50, _SEED
    ),
    _preset(
        "cto-200", "Enertrek CTO-200 split-core, 200 A / 25 mA", "current-output", "200/0.025", 200, 30, _SEED
    ),
    _preset(
        "cto-400", "Enertrek CTO-400 split-core, 400 A / 100 mA", "current-output", "400/0.1", 400, 30, _SEED
    ),
    _preset(
        "cto-600", "Enertrek CTO-600 split-core, 600 A / 100 mA", "current-output", "600/0.1", 600, 30, _SEED
    ),
    _preset(
        "ctov-100",
        "Enertrek CTOV-100 split-core, 100 A / 333 mV",
        "voltage-output",
        "100/0.333",
        100,
        50,
        _SEED,
    ),
    _preset(
        "ctov-200",
        "Enertrek CTOV-200 split-core, 200 A / 333 mV",
        "voltage-output",
        "200/0.333",
        200,
        30,
        _SEED,
    ),
    _preset(
        "ctov-400",
        "Enertrek CTOV-400 split-core, 400 A / 333 mV",
        "voltage-output",
        "400/0.333",
        400,
        30,
        _SEED,
    ),
    _preset(
        "ctov-600",
        "Enertrek CTOV-600 split-core, 600 A / 333 mV",
        "voltage-output",
        "600/0.333",
        600,
        30,
        _SEED,
    ),
    *[
        _preset(
            f"ctf-{a}", f"Enertrek CTF Rogowski coil, {a} A / 100 mV", "rogowski", f"{a}/0.1", a, 0, _SEED
        )
        for a in (800, 1000, 2000, 3000, 6300, 10000)
    ],
    *[
        _preset(
            f"cta-{a}", f"Conventional CT {a}/5 A via CTA 5 A adapter", "adapter-5a", f"{a}/5", a, 0, _SEED
        )
        for a in (50, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1250, 1600, 2000, 2500, 3000, 4000)
    ],
]


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


# -- helpers ------------------------------------------------------------------------------------------
def _invalid(exc: ValidationError, prefix: tuple[str, ...] = ("body",)) -> HTTPException:
    return HTTPException(
        422,
        [
            {
                "loc": [*prefix, *[str(p) for p in e["loc"]]],
                "msg": e["msg"].removeprefix("Value error, "),
                "type": e["type"],
            }
            for e in exc.errors(include_url=False)
        ],
    )


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _known_profile(profile: str) -> None:
    """422 when the profile does not exist (when the profiles package is installed)."""
    try:
        from meterhub.profiles import profile_ids
    except ImportError:  # acquisition profiles not installed: the gateway reports it at start
        return
    ids = profile_ids()
    if ids and profile not in ids:
        raise HTTPException(
            422,
            [
                {
                    "loc": ["body", "profile"],
                    "msg": f"unknown profile {profile!r}; known: {', '.join(ids)}",
                    "type": "value_error",
                }
            ],
        )


def _replace(cfg: SiteConfig, section: str, index: int, item: dict[str, Any], model: type[Any]) -> SiteConfig:
    try:
        validated = model.model_validate(item)
    except ValidationError as exc:
        raise _invalid(exc) from None
    new = cfg.model_copy(deep=True)
    items = list(getattr(new, section))
    if index < 0:
        items.append(validated)
    else:
        items[index] = validated
    setattr(new, section, items)
    return new


def _index(items: list[Any], item_id: str, what: str) -> int:
    for i, item in enumerate(items):
        if item.id == item_id:
            return i
    raise HTTPException(404, f"unknown {what} {item_id!r}")


# -- whole configuration ------------------------------------------------------------------------------
@router.get("/config", summary="The whole site configuration (admin)")
def get_config(gw: GW, _: ADMIN) -> dict[str, Any]:
    data: dict[str, Any] = gw.config.model_dump(mode="json", exclude_none=True)
    dsn = data.get("storage", {}).get("dsn")
    if dsn:  # never echo a database password
        data["storage"]["dsn"] = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)
        data["storage"]["dsn"] = re.sub(r"(password=)\S+", r"\1***", data["storage"]["dsn"])
    return data


@router.get("/config/ct-presets", response_model=list[CTPreset], summary="Current sensors for the CT picker")
def ct_presets(_: ADMIN) -> list[CTPreset]:
    return CT_PRESETS


@router.get(
    "/config/profiles", response_model=list[ProfileOut], summary="Device profiles for the profile picker"
)
def profiles(_: ADMIN) -> list[ProfileOut]:
    try:
        from meterhub.profiles import get_profile, profile_ids
    except ImportError:
        return []
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
                vendor=getattr(p, "vendor", None),
                model=getattr(p, "model", None),
                description=getattr(p, "description", None),
            )
        )
    return out


@router.get("/config/buses", response_model=list[BusOut], summary="Buses and their devices")
def buses(gw: GW, _: ADMIN) -> list[BusOut]:
    return [
        BusOut(
            id=b.id,
            kind=b.kind.value,
            host=b.host,
            port=b.port,
            serial=b.serial,
            devices=[d.id for d in gw.config.devices if d.bus == b.id],
        )
        for b in gw.config.buses
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


_TRANSPORT = {"modbus-tcp": "tcp", "modbus-rtu": "rtu", "modbus-rtu-over-tcp": "rtu-over-tcp"}


@router.post(
    "/config/buses/{bus_id}/scan",
    response_model=ScanOut,
    summary="Scan a Modbus bus: which unit ids answer and which profile each is (admin)",
    responses={404: {"description": "unknown bus"}, 409: {"description": "not a Modbus bus"}},
)
async def scan_bus(bus_id: str, body: ScanIn, gw: GW, _: ADMIN) -> ScanOut:
    bus = next((b for b in gw.config.buses if b.id == bus_id), None)
    if bus is None:
        raise HTTPException(404, f"unknown bus {bus_id!r}")
    kind = _TRANSPORT.get(bus.kind.value)
    if kind is None:
        raise HTTPException(409, f"bus {bus_id!r} is {bus.kind.value}; only Modbus buses can be scanned")
    try:
        from meterhub.drivers.modbus.scan import parse_units, scan_line
        from meterhub.drivers.modbus.transport import ModbusError, ModbusLink, TransportKind
        from meterhub.profiles import all_profiles
    except ImportError as exc:  # pragma: no cover - the Modbus driver ships with meterhub
        raise HTTPException(503, f"the Modbus driver is not available: {exc}") from None
    try:
        units = parse_units(body.units)
    except ValueError as exc:
        raise HTTPException(
            422, [{"loc": ["body", "units"], "msg": str(exc), "type": "value_error"}]
        ) from None
    link = ModbusLink(
        TransportKind(kind),
        host=bus.host,
        port=bus.port or 502,
        serial=bus.serial,
        baud=bus.baud,
        parity=bus.parity,
        stopbits=bus.stopbits,
        timeout=body.timeout,
    )
    try:
        result = await scan_line(link, units, all_profiles())
    except ModbusError as exc:
        raise HTTPException(503, f"cannot scan bus {bus_id!r} ({link.endpoint}): {exc}") from None
    finally:
        await link.close()
    by_unit = {d.unit: d.id for d in gw.config.devices if d.bus == bus_id}
    return ScanOut(
        bus=bus_id,
        devices=[ScanDevice(**h.as_dict(), configured=by_unit.get(h.unit)) for h in result.hits],
        silent=result.silent,
        duplicates=result.duplicate_units(),
    )


# -- circuits -----------------------------------------------------------------------------------------
@router.patch(
    "/circuits/{circuit_id}",
    response_model=CircuitOut,
    summary="Change a circuit: wiring, CT kind and ratio, VT ratio, purpose, zone … (admin)",
    responses={404: {"description": "unknown circuit"}, 422: {"description": "invalid value"}},
)
async def patch_circuit(circuit_id: str, body: CircuitPatch, gw: GW, _: ADMIN) -> CircuitOut:
    cfg = gw.config
    i = _index(cfg.circuits, circuit_id, "circuit")
    current = cfg.circuits[i].model_dump(mode="json")
    changes = body.model_dump(exclude_unset=True)
    if changes.get("ct") is not None:
        changes["ct"] = {k: v for k, v in changes["ct"].items() if v is not None}
    if "wiring" in changes and "channels" not in changes:
        n = len(PHASES_OF_WIRING[Wiring(changes["wiring"])])
        first = current["channels"][0]
        changes["channels"] = [first + k for k in range(n)]
        changes.setdefault("phases", None)
    merged = _merge(current, changes)
    await apply_config(gw, _replace(cfg, "circuits", i, merged, Circuit))
    log.info("circuit %s changed: %s", circuit_id, ", ".join(changes))
    return circuit_out(gw, circuit_id)


@router.post("/circuits", response_model=CircuitOut, status_code=201, summary="Add a circuit (admin)")
async def add_circuit(body: CircuitIn, gw: GW, _: ADMIN) -> CircuitOut:
    if any(c.id == body.id for c in gw.config.circuits):
        raise HTTPException(409, f"circuit {body.id!r} exists")
    item = body.model_dump(exclude_none=True)
    if item.get("ct") is not None:
        item["ct"] = {k: v for k, v in item["ct"].items() if v is not None}
    await apply_config(gw, _replace(gw.config, "circuits", -1, item, Circuit))
    return circuit_out(gw, body.id)


@router.delete("/circuits/{circuit_id}", status_code=204, summary="Remove a circuit (admin)")
async def delete_circuit(circuit_id: str, gw: GW, _: ADMIN) -> None:
    i = _index(gw.config.circuits, circuit_id, "circuit")
    new = gw.config.model_copy(deep=True)
    del new.circuits[i]
    if new.simulation is not None:
        new.simulation.loads.pop(circuit_id, None)
    await apply_config(gw, new)


# -- devices ------------------------------------------------------------------------------------------
@router.patch(
    "/devices/{device_id}",
    response_model=DeviceOut,
    summary="Change a device: name, profile, address, poll interval, enabled (admin)",
    responses={404: {"description": "unknown device"}, 422: {"description": "invalid value"}},
)
async def patch_device(device_id: str, body: DevicePatch, gw: GW, _: ADMIN) -> DeviceOut:
    cfg = gw.config
    i = _index(cfg.devices, device_id, "device")
    changes = body.model_dump(exclude_unset=True)
    if changes.get("profile") is not None:
        _known_profile(changes["profile"])
    merged = _merge(cfg.devices[i].model_dump(mode="json"), changes)
    await apply_config(gw, _replace(cfg, "devices", i, merged, Device))
    return device_out(gw, device_id)


@router.post("/devices", response_model=DeviceOut, status_code=201, summary="Add a device (admin)")
async def add_device(body: DeviceIn, gw: GW, _: ADMIN) -> DeviceOut:
    if any(d.id == body.id for d in gw.config.devices):
        raise HTTPException(409, f"device {body.id!r} exists")
    _known_profile(body.profile)
    await apply_config(gw, _replace(gw.config, "devices", -1, body.model_dump(exclude_none=True), Device))
    return device_out(gw, body.id)


@router.delete(
    "/devices/{device_id}",
    status_code=204,
    summary="Remove a device (admin)",
    responses={409: {"description": "circuits still use the device"}},
)
async def delete_device(device_id: str, gw: GW, _: ADMIN) -> None:
    i = _index(gw.config.devices, device_id, "device")
    users = [c.id for c in gw.config.circuits if device_id in (c.device, c.voltage_reference)]
    if users:
        raise HTTPException(409, f"circuits {', '.join(users)} use device {device_id!r}; change them first")
    new = gw.config.model_copy(deep=True)
    del new.devices[i]
    await apply_config(gw, new)


# -- tariffs ------------------------------------------------------------------------------------------
@router.get(
    "/config/tariffs", response_model=TariffSettings, summary="Tariffs: rates, time of use, charges (admin)"
)
def get_tariffs(gw: GW, _: ADMIN) -> TariffSettings:
    energy = gw.config.energy
    return energy.tariffs if energy is not None else TariffSettings()


@router.put("/config/tariffs", response_model=TariffSettings, summary="Replace the tariffs (admin)")
async def put_tariffs(body: TariffSettings, gw: GW, _: ADMIN) -> TariffSettings:
    new = gw.config.model_copy(deep=True)
    energy = new.energy.model_copy(deep=True) if new.energy is not None else EnergyConfig()
    energy.tariffs = body
    new.energy = energy
    await apply_config(gw, new)
    return body
