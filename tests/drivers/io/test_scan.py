"""`meterhub scan` recognises the IO module profiles by their identification registers."""

from __future__ import annotations

import asyncio

from meterhub.drivers.modbus.scan import scan_line
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.profiles import all_profiles, get_profile
from meterhub.sim.modbus_server import ProfileDevice, serve_devices

IO_PROFILES = {6: "enertrek-dio-4-2", 7: "enertrek-aio-2-2", 9: "pulse-concentrator-7"}


def test_scan_identifies_each_io_module_and_nothing_else():
    async def go():
        devices = {u: ProfileDevice(f"d{u}", get_profile(pid), None) for u, pid in IO_PROFILES.items()}
        sim = await serve_devices(devices)
        link = ModbusLink(TransportKind.TCP, port=int(sim.endpoint.rsplit(":", 1)[1]), timeout=3.0)
        try:
            return await scan_line(link, range(5, 11), all_profiles())
        finally:
            await link.close()
            await sim.close()

    result = asyncio.run(go())
    hits = {h.unit: h.sure for h in result.hits}
    assert hits == {u: [pid] for u, pid in IO_PROFILES.items()}
    assert result.duplicate_units() == []
    assert result.silent == 3  # units 5, 8 and 10
