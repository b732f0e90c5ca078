"""The devices page's IO points in a real browser (Playwright driving Debian chromium) against a real
gateway reading simulated DIO-4/2, AIO-2/2 and pulse concentrator modules over Modbus TCP.

An admin switches the fan relay from the page; a second Modbus master reading the coil and the outputs
API must agree with what the page shows. The screenshot goes to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, Route, expect

from meterhub.drivers.modbus.profile import Function
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.web.auth import UserStore

from .liveserver import LiveServer
from .test_browser import SHOTS, new_page, sign_in
from .test_io_api import ADMIN_PW, IO_SITE, READER_PW

pytestmark = pytest.mark.browser

DIO_UNIT = 13  # Modbus unit of the DIO-4/2 in IO_SITE


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("browser-io")
    with LiveServer(tmp, site_yaml=IO_SITE) as srv:
        store = UserStore(srv.data)
        store.add("admin", ADMIN_PW, "admin")
        store.add("rita", READER_PW, "reader")
        yield srv


def fan_coil(srv: LiveServer) -> int:
    """Coil 0 (relay 1, the fan) of the DIO-4/2, read by a second Modbus master."""
    port = srv.gateway.config.buses[0].port
    assert port is not None

    async def read() -> int:
        probe = ModbusLink(TransportKind.TCP, port=port, timeout=3.0)
        try:
            return (await probe.read(Function.COIL, DIO_UNIT, 0, 1))[0]
        finally:
            await probe.close()

    # Playwright's sync API runs an event loop in this thread: read from another one
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(read())).result()


def open_devices(page: Page, url: str) -> None:
    page.goto(f"{url}/#/devices")
    page.wait_for_selector('#view[data-page="devices"] tr[data-io="fan-relay"]')
    # every point has a first value (the page refreshes them every 2 s)
    expect(page.locator('tr[data-io="tank-pressure"] .io-value')).to_contain_text("bar", timeout=15_000)


def test_devices_page_shows_io_points_and_admin_switches_the_fan(
    browser: Browser, server: LiveServer
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "admin", ADMIN_PW)
    open_devices(page, server.url)
    rows = page.locator("section[data-device] tr[data-io]")
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.io)")) == sorted(
        [
            "gas-main",
            "water-main",
            "pv-export-meter",
            "q1-trip",
            "door-main",
            "fan-relay",
            "tank-pressure",
            "supply-temp",
        ]
    )
    # each point sits under its device
    assert page.locator('section[data-device="pulses"] tr[data-io="gas-main"]').count() == 1
    assert page.locator('section[data-device="aio"] tr[data-io="tank-pressure"]').count() == 1
    expect(page.locator('tr[data-io="gas-main"] .io-value')).to_contain_text("m³")
    expect(page.locator('tr[data-io="pv-export-meter"] .io-value')).to_contain_text("kWh")
    expect(page.locator('tr[data-io="pv-export-meter"] .io-detail')).to_contain_text("pulses", timeout=10_000)
    expect(page.locator('tr[data-io="q1-trip"] .badge')).to_have_text("normal", timeout=10_000)
    pressure = page.locator('tr[data-io="tank-pressure"] .io-value').inner_text()
    value = float(re.sub(r"[^0-9.\-]", "", pressure.replace(",", "")))
    assert 0.0 <= value <= 6.0, pressure

    fan = page.locator('button[data-switch="fan-relay"]')
    expect(fan).to_have_attribute("aria-checked", "false", timeout=10_000)
    assert fan_coil(server) == 0
    fan.click()
    expect(fan).to_have_attribute("aria-checked", "true")
    msg = page.locator('tr[data-io="fan-relay"] .io-msg')
    expect(msg).to_contain_text("Confirmed by the device: on")
    expect(page.locator('tr[data-io="fan-relay"] .badge')).to_have_text("on")
    assert fan_coil(server) == 1  # the device really holds it
    outputs = page.request.get(f"{server.url}/api/v1/devices/dio/outputs").json()
    assert next(o for o in outputs["outputs"] if o["point"] == "fan-relay")["state"] is True
    page.wait_for_timeout(2500)  # a page refresh from the poller keeps the confirmed state
    expect(fan).to_have_attribute("aria-checked", "true")
    page.screenshot(path=str(SHOTS / "devices-io.png"), full_page=True)

    fan.click()
    expect(fan).to_have_attribute("aria-checked", "false")
    expect(msg).to_contain_text("Confirmed by the device: off")
    assert fan_coil(server) == 0
    assert console.errors == []
    ctx.close()


def test_a_failed_switch_is_shown_next_to_the_relay(browser: Browser, server: LiveServer) -> None:
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "admin", ADMIN_PW)
    detail = "device 'dio' output 'fan-relay': the device did not answer (offline?)"

    def refuse(route: Route) -> None:
        route.fulfill(status=504, content_type="application/json", body=json.dumps({"detail": detail}))

    page.route("**/api/v1/devices/dio/outputs/fan-relay", refuse)
    open_devices(page, server.url)
    fan = page.locator('button[data-switch="fan-relay"]')
    expect(fan).to_have_attribute("aria-checked", "false", timeout=10_000)
    fan.click()
    msg = page.locator('tr[data-io="fan-relay"] .io-msg.error[role="alert"]')
    expect(msg).to_contain_text("Switching Plant room fan failed")
    expect(msg).to_contain_text("did not answer")
    expect(page.locator("#toast.error")).to_contain_text("did not answer")
    expect(fan).to_have_attribute("aria-checked", "false")  # it shows what the device holds
    expect(fan).to_be_enabled()
    assert fan_coil(server) == 0
    assert [e for e in console.errors if "504" not in e] == []  # the refused command is the only error
    ctx.close()


def test_reader_sees_relay_state_but_no_switch(browser: Browser, server: LiveServer) -> None:
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "rita", READER_PW)
    open_devices(page, server.url)
    expect(page.locator('tr[data-io="fan-relay"] .badge')).to_have_text(
        re.compile("^(on|off)$"), timeout=10_000
    )
    assert page.locator("button[data-switch]").count() == 0
    expect(page.locator('tr[data-io="door-main"] .badge')).to_have_text(re.compile("^(open|closed)$"))
    assert console.errors == []
    ctx.close()
