"""Energy analysis over HTTP (issue 16): flow, comparison, rankings, heat map — all from the rollups.

* ``GET /api/v1/analysis/flow?from=&to=`` — Sankey nodes and links: grid and PV → site → zones →
  circuits, unmetered and export, in kWh, cost and CO2;
* ``GET /api/v1/analysis/compare?period=day|week|month|year&at=`` — the period containing ``at`` against
  the previous one and the same one last year;
* ``GET /api/v1/analysis/ranking?from=&to=&by=energy|cost|co2|peak`` — circuits and zones ranked;
* ``GET /api/v1/analysis/heatmap?circuit=&from=&to=`` — hour × day kWh in the site's time zone.

Each answers CSV with ``format=csv``. Days are local days of the site (``site.timezone``), ``to`` is
exclusive. The computations are in :mod:`meterhub.energy.analysis`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from meterhub.energy.analysis import (
    PERIODS,
    RANK_BY,
    compare,
    compare_csv,
    flow,
    flow_csv,
    heatmap,
    heatmap_csv,
    ranking,
    ranking_csv,
)
from meterhub.energy.timeutil import local_date, parse_date
from meterhub.web.auth import Principal, require_reader
from meterhub.web.deps import Config, Runtime, Store

router = APIRouter(prefix="/api/v1/analysis", tags=["analysis"])

READER = Annotated[Principal, Depends(require_reader)]
FORMAT = Annotated[str, Query(pattern="^(json|csv)$", description="json, or csv for a download")]
FROM = Annotated[str, Query(alias="from", description="first local day YYYY-MM-DD")]
TO = Annotated[str, Query(alias="to", description="local day after the last one (exclusive)")]

#: The longest span an analysis covers [days] (a year and a bit: a leap year plus a week).
MAX_DAYS = 400


def _bad(name: str, message: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["query", name], "msg": message, "type": "value_error"}])


def _day(name: str, text: str) -> date:
    try:
        day = parse_date(text)
    except ValueError as exc:
        raise _bad(name, str(exc)) from None
    if not 1971 <= day.year <= 2199:
        raise _bad(name, f"{day} is outside the years 1971 … 2199 an analysis covers")
    return day


def _span(start: str, end: str) -> tuple[date, date]:
    a, b = _day("from", start), _day("to", end)
    if b <= a:
        raise _bad("to", f"'to' ({b}) must be after 'from' ({a}); 'to' is exclusive")
    if (b - a).days > MAX_DAYS:
        raise _bad("to", f"{a} … {b} is {(b - a).days} days; an analysis spans at most {MAX_DAYS}")
    return a, b


def _answer(rep: dict[str, Any], fmt: str, to_csv: Callable[[dict[str, Any]], str], name: str) -> Any:
    if fmt == "csv":
        return Response(
            to_csv(rep),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return rep


@router.get("/flow", summary="Energy flow (Sankey): grid and PV → site → zones → circuits, unmetered")
def analysis_flow(
    cfg: Config, rt: Runtime, storage: Store, _: READER, start: FROM, end: TO, format: FORMAT = "json"
) -> Any:
    a, b = _span(start, end)
    rep = flow(storage, cfg.config, start=a, end=b, base_dirs=_bases(cfg, rt))
    return _answer(rep, format, flow_csv, f"flow_{a}_{b}")


@router.get(
    "/compare", summary="This day/week/month/year against the previous one and the same one last year"
)
def analysis_compare(
    cfg: Config,
    rt: Runtime,
    storage: Store,
    _: READER,
    period: Annotated[str, Query(description="day, week, month or year")] = "month",
    at: Annotated[str | None, Query(description="a local day inside the period (default: today)")] = None,
    format: FORMAT = "json",
) -> Any:
    if period not in PERIODS:
        raise _bad("period", f"{period!r} is not one of {', '.join(PERIODS)}")
    day = _day("at", at) if at is not None else local_date(time.time(), cfg.config.site.timezone)
    rep = compare(storage, cfg.config, period=period, at=day, base_dirs=_bases(cfg, rt))
    return _answer(rep, format, compare_csv, f"compare_{period}_{rep['periods']['this']['from']}")


@router.get("/ranking", summary="Circuits and zones ranked by energy, cost, CO2 or peak demand")
def analysis_ranking(
    cfg: Config,
    rt: Runtime,
    storage: Store,
    _: READER,
    start: FROM,
    end: TO,
    by: Annotated[str, Query(description="energy, cost, co2 or peak")] = "energy",
    format: FORMAT = "json",
) -> Any:
    if by not in RANK_BY:
        raise _bad("by", f"{by!r} is not one of {', '.join(RANK_BY)}")
    a, b = _span(start, end)
    rep = ranking(storage, cfg.config, start=a, end=b, by=by, base_dirs=_bases(cfg, rt))
    return _answer(rep, format, ranking_csv, f"ranking_{by}_{a}_{b}")


@router.get("/heatmap", summary="Hour × day energy of a circuit in the site's time zone")
def analysis_heatmap(
    cfg: Config, storage: Store, _: READER, circuit: str, start: FROM, end: TO, format: FORMAT = "json"
) -> Any:
    a, b = _span(start, end)
    rep = heatmap(storage, cfg.config, circuit=circuit, start=a, end=b)
    return _answer(rep, format, heatmap_csv, f"heatmap_{circuit}_{a}_{b}")


def _bases(cfg: Any, rt: Any) -> list[Any]:
    """Folders a relative CO2 series file is looked up in: the site file's, then the data folder."""
    return [*([cfg.path.parent] if cfg.path is not None else []), rt.data_dir]
