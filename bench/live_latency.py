"""Live latency and gateway memory with 100 circuits updating at 1 Hz (issue 6 benchmark).

Three processes, as in production: ``meterhub simulate`` serves five seed-000 module buses (one V10
voltage unit and five M40 four-channel modules each: 5 × 20 = 100 circuits) over Modbus TCP on
loopback; ``meterhub run`` is the gateway polling every device at 1 Hz and serving the web UI;
Debian chromium (Playwright) shows the overview page with all 100 circuits.

latency : from the moment the gateway read a value from the simulated device (the reading's ``ts``)
          until the overview table cell showing it changed in the browser DOM (MutationObserver).
          Baseline in the same run: until the WebSocket message reached the page's script
          (``ws``), so ``dom − ws`` is the UI's own cost.
memory  : resident set size of the gateway process (VmRSS, VmHWM from /proc) after the run.
          Baseline in the same run: a Python process that only imports meterhub's runtime and web app.

Prints one JSON object. Usage: ``.venv/bin/python bench/live_latency.py [--seconds 30]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
BUSES, MODULES, CHANNELS = 5, 5, 4  # 5 buses × 5 M40 × 4 channels = 100 circuits
LOADS = ["lighting", "it", "hvac", "heater", "kitchen", "motor", "constant"]

OBSERVER_JS = """
async () => {
  const live = await import("/static/js/live.js");
  window.__dom = []; window.__ws = [];
  live.subscribe((changed, readings) => {
    const now = Date.now();
    for (const r of readings) if (r.quantity === "active_power" && r.phase === "total") window.__ws.push(now - Date.parse(r.ts));
  });
  const obs = new MutationObserver((mutations) => {
    const now = Date.now();
    const seen = new Set();
    for (const m of mutations) {
      const td = m.target.nodeType === 3 ? m.target.parentElement : m.target;
      const k = td && td.dataset ? td.dataset.live : null;
      if (!k || !k.endsWith("/active_power/total") || seen.has(k)) continue;
      seen.add(k);
      const [c, q, p] = k.split("/");
      const r = live.reading(c, q, p);
      if (r) window.__dom.push(now - Date.parse(r.ts));
    }
  });
  obs.observe(document.querySelector("#ov-table"), { subtree: true, childList: true, characterData: true });
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def site_yaml(web_port: int) -> str:
    lines = [
        "site: {name: Latency bench (100 circuits), timezone: UTC}",
        "buses:",
    ]
    lines += [
        f"  - {{id: bus{b}, kind: modbus-tcp, port: {free_port()}, timeout: 0.5}}" for b in range(BUSES)
    ]
    lines.append("devices:")
    for b in range(BUSES):
        lines.append(f"  - {{id: vu{b}, bus: bus{b}, unit: 1, profile: enertrek-v10, poll_interval: 1.0}}")
        for m in range(MODULES):
            lines.append(
                f"  - {{id: m{b}-{m}, bus: bus{b}, unit: {m + 2}, profile: enertrek-m40, poll_interval: 1.0}}"
            )
    lines.append("circuits:")
    loads = []
    for b in range(BUSES):
        for m in range(MODULES):
            for ch in range(1, CHANNELS + 1):
                cid = f"c{b}-{m}-{ch}"
                phase = ("L1", "L2", "L3")[(m * CHANNELS + ch) % 3]
                lines.append(
                    f"  - {{id: {cid}, device: m{b}-{m}, channels: [{ch}], wiring: 1P2W, phases: [{phase}], "
                    f"voltage_reference: vu{b}}}"
                )
                model = LOADS[(b * 20 + m * 4 + ch) % len(LOADS)]
                loads.append(
                    f"    {cid}: {{model: {model}, rated_power: {1000 + 150 * ch + 90 * m}, period: 30, seed: {b * 20 + m * 4 + ch}}}"
                )
    lines += [f"web: {{port: {web_port}, public_live: true}}", "simulation:", "  loads:", *loads]
    return "\n".join(lines) + "\n"


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process [MB]."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def baseline_rss_mb() -> float:
    code = (
        "import meterhub.runtime, meterhub.web.app, meterhub.storage, meterhub.drivers.modbus;"
        "from pathlib import Path;"
        "print([l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmRSS')][0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out.split()[1]) / 1024


def wait_for(url: str, ok, timeout: float) -> object:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    last: object = None
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                last = json.loads(r.read())
                if ok(last):
                    return last
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout} s; last answer: {str(last)[:300]}")


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values) / 1000.0, q)), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="measurement window [s]")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="meterhub-bench-"))
    port = free_port()
    site = tmp / "site.yaml"
    site.write_text(site_yaml(port))
    procs: list[subprocess.Popen[bytes]] = []
    log = (tmp / "processes.log").open("wb")
    try:
        sim = subprocess.Popen([str(BIN / "meterhub"), "simulate", str(site)], stdout=log, stderr=log)
        procs.append(sim)
        time.sleep(2.0)
        gw = subprocess.Popen(
            [
                str(BIN / "meterhub"),
                "run",
                "--config",
                str(site),
                "--data",
                str(tmp / "data"),
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=log,
        )
        procs.append(gw)
        url = f"http://127.0.0.1:{port}"
        wait_for(
            f"{url}/api/v1/live",
            lambda d: len({r["circuit"] for r in d["readings"] if r["quantity"] == "active_power"}) >= 100,
            90,
        )
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{url}/#/overview")
            page.wait_for_selector("#ov-table td[data-live]")
            page.evaluate(OBSERVER_JS)
            page.wait_for_timeout(args.seconds * 1000)
            dom: list[float] = page.evaluate("window.__dom")
            ws: list[float] = page.evaluate("window.__ws")
            browser.close()
        health = json.loads(urllib.request.urlopen(f"{url}/api/v1/health", timeout=5).read())
        rss, hwm = rss_mb(gw.pid)
        result = {
            "benchmark": "live_latency",
            "circuits": health["circuits"],
            "devices_online": health["devices_online"],
            "poll_interval_s": 1.0,
            "window_s": args.seconds,
            "latency_dom_s": {
                "p50": pct(dom, 50),
                "p99": pct(dom, 99),
                "max": pct(dom, 100),
                "samples": len(dom),
            },
            "baseline_latency_ws_s": {
                "p50": pct(ws, 50),
                "p99": pct(ws, 99),
                "max": pct(ws, 100),
                "samples": len(ws),
            },
            "gateway_rss_mb": round(rss, 1),
            "gateway_peak_rss_mb": round(hwm, 1),
            "baseline_rss_mb_imports_only": round(baseline_rss_mb(), 1),
            "targets": {"latency_dom_p99_s": 0.5, "gateway_rss_mb": 120},
            "meets_targets": pct(dom, 99) <= 0.5 and rss <= 120,
            "browser_console_errors": len(errors),
        }
        print(json.dumps(result, indent=1))
    finally:
        for pr in reversed(procs):
            pr.terminate()
        for pr in reversed(procs):
            try:
                pr.wait(20)
            except subprocess.TimeoutExpired:
                pr.kill()
        log.close()
        if os.environ.get("KEEP_BENCH_DIR"):
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
