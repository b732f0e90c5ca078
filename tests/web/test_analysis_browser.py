"""The analysis page in a real browser (Playwright driving Debian chromium): the browser in
America/New_York, the site in Europe/Berlin, at desktop and phone (390 px) sizes.

The site is the constant-load site of ``tests/energy/test_analysis.py`` with last month at the loads ×1
and the same month last year at ×0.5: the Compare tab opens on exactly those two (one click from the
overview), its cards equal the API's totals, the Sankey draws, nothing scrolls sideways, and the console
stays clean. Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Page, expect

from meterhub.web.auth import UserStore

from ..energy.test_analysis import SITE, readings
from .liveserver import LiveServer
from .test_browser import SHOTS, Console, sign_in

pytestmark = pytest.mark.browser

PW = "correct horse battery"


def months() -> tuple[date, date]:
    """The first day of last month in Berlin and of the same month a year before."""
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    last = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    return last, last.replace(year=last.year - 1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("browser-analysis")
    with LiveServer(tmp, simulate=False, site_yaml=SITE.replace("port: 5020", "port: 15900")) as srv:
        UserStore(srv.data).add("fm", PW, "reader")
        last, year_ago = months()
        for first, scale in ((last, 1.0), (year_ago, 0.5)):
            end = (first + timedelta(days=32)).replace(day=1)
            srv.gateway.storage.write(
                readings(
                    f"{first - timedelta(days=1)}T23:00", f"{end}T01:00", scale
                )  # whole month, an hour either side
            )
        srv.gateway.storage.flush()
        yield srv


def no_sideways_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_analysis_answers_last_month_against_last_year(
    browser: Browser, server: LiveServer, size: str
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    phone = size == "phone"
    ctx = browser.new_context(
        viewport={"width": 390, "height": 844} if phone else {"width": 1280, "height": 900},
        is_mobile=phone,
        has_touch=phone,
        timezone_id="America/New_York",
    )
    page = ctx.new_page()
    console = Console(page)
    sign_in(page, server.url, "fm", PW)
    if phone:
        page.click("#menu-toggle")
    page.click('#nav a[data-page="analysis"]')  # the one click from the overview
    last, year_ago = months()
    compare = page.request.get(f"{server.url}/api/v1/analysis/compare?period=month&at={last}").json()
    assert compare["periods"]["this"]["from"] == str(last)
    assert compare["periods"]["last_year"]["from"] == str(year_ago)
    days = compare["periods"]["this"]["to"]
    # 2.5 kW consumption (2 kW grid + 0.5 kW PV) for the whole month; half as much a year before
    berlin = ZoneInfo("Europe/Berlin")
    hours = (
        datetime.fromisoformat(days).replace(tzinfo=berlin)
        - datetime.fromisoformat(str(last)).replace(tzinfo=berlin)
    ).total_seconds() / 3600  # 24 × days, ± 1 h in a month with a DST change
    assert compare["total"]["this"]["kwh"] == pytest.approx(2.5 * hours)
    assert compare["total"]["last_year"]["kwh"] == pytest.approx(
        2.5
        * 0.5
        * (
            datetime.fromisoformat(compare["periods"]["last_year"]["to"]).replace(tzinfo=berlin)
            - datetime.fromisoformat(str(year_ago)).replace(tzinfo=berlin)
        ).total_seconds()
        / 3600
    )
    this_card = page.locator('#a-summary .card[data-period="this"]')
    expect(this_card).to_contain_text(f"This period: {last:%Y-%m}")
    cost = f"{compare['total']['this']['cost']:,.2f}"
    expect(this_card.locator(".big")).to_have_text(f"{cost} EUR")
    rows = page.locator("#compare-table tbody tr")
    expect(rows).to_have_count(4)  # the zone office, light, hvac, pump (most expensive first)
    expect(rows.first).to_contain_text("office")
    assert page.locator("#compare-table").evaluate("t => t.scrollWidth <= t.parentElement.clientWidth + 1")
    assert no_sideways_scroll(page)
    page.screenshot(path=str(SHOTS / f"analysis-compare-{size}.png"), full_page=True)

    page.click("#tab-flow")
    expect(page.locator("#flow-table tbody tr")).to_have_count(7)
    series = page.evaluate(
        "(() => { const c = echarts.getInstanceByDom(document.getElementById('a-chart'));"
        " const s = c.getOption().series[0]; return [s.type, s.data.length, s.links.length]; })()"
    )
    assert series == ["sankey", 8, 7]  # grid, pv, site, office, light, hvac, pump, unmetered
    assert page.locator("#a-chart canvas").count() >= 1
    flow = page.request.get(f"{server.url}/api/v1/analysis/flow?from={last}&to={days}").json()
    assert flow["balance"]["unmetered_kwh"] == pytest.approx(0.75 * compare["total"]["this"]["kwh"] / 2.5)
    assert no_sideways_scroll(page)
    page.screenshot(path=str(SHOTS / f"analysis-flow-{size}.png"), full_page=True)
    with page.expect_download() as png:
        page.click("#a-png")
    assert png.value.suggested_filename == "flow.png"
    assert Path(png.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv = page.request.get(server.url + str(page.locator("#a-csv").get_attribute("href")))
    assert csv.text().splitlines()[0] == "source,target,kwh,cost,co2_kg"

    page.click("#tab-ranking")
    expect(page.locator("#ranking-table tbody tr").first).to_contain_text("office")
    page.click("#tab-heatmap")
    expect(page.locator("#a-note")).to_contain_text("Europe/Berlin")
    assert no_sideways_scroll(page)
    assert console.errors == []
    ctx.close()
