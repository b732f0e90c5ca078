"""Configuration → IO points in a real browser (Playwright driving Debian chromium, issue 16): an admin adds
a pulse input and names a 1-wire probe that discovery found on the demo's simulated bus, then sees both on
the devices page with values, as a gateway reading simulated modules over Modbus TCP and a simulated
1-wire folder gives them. Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, expect

from meterhub.config.loader import parse_config
from meterhub.web.auth import UserStore

from .liveserver import LiveServer
from .test_browser import SHOTS, new_page, sign_in
from .test_io_api import ADMIN_PW, IO_SITE

pytestmark = pytest.mark.browser

DEMO = parse_config(
    (Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml").read_text(encoding="utf-8"),
    "demo-site.yaml",
)
#: The demo's unnamed probes (simulation.w1_probes): what discovery must find.
assert DEMO.simulation is not None
SPARE = DEMO.simulation.w1_probes[0]

# The demo's module bus and IO points (test_io_api), plus its 1-wire master with its two named probes
# and its unnamed ones.
SITE = (
    IO_SITE.replace(
        "buses: [{id: panel, kind: modbus-tcp, host: 127.0.0.1, port: 15980, timeout: 1}]",
        "buses:\n  - {id: panel, kind: modbus-tcp, host: 127.0.0.1, port: 15980, timeout: 1}\n"
        "  - {id: onewire, kind: io}",
    )
    .replace(
        "devices:\n",
        "devices:\n  - {id: w1, name: 1-wire master, bus: onewire, profile: linux-w1, poll_interval: 1}\n",
    )
    .replace(
        "io:\n  points:\n",
        "io:\n  w1_root: w1\n  points:\n"
        "    - {id: plant-room-temp, name: Plant room temperature, kind: temperature, device: w1,"
        " sensor: 28-0316a2795bff}\n",
    )
    + f"simulation:\n  w1_probes: [{', '.join(DEMO.simulation.w1_probes)}]\n"
    + "alarms:\n  rules:\n"
    + "    - {id: door-open, target: door-main, quantity: digital_input, condition: high, high: 0.5}\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("config-io")
    with LiveServer(tmp, site_yaml=SITE) as srv:
        UserStore(srv.data).add("admin", ADMIN_PW, "admin")
        yield srv


def test_admin_adds_a_pulse_input_and_names_a_probe_then_sees_both_on_the_devices_page(
    browser: Browser, server: LiveServer
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "admin", ADMIN_PW)
    page.goto(f"{server.url}/#/config/io")
    expect(page.locator('#io-config-table tr[data-point="gas-main"]')).to_contain_text("Gas meter")

    # a refused pulse weight is marked at its field
    form = page.locator("#io-add")
    page.select_option("#ia-kind", "pulse")
    page.fill("#ia-id", "heat-water")
    page.fill("#ia-name", "Heating make-up water")
    page.select_option("#ia-device", "pulses")
    # input 1 is the gas meter's: offered, marked as used; input 4 is free
    expect(page.locator('#ia-channel option[value="1"]')).to_have_text("1 (used by gas-main)")
    page.select_option("#ia-channel", "4")
    page.select_option("#ia-medium", "water")
    page.select_option("#ia-unit", "l")
    page.fill("#ia-weight", "0")
    form.locator("button[type=submit]").click()
    expect(form.locator("#ia-weight[aria-invalid=true] + .field-error")).to_contain_text("greater than 0")
    # then accepted: 10 l per pulse on input 4 of the pulse concentrator
    page.fill("#ia-weight", "10")
    form.locator("button[type=submit]").click()
    row = page.locator('#io-config-table tr[data-point="heat-water"]')
    expect(row).to_contain_text("Heating make-up water")
    expect(row).to_contain_text("10 l/pulse")

    # the 1-wire probes: the named one with its point, the demo's unnamed ones with "Name it"
    probe = page.locator(f'#w1-table tr[data-probe="{SPARE}"]')
    expect(probe).to_contain_text("DS18B20")
    expect(probe).to_contain_text("°C")
    expect(page.locator('#w1-table tr[data-probe="28-0316a2795bff"]')).to_contain_text(
        "Plant room temperature"
    )
    probe.get_by_role("button", name="Name it").click()
    expect(page.locator("#w1-sensor")).to_have_value(SPARE)
    page.fill("#w1-id", "return-temp")
    page.fill("#w1-name", "Heating return")
    page.click("#w1-go")
    expect(page.locator(f'#w1-table tr[data-probe="{SPARE}"]')).to_contain_text("Heating return")
    # edit: the pulse weight corrected in the edit form
    page.click('#io-config-table tr[data-point="heat-water"] a[href="#/config/io/heat-water"]')
    expect(page.locator("#ie-id")).to_have_value("heat-water")
    page.fill("#ie-weight", "1")
    page.click("#io-edit button[type=submit]")
    expect(page.locator('#io-config-table tr[data-point="heat-water"]')).to_contain_text("1 l/pulse")
    # a point an alarm rule watches is not removed, and the page says which rule
    page.on("dialog", lambda d: d.accept())
    page.click('button[data-point-remove="door-main"]')
    expect(page.locator("#io-msg")).to_contain_text("alarm rule 'door-open'")
    expect(page.locator('#io-config-table tr[data-point="door-main"]')).to_have_count(1)
    page.set_viewport_size({"width": 390, "height": 800})
    # tables that no longer fit turn into cards when the page sees the new size (ui.js installCardTables)
    deadline = time.monotonic() + 5
    while (
        not page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
        and time.monotonic() < deadline
    ):
        page.wait_for_timeout(50)
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
    page.screenshot(path=str(SHOTS / "config-io-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    # the devices page shows both under their device, with values the IO API gives
    page.goto(f"{server.url}/#/devices")
    water = page.locator('section[data-device="pulses"] tr[data-io="heat-water"]')
    expect(water).to_contain_text("Heating make-up water")
    expect(water.locator(".io-value")).to_contain_text("l", timeout=15_000)
    temp = page.locator('section[data-device="w1"] tr[data-io="return-temp"] .io-value')
    expect(temp).to_contain_text("°C", timeout=15_000)
    io = page.request.get(f"{server.url}/api/v1/io").json()
    point = next(p for p in io["points"] if p["id"] == "return-temp")
    assert point["sensor"] == SPARE and 15.0 <= point["value"] <= 68.0  # sim/io.py: 15…65 °C ± 3 K
    page.screenshot(path=str(SHOTS / "config-io-devices.png"), full_page=True)
    # the refused save and the refused removal are the only requests that failed (chromium logs them)
    assert [e for e in console.errors if "status of 422" not in e and "status of 409" not in e] == []
    assert len(console.errors) == 2
    ctx.close()
