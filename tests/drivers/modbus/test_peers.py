"""Independent peers: a vendor manual's example frames on a plain pymodbus server, Debian mbpoll
reading ``meterhub simulate``, and RTU over a socat pty pair (parity N)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from meterhub.drivers.modbus.reader import DeviceReader
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.model.topology import Phase
from meterhub.profiles import get_profile
from meterhub.sim.modbus_server import ProfileDevice, serve_devices
from meterhub.sim.physics import SiteModel

from .conftest import free_port

# KBR multicomp F144-MS manual V2.01, "Example Modbus RTU": the request and the meter's response.
KBR_REQUEST = bytes.fromhex("01 04 00 01 00 06 21 C8")
KBR_RESPONSE = bytes.fromhex("01 04 0C 43 6B 5A B4 42 DC 67 20 42 48 0C 63 AF 7C")


def test_reads_the_vendor_manual_example_from_a_plain_pymodbus_server():
    # the test's own server: pymodbus' datastore holding the manual's register image at input 1…6
    image = [0x436B, 0x5AB4, 0x42DC, 0x6720, 0x4248, 0x0C63]
    device = SimDevice(
        1,
        simdata=(
            [SimData(0, values=False, datatype=SimType.BITS)],
            [SimData(0, values=False, datatype=SimType.BITS)],
            [SimData(0, values=0, datatype=SimType.REGISTERS)],
            [SimData(1, values=image, datatype=SimType.REGISTERS)],
        ),
    )
    p = get_profile("kbr-multicomp-f144")
    port = free_port()

    async def go():
        server = ModbusTcpServer(device, framer=FramerType.RTU, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        link = ModbusLink(TransportKind.RTU_OVER_TCP, port=port, timeout=1.0)
        only_first_block = [pt for pt in p.points() if pt.address < 7]
        try:
            result = await DeviceReader("kbr", p, 1, points=only_first_block).read(link)
            return result, link.last_sent, link.last_received
        finally:
            await link.close()
            await server.shutdown()

    result, sent, received = asyncio.run(go())
    assert sent == KBR_REQUEST  # byte for byte the manual's request, CRC included
    assert received == KBR_RESPONSE  # and the manual's answer, CRC AF 7C included
    values = {(pt.quantity, pt.phase): v for pt, v in result.values.items()}
    # the manual prints the decoded values rounded to the digits shown
    assert values[("voltage", Phase.L1)] == pytest.approx(235.35, abs=0.005)
    assert values[("current", Phase.L1)] == pytest.approx(110.20, abs=0.005)
    assert values[("frequency", Phase.TOTAL)] == pytest.approx(50.012, abs=0.0005)


def _mbpoll(*args: str) -> list[float]:
    out = subprocess.run(["mbpoll", *args], capture_output=True, text=True, timeout=20, check=True).stdout
    return [float(v) for v in re.findall(r"^\[\d+\]:\s+(-?[0-9.]+(?:[eE][-+]?\d+)?)", out, re.MULTILINE)]


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="Debian package mbpoll (make deps)")
def test_mbpoll_reads_meterhub_simulate_at_the_eastron_documented_addresses(tmp_path):
    port = free_port()
    meterhub = str(Path(sys.executable).parent / "meterhub")
    cmd = [meterhub, "simulate", "eastron-sdm630", "--tcp", f"127.0.0.1:{port}", "--duration", "60"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"simulating on tcp://127.0.0.1:{port}" in line
        common = ["-m", "tcp", "-p", str(port), "-a", "1", "-B", "-1", "127.0.0.1"]
        volts = _mbpoll("-t", "3:float", "-r", "1", "-c", "3", *common)  # 30001…30006: U L1, L2, L3
        freq = _mbpoll("-t", "3:float", "-r", "71", "-c", "1", *common)  # 30071: frequency
        kwh = _mbpoll("-t", "3:float", "-r", "73", "-c", "1", *common)  # 30073: import kWh
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert len(volts) == 3 and all(200 < v < 260 for v in volts)  # 230 V ± the model's slow variation
    assert freq and 49.5 < freq[0] < 50.5
    assert kwh and 0 <= kwh[0] < 1.0  # a fresh simulated meter has counted well under 1 kWh
    assert proc.returncode == 0


@pytest.mark.skipif(shutil.which("socat") is None, reason="Debian package socat (make deps)")
def test_rtu_over_a_socat_pty_pair_parity_n(tmp_path: Path):
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    socat = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if a.exists() and b.exists():
                break
            time.sleep(0.05)
        clock_t = [1_790_000_000.0]
        model = SiteModel.single_meter("m", rated_power=6000.0, clock=lambda: clock_t[0])
        clock_t[0] += 30.0
        model.advance()
        p = get_profile("eastron-sdm630")

        async def go():
            srv = await serve_devices(
                {3: ProfileDevice("m", p, model)},
                kind=TransportKind.RTU,
                serial=str(a),
                baud=9600,
                parity="N",
            )
            link = ModbusLink(TransportKind.RTU, serial=str(b), baud=9600, parity="N", timeout=1.0)
            try:
                return await DeviceReader("m", p, 3).read(link), link.stats
            finally:
                await link.close()
                await srv.close()

        result, stats = asyncio.run(go())
    finally:
        socat.terminate()
        socat.wait(timeout=5)
    assert result.errors == []
    values = {(pt.quantity, pt.phase): v for pt, v in result.values.items()}
    ch = model.channel("m", 1)
    assert values[("current", Phase.L1)] == pytest.approx(ch.current, rel=2**-23)
    assert values[("energy_active_import", Phase.L1)] == pytest.approx(
        ch.energy["energy_active_import"], rel=2**-23
    )
    assert stats.requests == 4 and stats.timeouts == 0


@pytest.mark.skipif(shutil.which("socat") is None, reason="Debian package socat (make deps)")
def test_site_with_a_modbus_rtu_bus_is_simulated_and_read_through_the_registered_source(tmp_path: Path):
    from meterhub.config.loader import parse_config
    from meterhub.config.schema import BusKind
    from meterhub.drivers.base import SourceContext, source_factory
    from meterhub.sim.base import SimContext, simulator_factory

    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    socat = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    site = f"""
site: {{name: rtu}}
buses:
  - {{id: line, kind: modbus-rtu, serial: "{b}", baud: 9600, parity: N, timeout: 1.0}}
devices:
  - {{id: meter, bus: line, unit: 7, profile: eastron-sdm120}}
circuits:
  - {{id: boiler, device: meter, wiring: 1P2W}}
simulation:
  loads: {{boiler: {{model: constant, rated_power: 2000}}}}
"""
    cfg = parse_config(site)
    sim_bus = cfg.buses[0].model_copy(update={"serial": str(a)})  # the simulator sits on the other end
    try:
        for _ in range(100):
            if a.exists() and b.exists():
                break
            time.sleep(0.05)
        import meterhub.drivers.modbus
        import meterhub.sim.modbus_server  # noqa: F401 - registers the simulator

        model = SiteModel(cfg)

        async def go():
            sim_factory = simulator_factory(BusKind.MODBUS_RTU)
            src_factory = source_factory(BusKind.MODBUS_RTU)
            assert sim_factory is not None and src_factory is not None
            sim = await sim_factory(SimContext(cfg, sim_bus, cfg.devices, model))
            (src,) = src_factory(SourceContext(cfg, cfg.buses[0], cfg.devices, {}, tmp_path))
            got = []
            try:
                await asyncio.wait_for(src.run(got.extend), 3.0)
            except TimeoutError:
                pass
            finally:
                await src.close()
                await sim.close()
            return got

        got = asyncio.run(go())
    finally:
        socat.terminate()
        socat.wait(timeout=5)
    power = [
        r.value for r in got if r.circuit == "boiler" and r.quantity == "active_power" and r.phase is Phase.L1
    ]
    assert power and all(1000 < p < 3000 for p in power)  # a 2 kW constant load, read several times
    assert {r.quantity for r in got if r.circuit == "boiler"} >= {
        "voltage",
        "current",
        "energy_active_import",
    }


def test_meterhub_read_decodes_an_sdm630_register_image_from_a_plain_pymodbus_server_in_4_requests():
    """An SDM630 image laid out by hand from the Eastron input-register table (30001 = address 0 …),
    served by pymodbus' own datastore; ``meterhub read`` must decode it in ≤ 5 requests."""
    import json
    import struct

    def f32(v: float) -> list[int]:
        hi, lo = struct.unpack(">HH", struct.pack(">f", v))
        return [hi, lo]

    doc = {  # Eastron register number → value, as the manual lists them
        30001: 230.1,
        30003: 229.8,
        30005: 231.2,  # phase L-N volts
        30007: 10.5,
        30009: 9.75,
        30011: 11.25,  # phase currents
        30013: 2300.0,
        30015: 2150.0,
        30017: 2500.0,  # phase powers
        30053: 6950.0,  # total system power
        30071: 50.02,  # frequency
        30073: 12345.5,  # import kWh
        30201: 398.4,  # line 1 to line 2 volts
        30225: 1.25,  # neutral current
        30347: 4100.25,  # L1 import kWh
    }
    image = [0] * 400
    for reg, v in doc.items():
        a = reg - 30001
        image[a : a + 2] = f32(v)
    device = SimDevice(
        1,
        simdata=(
            [SimData(0, values=False, datatype=SimType.BITS)],
            [SimData(0, values=False, datatype=SimType.BITS)],
            [SimData(0, values=0, datatype=SimType.REGISTERS)],
            [SimData(0, values=image, datatype=SimType.REGISTERS)],
        ),
    )
    port = free_port()

    async def go():
        server = ModbusTcpServer(device, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        try:
            proc = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "meterhub"),
                "read",
                "eastron-sdm630",
                "--tcp",
                f"127.0.0.1:{port}",
                "--unit",
                "1",
                "--json",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            return proc.returncode, out.decode(), err.decode()
        finally:
            await server.shutdown()

    rc, out, err = asyncio.run(go())
    assert rc == 0, err
    result = json.loads(out)
    assert result["stats"]["requests"] <= 5
    v = {(r["quantity"], r["phase"]): r["value"] for r in result["readings"]}
    assert v[("voltage", "L1")] == pytest.approx(230.1, rel=1e-6)
    assert v[("current", "L3")] == pytest.approx(11.25)
    assert v[("active_power", "total")] == pytest.approx(6950.0)
    assert v[("frequency", "total")] == pytest.approx(50.02, rel=1e-6)
    assert v[("energy_active_import", "total")] == pytest.approx(12345.5 * 1000)  # kWh register → Wh
    assert v[("energy_active_import", "L1")] == pytest.approx(4100.25 * 1000)
    assert v[("voltage_line", "L1")] == pytest.approx(398.4, rel=1e-6)
    assert v[("current", "N")] == pytest.approx(1.25)
