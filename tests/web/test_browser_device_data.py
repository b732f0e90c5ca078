"""The devices page shows why a device's data is not used (Playwright driving Debian chromium): a
module that answers with NaN for everything is "online" and, next to it, "no usable data" with the
line "all values NaN since …" visible on the page — not only in a tooltip. The screenshot goes to
``test-artifacts/screenshots/devices-data.png``."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, expect

from meterhub.energy.pipeline import EnergyPipeline
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.web.auth import UserStore

from .liveserver import LiveServer
from .test_browser import ADMIN_PW, SHOTS, new_page, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("browser-data")
    with LiveServer(tmp, simulate=False) as srv:
        UserStore(srv.data).add("admin", ADMIN_PW, "admin")
        yield srv


def test_a_module_serving_nan_shows_no_usable_data_with_the_reason(
    browser: Browser, server: LiveServer
) -> None:
    gw = server.gateway
    now = time.time()
    # no sources run here: the energy stage gets what the Modbus source emits for an all-NaN answer
    energy = EnergyPipeline(gw.config, None, clock=time.time)
    energy.process(
        [
            Reading(now, "pv", q, Phase.L1, math.nan, Quality.INVALID)
            for q in (Q.VOLTAGE, Q.CURRENT, Q.ACTIVE_POWER)
        ]
    )
    gw.energy = energy
    gw.status["m2"].ok(now)
    gw.status["m1"].ok(now)
    local = datetime.fromtimestamp(now, ZoneInfo(gw.config.site.timezone)).strftime("%H:%M:%S")

    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "admin", ADMIN_PW)
    page.goto(f"{server.url}/#/devices")
    section = page.locator('section[data-device="m2"]')
    expect(section.locator('[data-status="m2"]')).to_have_text("online")
    expect(section.locator('[data-data="m2"]')).to_have_text("no usable data")
    line = section.locator('[data-data-line="m2"]')
    expect(line).to_be_visible()
    expect(line).to_contain_text(f"all values NaN since {local}")
    expect(line).to_contain_text("refused values: 3")
    # a device with nothing refused: "data ok" and no line
    expect(page.locator('[data-data="m1"]')).to_have_text("data ok")
    expect(page.locator('[data-data-line="m1"]')).to_be_hidden()
    # the 2-s refresh keeps it (and would show a change)
    page.wait_for_timeout(2500)
    expect(section.locator('[data-data="m2"]')).to_have_text("no usable data")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "devices-data.png"), full_page=True)
    assert console.errors == []
    ctx.close()


def test_an_admin_confirms_a_pending_meter_change_from_the_devices_page(
    browser: Browser, server: LiveServer
) -> None:
    gw = server.gateway
    now = time.time()
    energy = EnergyPipeline(gw.config, None, clock=time.time)
    key = (Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL)
    for k, wh in enumerate([50_000.0, 50_010.0, 50_020.0]):
        energy.process([Reading(now - 3 + k, "grid", *key, wh)])
    energy.process([Reading(now, "grid", *key, 5.0)])  # lower: a reset, or a glitch? it waits
    gw.energy = energy
    gw.status["meter"].ok(now)

    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "admin", ADMIN_PW)
    page.goto(f"{server.url}/#/devices")
    section = page.locator('section[data-device="meter"]')
    expect(section.locator('[data-data="meter"]')).to_have_text("values refused")
    expect(section.locator('[data-data-line="meter"]')).to_contain_text("awaiting confirmation: 1")
    item = section.locator(".pending-registers li")
    expect(item).to_contain_text("grid · energy_active_import total")
    expect(item).to_contain_text("1 lower reading awaiting confirmation")
    SHOTS.mkdir(parents=True, exist_ok=True)
    section.screenshot(path=str(SHOTS / "devices-pending-register.png"))
    item.locator("button[data-confirm]").click()
    expect(page.locator("#toast")).to_contain_text(
        "meter change of grid energy_active_import total confirmed for 1 register series"
    )
    expect(section.locator(".pending-registers li")).to_have_count(0)
    # reset to 0 confirmed: 50 020 Wh + the new counter's 5 Wh
    assert energy.register_values()[SeriesKey("grid", *key)] == 50_025.0
    assert console.errors == []
    ctx.close()
