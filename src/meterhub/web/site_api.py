"""Site and interface options: title, logo, time zone, language, currency, CO2 factor; today's figures.

Reading them is part of the live display (public when ``web.public_live`` is on); changing them needs
the admin role and goes through :func:`meterhub.config.edit.patch_site` and the configuration's ``apply``
(:class:`meterhub.web.deps.ConfigView`), so the site file is rewritten and checked like any other
configuration change.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from meterhub.config import edit
from meterhub.config.schema import SiteConfig
from meterhub.energy.pipeline import EnergyPipeline
from meterhub.errors import NotFoundError
from meterhub.live import LiveCache
from meterhub.model.quantities import Q
from meterhub.model.readings import SeriesKey, iso_utc
from meterhub.model.topology import Phase, Purpose
from meterhub.storage.base import Storage
from meterhub.web.auth import Principal, require_admin, require_live
from meterhub.web.deps import Config, Energy, Live, Runtime, Store

__all__ = ["LOGO_TYPES", "DisplaySettings", "router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["site"])
LIVE = Annotated[Principal, Depends(require_live)]
ADMIN = Annotated[Principal, Depends(require_admin)]

#: Accepted logo formats (content type → file suffix) and the largest accepted upload [bytes].
LOGO_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/svg+xml": ".svg", "image/webp": ".webp"}
LOGO_MAX = 512 * 1024
_MAGIC = {".png": b"\x89PNG", ".jpg": b"\xff\xd8\xff", ".webp": b"RIFF"}


class SiteOut(BaseModel):
    name: str
    title: str | None
    timezone: str
    language: Literal["en", "de"]
    currency: str
    co2_factor: float = Field(description="[kg/kWh]")
    nominal_voltage: float = Field(description="phase-to-neutral [V]")
    nominal_frequency: int = Field(description="[Hz]")
    logo: str | None = Field(description="URL of the uploaded logo, or null")
    demo: bool
    public_live: bool


class SitePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    title: str | None = Field(
        default=None, max_length=200, description="shown in the header; empty = site name"
    )
    timezone: str | None = Field(default=None, max_length=64)
    language: Literal["en", "de"] | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    co2_factor: float | None = Field(default=None, ge=0, le=5, description="[kg/kWh]")
    public_live: bool | None = None


class TodayOut(BaseModel):
    start: str = Field(description="local midnight, ISO 8601 UTC")
    energy_consumed: float | None = Field(description="energy drawn by consumption since midnight [Wh]")
    energy_generated: float | None = Field(description="renewable energy since midnight [Wh]")
    cost: float | None = Field(
        description="energy cost since midnight in `currency`: the energy pipeline's closed intervals "
        "plus the import since the last one at the price in force now (so known from the first minute)"
    )
    currency: str
    co2: float | None = Field(description="CO2-equivalent since midnight [kg]")


def _logo_file(data_dir: Path) -> tuple[str, str] | None:
    for ctype, suffix in LOGO_TYPES.items():
        if (data_dir / f"logo{suffix}").exists():
            return str(data_dir / f"logo{suffix}"), ctype
    return None


def site_out(config: SiteConfig, data_dir: Path, demo: bool) -> SiteOut:
    s = config.site
    logo = _logo_file(data_dir)
    return SiteOut(
        name=s.name,
        title=config.web.title,
        timezone=s.timezone,
        language=s.language,
        currency=s.currency,
        co2_factor=s.co2_factor,
        nominal_voltage=s.nominal_voltage,
        nominal_frequency=s.nominal_frequency,
        logo=f"/api/v1/site/logo?v={int(os.stat(logo[0]).st_mtime)}" if logo else None,
        demo=demo,
        public_live=config.web.public_live,
    )


@router.get("/site", response_model=SiteOut, summary="Site and interface options")
def get_site(cfg: Config, rt: Runtime, _: LIVE) -> SiteOut:
    return site_out(cfg.config, rt.data_dir, rt.demo)


@router.patch("/site", response_model=SiteOut, summary="Change interface options (admin)")
async def patch_site(body: SitePatch, cfg: Config, rt: Runtime, _: ADMIN) -> SiteOut:
    now = await cfg.apply(edit.patch_site(cfg.config, body.model_dump(exclude_unset=True), now=rt.clock()))
    return site_out(now, rt.data_dir, rt.demo)


@router.get("/site/logo", summary="The uploaded logo", responses={404: {"description": "no logo uploaded"}})
def get_logo(rt: Runtime) -> Response:
    logo = _logo_file(rt.data_dir)
    if logo is None:
        raise NotFoundError("no logo uploaded")
    return FileResponse(
        logo[0], media_type=logo[1], headers={"Content-Security-Policy": "default-src 'none'"}
    )


@router.put(
    "/site/logo", response_model=SiteOut, summary="Upload the logo (PNG, JPEG, SVG or WebP ≤ 512 KiB; admin)"
)
async def put_logo(file: UploadFile, cfg: Config, rt: Runtime, _: ADMIN) -> SiteOut:
    suffix = LOGO_TYPES.get(file.content_type or "")
    if suffix is None:
        raise HTTPException(415, f"logo type {file.content_type!r} not accepted; use {', '.join(LOGO_TYPES)}")
    data = await file.read(LOGO_MAX + 1)
    if len(data) > LOGO_MAX:
        raise HTTPException(413, f"the logo is larger than {LOGO_MAX // 1024} KiB")
    magic = _MAGIC.get(suffix)
    if (magic and not data.startswith(magic)) or (suffix == ".svg" and b"<svg" not in data[:4096]):
        raise HTTPException(415, f"the file content is not {file.content_type}")
    for other in LOGO_TYPES.values():
        (rt.data_dir / f"logo{other}").unlink(missing_ok=True)
    tmp = rt.data_dir / f"logo{suffix}.tmp"
    tmp.write_bytes(data)
    tmp.replace(rt.data_dir / f"logo{suffix}")
    return site_out(cfg.config, rt.data_dir, rt.demo)


@router.delete("/site/logo", response_model=SiteOut, summary="Remove the logo (admin)")
def delete_logo(cfg: Config, rt: Runtime, _: ADMIN) -> SiteOut:
    for other in LOGO_TYPES.values():
        (rt.data_dir / f"logo{other}").unlink(missing_ok=True)
    return site_out(cfg.config, rt.data_dir, rt.demo)


def _register_delta(
    live: LiveCache, storage: Storage, circuit: str, quantity: str, start: float, now: float
) -> float | None:
    """Growth of a cumulative register (total phase) from ``start`` to ``now`` [Wh]."""
    key = SeriesKey(circuit, quantity, Phase.TOTAL)
    latest = live.get(key)
    try:
        at_end = storage.value_at(key, now)
        end_value = latest.value if latest is not None else (at_end[1] if at_end else None)
        if end_value is None:
            return None
        at_start = storage.value_at(key, start)
        if at_start is None:  # the register started after midnight: count from its first value
            points = storage.history(key, start, now + 1, "1min")
            if not points:  # nothing stored yet today (before the first flush): unknown, not 0
                return None
            start_value = points[0].min
        else:
            start_value = at_start[1]
    except (NotImplementedError, ValueError):
        return None
    return max(0.0, end_value - start_value)


def _interval_sum(storage: Storage, circuit: str, quantity: str, start: float, now: float) -> float | None:
    """Sum of an interval quantity (cost, co2) stored by the energy pipeline since ``start``."""
    got = _intervals(storage, circuit, quantity, start, now)
    return got[0] if got else None


def _intervals(
    storage: Storage, circuit: str, quantity: str, start: float, now: float
) -> tuple[float, float] | None:
    """(Σ of the intervals of ``quantity`` since ``start``, end of the last one [s]), or None."""
    try:
        points = storage.history(SeriesKey(circuit, quantity, Phase.TOTAL), start, now + 1, "raw")
    except (NotImplementedError, ValueError):
        return None
    if not points:
        return None
    return sum(p.last for p in points), max(p.ts for p in points)


def _cost_and_co2_today(
    live: LiveCache, storage: Storage, energy: EnergyPipeline, circuit: str, start: float, now: float
) -> tuple[float | None, float | None]:
    """Cost [currency] and CO2 [kg] of circuit ``circuit`` since ``start``: the closed intervals the
    energy pipeline stored (cost/co2, at the rate in force then), plus the import since the last of them
    (register growth, so from the first minute of the day) at the price and CO2 factor in force now."""
    cost = _intervals(storage, circuit, Q.COST, start, now)
    co2 = _intervals(storage, circuit, Q.CO2, start, now)
    since = max(start, cost[1] if cost else start)
    running = _register_delta(live, storage, circuit, Q.ENERGY_ACTIVE_IMPORT, since, now)
    if running is None:
        return (cost[0] if cost else None), (co2[0] if co2 else None)
    rate = energy.rate_at(now)
    price = float(energy.schedule.prices(np.array([now]), np.array([rate]))[0][0])
    factor = float(energy.co2.at(np.array([now]))[0])
    kwh = running / 1000.0
    return (cost[0] if cost else 0.0) + kwh * price, (co2[0] if co2 else 0.0) + kwh * factor


def _sum(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return sum(got) if got else None


@router.get("/site/today", response_model=TodayOut, summary="Energy, cost and CO2 since local midnight")
def today(cfg: Config, rt: Runtime, live: Live, storage: Store, energy: Energy, _: LIVE) -> TodayOut:
    config = cfg.config
    tz = ZoneInfo(config.site.timezone)
    now = rt.clock()
    local = datetime.fromtimestamp(now, tz)
    midnight = datetime(local.year, local.month, local.day, tzinfo=tz)
    start = midnight.timestamp()
    by_purpose = {p: [c.id for c in config.circuits if c.purpose is p] for p in Purpose}
    consumers = by_purpose[Purpose.CONSUMABLE] or by_purpose[Purpose.GRID]
    renewables = by_purpose[Purpose.RENEWABLE]
    consumed = _sum(
        [_register_delta(live, storage, c, Q.ENERGY_ACTIVE_IMPORT, start, now) for c in consumers]
    )
    generated = _sum(
        [_register_delta(live, storage, c, Q.ENERGY_ACTIVE_EXPORT, start, now) for c in renewables]
    )
    if energy is not None:
        both = [_cost_and_co2_today(live, storage, energy, c, start, now) for c in consumers]
        cost = _sum([b[0] for b in both])
        co2 = _sum([b[1] for b in both])
    else:
        cost = _sum([_interval_sum(storage, c, Q.COST, start, now) for c in consumers])
        co2 = _sum([_interval_sum(storage, c, Q.CO2, start, now) for c in consumers])
    if co2 is None and consumed is not None:  # no CO2 intervals from the energy pipeline yet
        co2 = consumed / 1000.0 * config.site.co2_factor
    return TodayOut(
        start=iso_utc(start),
        energy_consumed=consumed,
        energy_generated=generated,
        cost=cost,
        currency=config.site.currency,
        co2=co2,
    )


# -- display mode -------------------------------------------------------------------------------------
DISPLAY_FILE = "display.json"


class DisplayMessage(BaseModel):
    """A message the lobby display shows full screen: ``after`` seconds of the normal views (the
    wait), then the message for ``duration`` seconds; the messages take turns (seed 001)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="", max_length=120, description="large heading; may be empty")
    text: str = Field(default="", max_length=500, description="the message")
    after: float = Field(default=60, ge=0, le=86400, description="wait before it is shown [s]")
    duration: float = Field(default=10, gt=0, le=3600, description="shown for this long [s]")

    @model_validator(mode="after")
    def _not_empty(self) -> DisplayMessage:
        if not self.title.strip() and not self.text.strip():
            raise ValueError("a message needs a title or a text")
        return self


class RenewableDisplay(BaseModel):
    """The renewable display (seed 001): what kind of source, its colour, and its maximum production
    (the full scale of the production gauge; null = the rated sum is unknown, the gauge rescales)."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["solar", "wind", "hydro", "biomass", "chp", "other"] = "solar"
    colour: str = Field(default="#16a34a", pattern=r"^#[0-9a-fA-F]{6}$", description="CSS colour #rrggbb")
    max_production: float | None = Field(default=None, gt=0, le=1e9, description="[W]")


class DisplaySettings(BaseModel):
    """The full-screen lobby display (seed 001 real-time display, seed 000 D10 display). Kept in
    ``DATA/display.json`` (GET/PUT /api/v1/display, the configuration page's Display tab)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["realtime", "renewable", "rotate"] = Field(
        default="realtime", description="real-time site values, the renewable display, or both in turn"
    )
    rotate_every: float = Field(default=30, ge=5, le=3600, description="rotate: seconds per view [s]")
    message: str = Field(
        default="",
        max_length=500,
        description="a message without title (shown before `messages`); empty = none",
    )
    message_after: float = Field(default=60, ge=0, le=86400, description="show the message after [s]")
    message_for: float = Field(default=10, gt=0, le=3600, description="… for this long, then repeat [s]")
    circuits: list[str] = Field(default_factory=list, description="circuits listed (empty = all)")
    page_every: float = Field(
        default=10,
        ge=2,
        le=3600,
        description="circuits: seconds per page when they do not fit one screen [s]",
    )
    messages: list[DisplayMessage] = Field(
        default_factory=list, max_length=20, description="messages with title, wait and duration, in turn"
    )
    renewable: RenewableDisplay = Field(default_factory=RenewableDisplay)
    show_cost: bool = Field(default=True, description="cards with today's cost and CO2")


class DisplayIn(DisplaySettings):
    """The whole new display settings. ``mode`` must be given: an empty body (``{}``) is refused rather
    than read as "reset everything to the defaults"; fields left out take their defaults."""

    mode: Literal["realtime", "renewable", "rotate"] = Field(
        description="real-time site values, the renewable display, or both in turn (required)"
    )


def load_display(data_dir: Path) -> DisplaySettings:
    path = data_dir / DISPLAY_FILE
    if not path.exists():
        return DisplaySettings()
    try:
        return DisplaySettings.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError:  # a hand-edited file that no longer validates: defaults, and say so
        log.warning("%s is not valid; the display uses defaults", path)
        return DisplaySettings()


@router.get("/display", response_model=DisplaySettings, summary="Display-mode settings")
def get_display(rt: Runtime, _: LIVE) -> DisplaySettings:
    return load_display(rt.data_dir)


@router.put(
    "/display",
    response_model=DisplaySettings,
    summary="Replace the display settings (admin; `mode` is required)",
    responses={422: {"description": "invalid settings, unknown circuits, or `mode` missing"}},
)
def put_display(body: DisplayIn, cfg: Config, rt: Runtime, _: ADMIN) -> DisplaySettings:
    unknown = [c for c in body.circuits if not any(x.id == c for x in cfg.config.circuits)]
    if unknown:
        raise HTTPException(
            422,
            [
                {
                    "loc": ["body", "circuits"],
                    "msg": f"unknown circuit(s) {', '.join(unknown)}",
                    "type": "value_error",
                }
            ],
        )
    tmp = rt.data_dir / (DISPLAY_FILE + ".tmp")
    settings = DisplaySettings.model_validate(body.model_dump())
    tmp.write_text(settings.model_dump_json(indent=1), encoding="utf-8")
    tmp.replace(rt.data_dir / DISPLAY_FILE)
    return settings
