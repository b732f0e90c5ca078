"""The RTU slave on a serial line: a socat pty pair stands for the RS485 adapter; pysunspec2's RTU client
(its own framing over pyserial) scans the server through the other end. Parity N: a pty refuses the
termios parity flags (as in tests/drivers/modbus/test_peers.py)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sunspec2.modbus.client as sunspec_client
from pymodbus.client import ModbusSerialClient

from meterhub.model.quantities import Q
from meterhub.model.topology import Phase

from .conftest import SITE, Served, r, serve

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat")


@pytest.fixture
def ptys(tmp_path: Path) -> Iterator[tuple[str, str]]:
    a, b = tmp_path / "server", tmp_path / "client"
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (a.exists() and b.exists()):
            if time.monotonic() > deadline:
                raise RuntimeError("socat made no pty pair")
            time.sleep(0.02)
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def rtu_served(ptys: tuple[str, str]) -> Iterator[Served]:
    text = SITE.replace(
        "  tcp: {host: 127.0.0.1, port: 0}\n", f"  rtu: {{device: '{ptys[0]}', baud: 19200, parity: N}}\n"
    )
    s = serve(text)
    try:
        yield s
    finally:
        s.close()


def test_pysunspec2_scans_the_rtu_slave(rtu_served: Served, ptys: tuple[str, str]) -> None:
    rtu_served.publish(
        [r("grid", Q.ACTIVE_POWER, Phase.TOTAL, 1234.4), r("grid", Q.VOLTAGE, Phase.L1, 231.26)]
    )
    assert rtu_served.sink.endpoints[0].startswith("rtu://")
    dev = sunspec_client.SunSpecModbusClientDeviceRTU(
        slave_id=1, name=ptys[1], baudrate=19200, parity="N", timeout=2
    )
    try:
        dev.scan()
        meter = dev.models["ac_meter_abcn"][0]
        assert meter.W.cvalue == 1234 and meter.PhVphA.cvalue == pytest.approx(231.3)
    finally:
        dev.close()


def test_an_absent_rtu_address_stays_silent(rtu_served: Served, ptys: tuple[str, str]) -> None:
    c = ModbusSerialClient(ptys[1], baudrate=19200, parity="N", timeout=0.3, retries=0)
    try:
        assert c.connect()
        assert c.read_holding_registers(40000, count=2, device_id=3).registers == [0x5375, 0x6E53]
        with pytest.raises(Exception, match="(?i)no response|timeout|failed"):
            res = c.read_holding_registers(40000, count=2, device_id=99)
            raise AssertionError(f"unit 99 answered: {res}")
        assert c.read_holding_registers(40000, count=2, device_id=2).registers == [0x5375, 0x6E53]
    finally:
        c.close()
