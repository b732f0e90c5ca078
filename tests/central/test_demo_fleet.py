"""The issue's "done when": two ``meterhub demo --mqtt URL --site-id ID`` gateways appear in
``GET /api/v1/sites`` of ``meterhub central`` with fresh data, and the fleet page lists and compares them
in a real browser."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import Broker, free_port, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"


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
    procs = [
        _start(
            [
                "central",
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
            return {s["id"]: s for s in httpx.get(f"{url}/api/v1/sites", timeout=5).json()["sites"]}
        except (httpx.HTTPError, ValueError, KeyError):
            return {}

    try:
        ok = wait_until(
            lambda: (
                all(s.get("status") == "online" and s.get("power_w") is not None for s in sites().values())
                and set(sites()) == {"lab-a", "lab-b"}
            ),
            timeout=120,
            step=1,
        )
        assert ok, (sites(), (tmp_path / "central.log").read_text()[-2000:])
        for s in sites().values():
            assert float(str(s["age_s"])) < 30  # fresh: the demo publishes every 10 s
            assert int(str(s["circuits"])) >= 10  # the demo site's circuits
            assert float(str(s["power_w"])) > 0  # the demo's incomer (circuit 'grid') draws power
            assert s["backlog"] == 0  # from the gateway's diagnostic state (Home Assistant format)
        sync_api = pytest.importorskip("playwright.sync_api")
        if not Path(CHROMIUM).exists():
            pytest.skip("Debian chromium is not installed")
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(url + "/")
            page.wait_for_selector("#fleet-sites tr[data-site='lab-b']", timeout=15000)
            assert page.locator("#fleet-sites [data-status='online']").count() == 2
            assert page.locator("#fleet-compare tr[data-compare]").count() == 2
            page.click("[data-open='lab-a']")
            page.wait_for_selector("#fleet-site h3", timeout=10000)
            assert "grid" in page.locator("#fleet-site").inner_text()
            browser.close()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
