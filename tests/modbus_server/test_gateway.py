"""The Modbus gateway (``modbus_gateway:``): a pymodbus client reads a simulated meter through the
gateway's TCP port while meterhub polls the same slow line — no collision, both right."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from meterhub.checks import parse_site
from meterhub.config import ConfigError
from meterhub.errors import ConfigurationError
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Function
from meterhub.runtime import Gateway
from meterhub.sim.modbus_server import Framing, ProfileDevice, serve_devices
from meterhub.sim.physics import SiteModel
from meterhub.storage import open_storage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def site(line: int, gateway: int) -> str:
    return f"""\
site: {{name: Lab}}
buses:
  - {{id: line, kind: modbus-rtu-over-tcp, port: {line}, timeout: 0.5}}
  - {{id: io, kind: io}}
devices:
  - {{id: m, bus: line, unit: 3, profile: eastron-sdm630, poll_interval: 0.05}}
circuits:
  - {{id: m, device: m, channels: [1, 2, 3], wiring: 3P4W}}
modbus_gateway:
  tcp: {{host: 127.0.0.1, port: {gateway}}}
  routes:
    - {{unit: 13, bus: line, address: 3}}
    - {{unit: 14, bus: line}}
"""


def test_a_client_reads_through_the_gateway_while_meterhub_polls_the_same_line(tmp_path: Path) -> None:
    line, gw_port = free_port(), free_port()
    cfg = parse_site(site(line, gw_port), "lab.yaml")
    model = SiteModel.single_meter("m", rated_power=6000.0, clock=lambda: 1_790_000_030.0)
    model.advance()
    device = ProfileDevice("m", get_profile("eastron-sdm630"), model)
    expected = device.registers(Function.INPUT, 0, 12)
    assert isinstance(expected, list)

    async def go() -> tuple[list[list[int]], dict[str, int], int, int]:
        # a 19200-baud RS485 line behind a transparent converter: every exchange takes its wire time
        sim = await serve_devices({3: device}, kind=Framing.RTU_OVER_TCP, port=line, line_baud=19200)
        gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path, timezone="UTC"))
        await gw.start()
        try:
            assert (
                gw.modbus_gateway is not None and gw.modbus_gateway.endpoint == f"tcp://127.0.0.1:{gw_port}"
            )
            await asyncio.sleep(0.5)
            polls_before = gw.status["m"].requests
            client = AsyncModbusTcpClient("127.0.0.1", port=gw_port, timeout=3)
            await client.connect()
            answers = []
            for _ in range(20):
                rr = await client.read_input_registers(0, count=12, device_id=13)
                assert not rr.isError(), rr
                answers.append(list(rr.registers))
            codes = {
                "write": (await client.write_register(0, 1, device_id=13)).exception_code,
                "no route": (await client.read_input_registers(0, count=2, device_id=99)).exception_code,
                "silent": (await client.read_input_registers(0, count=2, device_id=14)).exception_code,
                "unmapped": (await client.read_input_registers(9000, count=2, device_id=13)).exception_code,
            }
            client.close()
            polls = gw.status["m"].requests - polls_before
            health = gw.health()["service:modbus_gateway"]
            assert health.counters["forwarded"] == 20 and health.counters["timeouts"] == 1
            return answers, codes, polls, gw.status["m"].errors + gw.status["m"].timeouts
        finally:
            await gw.stop()
            await sim.close()

    answers, codes, polls, poll_failures = asyncio.run(go())
    assert all(a == expected for a in answers)  # every forwarded answer is the meter's registers
    assert codes == {"write": 1, "no route": 0x0A, "silent": 0x0B, "unmapped": 2}
    assert polls >= 5  # meterhub kept polling meanwhile …
    assert poll_failures == 0  # … and never saw a collision, a timeout or a bad frame


def test_routes_must_name_a_modbus_bus_and_route_each_unit_once() -> None:
    text = site(1502, 1503).replace(
        "    - {unit: 14, bus: line}\n",
        "    - {unit: 14, bus: io}\n    - {unit: 13, bus: lien}\n",
    )
    with pytest.raises(ConfigError) as err:
        parse_site(text, "lab.yaml")
    assert [str(i) for i in err.value.issues] == [
        "lab.yaml:13: modbus_gateway.routes[1].bus: bus 'io' is not a Modbus line; the gateway forwards "
        "Modbus requests only",
        "lab.yaml:14: modbus_gateway.routes[2].bus: unknown bus 'lien' (Modbus buses: line)",
        "lab.yaml:14: modbus_gateway.routes[2].unit: unit 13 is already routed by routes[0]",
    ]


def test_a_gateway_port_in_use_stops_the_start_and_flushes(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = parse_site(site(free_port(), taken.getsockname()[1]), "lab.yaml")

        async def go() -> Gateway:
            gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path, timezone="UTC"))
            with pytest.raises(
                ConfigurationError, match="modbus_gateway.tcp: port 127.0.0.1:.* is already in use"
            ):
                await gw.start()
            return gw

        gw = asyncio.run(go())
    assert gw.sources == []  # the sources started before the failure were stopped again


def test_with_a_cache_a_read_polled_moments_ago_is_answered_without_the_line(tmp_path: Path) -> None:
    line, gw_port = free_port(), free_port()
    text = site(line, gw_port).replace("poll_interval: 0.05", "poll_interval: 0.2") + "  cache_max_age: 5\n"
    cfg = parse_site(text, "lab.yaml")
    model = SiteModel.single_meter("m", rated_power=6000.0, clock=lambda: 1_790_000_030.0)
    model.advance()
    device = ProfileDevice("m", get_profile("eastron-sdm630"), model)
    expected = device.registers(Function.INPUT, 0, 12)

    async def go() -> tuple[list[int], dict[str, int]]:
        sim = await serve_devices({3: device}, kind=Framing.RTU_OVER_TCP, port=line)
        gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path, timezone="UTC"))
        await gw.start()
        try:
            await asyncio.sleep(0.6)  # polled at least once
            client = AsyncModbusTcpClient("127.0.0.1", port=gw_port, timeout=3)
            await client.connect()
            rr = await client.read_input_registers(0, count=12, device_id=13)
            unmapped = (await client.read_input_registers(9000, count=2, device_id=13)).exception_code
            client.close()
            assert gw.modbus_gateway is not None
            counters = gw.modbus_gateway.health().counters
            return list(rr.registers), {**counters, "unmapped": unmapped}
        finally:
            await gw.stop()
            await sim.close()

    registers, counters = asyncio.run(go())
    assert registers == expected
    assert counters["cached"] == 1  # from the poll's values …
    assert (
        counters["exceptions"] == 1 and counters["unmapped"] == 2
    )  # … what was never polled asks the device
