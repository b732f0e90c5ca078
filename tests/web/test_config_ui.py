"""Configuration in the UI (issue 16) in a real browser (Playwright driving Debian chromium) against a
real gateway reading a simulated site over Modbus TCP: an admin adds and removes circuits and devices,
and a refused save shows the server's message next to the field its 422 ``loc`` names.

Every change is checked against the REST API and the site file the gateway wrote back; the page must not
scroll sideways at 390 px. Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, BrowserContext, Page, expect

from meterhub.web.auth import UserStore

from .liveserver import LiveServer
from .test_browser import ADMIN_PW, SHOTS, Console, sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("config-ui")
    with LiveServer(tmp) as srv:
        UserStore(srv.data).add("admin", ADMIN_PW, "admin")
        yield srv


def open_page(browser: Browser, viewport: dict[str, int]) -> tuple[BrowserContext, Page, Console]:
    """A signed-in admin's page that accepts every confirm() dialog."""
    ctx = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = ctx.new_page()
    console = Console(page)
    page.on("dialog", lambda d: d.accept())
    return ctx, page, console


def devices(page: Page, server: LiveServer) -> dict[str, dict[str, object]]:
    return {d["id"]: d for d in page.request.get(f"{server.url}/api/v1/devices").json()}


def no_sideways_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.scrollingElement.scrollWidth <= innerWidth"))


def field_error(page: Page, input_id: str) -> str:
    """The error shown right after an input (the 422's message for that field)."""
    return str(page.locator(f"#{input_id} + .field-error").inner_text())


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "390px"])
def test_admin_adds_and_removes_a_circuit(
    browser: Browser, server: LiveServer, viewport: dict[str, int]
) -> None:
    ctx, page, console = open_page(browser, viewport)
    sign_in(page, server.url, "admin", ADMIN_PW)
    cid = "kitchen" if viewport is DESKTOP else "kitchen-phone"
    page.goto(f"{server.url}/#/config/circuits")
    expect(page.locator("#add-circuit")).to_be_visible()
    assert no_sideways_scroll(page)
    # a CT ratio that is no ratio: refused (422) with the message next to the ratio field
    page.fill("#n-id", cid)
    page.fill("#n-name", "Kitchen")
    page.select_option("#n-device", "m2")
    page.fill("#n-channels", "2")
    page.fill("#n-ct-ratio", "lots")
    page.click("#n-add")
    expect(page.locator("#n-ct-ratio + .field-error")).to_be_visible()
    assert "ratio" in field_error(page, "n-ct-ratio").lower() or "lots" in field_error(page, "n-ct-ratio")
    assert page.request.get(f"{server.url}/api/v1/circuits/{cid}").status == 404
    # three-phase wiring on one channel: refused, nothing added
    page.fill("#n-ct-ratio", "")
    page.select_option("#n-wiring", "3P4W")
    page.click("#n-add")
    expect(page.locator("#n-msg")).to_contain_text("3P4W needs 3 channel")
    page.select_option("#n-wiring", "1P2W")
    # the CT picker fills kind and ratio; the Enertrek M10's CTs are built in, so a ratio is refused (409)
    page.select_option("#n-preset", "cto-100")
    expect(page.locator("#n-ct-kind")).to_have_value("current-output")
    expect(page.locator("#n-ct-ratio")).to_have_value("100/0.025")
    page.click("#n-add")
    expect(page.locator("#n-msg")).to_contain_text("enertrek-m10 reports primary values")
    page.select_option("#n-preset", "built-in")
    ratio = page.input_value("#n-ct-ratio")
    page.fill("#n-zone", "building")
    page.click("#n-add")
    expect(page).to_have_url(f"{server.url}/#/config/circuits/{cid}")
    expect(page.locator(f'tr[data-circuit="{cid}"]')).to_contain_text("Kitchen")
    api = page.request.get(f"{server.url}/api/v1/circuits/{cid}").json()
    assert (api["device"], api["wiring"], api["ct_ratio"], api["zone"]) == ("m2", "1P2W", ratio, "building")
    assert f"id: {cid}" in server.config_path.read_text(encoding="utf-8")
    assert no_sideways_scroll(page)
    page.screenshot(path=str(SHOTS / f"config-add-circuit-{viewport['width']}.png"), full_page=True)
    # remove it again from its edit form
    page.click("#c-delete")
    expect(page.locator(f'tr[data-circuit="{cid}"]')).to_have_count(0)
    assert page.request.get(f"{server.url}/api/v1/circuits/{cid}").status == 404
    assert f"id: {cid}" not in server.config_path.read_text(encoding="utf-8")
    assert [e for e in console.errors if "422" not in e and "409" not in e] == []
    ctx.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "390px"])
def test_admin_adds_and_removes_a_device(
    browser: Browser, server: LiveServer, viewport: dict[str, int]
) -> None:
    ctx, page, console = open_page(browser, viewport)
    sign_in(page, server.url, "admin", ADMIN_PW)
    did = "m3" if viewport is DESKTOP else "m4"
    unit = 9 if viewport is DESKTOP else 10
    page.goto(f"{server.url}/#/config/devices")
    expect(page.locator("#add-device")).to_be_visible()
    assert no_sideways_scroll(page)
    page.fill("#a-id", did)
    page.fill("#a-name", "Module 3")
    page.fill("#a-unit", "1")  # the incomer meter's address on the same bus
    page.select_option("#a-profile", "enertrek-m10")
    page.click("#add-device button[type=submit]")
    expect(page.locator("#a-msg")).to_have_class("error")
    # the site check's loc (devices.4.unit) puts the message next to the unit field
    assert field_error(page, "a-unit") == "unit 1 on bus 'panel' is already used by device 'meter'"
    assert did not in devices(page, server)
    page.fill("#a-unit", str(unit))
    page.click("#add-device button[type=submit]")
    expect(page.locator(f'a[href="#/config/devices/{did}"]')).to_be_visible()
    api = devices(page, server)[did]
    assert (api["bus"], api["unit"], api["profile"]) == ("panel", unit, "enertrek-m10")
    assert no_sideways_scroll(page)
    page.click(f'a[href="#/config/devices/{did}"]')
    page.click("#d-delete")
    expect(page.locator(f'a[href="#/config/devices/{did}"]')).to_have_count(0)
    assert did not in devices(page, server)
    assert [e for e in console.errors if "422" not in e and "409" not in e] == []
    ctx.close()
