"""Energy reports and energy commands over HTTP.

* ``GET /api/v1/reports/energy`` — the report of ``meterhub report`` (JSON, or CSV with
  ``format=csv``); ``GET /api/v1/reports/balance`` — site balance per interval;
  ``GET /api/v1/reports/capacity`` — monthly 15-min peaks and their rolling 12-month mean;
  ``GET /api/v1/reports/profile`` — load profile of a circuit.
* ``GET /api/v1/energy/demand`` — maximum demand per circuit and rate since the last reset;
  ``POST /api/v1/energy/demand/reset`` (admin) — reset them, ``{"circuit": "<id>"}`` or ``{"all": true}``
  (seed 002: "all maximum demand can be reset"); a body naming neither is refused.
* ``GET /api/v1/energy/billing`` — billing count, next automatic billing, history;
  ``POST /api/v1/energy/billing`` (admin) — close a billing period now (seed 002 "communication").
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from meterhub.energy.balance import site_balance_report
from meterhub.energy.billing import BillingReason
from meterhub.energy.capacity import capacity_report
from meterhub.energy.config import energy_of
from meterhub.energy.profiles import load_profile
from meterhub.energy.reports import ReportError, energy_report, to_csv
from meterhub.energy.timeutil import Interval, parse_date
from meterhub.energy.timeutil import zone as time_zone
from meterhub.errors import NotFoundError
from meterhub.model.readings import iso_utc
from meterhub.web.auth import Principal, require_admin, require_reader
from meterhub.web.deps import Config, Pipeline, Runtime, Store

router = APIRouter(prefix="/api/v1", tags=["reports"])

READER = Annotated[Principal, Depends(require_reader)]
ADMIN = Annotated[Principal, Depends(require_admin)]


def _bases(site_file: Path | None, data_dir: Path) -> list[Path]:
    """Folders a relative CO2 series file is looked up in: the site file's, then the data folder."""
    return [*([site_file.parent] if site_file is not None else []), data_dir]


def _dates(start: str, end: str) -> tuple[date, date]:
    try:
        a = parse_date(start)
    except ValueError as exc:
        raise _bad("from", str(exc)) from None
    try:
        b = parse_date(end)
    except ValueError as exc:
        raise _bad("to", str(exc)) from None
    if b <= a:
        raise _bad("to", f"'to' ({b}) must be after 'from' ({a}); 'to' is exclusive")
    return a, b


def _bad(name: str, message: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["query", name], "msg": message, "type": "value_error"}])


def _interval(text: str) -> Interval:
    offered = (Interval.MIN15, Interval.HOUR, Interval.DAY, Interval.MONTH)
    for kind in offered:
        if kind.value == text:
            return kind
    raise _bad("interval", f"{text!r} is not one of {', '.join(k.value for k in offered)}")


def _timezone(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        time_zone(text)
    except Exception:
        raise _bad(
            "timezone", f"unknown time zone {text!r}; use an IANA name such as Europe/Berlin"
        ) from None
    return text


@router.get("/reports/energy", summary="Energy, per-tariff energy, cost, CO2 and maximum demand per interval")
def report_energy(
    cfg: Config,
    rt: Runtime,
    storage: Store,
    _: READER,
    start: Annotated[str, Query(alias="from", description="first local day YYYY-MM-DD")],
    end: Annotated[str, Query(alias="to", description="local day after the last one (exclusive)")],
    circuit: str | None = None,
    zone: str | None = None,
    interval: str = "day",
    timezone: str | None = None,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Any:
    a, b = _dates(start, end)
    kind = _interval(interval)
    if (circuit is None) == (zone is None):
        raise _bad("circuit", "give exactly one of 'circuit' or 'zone'")
    # a ReportError answers 404 (unknown circuit or zone) or 422 through web/errors.py
    rep = energy_report(
        storage,
        cfg.config,
        start=a,
        end=b,
        interval=kind,
        circuit=circuit,
        zone=zone,
        timezone=_timezone(timezone),
        base_dirs=_bases(cfg.path, rt.data_dir),
    )
    if format == "csv":
        name = f"{circuit or zone}_{a}_{b}_{kind.value}.csv"
        return Response(
            to_csv(rep),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return rep


@router.get(
    "/reports/balance", summary="Site balance: import, export, generation, consumption, self-consumption"
)
def report_balance(
    cfg: Config,
    storage: Store,
    _: READER,
    start: Annotated[str, Query(alias="from")],
    end: Annotated[str, Query(alias="to")],
    interval: str = "day",
    timezone: str | None = None,
) -> dict[str, Any]:
    a, b = _dates(start, end)
    return site_balance_report(
        storage, cfg.config, start=a, end=b, interval=_interval(interval), timezone=_timezone(timezone)
    )


@router.get(
    "/reports/capacity", summary="Capacity tariff: monthly 15-min peaks and the rolling 12-month mean"
)
def report_capacity(
    cfg: Config,
    storage: Store,
    _: READER,
    start: Annotated[str, Query(alias="from")],
    end: Annotated[str, Query(alias="to")],
    circuit: str,
) -> dict[str, Any]:
    a, b = _dates(start, end)
    try:
        return capacity_report(storage, cfg.config, circuit=circuit, start=a, end=b)
    except ReportError as exc:
        raise NotFoundError(str(exc)) from None


@router.get("/reports/profile", summary="Load profile: captured quantities per interval (seed 002)")
def report_profile(
    cfg: Config,
    storage: Store,
    _: READER,
    start: Annotated[str, Query(alias="from")],
    end: Annotated[str, Query(alias="to")],
    circuit: str,
    interval: Annotated[int | None, Query(description="capture interval [min]")] = None,
    quantities: Annotated[str | None, Query(description="comma-separated catalogue ids")] = None,
) -> dict[str, Any]:
    config = cfg.config
    a, b = _dates(start, end)
    if interval is not None and interval not in (1, 5, 10, 15, 30, 60):
        raise _bad("interval", f"{interval} is not one of 1, 5, 10, 15, 30, 60 [min]")
    if circuit not in {c.id for c in config.circuits} | {v.id for v in energy_of(config).virtual}:
        raise NotFoundError(f"unknown circuit {circuit!r}")
    names = [q.strip() for q in quantities.split(",") if q.strip()] if quantities else None
    try:
        return load_profile(
            storage, config, circuit=circuit, start=a, end=b, interval=interval, quantities=names
        )
    except ValueError as exc:
        raise _bad("quantities", str(exc)) from None


class ResetIn(BaseModel):
    """Which maximum demands to reset: one circuit, or every circuit when asked for in so many words.

    Unknown keys are refused (a misspelt ``circuit`` must not widen the reset to every circuit), and so
    is a body that names neither (an empty body must not reset everything)."""

    model_config = ConfigDict(extra="forbid")

    circuit: str | None = Field(default=None, description="reset the maximum demands of this circuit")
    all: bool = Field(default=False, description="true: reset the maximum demands of every circuit")

    @model_validator(mode="after")
    def _one_choice(self) -> ResetIn:
        if (self.circuit is not None) == self.all:
            raise ValueError('give either "circuit": "<id>" or "all": true')
        return self


@router.get("/energy/demand", summary="Maximum demand per circuit and tariff rate since the last reset")
def demand(energy: Pipeline, _: READER) -> dict[str, Any]:
    """``predicted``: the active import demand the running window is heading for per circuit [W];
    ``predicted_all``: the same for every register with a predicted demand (P [W], Q [var], S [VA]),
    keyed by the catalogue id of the predicted quantity."""
    return {
        "max_demand": _md_json(energy.max_demand()),
        "predicted": energy.predicted(),
        "predicted_all": energy.predicted_all(),
    }


@router.post(
    "/energy/demand/reset",
    summary='Reset maximum demands (admin): {"circuit": "<id>"} or {"all": true}',
    responses={
        404: {"description": "unknown circuit"},
        422: {"description": "neither or both, or an unknown key"},
    },
)
def demand_reset(body: ResetIn, energy: Pipeline, cfg: Config, _: ADMIN) -> dict[str, Any]:
    if body.circuit is not None and body.circuit not in {c.id for c in cfg.config.circuits}:
        raise NotFoundError(f"unknown circuit {body.circuit!r}")
    return {"before": _md_json(energy.reset_max_demand(body.circuit))}


@router.get("/energy/billing", summary="Billing count, next automatic billing and past periods")
def billing(energy: Pipeline, _: READER) -> dict[str, Any]:
    status: dict[str, Any] = energy.billing_status()
    return status


@router.post("/energy/billing", summary="Close a billing period now (admin)")
def billing_close(energy: Pipeline, _: ADMIN) -> dict[str, Any]:
    snap = energy.bill(BillingReason.API)
    out: dict[str, Any] = snap.as_json()
    return out


def _md_json(md: dict[str, dict[str, list[float | None]]]) -> dict[str, Any]:
    return {
        key: {
            rate: {"value": v, "time": iso_utc(t, "seconds") if t is not None else None}
            for rate, (v, t) in rates.items()
        }
        for key, rates in md.items()
    }
