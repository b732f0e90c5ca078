"""The publish page in a real browser (Playwright driving Debian chromium) against a gateway whose publish
sink talks to a private Mosquitto; ``mosquitto_sub`` is the independent witness of the test message.

An admin sees each instance's state light (connected, down, disabled), the outbox backlog and the
cause of a failure, and sends a test message that the broker acknowledges; a reader sees the same
table without the button. The screenshot goes to ``test-artifacts/screenshots/publish.png``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from meterhub.bus import SinkKind
from meterhub.publish.sink import PublishSink
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.web.app import create_app

from .conftest import Broker, Subscriber, free_port
from .helpers import status_site

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "correct horse"


class Served:
    """The gateway's publish sink and web app on one event loop in a thread, uvicorn on a free port."""

    def __init__(self, tmp: Path, broker: Broker) -> None:
        cfg = status_site(broker.url)
        data = tmp / "data"
        self.gateway = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"))
        sink = self.gateway.sinks[SinkKind.PUBLISH]
        assert isinstance(sink, PublishSink)
        self.sink = sink
        self.app = create_app(self.gateway)
        self.app.state.auth.store.add("alice", PASSWORD, "admin")
        self.app.state.auth.store.add("rita", PASSWORD, "reader")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        await self.sink.start()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_config=None, access_log=False)
        self._server = uvicorn.Server(config)
        await self._server.serve()
        await self.sink.stop()

    def __enter__(self) -> Served:
        self._thread.start()
        deadline = time.monotonic() + 20
        while self._server is None or not self._server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(20)
        self.gateway.storage.close()


@pytest.fixture
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (make sysdeps)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _sign_in(browser, url: str, user: str):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport={"width": 1400, "height": 800})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{url}/#/login")
    page.fill("#login-user", user)
    page.fill("#login-pass", PASSWORD)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#who")).to_contain_text(user)
    return ctx, page, errors


def test_publish_page_shows_states_and_an_admin_sends_a_test_message(
    browser, tmp_path: Path, broker: Broker, subscribers: list[Subscriber]
) -> None:  # type: ignore[no-untyped-def]
    sub = Subscriber(broker.folder, broker.port, "meterhub/site-1/test")
    subscribers.append(sub)
    with Served(tmp_path, broker) as srv:
        ctx, page, errors = _sign_in(browser, srv.url, "alice")
        page.click('#nav a[data-page="publish"]')
        expect(page.locator("#view")).to_have_attribute("data-page", "publish")
        live = page.locator('tr[data-instance="live"]')
        nowhere = page.locator('tr[data-instance="nowhere"]')
        off = page.locator('tr[data-instance="off"]')
        # the page refreshes every 2 s: the lights settle without a reload
        expect(live.locator("[data-state]")).to_have_attribute("data-state", "connected", timeout=15_000)
        expect(live.locator("[data-state]")).to_have_text("connected")
        expect(nowhere.locator("[data-state]")).to_have_attribute("data-state", "down", timeout=15_000)
        expect(nowhere.locator('[data-cell="message"]')).to_contain_text("Connection refused")
        expect(off.locator("[data-state]")).to_have_text("disabled")
        expect(off.locator("button[data-test]")).to_be_disabled()
        expect(live.locator('[data-cell="backlog"]')).to_have_text("0")
        expect(live.locator('[data-cell="last"]')).to_have_text("never")

        live.locator("button[data-test]").click()
        result = live.locator('[data-result="live"]')
        expect(result).to_have_attribute("data-ack", "true", timeout=15_000)
        expect(result).to_contain_text("acknowledged")
        msgs = sub.wait_for(lambda m: len(m) >= 1)
        assert len(msgs) == 1 and msgs[0]["topic"] == "meterhub/site-1/test"
        assert f"Test message {msgs[0]['message_id']} to meterhub/site-1/test" in result.inner_text()
        # the test message counts as sent, and "last sent" is now a time
        expect(live.locator('[data-cell="sent"]')).to_have_text("1", timeout=10_000)
        expect(live.locator('[data-cell="last"]')).not_to_have_text("never")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "publish.png"), full_page=True)
        assert errors == []
        ctx.close()

        ctx, page, errors = _sign_in(browser, srv.url, "rita")
        page.goto(f"{srv.url}/#/publish")
        expect(page.locator('tr[data-instance="live"] [data-state]')).to_have_text("connected")
        assert page.locator("button[data-test]").count() == 0  # readers look, admins test
        assert errors == []
        ctx.close()
