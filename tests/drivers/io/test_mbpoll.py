"""Debian mbpoll as an independent Modbus master against a simulated DIO-4/2: it sees the relay state
meterhub wrote, meterhub sees the relay mbpoll wrote, and the documented register addresses hold."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from meterhub.config.loader import parse_config
from meterhub.drivers.io.config import RelayPoint
from meterhub.drivers.io.processor import output_target
from meterhub.drivers.io.relay import RelayOutput
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.profiles import get_profile
from meterhub.sim.io import IOSimulation
from meterhub.sim.modbus_server import ProfileDevice, serve_devices

pytestmark = pytest.mark.skipif(shutil.which("mbpoll") is None, reason="Debian package mbpoll is missing")

SITE = """\
site: {name: mbpoll}
buses: [{id: rs485, kind: modbus-tcp, port: 1502}]
devices:
  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10}
  - {id: dio1, bus: rs485, unit: 6, profile: enertrek-dio-4-2}
io:
  points:
    - {id: heat, kind: pulse, device: dio1, channel: 3, medium: electricity, unit: Wh, weight: 1}
"""


async def mbpoll(port: int, *options: str, write: tuple[str, ...] = ()) -> list[str]:
    """Run mbpoll once against unit 6; return its value lines, e.g. ``[1]: \t0``."""
    proc = await asyncio.create_subprocess_exec(
        "mbpoll", "-m", "tcp", "-p", str(port), "-a", "6", "-1", "-o", "3", *options, "127.0.0.1", *write,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return [ln.strip() for ln in out.decode().splitlines() if ln.strip().startswith("[")]


def test_relay_states_and_counter_addresses_agree_with_mbpoll():
    cfg = parse_config(SITE)
    clock_t = 1_790_000_000.0
    sim_values = IOSimulation(cfg, clock=lambda: clock_t)
    profile = get_profile("enertrek-dio-4-2")

    async def go() -> None:
        sim = await serve_devices({6: ProfileDevice("dio1", profile, sim_values)})  # type: ignore[arg-type]
        port = int(sim.endpoint.rsplit(":", 1)[1])
        link = ModbusLink(TransportKind.TCP, port=port, timeout=3.0)
        try:
            point = RelayPoint.model_validate({"id": "horn", "device": "dio1", "kind": "relay", "channel": 2})
            horn = RelayOutput(point, link, output_target(profile, "dio1", 6, "relay_output", 2))
            await horn.switch(True)
            # coils 0 and 1 (references 1 and 2): relay 2 energised by meterhub
            assert await mbpoll(port, "-t", "0", "-r", "1", "-c", "2") == ["[1]: \t0", "[2]: \t1"]
            # an operator energises relay 1 with mbpoll; meterhub reads it back
            await mbpoll(port, "-t", "0", "-r", "1", write=("1",))
            fan = RelayOutput(
                point.model_copy(update={"id": "fan", "channel": 1}),
                link,
                output_target(profile, "dio1", 6, "relay_output", 1),
            )
            assert await fan.state() is True
            # input registers 4–5 (reference 5): the uint32 pulse counter of input 3, high word first
            (line,) = await mbpoll(port, "-t", "3:int", "-B", "-r", "5", "-c", "1")
            hp = sim_values._points[("dio1", "pulse_count", 3)]
            assert line == f"[5]: \t{sim_values.pulse_count(hp, clock_t)}"  # type: ignore[arg-type]
        finally:
            await link.close()
            await sim.close()

    asyncio.run(go())
