"""The issue's "done when": two ``meterhub demo --mqtt URL --site-id ID`` gateways appear in
``GET /api/v1/sites`` of ``meterhub central`` with fresh data, and the fleet page lists and compares them
in a real browser."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from meterhub.web.auth import UserStore

from .conftest import Broker, free_port, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
SILENT_AFTER = 25  # [s] central.yaml silent_after of this test (the demo publishes every 10 s)


def _env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "meterhub", *args], env=_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def test_two_demo_gateways_appear_in_the_fleet_with_fresh_data(
    broker: Broker, dsn: str, tmp_path: Path
) -> None:
    port = free_port()
    # central's users (the gateway's auth, in central's data folder): a reader with a password and a token
    users = UserStore(tmp_path / "central")
    users.add("rex", "correct horse", "reader")
    _, token = users.create_token("rex", "test")
    auth = {"Authorization": f"Bearer {token}"}
    config = tmp_path / "central.yaml"
    config.write_text(f"silent_after: {SILENT_AFTER}\n")
    procs = [
        _start(
            [
                "central",
                "--config",
                str(config),
                "--mqtt",
                broker.url,
                "--dsn",
                dsn,
                "--port",
                str(port),
                "--data",
                str(tmp_path / "central"),
            ],
            tmp_path / "central.log",
        )
    ]
    for site in ("lab-a", "lab-b"):
        procs.append(
            _start(
                [
                    "demo",
                    "--port",
                    str(free_port()),
                    "--data",
                    str(tmp_path / site),
                    "--mqtt",
                    broker.url,
                    "--site-id",
                    site,
                ],
                tmp_path / f"{site}.log",
            )
        )
    url = f"http://127.0.0.1:{port}"

    def sites() -> dict[str, dict[str, object]]:
        try:
            answer = httpx.get(f"{url}/api/v1/sites", headers=auth, timeout=5)
            return {s["id"]: s for s in answer.json()["sites"]}
        except (httpx.HTTPError, ValueError, KeyError):
            return {}

    try:

        def both_online() -> bool:  # one answer: all() of an empty answer (API not up yet) is True
            now = sites()
            return set(now) == {"lab-a", "lab-b"} and all(
                s.get("status") == "online" and s.get("power_w") is not None for s in now.values()
            )

        ok = wait_until(both_online, timeout=120, step=1)
        assert ok, (sites(), (tmp_path / "central.log").read_text()[-2000:])
        # the gateways' outboxes drain: backlog from their diagnostic state (Home Assistant format), sent with
        # every interval; under load a state may be taken while an interval waits for its acknowledgement
        drained = wait_until(
            lambda: [s.get("backlog") for s in sites().values()] == [0, 0], timeout=60, step=1
        )
        assert drained, sites()
        for s in sites().values():
            assert float(str(s["age_s"])) < 30  # fresh: the demo publishes every 10 s
            assert int(str(s["circuits"])) >= 10  # the demo site's circuits
            assert float(str(s["power_w"])) > 0  # the demo's incomer (circuit 'grid') draws power
            assert s["alarms"] == []
        assert httpx.get(f"{url}/api/v1/sites", timeout=5).status_code == 401  # no user, no fleet
        sync_api = pytest.importorskip("playwright.sync_api")
        if not Path(CHROMIUM).exists():
            pytest.skip("Debian chromium is not installed")
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(url + "/")
            page.fill("#fleet-login [name=username]", "rex")
            page.fill("#fleet-login [name=password]", "correct horse")
            page.click("#fleet-login button")
            page.wait_for_selector("#fleet-sites tr[data-site='lab-b']", timeout=15000)
            assert page.locator("#fleet-sites [data-status='online']").count() == 2
            assert page.locator("#fleet-compare tr[data-compare]").count() == 2
            page.click("[data-open='lab-a']")
            page.wait_for_selector("#fleet-site h3", timeout=10000)
            assert "grid" in page.locator("#fleet-site").inner_text()
            # lab-b stops (a clean stop: its status topic says offline): gateway_offline at once, and
            # site_silent once no message came for silent_after
            stopped = time.monotonic()
            procs[2].send_signal(signal.SIGTERM)
            procs[2].wait(30)

            def kinds() -> list[str]:
                alarms = (sites().get("lab-b") or {}).get("alarms")
                return [str(a["kind"]) for a in alarms] if isinstance(alarms, list) else []

            assert wait_until(lambda: "site_silent" in kinds(), timeout=SILENT_AFTER + 30, step=1), sites()
            assert (
                time.monotonic() - stopped <= SILENT_AFTER + 15
            )  # the last message came ≤ 10 s before the stop
            assert kinds() == ["gateway_offline", "site_silent"]
            assert sites()["lab-b"]["status"] == "offline" and sites()["lab-a"]["alarms"] == []
            page.reload()
            page.wait_for_selector(
                "#fleet-sites tr[data-site='lab-b'] [data-alarm='site_silent']", timeout=15000
            )
            assert page.locator("#fleet-sites tr[data-site='lab-a'] [data-alarm]").count() == 0
            browser.close()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
