"""Writable coils of the Modbus server: only the relays listed in ``modbus_server.relays``, switched
through meterhub's output control on the line that polls the module, read back, logged on the audit log.
A second, independent Modbus master reads the module's coil to see what it really holds."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from meterhub.checks import parse_site
from meterhub.config import ConfigError
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.profiles.schema import Function
from meterhub.runtime import Gateway
from meterhub.sim.base import SimContext
from meterhub.sim.modbus_server import modbus_simulator
from meterhub.sim.physics import SiteModel
from meterhub.storage import open_storage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def site(line: int, server: int) -> str:
    return f"""\
site: {{name: Relays}}
buses: [{{id: rs485, kind: modbus-tcp, port: {line}, timeout: 1}}]
devices:
  - {{id: vu, bus: rs485, unit: 1, profile: enertrek-v10, poll_interval: 5}}
  - {{id: dio1, bus: rs485, unit: 6, profile: enertrek-dio-4-2, poll_interval: 0.2}}
io:
  points:
    - {{id: fan, kind: relay, device: dio1, channel: 2}}
    - {{id: trip, kind: relay, device: dio1, channel: 1, mode: pulse, pulse_duration: 0.1}}
    - {{id: q1, kind: digital, device: dio1, channel: 1, function: breaker-of}}
modbus_server:
  tcp: {{host: 127.0.0.1, port: {server}}}
  relays: [fan]
"""


def test_a_bms_switches_a_configured_relay_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    line, port = free_port(), free_port()
    cfg = parse_site(site(line, port), "relays.yaml")
    model = SiteModel(cfg)

    async def go() -> dict[str, object]:
        sim = await modbus_simulator(SimContext(cfg, cfg.buses[0], cfg.devices, model))
        gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path, timezone="UTC"))
        await gw.start()
        witness = ModbusLink(TransportKind.TCP, port=line, timeout=1.0)  # an independent second master
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5)
        try:
            await asyncio.sleep(0.8)  # the relay's state has been polled
            await client.connect()
            out: dict[str, object] = {}
            out["before"] = (await client.read_coils(0, count=1, device_id=247)).bits[0]
            w = await client.write_coil(0, True, device_id=247)
            out["write"] = w.isError()
            out["module coil 2"] = (await witness.read(Function.COIL, 6, 1, 1))[0]  # channel 2 → coil 1
            out["after"] = (await client.read_coils(0, count=1, device_id=247)).bits[0]
            out["beyond"] = (await client.write_coil(1, True, device_id=247)).exception_code  # only coil 0
            out["registers"] = (await client.write_register(0, 1, device_id=247)).exception_code
            out["off"] = (await client.write_coil(0, False, device_id=247)).isError()
            out["module coil 2 off"] = (await witness.read(Function.COIL, 6, 1, 1))[0]
            return out
        finally:
            client.close()
            await witness.close()
            await gw.stop()
            await sim.close()

    with caplog.at_level(logging.INFO, logger="meterhub.audit"):
        out = asyncio.run(go())
    assert out == {
        "before": False,
        "write": False,
        "module coil 2": 1,
        "after": True,
        "beyond": 2,
        "registers": 1,
        "off": False,
        "module coil 2 off": 0,
    }
    audit = [r.getMessage() for r in caplog.records if r.name == "meterhub.audit"]
    assert audit == [  # the audit log's line (meterhub.storage.events), then the server's own
        "modbus-client relay.switch fan",
        "modbus_server: relay fan energised by a Modbus client (unit 247, coil 0); confirmed by read-back",
        "modbus-client relay.switch fan",
        "modbus_server: relay fan released by a Modbus client (unit 247, coil 0); confirmed by read-back",
    ]


def test_only_latched_relay_points_can_be_coils() -> None:
    text = site(1502, 1503).replace("relays: [fan]", "relays: [fan, trip, q1, nope]")
    with pytest.raises(ConfigError) as err:
        parse_site(text, "relays.yaml")
    assert [str(i) for i in err.value.issues] == [
        "relays.yaml:13: modbus_server.relays[1]: 'trip' is a pulse-mode relay; only latched relays can be "
        "coils (a coil holds a state)",
        "relays.yaml:13: modbus_server.relays[2]: 'q1' is a digital point; only latched relays can be coils "
        "(a coil holds a state)",
        "relays.yaml:13: modbus_server.relays[3]: unknown IO point 'nope' (relays are io: points of kind relay)",
    ]
