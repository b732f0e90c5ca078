"""Self-hosted API documentation: Swagger UI at ``/docs`` and ReDoc at ``/redoc``.

Gateways have no internet, and the app's Content-Security-Policy allows scripts from the gateway
itself only, so FastAPI's default pages (scripts from a CDN, an inline start-up script) stay blank.
Here both UIs come from the npm packages ``swagger-ui-dist`` and ``redoc`` installed next to ECharts
by ``make web-assets`` (``web/node_modules``), and Swagger UI is started by a script file of ours
(``/docs/init.js``), not inline, so the pages work under the unchanged CSP. Only the few files the
pages need are served, never the rest of ``node_modules``.

"Try it out" in Swagger UI works with the browser's session: unsafe requests get the session's CSRF
token from the ``mh_csrf`` cookie, like the web UI's own requests.
"""

from __future__ import annotations

import functools
import html
from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

__all__ = ["ASSETS", "NODE_MODULES", "asset_path", "router"]

NODE_MODULES: Final = Path(__file__).resolve().parent / "node_modules"

#: What the doc pages load: URL name → (npm package, file in it, media type).
ASSETS: Final = {
    "swagger-ui.css": ("swagger-ui-dist", "swagger-ui.css", "text/css"),
    "swagger-ui-bundle.js": ("swagger-ui-dist", "swagger-ui-bundle.js", "text/javascript"),
    "redoc.standalone.js": ("redoc", "bundles/redoc.standalone.js", "text/javascript"),
}

#: Starts Swagger UI on the page's ``#swagger-ui`` element with the spec named by its ``data-spec``.
_INIT_JS: Final = """\
"use strict";
// Swagger UI for meterhub's own OpenAPI document (served by the gateway, no internet needed).
(function () {
  function csrf() {
    var m = document.cookie.match(/(?:^|;\\s*)mh_csrf=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : null;
  }
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.spec,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // the public validator is on the internet; gateways have none
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    requestInterceptor: function (req) {
      // signed-in browsers change things with the session's CSRF token, as the web UI does
      var method = (req.method || "GET").toUpperCase();
      var token = csrf();
      if (token && ["GET", "HEAD", "OPTIONS"].indexOf(method) < 0) req.headers["X-CSRF-Token"] = token;
      return req;
    },
  });
})();
"""

#: Byte substitutions in served assets. ReDoc's sidebar shows Redocly's logo from their CDN (no option
#: turns it off); gateways have no internet and the CSP refuses it (a console error), so the image is
#: made an empty ``data:`` URL, which ReDoc's own error handler then hides.
_REWRITES: Final = {
    "redoc.standalone.js": ((b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"data:,"),),
}

router = APIRouter(include_in_schema=False)


def asset_path(name: str) -> Path | None:
    """The installed file behind the asset ``name``, or None when it is unknown or not installed."""
    entry = ASSETS.get(name)
    if entry is None:
        return None
    path = NODE_MODULES / entry[0] / entry[1]
    return path if path.is_file() else None


def _missing(what: str, package: str, spec: str) -> str:
    return (
        f"<p class='missing'>{html.escape(what)} is not installed on this gateway: run "
        f"<code>make web-assets</code> (npm package <code>{html.escape(package)}</code>). "
        f"The OpenAPI document itself is at <a href='{html.escape(spec)}'>{html.escape(spec)}</a>.</p>"
    )


def _page(root: str, title: str, head: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><link rel='icon' href='{root}/favicon.ico'>{head}</head>"
        f"<body>{body}</body></html>",
        headers={"Cache-Control": "no-cache"},
    )


def _urls(request: Request) -> tuple[str, str]:
    """The app's root path (behind a proxy that mounts it under a prefix) and its OpenAPI URL."""
    root = request.scope.get("root_path", "").rstrip("/")
    return root, root + (request.app.openapi_url or "/openapi.json")


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root, spec = _urls(request)
    title = f"{request.app.title} — Swagger UI"
    if asset_path("swagger-ui-bundle.js") is None or asset_path("swagger-ui.css") is None:
        return _page(root, title, "", _missing("Swagger UI", "swagger-ui-dist", spec))
    head = f"<link rel='stylesheet' href='{root}/docs/assets/swagger-ui.css'>"
    body = (
        f"<div id='swagger-ui' data-spec='{html.escape(spec)}'></div>"
        f"<script src='{root}/docs/assets/swagger-ui-bundle.js'></script>"
        f"<script src='{root}/docs/init.js'></script>"
    )
    return _page(root, title, head, body)


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root, spec = _urls(request)
    title = f"{request.app.title} — ReDoc"
    if asset_path("redoc.standalone.js") is None:
        return _page(root, title, "", _missing("ReDoc", "redoc", spec))
    body = (
        f"<redoc spec-url='{html.escape(spec)}' disable-search></redoc>"
        f"<script src='{root}/docs/assets/redoc.standalone.js'></script>"
    )
    return _page(root, title, "", body)


@router.get("/docs/init.js")
def swagger_init() -> Response:
    return Response(_INIT_JS, media_type="text/javascript", headers={"Cache-Control": "no-cache"})


@functools.lru_cache(maxsize=4)
def _rewritten(path: Path, mtime: float, name: str) -> bytes:
    """``path`` with the substitutions of ``name`` made (cached per file version)."""
    data = path.read_bytes()
    for old, new in _REWRITES[name]:
        data = data.replace(old, new)
    return data


@router.get("/docs/assets/{name}")
def asset(name: str) -> Response:
    path = asset_path(name)
    if path is None:
        raise HTTPException(404, f"no documentation asset {name!r} (installed by `make web-assets`)")
    media, cache = ASSETS[name][2], {"Cache-Control": "max-age=86400"}
    if name in _REWRITES:
        return Response(_rewritten(path, path.stat().st_mtime, name), media_type=media, headers=cache)
    return FileResponse(path, media_type=media, headers=cache)
