"""A BMS switching relays through the Modbus server goes through the audited control path: its writes
are audit entries of actor ``modbus-client``, and an interlock refuses one with Modbus exception 04."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient

from meterhub.checks import parse_site
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.model.audit import AuditEntry
from meterhub.profiles.schema import Function
from meterhub.runtime import Gateway
from meterhub.sim.base import SimContext
from meterhub.sim.modbus_server import modbus_simulator
from meterhub.sim.physics import SiteModel
from meterhub.storage import open_storage

SITE = """\
site: {name: BMS relays}
buses: [{id: rs485, kind: modbus-tcp, port: LINE, timeout: 1}]
devices:
  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10, poll_interval: 5}
  - {id: dio1, bus: rs485, unit: 6, profile: enertrek-dio-4-2, poll_interval: 0.2}
io:
  points:
    - {id: horn, kind: relay, device: dio1, channel: 1}
    - {id: fan, kind: relay, device: dio1, channel: 2}
    - {id: q1, kind: digital, device: dio1, channel: 1, function: breaker-of}
modbus_server:
  tcp: {host: 127.0.0.1, port: SERVER}
  relays: [fan, horn]
control:
  interlocks: [{point: horn, requires: q1, state: off}]   # q1 (breaker closed) is on in the simulator
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_bms_relay_write_is_audited_and_an_interlock_refuses_one(tmp_path: Path) -> None:
    line, port = free_port(), free_port()
    cfg = parse_site(SITE.replace("LINE", str(line)).replace("SERVER", str(port)), "bms.yaml")
    model = SiteModel(cfg)

    class Audit(list[AuditEntry]):
        def record(self, entry: AuditEntry) -> None:
            self.append(entry)

    async def go() -> tuple[bool, int, list[int], Audit]:
        sim = await modbus_simulator(SimContext(cfg, cfg.buses[0], cfg.devices, model))
        gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path, timezone="UTC"))
        audit = Audit()
        gw.control.auditor = audit
        await gw.start()
        witness = ModbusLink(TransportKind.TCP, port=line, timeout=1.0)  # an independent second master
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5)
        try:
            await asyncio.sleep(0.8)  # the input and relays have been polled
            await client.connect()
            fan = await client.write_coil(0, True, device_id=247)
            horn = await client.write_coil(1, True, device_id=247)
            coils = await witness.read(Function.COIL, 6, 0, 2)
            return fan.isError(), horn.exception_code, coils, audit
        finally:
            client.close()
            await witness.close()
            await gw.stop()
            await sim.close()

    fan_error, horn_code, coils, audit = asyncio.run(go())
    assert (fan_error, horn_code, coils) == (False, 4, [0, 1])  # fan on (coil 1); horn refused, still off
    assert [(e.actor, e.target, e.before, e.after, e.extra["result"]) for e in audit] == [
        ("modbus-client", "fan", False, True, "done"),
        ("modbus-client", "horn", False, False, "refused"),
    ]
    assert audit[1].extra["reason"] == "interlock: 'q1' must be off for 'horn' to switch on"
