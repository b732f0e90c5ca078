"""The devices page shows bus supervision (issue 13; Playwright driving Debian chromium): each running
Modbus line with "no new, vanished or doubly used address" while all is well, and a device that is not
configured, once it answers, as a "new device" row with what it seems to be — after the page's 2-s
refresh, without a reload. The screenshot goes to ``test-artifacts/screenshots/devices-bus.png``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, expect

from meterhub.web.auth import UserStore

from .liveserver import LiveServer
from .test_browser import ADMIN_PW, SHOTS, new_page, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("browser-bus")
    with LiveServer(tmp, simulate=True) as srv:
        UserStore(srv.data).add("admin", ADMIN_PW, "admin")
        yield srv


def test_a_new_device_on_a_running_line_shows_on_the_devices_page(
    browser: Browser, server: LiveServer
) -> None:
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "admin", ADMIN_PW)
    page.goto(f"{server.url}/#/devices")
    box = page.locator("[data-bus-supervision]")
    expect(box).to_be_visible()
    expect(box.locator('[data-bus="panel"]')).to_contain_text("No new, vanished or doubly used address.")
    watch = server.gateway.bus_watches()["panel"]
    watch.answered(9, what="likely eastron-sdm630 (plausible values, no model code to be sure)")
    row = box.locator('[data-bus-row="new"][data-unit="9"]')
    expect(row).to_be_visible(timeout=5000)  # the 2-s refresh
    expect(row).to_contain_text("new device")
    expect(row).to_contain_text("a device that is not configured answers at address 9: likely eastron-sdm630")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "devices-bus.png"), full_page=True)
    assert console.errors == []
    ctx.close()
