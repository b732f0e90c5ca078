"""Outputs of a running gateway by point id: written on the bus's own Modbus line, read back, emitted."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from meterhub.config.loader import parse_config
from meterhub.drivers.io.control import OutputControl
from meterhub.drivers.io.errors import IOPointError
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.model.readings import SeriesKey
from meterhub.model.topology import Phase
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Function
from meterhub.runtime import Gateway
from meterhub.sim.modbus_server import ProfileDevice, serve_devices
from meterhub.storage import open_storage

SITE = """\
site: {name: control}
buses: [{id: rs485, kind: modbus-tcp, port: PORT, timeout: 3}]
devices:
  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10, poll_interval: 5}
  - {id: dio1, bus: rs485, unit: 6, profile: enertrek-dio-4-2, poll_interval: 5}
  - {id: aio1, bus: rs485, unit: 7, profile: enertrek-aio-2-2, poll_interval: 5}
io:
  points:
    - {id: horn, kind: relay, device: dio1, channel: 2}
    - {id: trip, kind: relay, device: dio1, channel: 1, mode: pulse, pulse_duration: 0.05}
    - {id: valve, kind: analog-out, device: aio1, channel: 1, signal: 4-20mA, range: [0, 100], unit: "%"}
    - {id: q1, kind: digital, device: dio1, channel: 1}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_output_control_writes_through_the_running_gateway(tmp_path: Path):
    port = free_port()
    cfg = parse_config(SITE.replace("PORT", str(port)))

    async def go():
        sim = await serve_devices(
            {
                unit: ProfileDevice(dev, get_profile(pid), None)
                for unit, dev, pid in (
                    (1, "vu", "enertrek-v10"),
                    (6, "dio1", "enertrek-dio-4-2"),
                    (7, "aio1", "enertrek-aio-2-2"),
                )
            },
            port=port,
        )
        gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path))
        probe = ModbusLink(TransportKind.TCP, port=port, timeout=3.0)  # an independent second master
        await gw.start()
        try:
            control = OutputControl.for_gateway(gw)
            assert sorted(control.outputs()) == ["horn", "trip", "valve"]
            change = await control.switch("horn", True)
            assert change.energised
            assert await probe.read(Function.COIL, 6, 0, 2) == [0, 1]
            on, off = await control.pulse("trip")
            assert (on.energised, off.energised) == (True, False)
            assert await probe.read(Function.COIL, 6, 0, 1) == [0]
            valve = await control.set_analog("valve", 75.0)
            assert valve.value == 75.0
            assert await probe.read(Function.HOLDING, 7, 0, 1) == [16000]  # 16 mA in µA
            with pytest.raises(IOPointError, match="it is a digital point; output points: horn, trip, valve"):
                await control.switch("q1", True)
            with pytest.raises(IOPointError, match="cannot drive .nope.: no such point"):
                await control.switch("nope", True)
            live = {
                k: gw.live.get(SeriesKey(k, q, Phase.TOTAL))
                for k, q in (("horn", "relay_output"), ("trip", "relay_output"), ("valve", "analog_output"))
            }
            return {k: (r.value if r else None) for k, r in live.items()}
        finally:
            await probe.close()
            await gw.stop()
            await sim.close()

    assert asyncio.run(go()) == {"horn": 1.0, "trip": 0.0, "valve": 75.0}
