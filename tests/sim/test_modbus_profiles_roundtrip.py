"""Every shipped profile round-trips through its simulator: the physical model's value → the profile's
register encoding → a real pymodbus server → our reader over loopback TCP → the same value within the
register's resolution (float32: 2⁻²³ relative; fixed point: half a step; float64 and int64 Wh: exact)."""

from __future__ import annotations

import asyncio
import math

import pytest

from meterhub.drivers.modbus.codec import DataType
from meterhub.drivers.modbus.planner import plan_reads
from meterhub.drivers.modbus.reader import DeviceReader
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.profiles import get_profile, profile_ids
from meterhub.sim.modbus_server import Framing, ProfileDevice, model_value, serve_devices, wiring_for
from meterhub.sim.physics import SiteModel


class Clock:
    def __init__(self) -> None:
        self.t = 1_790_000_000.0

    def __call__(self) -> float:
        return self.t


def _tolerance(dtype: DataType, factor: float, expected: float) -> float:
    if dtype is DataType.FLOAT32:
        return abs(expected) * 2.0**-23 + 1e-12  # relative: the scale does not change float precision
    if dtype is DataType.FLOAT64:
        return abs(expected) * 2.0**-52 * 4
    return abs(factor) / 2 + 1e-9  # integer registers: half a step of the fixed-point scale


@pytest.mark.parametrize("pid", profile_ids())
def test_profile_round_trips_through_its_simulator(pid):
    p = get_profile(pid)
    clock = Clock()
    model = SiteModel.single_meter("meter", wiring=wiring_for(p), rated_power=7000.0, clock=clock)
    clock.t += 90.0
    model.advance()
    unit = p.defaults.unit

    async def go():
        srv = await serve_devices({unit: ProfileDevice("meter", p, model)}, kind=Framing.TCP, port=0)
        link = ModbusLink(TransportKind.TCP, port=srv.port, timeout=1.0)
        try:
            return await DeviceReader("meter", p, unit).read(link), link.stats.requests
        finally:
            await link.close()
            await srv.close()

    result, requests = asyncio.run(go())
    assert result.errors == []
    blocks = plan_reads(p.points(), max_block=p.defaults.max_block, max_gap=p.defaults.max_gap)
    assert requests == len(blocks)
    checked = 0
    for pt in p.points():
        expected = model_value(model, "meter", pt)
        if expected is None or pt.function.is_bit:
            continue
        assert pt in result.values, f"{pid}: {pt.label()} not decoded"
        got = result.values[pt]
        tol = _tolerance(pt.dtype, pt.factor, expected)
        assert math.isclose(got, expected, abs_tol=tol), f"{pid}: {pt.label()}: {got} != {expected} ± {tol}"
        checked += 1
    if p.kind.value in ("meter", "current-module", "voltage-unit"):
        assert checked >= min(6, len(p.points())), f"{pid}: only {checked} values checked"
