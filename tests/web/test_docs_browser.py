"""The API docs (Swagger UI at /docs, ReDoc at /redoc) in a real browser, offline, under the app's CSP.

Chromium (Playwright, Debian's /usr/bin/chromium) opens the pages of a real gateway on loopback; any
request that leaves the gateway is recorded and aborted, as it would fail on a site without internet.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, Route, expect

from meterhub.runtime import Gateway
from meterhub.web import docs
from meterhub.web.app import create_app

from .liveserver import LiveServer

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    if docs.asset_path("swagger-ui-bundle.js") is None or docs.asset_path("redoc.standalone.js") is None:
        pytest.skip("swagger-ui-dist / redoc are not installed (make web-assets)")
    with LiveServer(tmp_path_factory.mktemp("docs"), simulate=False) as srv:
        yield srv


class Watch:
    """Console errors, uncaught exceptions and requests to anywhere but the gateway."""

    def __init__(self, page: Page, origin: str) -> None:
        self.errors: list[str] = []
        self.outside: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

        def route(r: Route) -> None:
            if r.request.url.startswith(origin) or r.request.url.startswith(("data:", "blob:")):
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()

        page.route("**/*", route)


def open_page(browser: Browser, srv: LiveServer, path: str) -> tuple[Page, Watch]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    watch = Watch(page, srv.url)
    page.goto(f"{srv.url}{path}")
    return page, watch


def test_swagger_ui_renders_the_operations_offline_under_the_csp(
    browser: Browser, server: LiveServer
) -> None:
    page, watch = open_page(browser, server, "/docs")
    login = page.locator("#operations-users-login_api_v1_auth_login_post")
    expect(login).to_be_visible(timeout=20_000)
    expect(login).to_contain_text("/api/v1/auth/login")
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    assert page.locator(".opblock").count() >= 20  # every operation of the API is listed
    login.locator(".opblock-summary").click()  # expands with its request body model
    expect(login.locator(".opblock-body")).to_contain_text("username")
    # "Try it out" with the browser's session sends its CSRF token on changes, as the web UI does
    page.evaluate("document.cookie = 'mh_csrf=abc123; path=/'")
    sent = page.evaluate("ui.getConfigs().requestInterceptor({method: 'PATCH', headers: {}}).headers")
    assert sent == {"X-CSRF-Token": "abc123"}
    assert page.evaluate("ui.getConfigs().requestInterceptor({method: 'GET', headers: {}}).headers") == {}
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "api-docs-swagger.png"))
    assert watch.outside == []
    assert watch.errors == []  # a CSP violation is a console error
    page.context.close()


def test_redoc_renders_the_operations_offline_under_the_csp(browser: Browser, server: LiveServer) -> None:
    page, watch = open_page(browser, server, "/redoc")
    expect(page.locator("h1").first).to_contain_text("meterhub API", timeout=20_000)
    expect(page.get_by_text("/api/v1/auth/login").first).to_be_attached()
    expect(page.locator("[data-section-id^='operation/']").first).to_be_attached()
    assert page.locator("[data-section-id^='operation/']").count() >= 20
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "api-docs-redoc.png"))
    assert watch.outside == []
    assert watch.errors == []
    page.context.close()


def test_doc_pages_carry_the_apps_csp_and_serve_only_known_assets(server: LiveServer) -> None:
    for path in ("/docs", "/redoc", "/docs/init.js", "/docs/assets/swagger-ui-bundle.js"):
        r = httpx.get(f"{server.url}{path}")
        assert r.status_code == 200, path
        assert r.headers["content-security-policy"].startswith("default-src 'self';"), path
    r = httpx.get(f"{server.url}/docs/assets/package.json")
    assert r.status_code == 404 and "no documentation asset 'package.json'" in r.json()["detail"]
    assert httpx.get(f"{server.url}/docs/assets/..%2F..%2Fapp.py").status_code == 404


def test_without_the_npm_packages_the_doc_pages_say_how_to_install_them(
    gateway: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docs, "NODE_MODULES", tmp_path / "node_modules")  # nothing installed
    with TestClient(create_app(gateway)) as client:
        for path, what in (("/docs", "Swagger UI"), ("/redoc", "ReDoc")):
            r = client.get(path)
            assert r.status_code == 200
            assert f"{what} is not installed on this gateway: run <code>make web-assets</code>" in r.text
            assert "<script" not in r.text and "href='/openapi.json'" in r.text
        assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 404
