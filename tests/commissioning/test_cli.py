"""``meterhub commission`` as a user runs it (a subprocess: exit codes and output as printed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meterhub", "commission", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )


def test_fault_without_demo_is_refused(tmp_path: Path) -> None:
    r = run("--config", str(DEMO), "--data", str(tmp_path), "--fault", "hvac:reverse:L2")
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --fault simulates wiring faults and needs --demo"


def test_fault_on_an_unknown_circuit_is_refused(tmp_path: Path) -> None:
    r = run("--config", str(DEMO), "--data", str(tmp_path), "--demo", "--fault", "sauna:reverse:L1")
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --fault: fault 'sauna:reverse:L1': no circuit 'sauna'"
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_commission_names_the_swapped_kitchen_cts(tmp_path: Path) -> None:
    r = run("--config", str(DEMO), "--data", str(tmp_path), "--demo", "--fault", "kitchen:swap:L1,L3",
            "--duration", "60", "--json", timeout=180)  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = {c["id"]: c for c in json.loads(r.stdout)["circuits"]}
    assert [f["id"] for f in report["kitchen"]["findings"]] == ["kitchen:phase-mapping:L1,L3"]
    assert report["kitchen"]["patch"] == {"phases": ["L3", "L2", "L1"]}
    assert all(c["verdict"] in ("ok", "insufficient-load") for cid, c in report.items() if cid != "kitchen")
    assert (tmp_path / "commissioning").is_dir()  # scratch data, apart from the gateway's
