"""Demand limiting benchmark: prints one JSON object.

The demo site's loads (``examples/demo-site.yaml``: 19 load models, the EV charger's 11 kW sessions) for
``--hours`` of simulated time at 1 s steps, the 15-min sliding demand (3 × 5 min) of the grid import
predicted by the energy stage's own demand meter, once uncontrolled (the baseline, same run) and once with
the demo's ``control.demand_limit`` (target 54 kW) pausing the EV charger through the audited control
path — the closed-loop simulation of ``tests/alarms/test_demand_limit.py``. Figures: the highest and mean
15-min demand of each [kW], how often the limiter switched (per hour), the EV charger's energy [kWh], and
the CPU time of the controlled run per simulated hour [s].

Usage: ``PYTHONPATH=src .venv/bin/python bench/demand_limit.py [--hours 2]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path

from meterhub.checks import load_site

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=2.0)
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("closed_loop", ROOT / "tests/alarms/test_demand_limit.py")
    assert spec is not None and spec.loader is not None
    loop = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loop)
    cfg = load_site(ROOT / "examples/demo-site.yaml")
    seconds = int(args.hours * 3600)
    out: dict[str, object] = {"hours": args.hours, "target_kw": 54.0}
    for name, limit in (("uncontrolled", False), ("limited", True)):
        t0 = time.process_time()
        r = loop.simulate(cfg, seconds, limit=limit)
        cpu = time.process_time() - t0
        w = [x / 1000.0 for x in r["windows"]]
        out[name] = {
            "max_15min_kw": round(max(w), 2),
            "mean_15min_kw": round(statistics.fmean(w), 2),
            "windows": len(w),
            "switches_per_hour": round(r["switches"] / args.hours, 1),
            "ev_kwh": round(r["ev_energy"] / 1000.0, 2),
            "cpu_s_per_sim_hour": round(cpu / args.hours, 3),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
