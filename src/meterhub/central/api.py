"""Central's web API and fleet page, on the gateway's web stack (FastAPI, the same error answers and
static UI files): ``create_central_app(views, stats)``.

===========================================  =============================================================
``GET /api/v1/sites?search=``                 ``{"sites": [{id, name, status, last_seen, backlog,
                                              energy_today_kwh, power_w, …}]}``
``GET /api/v1/sites/{id}``                    one site, its circuits and the latest value of each series
``GET /api/v1/sites/{id}/history``            one series' points (``circuit``, ``quantity``, ``phase``,
                                              ``start``, ``end``: ISO 8601 or Unix seconds)
``GET /api/v1/fleet/totals``                  portfolio totals
``GET /api/v1/fleet/compare?start=&end=``     kWh, kWh/m², peak demand per site (default: today)
``GET /api/v1/central``                       this worker's counters (received, stored, lag p50/p99 …)
``GET /``                                     the fleet page (list and compare)
===========================================  =============================================================

The API is read-only. It has no sign-in yet: it listens on 127.0.0.1 unless ``host`` says otherwise
(docs/fleet.md); put it behind a reverse proxy with authentication to expose it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

import meterhub
from meterhub.central.views import FleetViews
from meterhub.errors import InputError
from meterhub.web import errors
from meterhub.web.app import STATIC_DIR

__all__ = ["FLEET_PAGE", "create_central_app", "parse_time"]

FLEET_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>meterhub central — fleet</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/css/app.css">
  <script src="/static/js/pages/fleet.js" type="module"></script>
</head>
<body>
  <header class="topbar"><a class="brand" href="/"><img src="/static/favicon.svg" alt=""><span>meterhub central</span></a></header>
  <main id="view" class="view" aria-live="polite"></main>
</body>
</html>
"""

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'self'; base-uri 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def parse_time(value: str | None, name: str) -> int | None:
    """``value`` as Unix seconds: an integer, or ISO 8601 with an offset (``Z`` for UTC)."""
    if value is None or value == "":
        return None
    if value.isdigit():
        return int(value)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{name} {value[:40]!r}: use ISO 8601 (2026-12-06T10:00:00Z) or Unix seconds"
        ) from None
    if dt.tzinfo is None:
        raise InputError(f"{name} {value[:40]!r}: give a UTC offset (Z or +01:00)")
    return int(dt.timestamp())


def create_central_app(views: FleetViews, stats: Callable[[], dict[str, Any]]) -> FastAPI:
    """The central web app over ``views``; ``stats()`` gives this worker's counters."""
    app = FastAPI(
        title="meterhub central API",
        version=meterhub.__version__,
        description="The fleet of meterhub gateways as central stores it: sites, status, history, comparisons.",
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    lock = threading.Lock()  # one database connection for the API: one query at a time

    @app.middleware("http")
    async def headers(request: Any, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for k, v in _HEADERS.items():
            response.headers.setdefault(k, v)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/api/v1/sites")
    def sites(search: str | None = Query(default=None, max_length=100)) -> dict[str, Any]:
        with lock:
            return {"sites": views.sites(search), "generated": time.time()}

    @app.get("/api/v1/sites/{site_id}")
    def site(site_id: str) -> dict[str, Any]:
        with lock:
            return views.site(site_id)

    @app.get("/api/v1/sites/{site_id}/history")
    def history(
        site_id: str,
        circuit: str,
        quantity: str,
        phase: str = "total",
        start: str | None = None,
        end: str | None = None,
    ) -> dict[str, Any]:
        now = int(time.time())
        e = parse_time(end, "end") or now
        s = parse_time(start, "start") or e - 86400
        with lock:
            return views.history(site_id, circuit, quantity, phase, s, e)

    @app.get("/api/v1/fleet/totals")
    def totals() -> dict[str, Any]:
        with lock:
            return views.totals()

    @app.get("/api/v1/fleet/compare")
    def compare(start: str | None = None, end: str | None = None) -> dict[str, Any]:
        s, e = parse_time(start, "start"), parse_time(end, "end")
        with lock:
            return views.compare(s, e)

    @app.get("/api/v1/central")
    def central() -> dict[str, Any]:
        return {"worker": stats(), "layout": views.store.layout}

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(FLEET_PAGE, headers={"Cache-Control": "no-cache"})

    return app
