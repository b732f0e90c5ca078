"""The commissioning page in a real browser (Playwright driving Debian chromium) against ``meterhub demo
--fault hvac:reverse:L2``: the HVAC row turns red with the reversed CT on L2, its evidence and a fix
button; the admin applies the fix, the page says so, and the circuit is checked anew. The screenshot goes
to ``test-artifacts/screenshots/commissioning.png``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, expect, sync_playwright

from .conftest import ADMIN, FaultyDemo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make sysdeps)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def test_commissioning_page_shows_the_reversed_ct_and_applies_the_fix(
    browser: Browser, tmp_path: Path
) -> None:
    with FaultyDemo(tmp_path / "demo", ["hvac:reverse:L2"]) as demo:
        ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{demo.url}/#/login")
        page.fill("#login-user", ADMIN[0])
        page.fill("#login-pass", ADMIN[1])
        page.click("#login-form button[type=submit]")
        expect(page.locator("#who")).to_contain_text(ADMIN[0])
        expect(page.locator('#nav a[data-page="commissioning"]')).to_have_text("Commissioning")
        page.click('#nav a[data-page="commissioning"]')
        row = page.locator('tr[data-circuit="hvac"]')
        expect(row).to_have_attribute("data-verdict", "suspect", timeout=120_000)
        expect(row.locator(".light")).to_have_class("light bad")
        expect(row).to_contain_text("Reversed CT L2")
        expect(row).to_contain_text("invert the CT on L2")
        expect(row).to_contain_text("expected: load: |φ| ≤ 62°")
        assert page.locator('[data-panel="main"]').count() == 1  # circuits grouped by panel
        expect(page.locator('tr[data-circuit="lighting-office"]')).to_have_attribute("data-verdict", "ok")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "commissioning.png"), full_page=True)
        row.locator('button[data-fix="hvac:reversed-ct:L2"]').click()
        expect(page.locator("#cm-msg")).to_have_text("Fix applied to hvac; the circuit is checked anew.")
        expect(row).not_to_have_attribute("data-verdict", "suspect", timeout=10_000)
        assert "reversed: [false, true, false]" in (demo.data / "site.yaml").read_text(encoding="utf-8")
        assert errors == []
        ctx.close()
