"""Configuration in the UI (issue 16) in a real browser (Playwright driving Debian chromium) against a
real gateway reading a simulated site over Modbus TCP: an admin adds and removes circuits and devices,
and a refused save shows the server's message next to the field its 422 ``loc`` names.

Every change is checked against the REST API and the site file the gateway wrote back; the page must not
scroll sideways at 390 px. Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, BrowserContext, Page, expect

from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.web.auth import UserStore

from .liveserver import LiveServer
from .test_browser import ADMIN_PW, SHOTS, Console, sign_in

pytestmark = pytest.mark.browser

BERLIN = ZoneInfo("Europe/Berlin")  # the test site's time zone
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("config-ui")
    with LiveServer(tmp) as srv:
        UserStore(srv.data).add("admin", ADMIN_PW, "admin")
        srv.gateway.storage.write(last_month_import())
        srv.gateway.storage.flush()
        yield srv


def last_month() -> date:
    """The 10th of last month (site time zone)."""
    today = datetime.now(BERLIN).date()
    return (today.replace(day=1) - timedelta(days=1)).replace(day=10)


def last_month_import() -> list[Reading]:
    """The grid incomer's import register on the 10th of last month, 10:00–13:00 Berlin time, once a
    minute: 4 kW, but 10 kW from 11:00 to 11:15 — a 15-min peak of 10 kW [Wh]."""
    t0 = datetime.combine(last_month(), time(10, 0), BERLIN).timestamp()
    out, wh = [], 1_000_000.0
    for i in range(181):
        out.append(Reading(t0 + 60 * i, "grid", "energy_active_import", Phase.TOTAL, wh))
        wh += (10_000.0 if 60 <= i < 75 else 4_000.0) / 60
    return out


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


NIGHT_DAY = {
    "rates": [{"id": "day", "name": "Day", "price": 0.3}, {"id": "night", "name": "Night", "price": 0.15}],
    "seasons": [
        {
            "name": "Year",
            "start": "01-01",
            "weekday": [
                {"from": "00:00", "rate": "night"},
                {"from": "07:00", "rate": "day"},
                {"from": "22:00", "rate": "night"},
            ],
        }
    ],
}


def csrf(page: Page) -> dict[str, str]:
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "mh_csrf")
    return {"X-CSRF-Token": token}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "390px"])
def test_admin_edits_time_of_use_seasons_and_day_types_in_a_form(
    browser: Browser, server: LiveServer, viewport: dict[str, int]
) -> None:
    ctx, page, console = open_page(browser, viewport)
    sign_in(page, server.url, "admin", ADMIN_PW)
    assert page.request.put(f"{server.url}/api/v1/config/tariffs", data=NIGHT_DAY, headers=csrf(page)).ok
    page.goto(f"{server.url}/#/config/tariffs")
    seasons = page.locator("#seasons [data-season]")
    expect(seasons).to_have_count(1)
    weekday = seasons.first.locator('[data-dt="weekday"] [data-band]')
    expect(weekday).to_have_count(3)
    assert [weekday.nth(i).locator(".b-from").input_value() for i in range(3)] == ["00:00", "07:00", "22:00"]
    assert [weekday.nth(i).locator(".b-rate").input_value() for i in range(3)] == ["night", "day", "night"]
    expect(seasons.first.locator('[data-dt="saturday"] [data-own]')).not_to_be_checked()
    assert no_sideways_scroll(page)
    # a summer season from a day that does not exist: refused, the message next to its start field
    page.click("#add-season")
    summer = seasons.nth(1)
    summer.locator('[data-k="name"]').fill("Summer")
    summer.locator('[data-k="start"]').fill("13-01")
    summer.locator('[data-dt="weekday"] .b-rate').select_option("day")
    summer.locator('[data-dt="saturday"] [data-own]').check()
    summer.locator('[data-dt="saturday"] .b-rate').select_option("night")
    page.click("#tariff-form button[type=submit]")
    expect(summer.locator('[data-k="start"] + .field-error')).to_contain_text("13-01")
    assert len(page.request.get(f"{server.url}/api/v1/config/tariffs").json()["seasons"]) == 1
    summer.locator('[data-k="start"]').fill("04-01")
    page.click("#tariff-form button[type=submit]")
    expect(page.locator("#t-msg")).to_have_text("Saved and applied.")
    api = page.request.get(f"{server.url}/api/v1/config/tariffs").json()
    assert [(s["name"], s["start"]) for s in api["seasons"]] == [("Year", "01-01"), ("Summer", "04-01")]
    assert api["seasons"][0]["weekday"] == NIGHT_DAY["seasons"][0]["weekday"]  # type: ignore[index]
    assert api["seasons"][1]["weekday"] == [{"from": "00:00", "rate": "day"}]
    assert api["seasons"][1]["saturday"] == [{"from": "00:00", "rate": "night"}]
    assert api["seasons"][1].get("weekend") is None and api["seasons"][1].get("holiday") is None
    # what was saved is what the form shows again
    page.reload()
    expect(seasons).to_have_count(2)
    expect(seasons.nth(1).locator('[data-dt="saturday"] [data-own]')).to_be_checked()
    expect(seasons.nth(1).locator('[data-dt="weekend"] [data-own]')).not_to_be_checked()
    assert no_sideways_scroll(page)
    page.screenshot(path=str(SHOTS / f"config-tariff-seasons-{viewport['width']}.png"), full_page=True)
    seasons.nth(1).locator("[data-remove-season]").click()
    page.click("#tariff-form button[type=submit]")
    expect(page.locator("#t-msg")).to_have_text("Saved and applied.")
    assert [s["name"] for s in page.request.get(f"{server.url}/api/v1/config/tariffs").json()["seasons"]] == [
        "Year"
    ]
    assert [e for e in console.errors if "422" not in e] == []
    ctx.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "390px"])
def test_admin_sets_the_billing_day_closes_a_period_and_resets_demand(
    browser: Browser, server: LiveServer, viewport: dict[str, int]
) -> None:
    ctx, page, console = open_page(browser, viewport)
    sign_in(page, server.url, "admin", ADMIN_PW)
    page.goto(f"{server.url}/#/config/billing")
    expect(page.locator("#billing-form")).to_be_visible()
    assert no_sideways_scroll(page)
    # day 29 does not exist in every month (seed 002 appendix 4: 1–28): the message is next to the day
    page.fill("#b-day", "29")
    page.click("#billing-form button[type=submit]")
    expect(page.locator("#b-day + .field-error")).to_contain_text("28")
    assert page.request.get(f"{server.url}/api/v1/config/billing").json()["day"] != 29
    day = 15 if viewport is DESKTOP else 16
    page.fill("#b-day", str(day))
    page.fill("#b-hour", "6")
    page.click("#billing-form button[type=submit]")
    expect(page.locator("#b-msg")).to_have_text("Saved and applied.")
    cfg = page.request.get(f"{server.url}/api/v1/config/billing").json()
    assert (cfg["day"], cfg["hour"], cfg["automatic"]) == (day, 6, True)
    assert f"day: {day}" in server.config_path.read_text(encoding="utf-8")
    # the next automatic billing follows the new schedule: 06:00 Berlin (UTC+1 in winter) on that day
    for _ in range(50):
        st = page.request.get(f"{server.url}/api/v1/energy/billing").json()
        if st["next"]:
            break
        page.wait_for_timeout(100)
    assert st["day"] == day and st["next"].endswith(f"-{day}T05:00:00Z")
    # close a period now: it appears in the history with the new count
    count = st["count"]
    page.click("#b-close")
    expect(page.locator("#b-count")).to_have_text(str(count + 1))
    # its reason in words, not the raw id `api`
    reason = page.locator(f'#billing-history tr[data-count="{count + 1}"] td[data-reason="api"]')
    expect(reason).to_have_text("by command (API)")
    # the demand measurement: 30-min sliding window of 3 subintervals, applied and said so
    page.select_option("#dm-interval", "30")
    page.select_option("#dm-method", "sliding")
    page.fill("#dm-subs", "3")
    page.click("#demand-form button[type=submit]")
    expect(page.locator("#dm-msg")).to_contain_text("maximum demands are kept")
    dm = page.request.get(f"{server.url}/api/v1/config/demand").json()
    assert (dm["interval"], dm["method"], dm["subintervals"]) == (30, "sliding", 3)
    # reset every maximum demand
    page.click("#md-reset-all")
    expect(page.locator("#md-none")).to_be_visible()
    md = page.request.get(f"{server.url}/api/v1/energy/demand").json()["max_demand"]
    assert all(v["value"] is None for rates in md.values() for v in rates.values())
    assert no_sideways_scroll(page)
    page.screenshot(path=str(SHOTS / f"config-billing-{viewport['width']}.png"), full_page=True)
    assert [e for e in console.errors if "422" not in e] == []
    ctx.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "390px"])
def test_admin_sets_the_capacity_floor_and_sees_the_monthly_peaks(
    browser: Browser, server: LiveServer, viewport: dict[str, int]
) -> None:
    ctx, page, console = open_page(browser, viewport)
    sign_in(page, server.url, "admin", ADMIN_PW)
    page.goto(f"{server.url}/#/config/billing")
    expect(page.locator("#k-circuit")).to_have_value("grid")  # the grid incomer by default
    month = last_month().strftime("%Y-%m")
    row = page.locator(f'#capacity-table tr[data-month="{month}"]')
    expect(row.locator("td").nth(1)).to_have_text("10.00 kW")  # the 11:00–11:15 peak
    expect(row.locator("td").nth(2)).to_contain_text("11:15")  # its end, in the site's time
    page.fill("#k-min", "-1")
    page.click("#capacity-form button[type=submit]")
    expect(page.locator("#k-min + .field-error")).to_contain_text("greater than or equal to 0")
    page.fill("#k-min", "12.5")
    page.click("#capacity-form button[type=submit]")
    expect(page.locator("#k-msg")).to_have_text("Saved and applied.")
    assert page.request.get(f"{server.url}/api/v1/config/capacity").json() == {"minimum": 12500.0}
    assert "capacity_minimum: 12500" in server.config_path.read_text(encoding="utf-8")
    # the 10 kW peak counts as the 12.5 kW floor in the rolling mean, as in the API's report
    expect(row.locator("td").nth(3)).to_have_text("12.50 kW")
    rep = page.request.get(
        f"{server.url}/api/v1/reports/capacity?from={month}-01&to={month}-28&circuit=grid"
    ).json()["months"]
    assert [(r["month"], round(r["peak"], 3), r["rolling_mean"]) for r in rep] == [(month, 10000.0, 12500.0)]
    assert no_sideways_scroll(page)
    assert [e for e in console.errors if "422" not in e] == []
    ctx.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "390px"])
def test_admin_sets_a_load_profile_and_downloads_it_as_csv(
    browser: Browser, server: LiveServer, viewport: dict[str, int]
) -> None:
    ctx, page, console = open_page(browser, viewport)
    sign_in(page, server.url, "admin", ADMIN_PW)
    assert page.request.put(
        f"{server.url}/api/v1/config/load-profiles", data={"profiles": []}, headers=csrf(page)
    ).ok
    page.goto(f"{server.url}/#/config/billing")
    expect(page.locator("#lp-form")).to_be_visible()
    # two profiles for the same circuit: refused, the message next to the second one's circuit
    page.click("#lp-add")
    page.click("#lp-add")
    rows = page.locator("#lp-rows [data-lp]")
    rows.nth(0).locator(".lp-circuit").select_option("grid")
    rows.nth(1).locator(".lp-circuit").select_option("grid")
    page.click("#lp-form button[type=submit]")
    expect(rows.nth(1).locator(".lp-circuit + .field-error")).to_contain_text("has a load profile already")
    rows.nth(1).locator("[data-lp-remove]").click()
    rows.nth(0).locator(".lp-interval").select_option("60")
    rows.nth(0).locator(".lp-quantities").select_option(["energy_active_import"])
    page.click("#lp-form button[type=submit]")
    expect(page.locator("#lp-msg")).to_have_text("Saved and applied.")
    assert page.request.get(f"{server.url}/api/v1/config/load-profiles").json() == {
        "profiles": [{"circuit": "grid", "interval": 60, "quantities": ["energy_active_import"]}]
    }
    # the CSV of last month's 10th: hourly, the register at each hour's end (10:00 … 13:00 seeded)
    day = last_month().isoformat()
    page.select_option("#lp-d-circuit", "grid")
    page.fill("#lp-d-from", day)
    page.fill("#lp-d-to", day)
    with page.expect_download() as dl:
        page.click("#lp-d-go")
    path = dl.value.path()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "end,energy_active_import"
    values = dict(line.split(",") for line in lines[1:])
    # 11:00 → 12:00: 15 min at 10 kW and 45 min at 4 kW = 5.5 kWh
    at11 = next(v for k, v in values.items() if k.startswith(f"{day}T11:00"))
    at12 = next(v for k, v in values.items() if k.startswith(f"{day}T12:00"))
    assert float(at12) - float(at11) == pytest.approx(5500.0, abs=1.0)
    assert no_sideways_scroll(page)
    page.screenshot(path=str(SHOTS / f"config-billing-profiles-{viewport['width']}.png"), full_page=True)
    assert [e for e in console.errors if "422" not in e] == []
    ctx.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "390px"])
def test_admin_adds_and_removes_a_bus(browser: Browser, server: LiveServer, viewport: dict[str, int]) -> None:
    ctx, page, console = open_page(browser, viewport)
    sign_in(page, server.url, "admin", ADMIN_PW)
    bid = "tcp2" if viewport is DESKTOP else "tcp3"
    page.goto(f"{server.url}/#/config/devices")
    expect(page.locator('#bus-table tr[data-bus="panel"]')).to_contain_text("meter, m1, vu, m2")
    page.fill("#bus-id", bid)
    page.fill("#bus-host", "192.0.2.10")
    page.fill("#bus-port", "0")
    page.click("#add-bus button[type=submit]")
    expect(page.locator("#bus-port + .field-error")).to_contain_text("greater than or equal to 1")
    page.fill("#bus-port", "502")
    page.click("#add-bus button[type=submit]")
    expect(page.locator(f'#bus-table tr[data-bus="{bid}"]')).to_contain_text("192.0.2.10:502")
    buses = {b["id"]: b for b in page.request.get(f"{server.url}/api/v1/config/buses").json()}
    assert (buses[bid]["kind"], buses[bid]["host"], buses[bid]["port"]) == ("modbus-tcp", "192.0.2.10", 502)
    assert f"id: {bid}" in server.config_path.read_text(encoding="utf-8")
    assert no_sideways_scroll(page)
    # the bus the meters are on cannot go: the refusal names them
    page.click('[data-bus-remove="panel"]')
    expect(page.locator("#bus-msg")).to_contain_text("devices meter, m1, vu, m2 use bus 'panel'")
    page.click(f'[data-bus-remove="{bid}"]')
    expect(page.locator(f'#bus-table tr[data-bus="{bid}"]')).to_have_count(0)
    assert bid not in {b["id"] for b in page.request.get(f"{server.url}/api/v1/config/buses").json()}
    assert [e for e in console.errors if "422" not in e and "409" not in e] == []
    ctx.close()
