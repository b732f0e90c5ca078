"""The acquisition CLI end to end: ``meterhub simulate`` in one process, ``read``/``scan``/``profiles``
in another, over loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .conftest import SMALL_SITE, free_port

MH = str(Path(sys.executable).parent / "meterhub")
ENV = {**os.environ, "COLUMNS": "200"}


@contextmanager
def simulate(*args: str) -> Iterator[list[str]]:
    proc = subprocess.Popen(
        [MH, "simulate", *args, "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip()]
        assert lines[0].startswith("simulating on"), lines
        yield lines
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MH, *args], capture_output=True, text=True, timeout=60, env=ENV)


def test_read_sdm630_json_in_four_requests_with_exact_byte_count():
    port = free_port()
    with simulate("eastron-sdm630", "--tcp", f"127.0.0.1:{port}"):
        r = run("read", "eastron-sdm630", "--tcp", f"127.0.0.1:{port}", "--unit", "1", "--json", "--stats")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    # 4 block reads (80 + 12 + 70 + 12 registers): 4 × 12 request bytes + Σ(9 + 2n) response bytes
    assert doc["stats"] == {"requests": 4, "bytes": 4 * 12 + (9 + 160) + (9 + 24) + (9 + 140) + (9 + 24)}
    by_key = {(x["quantity"], x["phase"]): x for x in doc["readings"]}
    assert set(doc["readings"][0]) == {"quantity", "phase", "value", "unit"}
    assert by_key[("voltage", "L1")]["unit"] == "V" and 200 < by_key[("voltage", "L1")]["value"] < 260
    assert by_key[("energy_active_import", "total")]["unit"] == "Wh"  # kWh register, catalogue unit
    assert by_key[("frequency", "total")]["value"] > 49


def test_scan_identifies_a_simulated_site_bus(tmp_path):
    port = free_port()
    site = tmp_path / "site.yaml"
    site.write_text(SMALL_SITE.replace("PORT", str(port)))
    with simulate(str(site)):
        r = run("scan", "--tcp", f"127.0.0.1:{port}", "--units", "1-5", "--json", "--timeout", "1.0")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {d["unit"]: d["profile"] for d in doc["devices"]} == {
        1: "enertrek-v10",
        2: "enertrek-m30",
        3: "enertrek-m20",
    }
    assert doc["silent"] == 2 and doc["duplicates"] == []
    assert doc["module_bus"]["1"]["modules"] == 3


def test_profiles_list_and_show():
    r = run("profiles", "list", "--json")
    assert r.returncode == 0, r.stderr
    rows = {p["id"]: p for p in json.loads(r.stdout)["profiles"]}
    assert rows["eastron-sdm630"]["requests"] == 4 and rows["eastron-sdm630"]["values"] == 58
    assert len([p for p in rows.values() if not p["id"].startswith(("enertrek-", "pulse-"))]) >= 15
    r = run("profiles", "show", "eastron-sdm630")
    assert r.returncode == 0
    assert "read plan: 4 request(s): input 0+80, input 80+12, input 200+70, input 346+12" in r.stdout


def test_read_from_nowhere_fails_cleanly():
    r = run("read", "eastron-sdm630", "--tcp", f"127.0.0.1:{free_port()}", "--timeout", "0.3")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "cannot connect" in r.stderr
