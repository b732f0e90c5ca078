"""The alarms page in a real browser (Playwright driving Debian chromium) against a real gateway and
web server: a low power factor raised by the alarm engine shows in the active list and as the badge on
every page and on the display; an admin acknowledges it with a comment from the page; the alarm log,
the power-quality log and the audit log show what happened. Screenshots go to
``test-artifacts/screenshots/``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, expect

from meterhub.model.pq import PqEvent, PqKind, PqSource
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.web.auth import UserStore

from .conftest import SITE_YAML
from .liveserver import LiveServer
from .test_browser import SHOTS, new_page, sign_in

pytestmark = pytest.mark.browser

ADMIN_PW = "admin password 1"
READER_PW = "reader password 1"
ALARM_SITE = (
    SITE_YAML
    + """alarms:
  rules:
    - id: pf-low
      title: "Power factor low"
      target: hvac
      quantity: power_factor
      condition: low
      low: 0.85
      on_delay: 5
      severity: high
"""
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("browser-alarms")
    with LiveServer(tmp, simulate=False, site_yaml=ALARM_SITE) as srv:
        store = UserStore(srv.data)
        store.add("admin", ADMIN_PW, "admin")
        store.add("rita", READER_PW, "reader")
        gw = srv.gateway
        # The compressor's power factor, 0.62 for 7 s, 20 s ago: raised after its 5 s on-delay.
        t0 = time.time() - 20
        for k in range(8):
            gw.alarms.engine.update([Reading(t0 + k, "hvac", Q.POWER_FACTOR, Phase.TOTAL, 0.62)], now=t0 + k)
            gw.alarms.engine.tick(now=t0 + k)
        gw.emit_pq_events(
            [
                PqEvent(
                    PqKind.DIP,
                    t0 + 3.5,
                    0.08,
                    161.0,
                    "V",
                    "vu",
                    PqSource.WAVEFORM,
                    phase="L2",
                    threshold=90.0,
                )
            ]
        )
        assert gw.event_log.wait_written(10.0)
        yield srv


def test_admin_sees_the_alarm_everywhere_acknowledges_it_and_reads_the_logs(
    browser: Browser, server: LiveServer
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "admin", ADMIN_PW)
    # the badge on the Alarms link of every page: one alarm waits for acknowledgement
    badge = page.locator('#nav a[data-page="alarms"] #alarm-badge')
    expect(badge).to_have_text("1")
    page.goto(f"{server.url}/#/devices")
    expect(page.locator("#view")).to_have_attribute("data-page", "devices")
    expect(badge).to_have_text("1")

    # the display page (D10) shows it
    page.goto(f"{server.url}/#/display")
    alarm_box = page.locator("#d-alarms")
    expect(alarm_box).to_be_visible()
    expect(alarm_box).to_contain_text("Power factor low")
    expect(alarm_box).to_contain_text("hvac")
    page.screenshot(path=str(SHOTS / "display-alarm.png"))

    # the active list, with its fields
    page.goto(f"{server.url}/#/alarms")
    row = page.locator("#active-alarms tr.alarm-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Power factor low")
    expect(row).to_contain_text("active, unacknowledged")
    expect(row).to_contain_text("0.620")  # the value
    expect(row).to_contain_text("0.850")  # the limit
    page.screenshot(path=str(SHOTS / "alarms-active.png"), full_page=True)

    # acknowledge with a comment
    row.locator("button.ack").click()
    expect(page.locator("#a-act")).to_be_visible()
    page.fill("#a-comment", "capacitor bank switched off")
    page.click("#a-confirm")
    expect(page.locator("#toast")).to_have_text("Alarm acknowledged.")
    expect(row).to_contain_text("active, acknowledged")
    expect(row).to_contain_text("admin")  # acked by
    expect(badge).to_be_hidden()  # nothing waits for acknowledgement any more

    # the alarm log: raised, then acknowledged by admin with the comment
    page.goto(f"{server.url}/#/alarms/log")
    rows = page.locator("#log-rows tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("acknowledged")
    expect(rows.nth(0)).to_contain_text("capacitor bank switched off")
    expect(rows.nth(1)).to_contain_text("raised")
    page.select_option("#log-kind", "raised")
    page.click("#log-form button[type=submit]")
    expect(rows).to_have_count(1)
    csv = page.request.get(server.url + (page.locator("#log-csv").get_attribute("href") or ""))
    assert csv.ok and csv.headers["content-type"].startswith("text/csv")
    assert csv.text().count("\r\n") == 2 and ",raised," in csv.text()  # header + the raised event
    page.screenshot(path=str(SHOTS / "alarms-log.png"), full_page=True)

    # the power-quality log
    page.goto(f"{server.url}/#/alarms/pq")
    pq = page.locator("#pq-rows tbody tr")
    expect(pq).to_have_count(1)
    expect(pq).to_contain_text("dip")
    expect(pq).to_contain_text("L2")
    expect(pq).to_contain_text("80 ms")
    expect(pq).to_contain_text("161.0 V")

    # the audit log: the acknowledgement, by admin
    page.goto(f"{server.url}/#/alarms/audit")
    audit = page.locator("#audit-rows tbody tr")
    expect(audit.first).to_contain_text("alarm.ack")
    expect(audit.first).to_contain_text("admin")
    page.screenshot(path=str(SHOTS / "alarms-audit.png"), full_page=True)
    assert console.errors == []
    ctx.close()


def test_a_reader_has_no_audit_tab_and_german_texts(browser: Browser, server: LiveServer) -> None:
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "rita", READER_PW)
    page.select_option("#lang-pick", "de")
    expect(page.locator("#view h1")).to_have_text("Anlagenübersicht")
    page.click('#nav a[data-page="alarms"]')
    expect(page.locator("#view h1")).to_have_text("Alarme")
    page.click('#a-tabs a[data-tab="log"]')
    expect(page.locator("#view h1")).to_have_text("Alarme")
    tabs = page.locator("#a-tabs a")
    expect(tabs).to_have_count(4)  # active, alarm log, power quality, rules — no audit log
    expect(page.locator("#log-rows tbody tr").first).to_be_visible()
    page.goto(f"{server.url}/#/alarms/audit")  # asked for anyway: the active list instead
    expect(page.locator("#a-tabs a.active")).to_have_text("Aktiv")
    page.evaluate("localStorage.removeItem('meterhub.lang')")
    assert console.errors == []
    ctx.close()


def test_admin_adds_edits_and_removes_a_rule_and_a_bad_one_is_refused_naming_the_field(
    browser: Browser, server: LiveServer
) -> None:
    ctx, page, console = new_page(browser)
    sign_in(page, server.url, "admin", ADMIN_PW)
    page.goto(f"{server.url}/#/alarms/rules")
    expect(page.locator('#rule-rows tr[data-rule="pf-low"]')).to_contain_text("< 0.85")
    page.click("#rule-add")
    page.fill("#rule-id", "u-high")
    page.fill("#rule-title", "Overvoltage {phase}")
    page.fill("#rule-target", "grid")
    page.select_option("#rule-quantity", "voltage")
    page.select_option("#rule-phase", "any")
    page.select_option("#rule-condition", "band")
    expect(page.locator("#rule-rate")).to_be_hidden()  # only the limits the condition needs
    page.fill("#rule-low", "253")
    page.fill("#rule-high", "207")  # low above high: can never fire
    page.click("#rule-save")
    expect(page.locator("#rule-error")).to_contain_text("low")
    page.fill("#rule-low", "207")
    page.fill("#rule-high", "253")
    page.fill("#rule-on-delay", "5")
    page.select_option("#rule-severity", "critical")
    page.click("#rule-save")
    row = page.locator('#rule-rows tr[data-rule="u-high"]')
    expect(row).to_contain_text("outside 207 … 253")
    expect(row).to_contain_text("critical")
    expect(row.locator("td").nth(6)).to_have_text("5")  # the on-delay [s]
    # edit: the severity
    row.locator(".rule-edit").click()
    expect(page.locator("#rule-id")).to_have_value("u-high")
    page.select_option("#rule-severity", "high")
    page.click("#rule-save")
    expect(row).to_contain_text("high")
    page.screenshot(path=str(SHOTS / "alarms-rules.png"), full_page=True)
    # the site file has it
    assert "u-high" in server.config_path.read_text(encoding="utf-8")
    # remove it (confirming the dialog)
    page.once("dialog", lambda d: d.accept())
    row.locator(".rule-del").click()
    expect(row).to_have_count(0)
    assert "u-high" not in server.config_path.read_text(encoding="utf-8")
    # every change is in the audit log
    page.goto(f"{server.url}/#/alarms/audit")
    audit = page.locator("#audit-rows tbody")
    for action in ("alarm-rule.create", "alarm-rule.update", "alarm-rule.delete"):
        expect(audit).to_contain_text(action)
    # the browser logs the refused request (the 422 above) as a console error; nothing else
    assert [e for e in console.errors if "422" not in e] == []
    ctx.close()
