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
``GET /api/v1/fleet/alarms?site=&kind=``      fleet alarms: the active ones and the recent log
``POST /api/v1/fleet/alarms/{id}/ack``        acknowledge one (admin; ``{"comment"}``)
``POST /api/v1/auth/login``                   sign in (``{"username", "password"}``): session cookies
``POST /api/v1/auth/logout``                  sign out
``GET /api/v1/auth/me``                       who is signed in
``GET /``                                     the fleet page (list and compare; a sign-in form first)
===========================================  =============================================================

Sign-in is the gateway's (:mod:`meterhub.web.auth`): users, roles, sessions and API tokens live in
central's data folder (``DATA/users.json``, ``DATA/sessions.sqlite``) and are managed with
``meterhub user add NAME --role reader --data DATA`` (and ``meterhub user token``). Every ``/api/v1`` read
needs a signed-in user or ``Authorization: Bearer mh_…`` token of either role (401 otherwise); the API
changes nothing but the acknowledgement of a fleet alarm (admin), and provisioning a site (``meterhub central provision``) needs the machine's broker files,
so it stays an administrator's command.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

import meterhub
from meterhub.central.alarms import FleetAlarmLog, ensure_schema
from meterhub.central.store import CentralStoreError
from meterhub.central.views import FleetViews
from meterhub.errors import InputError
from meterhub.web import errors
from meterhub.web.app import STATIC_DIR
from meterhub.web.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    AuthState,
    Principal,
    principal_of,
    require_admin,
    require_reader,
)

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
  <script src="/static/js/pages/fleet_alarms.js" type="module"></script>
</head>
<body>
  <header class="topbar"><a class="brand" href="/"><img src="/static/favicon.svg" alt=""><span>meterhub central</span></a></header>
  <section id="fleet-alarm-list" class="view" aria-live="polite"></section>
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


class LoginIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class AckIn(BaseModel):
    comment: str | None = Field(default=None, max_length=2000)


def _me(p: Principal | None, auth: AuthState, csrf: str | None = None) -> dict[str, Any]:
    return {
        "authenticated": p is not None,
        "username": p.username if p else None,
        "role": p.role.value if p and p.role else None,
        "via": p.via if p else None,
        "users": len(auth.store),
        "csrf": csrf,
    }


def create_central_app(views: FleetViews, stats: Callable[[], dict[str, Any]], auth: AuthState) -> FastAPI:
    """The central web app over ``views``; ``stats()`` gives this worker's counters; ``auth``: the users,
    sessions and tokens of central's data folder (every API read needs one of them)."""
    app = FastAPI(
        title="meterhub central API",
        version=meterhub.__version__,
        description="The fleet of meterhub gateways as central stores it: sites, status, history, comparisons.",
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    app.state.auth = auth
    reader = [Depends(require_reader)]
    lock = threading.Lock()  # one database connection for the API: one query at a time

    @app.middleware("http")
    async def headers(request: Any, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for k, v in _HEADERS.items():
            response.headers.setdefault(k, v)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/api/v1/sites", dependencies=reader)
    def sites(search: str | None = Query(default=None, max_length=100)) -> dict[str, Any]:
        with lock:
            return {"sites": views.sites(search), "generated": time.time()}

    @app.get("/api/v1/sites/{site_id}", dependencies=reader)
    def site(site_id: str) -> dict[str, Any]:
        with lock:
            return views.site(site_id)

    @app.get("/api/v1/sites/{site_id}/history", dependencies=reader)
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

    @app.get("/api/v1/fleet/totals", dependencies=reader)
    def totals() -> dict[str, Any]:
        with lock:
            return views.totals()

    @app.get("/api/v1/fleet/compare", dependencies=reader)
    def compare(start: str | None = None, end: str | None = None) -> dict[str, Any]:
        s, e = parse_time(start, "start"), parse_time(end, "end")
        with lock:
            return views.compare(s, e)

    alarm_log = FleetAlarmLog(views.store.query, views.clock)
    schema_ready: list[bool] = []

    def alarms_ready() -> FleetAlarmLog:
        if not schema_ready:  # the evaluator creates the tables too; the API may be asked first
            try:
                ensure_schema(views.store.db)
            except Exception as exc:
                views.store.close()
                raise CentralStoreError(f"fleet alarms: cannot create their tables: {exc}") from exc
            schema_ready.append(True)
        return alarm_log

    @app.get("/api/v1/fleet/alarms", dependencies=reader)
    def fleet_alarms(
        site: str | None = Query(default=None, max_length=128),
        kind: str | None = Query(default=None, max_length=40),
        limit: int = Query(default=200, ge=1, le=5000),
    ) -> dict[str, Any]:
        with lock:
            return alarms_ready().listing(site=site, kind=kind, limit=limit)

    @app.post("/api/v1/fleet/alarms/{alarm_id}/ack")
    def fleet_alarm_ack(
        alarm_id: int, body: AckIn, who: Principal = Depends(require_admin)
    ) -> dict[str, Any]:
        with lock:
            return alarms_ready().acknowledge(alarm_id, who.username or f"({who.via})", body.comment)

    @app.get("/api/v1/central", dependencies=reader)
    def central() -> dict[str, Any]:
        return {"worker": stats(), "layout": views.store.layout}

    @app.get("/api/v1/auth/me")
    def me(request: Request) -> dict[str, Any]:
        p = principal_of(request, check_csrf=False)
        csrf = None
        if p is not None and p.via == "session":
            session = auth.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
            csrf = session.csrf if session else None
        return _me(p, auth, csrf)

    @app.post("/api/v1/auth/login")
    def login(body: LoginIn, request: Request, response: Response) -> dict[str, Any]:
        address = request.client.host if request.client else "unknown"
        wait = auth.limiter.attempt(address, body.username)
        if wait > 0:
            seconds = max(int(wait + 0.999), 1)
            raise HTTPException(
                429,
                f"too many failed sign-ins for this account from your address; try again in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
        user = auth.store.verify(body.username, body.password)
        if user is None:
            detail = "wrong user name or password"
            if not len(auth.store):
                detail = (
                    f"no user yet: add one with `meterhub user add NAME --role admin --data {auth.data_dir}`"
                )
            raise HTTPException(401, detail)
        auth.limiter.succeeded(address, body.username)
        session = auth.sessions.create(user.username)
        age = int(auth.sessions.lifetime)
        secure = request.url.scheme == "https"
        response.set_cookie(
            SESSION_COOKIE, session.id, max_age=age, path="/", httponly=True, samesite="strict", secure=secure
        )
        response.set_cookie(
            CSRF_COOKIE, session.csrf, max_age=age, path="/", httponly=False, samesite="strict", secure=secure
        )
        return _me(Principal(user.username, user.role, "session"), auth, session.csrf)

    @app.post("/api/v1/auth/logout", status_code=204)
    def logout(request: Request) -> Response:
        sid = request.cookies.get(SESSION_COOKIE)
        if sid:
            auth.sessions.end(sid)
        out = Response(status_code=204)
        out.delete_cookie(SESSION_COOKIE, path="/")
        out.delete_cookie(CSRF_COOKIE, path="/")
        return out

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(FLEET_PAGE, headers={"Cache-Control": "no-cache"})

    return app
