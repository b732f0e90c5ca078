"""``meterhub simulate dlms-meter --iec-tcp`` in one process, ``meterhub read iec62056-21`` in another."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

MH = str(Path(sys.executable).parent / "meterhub")
ENV = {**os.environ, "COLUMNS": "200"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MH, *args], capture_output=True, text=True, timeout=60, env=ENV)


@pytest.mark.slow
def test_read_iec62056_21_of_the_simulated_meter_in_json() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [MH, "simulate", "dlms-meter", "--iec-tcp", f"127.0.0.1:{port}", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert (
            first == f"simulating dlms-meter (IEC 62056-21 mode C, mode E → HDLC) on tcp://127.0.0.1:{port}"
        )
        r = _run("read", "iec62056-21", "--tcp", f"127.0.0.1:{port}", "--json")
        table = _run("read", "iec62056-21", "--tcp", f"127.0.0.1:{port}", "--stats")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["meter"] == {
        "manufacturer": "MHB",
        "identification": "MH-1P-IEC-SIM",
        "mode": "C",
        "mode_e": True,
        "baud": 9600,
        "serial_number": "20260002",
    }
    rows = {row["address"]: row for row in doc["data"]}
    energy = rows["1.8.0"]
    assert energy["unit"] == "kWh" and energy["quantity"] == "energy_active_import"
    assert energy["catalogue_unit"] == "Wh"
    assert energy["catalogue_value"] == float(energy["value"]) * 1000  # kWh → Wh
    assert rows["32.7.0"]["quantity"] == "voltage" and rows["32.7.0"]["phase"] == "L1"
    assert doc["refused"] == []
    # request 5 + ACK 6 bytes sent; what was received at 300 and 9600 bd sets the physical minimum
    assert doc["stats"]["bytes_sent"] == 11
    assert table.returncode == 0, table.stderr
    assert "mode C (mode E offered)  data at 9600 bd  serial 20260002" in table.stdout
    assert "11 bytes sent" in table.stdout


def test_read_iec62056_21_with_nothing_listening_is_a_device_error() -> None:
    port = _free_port()
    r = _run("read", "iec62056-21", "--tcp", f"127.0.0.1:{port}", "--timeout", "0.3")
    assert r.returncode == 1
    assert r.stderr.startswith(f"error: tcp://127.0.0.1:{port}: ")
    assert "Traceback" not in r.stderr


def test_cli_refuses_what_does_not_apply() -> None:
    r = _run("read", "iec62056-21", "--tcp", "127.0.0.1:1", "--unit", "3")
    assert r.returncode == 2 and "7E1 line" in r.stderr
    r = _run("simulate", "dlms-meter", "--duration", "0")
    assert r.returncode == 2 and "give --tcp HOST:PORT (DLMS wrapper, port 4059)" in r.stderr
    r = _run("simulate", "eastron-sdm630", "--iec-tcp", "127.0.0.1:1", "--duration", "0")
    assert (
        r.returncode == 2
        and "--iec-tcp and --hdlc-tcp are options of 'meterhub simulate dlms-meter' only" in r.stderr
    )


@pytest.mark.slow
def test_read_dlms_of_the_simulated_meter_with_lls() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [MH, "simulate", "dlms-meter", "--tcp", f"127.0.0.1:{port}", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        assert (
            proc.stdout.readline().strip()
            == f"simulating dlms-meter (DLMS/COSEM wrapper) on tcp://127.0.0.1:{port}"
        )
        env = {**ENV, "READER_PW": "22222222", "BAD_PW": "nope"}
        args = ["read", "dlms", "--tcp", f"127.0.0.1:{port}", "--client-sap", "17"]
        r = subprocess.run(
            [MH, *args, "--password-env", "READER_PW", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        bad = subprocess.run(
            [MH, *args, "--password-env", "BAD_PW"], capture_output=True, text=True, timeout=60, env=env
        )
        public = _run("read", "dlms", "--tcp", f"127.0.0.1:{port}", "--json")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["meter"]["serial_number"] == "20260002"
    regs = {x["logical_name"]: x for x in doc["registers"]}
    assert (
        regs["1.0.1.8.0.255"]["unit"] == "Wh" and regs["1.0.1.8.0.255"]["quantity"] == "energy_active_import"
    )
    assert regs["1.0.32.7.0.255"]["unit"] == "V" and 200 < regs["1.0.32.7.0.255"]["value"] < 260
    assert regs["1.0.13.7.0.255"]["value"] == 0.95  # raw 950 × 10^-3
    assert bad.returncode == 2 and bad.stderr.strip().endswith("association refused: authentication failure")
    assert (
        public.returncode == 0 and json.loads(public.stdout)["registers"] == []
    )  # the public client reads no registers
