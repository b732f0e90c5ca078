"""The FastAPI application: ``create_app(gateway)``.

It serves the public REST API under ``/api/v1`` (the routers listed in :data:`ROUTERS`), the WebSocket
stream, the OpenAPI document at ``/openapi.json``, the single-page UI from ``static/`` and ECharts from the
npm install in ``web/node_modules`` (``make web-assets``) — nothing is fetched from the internet. Errors
of meterhub raised by a route are answered by :mod:`meterhub.web.errors`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

import meterhub
from meterhub.runtime import Gateway
from meterhub.runtime.commissioning import Commissioning
from meterhub.web import (
    auth,
    auth_api,
    config_api,
    deps,
    docs,
    errors,
    ingest,
    live_api,
    metrics,
    site_api,
    stream,
)
from meterhub.web.auth import AuthState
from meterhub.web.limits import BodyLimit, ForwardedClient
from meterhub.web.routers import (
    alarms,
    analysis,
    commissioning,
    events,
    io_config,
    io_points,
    outputs,
    publish,
    registers,
    reports,
)
from meterhub.web.stream import StreamHub

__all__ = ["ROUTERS", "STATIC_DIR", "create_app", "echarts_path"]

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"

#: Security headers for every answer. ECharts sets inline styles on its canvas wrappers.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self' ws: wss:; frame-ancestors 'self'; base-uri 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def echarts_path() -> Path:
    """Where ``npm install`` puts the ECharts bundle."""
    return WEB_DIR / "node_modules" / "echarts" / "dist" / "echarts.min.js"


#: Every API router the app serves, in the order of the OpenAPI document. A new router is added here;
#: a module that fails to import fails the app's start, never silently drops its API.
ROUTERS: tuple[APIRouter, ...] = (
    live_api.router,
    stream.router,
    site_api.router,
    config_api.router,
    auth_api.router,
    io_points.router,
    io_config.router,  # IO points and 1-wire probes configured (issue 16)
    outputs.router,
    reports.router,
    analysis.router,  # GET /api/v1/analysis/{flow,compare,ranking,heatmap} (issue 16)
    registers.router,
    events.router,  # the alarm, power-quality and audit logs (before any /alarms/{id} route)
    alarms.router,  # alarms, acknowledge, shelve; alarm rules
    commissioning.router,
    ingest.router,  # POST /api/v1/ingest: uploads of other gateways
    publish.router,  # GET /api/v1/publish, POST /api/v1/publish/{id}/test
    metrics.router,  # GET /metrics for Prometheus
    docs.router,  # self-hosted Swagger UI and ReDoc under the same CSP (not in the OpenAPI document)
)


def create_app(gateway: Gateway) -> FastAPI:
    """The web application serving ``gateway`` (see the module docstring)."""
    hub = StreamHub()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.start(gateway.bus)
        try:
            yield
        finally:
            await hub.stop()
            await app.state.commissioning.stop()

    app = FastAPI(
        title="meterhub API",
        version=meterhub.__version__,
        description=(
            "Live values, history, devices, circuits, configuration, users and reports of a meterhub "
            "gateway. Sign in with `POST /api/v1/auth/login` (session cookie + `X-CSRF-Token` header "
            "for changes) or send `Authorization: Bearer <API token>`. Live readings are also pushed over "
            "the WebSocket `/api/v1/stream` (a `snapshot` message, then `readings` messages, each reading "
            "shaped as in `GET /api/v1/live`; `?circuit=ID` filters)."
        ),
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc are served from the package by meterhub.web.docs
        redoc_url=None,
    )
    deps.attach(app, gateway)
    app.state.hub = hub
    app.state.commissioning = Commissioning(gateway)  # samples only once asked (GET /commissioning)
    web = gateway.config.web
    app.state.auth = AuthState.for_data_dir(
        gateway.data_dir, session_idle=web.session_idle, session_lifetime=web.session_lifetime
    )
    if not echarts_path().exists():
        log.warning("ECharts is not installed (run `make web-assets`); the UI shows no charts")
    token = auth.ensure_setup_token(gateway.data_dir)
    if token is not None:
        log.warning(
            "no admin account yet; create one in the web UI with the setup token in %s", gateway.data_dir
        )

    errors.install(app)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for k, v in _HEADERS.items():
            response.headers.setdefault(k, v)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    # Outermost: who the client is (proxy headers from web.trusted_proxies only), then body limits
    # refused before anything reads the body.
    app.add_middleware(BodyLimit)
    app.add_middleware(ForwardedClient, trusted=lambda: gateway.config.web.trusted_proxies)

    for router in ROUTERS:
        app.include_router(router)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/vendor/echarts.min.js", include_in_schema=False)
    def echarts() -> Response:
        path = echarts_path()
        if not path.exists():  # the UI works without charts and says so; the console says why
            return PlainTextResponse(
                'console.warn("ECharts is not installed: run `make web-assets` (npm install in src/meterhub/web)");',
                media_type="text/javascript",
            )
        return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/display", include_in_schema=False)
    def display() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    return app
