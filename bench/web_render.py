"""Web UI benchmark (issue 16): time to a rendered overview with a warm server, and response sizes.

A real gateway reads the simulated test site over Modbus TCP on loopback (tests/web/liveserver.py);
Debian chromium (Playwright) opens the overview signed in, five times after one warm-up visit. Figures:

* ``overview_ms`` — navigation start to the overview drawn: the live table filled (a value in every
  circuit's power cell), the gauge and the live chart on canvas, the chart backfilled from history.
  Median and maximum of the runs. Target ≤ 1000 ms on this machine.
* ``baseline_ms`` — the same browser loading ``/static/favicon.svg`` (a static file, no script), in the
  same run: what the machine and the browser cost before the UI does anything.
* ``bytes`` — response sizes of what the overview loads (JSON bodies, the app's own scripts and CSS,
  and ECharts, uncompressed as served).

Usage: ``PYTHONPATH=src .venv/bin/python bench/web_render.py [--runs 5] [--width 1280]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.web.liveserver import LiveServer  # noqa: E402

from meterhub.web.auth import UserStore  # noqa: E402

PASSWORD = "bench password 1"
DRAWN = """() => {
  const cells = [...document.querySelectorAll('#ov-table td[data-live$="/active_power/total"]')];
  const chart = document.querySelector('#ov-chart canvas') && echarts.getInstanceByDom(document.querySelector('#ov-chart'));
  return cells.length > 0 && cells.every((c) => c.textContent !== '–') && !!document.querySelector('#ov-gauge canvas')
    && !!chart && chart.getOption().series[0].data.length > 1; }"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--width", type=int, default=1280)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LiveServer(Path(tmp)) as srv:
        UserStore(srv.data).add("bench", PASSWORD, "admin")
        time.sleep(6)  # a few flushes, so history has points to backfill from
        http = httpx.Client(base_url=srv.url)
        http.post("/api/v1/auth/login", json={"username": "bench", "password": PASSWORD}).raise_for_status()
        sizes = {
            path: len(http.get(path).content)
            for path in (
                "/api/v1/auth/me",
                "/api/v1/site",
                "/api/v1/circuits",
                "/api/v1/live",
                "/api/v1/site/today",
                "/static/js/main.js",
                "/static/css/app.css",
                "/vendor/echarts.min.js",
            )
        }
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            ctx = browser.new_context(viewport={"width": args.width, "height": 900})
            page = ctx.new_page()
            page.goto(f"{srv.url}/#/login")
            page.fill("#login-user", "bench")
            page.fill("#login-pass", PASSWORD)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector('#view[data-page="overview"] h1')
            overview: list[float] = []
            baseline: list[float] = []
            for run in range(args.runs + 1):
                t0 = time.perf_counter()
                page.goto(f"{srv.url}/static/favicon.svg")
                t1 = time.perf_counter()
                page.goto(f"{srv.url}/#/overview")
                page.wait_for_function(DRAWN, polling=20, timeout=30000)
                t2 = time.perf_counter()
                if run:  # the first visit warms caches and the server
                    baseline.append((t1 - t0) * 1000)
                    overview.append((t2 - t1) * 1000)
            browser.close()
    print(
        json.dumps(
            {
                "overview_ms": {"median": round(statistics.median(overview)), "max": round(max(overview))},
                "baseline_ms": {"median": round(statistics.median(baseline), 1)},
                "target_ms": 1000,
                "width": args.width,
                "runs": args.runs,
                "bytes": sizes,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
