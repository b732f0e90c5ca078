"""The web UI in a real browser (Playwright driving Debian chromium) against a real gateway.

The gateway reads a simulated site over Modbus TCP on loopback (pymodbus simulators), so live values
change as they do in the demo. Screenshots of every page go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, BrowserContext, Page, expect

from meterhub.web.auth import UserStore

from .liveserver import LiveServer

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PAGES = [
    "overview",
    "devices",
    "circuit/hvac",
    "circuit/grid",
    "history",
    "reports",
    "config/circuits",
    "config/devices",
    "config/tariffs",
    "config/interface",
    "config/display",
    "users",
    "account",
    "display",
]
ADMIN_PW = "admin password 1"
READER_PW = "reader password 1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("browser")
    with LiveServer(tmp) as srv:
        store = UserStore(srv.data)
        store.add("admin", ADMIN_PW, "admin")
        store.add("rita", READER_PW, "reader")
        yield srv


class Console:
    """Console errors and uncaught exceptions of a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


def new_page(browser: Browser, **kw: object) -> tuple[BrowserContext, Page, Console]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, **kw)  # type: ignore[arg-type]
    page = ctx.new_page()
    return ctx, page, Console(page)


def sign_in(page: Page, url: str, user: str, password: str) -> None:
    page.goto(f"{url}/#/login")
    page.fill("#login-user", user)
    page.fill("#login-pass", password)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#who")).to_contain_text(user)
    expect(page.locator("#view")).to_have_attribute("data-page", "overview")


def csrf(ctx: BrowserContext) -> dict[str, str]:
    token = next(c["value"] for c in ctx.cookies() if c["name"] == "mh_csrf")
    return {"X-CSRF-Token": token}


def test_every_page_loads_without_console_errors(browser: Browser, server: LiveServer) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "admin", ADMIN_PW)
    for name in PAGES:
        page.goto(f"{server.url}/#/{name}")
        page.wait_for_selector(f'#view[data-page="{name.split("/")[0]}"] h1')
        page.wait_for_timeout(600)  # charts draw, live values arrive
        page.screenshot(path=str(SHOTS / f"{name.replace('/', '-')}.png"), full_page=True)
        assert console.errors == [], f"{name}: {console.errors}"
        if name == "reports":  # the energy capability's report, with its CSV download
            expect(page.locator("#report-table tbody tr").first).to_be_visible()
            csv = page.request.get(server.url + (page.locator("#r-csv").get_attribute("href") or ""))
            assert csv.ok and csv.headers["content-type"].startswith("text/csv")
        if name == "overview":  # ECharts from npm draws the gauge and the live chart
            expect(page.locator("#ov-chart canvas")).to_have_count(1)  # drawn once history backfilled it
            expect(page.locator("#ov-gauge canvas")).to_have_count(1)
    ctx.close()


def test_usable_on_a_phone_and_in_german(browser: Browser, server: LiveServer) -> None:
    ctx, page, console = new_page(browser)
    ctx.close()
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = ctx.new_page()
    console = Console(page)
    sign_in(page, server.url, "rita", READER_PW)
    page.select_option("#lang-pick", "de")
    expect(page.locator("#view h1")).to_have_text("Anlagenübersicht")
    page.reload()  # the choice is kept in this browser
    expect(page.locator("#view h1")).to_have_text("Anlagenübersicht")
    # the page itself never scrolls sideways; wide tables scroll inside their own box
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.click("#menu-toggle")
    expect(page.locator("#nav a", has_text="Geräte")).to_be_visible()
    page.screenshot(path=str(SHOTS / "phone-overview-de.png"), full_page=True)
    assert console.errors == []
    ctx.close()


def test_live_values_change_on_screen(browser: Browser, server: LiveServer) -> None:
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "rita", READER_PW)
    page.goto(f"{server.url}/#/overview")
    cell = page.locator('td[data-live="hvac/current/total"]')
    expect(cell).not_to_have_text("–", timeout=15000)
    first = cell.inner_text()
    expect(cell).not_to_have_text(first, timeout=15000)  # a new poll of the simulated module
    assert re.fullmatch(r"[\d.,]+ A", cell.inner_text())
    assert console.errors == []
    ctx.close()


def test_admin_changes_a_ct_ratio_and_sees_it_applied(browser: Browser, server: LiveServer) -> None:
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "admin", ADMIN_PW)
    page.goto(f"{server.url}/#/config/circuits/grid")
    page.select_option("#c-preset", "cta-800")  # CT picker: conventional 800/5 A CT via the 5 A adapter
    expect(page.locator("#c-ct-kind")).to_have_value("adapter-5a")
    expect(page.locator("#c-ct-ratio")).to_have_value("800/5")
    page.click("#c-save")
    expect(page.locator("#c-msg")).to_have_text("Saved and applied.")
    expect(page.locator('[data-ct="grid"]')).to_have_text("800/5")
    # the SDM630 applies the CT ratio set in the meter: a different one is refused with the reason
    page.fill("#c-ct-ratio", "1000/5")
    page.click("#c-save")
    expect(page.locator("#c-msg")).to_contain_text("eastron-sdm630 reports primary values")
    expect(page.locator('[data-ct="grid"]')).to_have_text("800/5")
    api = page.request.get(f"{server.url}/api/v1/circuits/grid").json()
    assert api["ct_ratio"] == "800/5" and api["ct_kind"] == "adapter-5a"
    assert server.gateway.config.circuit("grid").ct.ratio.value == 160.0
    bad = page.request.patch(
        f"{server.url}/api/v1/circuits/grid", data={"ct": {"ratio": "x"}}, headers=csrf(ctx)
    )
    assert bad.status == 422
    page.fill("#c-ct-ratio", "lots")
    page.click("#c-save")
    expect(page.locator("#c-msg")).to_contain_text("ratio")  # the UI names the bad field
    # the refused saves are the only errors
    assert [e for e in console.errors if "422" not in e and "409" not in e] == []
    ctx.close()


def test_admin_changes_a_price_from_a_date_and_the_old_price_is_kept(
    browser: Browser, server: LiveServer
) -> None:
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "admin", ADMIN_PW)
    old = {"rates": [{"id": "flat", "price": 0.25}], "effective_from": "2026-11-01"}
    assert page.request.put(f"{server.url}/api/v1/config/tariffs", data=old, headers=csrf(ctx)).ok
    page.goto(f"{server.url}/#/config/tariffs")
    expect(page.locator("#t-since")).to_have_text("In force since: 2026-11-01")
    page.locator(".r-id").first.fill("flat")
    page.locator(".r-price").first.fill("0.3125")
    page.fill("#t-from", "2026-12-01")
    page.click("#tariff-form button[type=submit]")
    expect(page.locator("#t-msg")).to_have_text("Saved and applied.")
    periods = page.request.get(f"{server.url}/api/v1/config/tariffs/history").json()
    # the tariff before is kept for the energy used until 2026-12-01
    assert [(p["from"], p["until"], p["tariffs"]["rates"][0]["price"]) for p in periods[-2:]] == [
        ("2026-11-01", "2026-12-01", 0.25),
        ("2026-12-01", None, 0.3125),
    ]
    page.reload()
    expect(page.locator("#t-since")).to_have_text("In force since: 2026-12-01")
    assert console.errors == []
    ctx.close()


def test_reader_cannot_reach_configuration_in_the_ui_or_the_api(browser: Browser, server: LiveServer) -> None:
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "rita", READER_PW)
    nav = page.locator("#nav").inner_text()
    assert "Overview" in nav and "Configuration" not in nav and "Users" not in nav
    page.goto(f"{server.url}/#/config/circuits/grid")
    expect(page.locator("#view")).to_have_attribute("data-page", "overview")
    expect(page.locator("#toast")).to_contain_text("admin")
    page.goto(f"{server.url}/#/users")
    expect(page.locator("#view")).to_have_attribute("data-page", "overview")
    assert page.request.get(f"{server.url}/api/v1/config").status == 403
    assert page.request.get(f"{server.url}/api/v1/users").status == 403
    r = page.request.patch(f"{server.url}/api/v1/circuits/grid", data={"zone": "x"}, headers=csrf(ctx))
    assert r.status == 403
    assert console.errors == []
    ctx.close()


def test_anonymous_requests_to_users_and_configuration_are_refused(
    browser: Browser, server: LiveServer
) -> None:
    ctx, page, console = new_page(browser)
    page.goto(server.url)
    expect(page.locator("#login-form")).to_be_visible()  # public live display is off in `run`
    for method, path in [
        ("get", "/api/v1/users"),
        ("get", "/api/v1/config"),
        ("get", "/api/v1/live"),
        ("post", "/api/v1/users"),
        ("patch", "/api/v1/circuits/grid"),
        ("patch", "/api/v1/devices/m1"),
    ]:
        r = getattr(page.request, method)(f"{server.url}{path}", **({} if method == "get" else {"data": {}}))
        assert r.status in (401, 403), (method, path, r.status)
    assert console.errors == []
    ctx.close()


def test_public_lobby_display_with_timed_message(browser: Browser, server: LiveServer) -> None:
    actx, admin, _ = new_page(browser)
    sign_in(admin, server.url, "admin", ADMIN_PW)
    h = csrf(actx)
    assert admin.request.patch(f"{server.url}/api/v1/site", data={"public_live": True}, headers=h).ok
    settings = {
        "mode": "realtime",
        "message": "Welcome to the demo site",
        "message_after": 1,
        "message_for": 2,
    }
    assert admin.request.put(f"{server.url}/api/v1/display", data=settings, headers=h).ok
    try:
        ctx, page, console = new_page(browser)
        page.goto(f"{server.url}/display")
        expect(page.locator("#d-cons")).not_to_have_text("–", timeout=20000)
        overlay = page.locator("#message-overlay")
        expect(overlay).to_be_visible(timeout=15000)
        expect(overlay).to_have_text("Welcome to the demo site")
        page.screenshot(path=str(SHOTS / "display-message.png"))
        expect(overlay).to_be_hidden(timeout=15000)
        page.goto(f"{server.url}/display?mode=renewable")
        expect(page.locator("#d-renewable")).to_be_visible()
        expect(page.locator("#r-gen")).not_to_have_text("–", timeout=20000)
        page.screenshot(path=str(SHOTS / "display-renewable.png"))
        assert page.request.get(f"{server.url}/api/v1/users").status == 401  # never public
        assert page.request.get(f"{server.url}/api/v1/config").status == 401
        assert console.errors == []
        ctx.close()
    finally:
        admin.request.patch(f"{server.url}/api/v1/site", data={"public_live": False}, headers=h)
        admin.request.put(f"{server.url}/api/v1/display", data={"mode": "realtime"}, headers=h)
        actx.close()


def test_first_run_asks_for_the_admin_with_the_setup_token(browser: Browser, tmp_path: Path) -> None:
    with LiveServer(tmp_path, simulate=False) as srv:
        ctx, page, console = new_page(browser)
        page.goto(srv.url)
        expect(page.locator("#setup-form")).to_be_visible()
        page.screenshot(path=str(SHOTS / "setup.png"))
        token = (srv.data / "setup-token").read_text().strip()
        page.fill("#setup-token", "wrong token")
        page.fill("#setup-pass", "first admin pw")
        page.fill("#setup-pass2", "first admin pw")
        page.click("#setup-form button[type=submit]")
        expect(page.locator("#setup-error")).to_contain_text("setup token")
        page.fill("#setup-token", token)
        page.click("#setup-form button[type=submit]")
        expect(page.locator("#who")).to_contain_text("admin")
        expect(page.locator("#nav")).to_contain_text("Configuration")
        assert not (srv.data / "setup-token").exists()
        users = json.loads((srv.data / "users.json").read_text())["users"]
        assert [(u["username"], u["role"]) for u in users] == [("admin", "admin")]
        assert [e for e in console.errors if "403" not in e] == []  # the wrong token was refused
        ctx.close()


def test_admin_adds_a_reader_in_the_users_page(browser: Browser, server: LiveServer) -> None:
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "admin", ADMIN_PW)
    page.goto(f"{server.url}/#/users")
    page.fill("#nu-name", "bob")
    page.fill("#nu-pass", "bobs password")
    page.select_option("#nu-role", "reader")
    page.click("#add-user button[type=submit]")
    expect(page.locator('tr[data-user="bob"]')).to_be_visible()
    users = {u["username"]: u["role"] for u in page.request.get(f"{server.url}/api/v1/users").json()}
    assert users["bob"] == "reader"
    assert UserStore(server.data).verify("bob", "bobs password") is not None
    page.goto(f"{server.url}/#/account")  # an API token for a machine, shown once
    page.fill("#tok-name", "scada")
    page.click("#tok-form button[type=submit]")
    secret = page.locator("#new-token").inner_text()
    assert secret.startswith("mh_")
    r = page.request.get(f"{server.url}/api/v1/users", headers={"Authorization": f"Bearer {secret}"})
    assert r.status == 200  # an admin's token acts as admin
    assert console.errors == []
    ctx.close()


def test_admin_sets_title_and_site_language_in_interface_options(
    browser: Browser, server: LiveServer
) -> None:
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "admin", ADMIN_PW)
    page.goto(f"{server.url}/#/config/interface")
    page.fill("#i-title", "Lobby screen")
    page.select_option("#i-lang", "de")
    page.fill("#i-co2", "0.25")
    page.click("#site-form button[type=submit]")
    expect(page.locator("#site-title")).to_have_text("Lobby screen")
    expect(page.locator("#nav")).to_contain_text("Konfiguration")  # the site default language is now German
    site = page.request.get(f"{server.url}/api/v1/site").json()
    assert (site["title"], site["language"], site["co2_factor"]) == ("Lobby screen", "de", 0.25)
    h = csrf(ctx)
    page.request.patch(f"{server.url}/api/v1/site", data={"title": "", "language": "en"}, headers=h)
    assert console.errors == []
    ctx.close()


def test_account_lists_sessions_and_signs_out_everywhere(browser: Browser, server: LiveServer) -> None:
    UserStore(server.data).add("sam", "sams password 1", "reader")
    ctx1, page1, console = new_page(browser)
    ctx2, page2, _ = new_page(browser)
    sign_in(page1, server.url, "sam", "sams password 1")
    sign_in(page2, server.url, "sam", "sams password 1")
    page1.goto(f"{server.url}/#/account")
    expect(page1.locator("#sessions tbody tr")).to_have_count(2)
    expect(page1.locator("#sessions tr[data-current]")).to_have_count(1)
    expect(page1.locator("#sessions tr[data-current]")).to_contain_text("this browser")
    page1.click("#logout-all")
    expect(page1.locator("#view")).to_have_attribute("data-page", "login")
    # the other browser's session ended too
    assert page2.request.get(f"{server.url}/api/v1/auth/sessions").status == 401
    assert console.errors == []
    ctx1.close()
    ctx2.close()
