"""Issue 17's acceptance: ``meterhub demo --fault hvac:reverse:L2 --fault kitchen:swap:L1,L3`` → the API
names exactly those two faults with their fixes within two minutes, every other circuit ``ok`` or
``insufficient-load``; applying the fixes turns both ``ok``. Everything travels the real protocols: the
hvac and kitchen modules (M30) are read over Modbus TCP from the simulator, whose wiring is faulty."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .conftest import FaultyDemo

pytestmark = pytest.mark.slow

EXPECTED = {"hvac": ["hvac:reversed-ct:L2"], "kitchen": ["kitchen:phase-mapping:L1,L3"]}


def wait_for(demo: FaultyDemo, done, timeout: float) -> tuple[dict[str, dict], float]:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while True:
        report = demo.report()
        if done(report):
            return report, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(
                {k: (v["verdict"], [f["id"] for f in v["findings"]], v["note"]) for k, v in report.items()}
            )
        time.sleep(2)


def test_demo_faults_are_named_fixed_and_rechecked(tmp_path: Path) -> None:
    with FaultyDemo(tmp_path / "demo", ["hvac:reverse:L2", "kitchen:swap:L1,L3"]) as demo:
        report, took = wait_for(
            demo,
            lambda r: all([f["id"] for f in r[c]["findings"]] == ids for c, ids in EXPECTED.items()),
            120.0,
        )
        assert took < 120.0
        for cid, c in report.items():
            if cid not in EXPECTED:
                assert c["verdict"] in ("ok", "insufficient-load"), (cid, c)
        hvac = report["hvac"]["findings"][0]
        assert hvac["fix"]["patch"] == {"reversed": [False, True, False]}
        assert hvac["fix"]["text"].startswith("invert the CT on L2")
        assert hvac["evidence"]["angle"] == pytest.approx(31.8 - 180.0, abs=3.0)  # PF 0.85 lagging, turned
        kitchen = report["kitchen"]["findings"][0]
        assert kitchen["fix"]["patch"] == {"phases": ["L3", "L2", "L1"]}
        assert "swap channels 1 and 3" in kitchen["fix"]["text"]

        for finding in ("hvac:reversed-ct:L2", "kitchen:phase-mapping:L1,L3"):
            r = demo.client.post("/api/v1/commissioning/fix", json={"finding": finding})
            assert r.status_code == 200, r.text
        site = (demo.data / "site.yaml").read_text(encoding="utf-8")
        assert "reversed: [false, true, false]" in site and "phases: [L3, L2, L1]" in site
        # the compressor of the HVAC model runs 60 % of its 4-minute cycle: allow one cycle
        report, _ = wait_for(demo, lambda r: r["hvac"]["verdict"] == r["kitchen"]["verdict"] == "ok", 300.0)
        assert report["hvac"]["findings"] == report["kitchen"]["findings"] == []
