"""Relay and analog outputs: write, read back and confirm against real pymodbus servers on loopback."""

from __future__ import annotations

import asyncio

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from meterhub.drivers.io.config import AnalogOutPoint, RelayPoint
from meterhub.drivers.io.errors import OutputWriteError, ReadbackMismatch
from meterhub.drivers.io.processor import IODevice, output_target
from meterhub.drivers.io.relay import OutputTarget, RelayOutput
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Function
from meterhub.sim.modbus_server import ProfileDevice, serve_devices


def relay_point(**kw: object) -> RelayPoint:
    return RelayPoint.model_validate({"id": "fan", "device": "dio1", "kind": "relay", "channel": 1, **kw})


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


async def with_dio(body) -> None:
    """Serve an enertrek-dio-4-2 at unit 6 (meterhub's simulator on pymodbus) and run ``body``."""
    profile = get_profile("enertrek-dio-4-2")
    sim = await serve_devices({6: ProfileDevice("dio1", profile, None)})
    link = ModbusLink(TransportKind.TCP, port=port_of(sim.endpoint), timeout=3.0)
    try:
        await body(link, profile)
    finally:
        await link.close()
        await sim.close()


def test_latched_relay_is_written_and_confirmed_by_read_back():
    async def body(link, profile):
        target = output_target(profile, "dio1", 6, "relay_output", 2)
        assert (target.function, target.address) == (Function.COIL, 1)
        relay = RelayOutput(relay_point(channel=2), link, target, clock=lambda: 42.0)
        change = await relay.switch(True)
        assert (change.ts, change.energised) == (42.0, True)
        assert change.reading().quantity == "relay_output" and change.reading().value == 1.0
        assert await relay.state() is True
        assert await link.read(Function.COIL, 6, 0, 2) == [0, 1]  # only coil 1 changed
        await relay.switch(False)
        assert await relay.state() is False

    asyncio.run(with_dio(body))


def test_inverted_relay_writes_coil_zero_to_energise():
    async def body(link, profile):
        relay = RelayOutput(
            relay_point(inverted=True), link, output_target(profile, "dio1", 6, "relay_output", 1)
        )
        await relay.switch(True)
        assert await link.read(Function.COIL, 6, 0, 1) == [0]
        assert await relay.state() is True

    asyncio.run(with_dio(body))


def test_pulse_relay_energises_then_releases_both_confirmed():
    waited: list[float] = []

    async def body(link, profile):
        async def sleep(seconds: float) -> None:
            waited.append(seconds)
            assert await link.read(Function.COIL, 6, 0, 1) == [1]  # energised during the pulse

        target = output_target(profile, "dio1", 6, "relay_output", 1)
        relay = RelayOutput(relay_point(mode="pulse", pulse_duration=0.5), link, target, sleep=sleep)
        with pytest.raises(ValueError, match="pulse-mode"):
            await relay.switch(True)
        on, off = await relay.pulse()
        assert (on.energised, off.energised) == (True, False)
        assert await link.read(Function.COIL, 6, 0, 1) == [0]

    asyncio.run(with_dio(body))
    assert waited == [0.5]


def test_write_to_an_address_the_device_does_not_have_is_a_typed_error():
    async def body(link, profile):
        target = OutputTarget("dio1", Function.COIL, 6, 7)  # the DIO-4/2 has coils 0 and 1
        relay = RelayOutput(relay_point(), link, target)
        with pytest.raises(
            OutputWriteError, match=r"device dio1 \(unit 6\) coil 7 \(0x0007\): write \[1\] failed"
        ):
            await relay.switch(True)

    asyncio.run(with_dio(body))


def test_read_back_mismatch_when_the_device_holds_another_state():
    """An independent pymodbus device whose relay 1 is interlocked: it acknowledges the write but
    keeps the coil off, as a device with a local override does."""

    async def interlock(function_code, start_address, address, count, registers, set_values):
        if set_values is not None and function_code in (5, 15):
            set_values[:] = [False] * len(set_values)
        return None

    async def go() -> None:
        device = SimDevice(
            6,
            simdata=(
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [SimData(0, count=4, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=4, values=0, datatype=DataType.REGISTERS)],
            ),
            action=interlock,
        )
        server = ModbusTcpServer(device, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        port = server.transport.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        link = ModbusLink(TransportKind.TCP, port=port, timeout=3.0)
        try:
            relay = RelayOutput(relay_point(), link, OutputTarget("dio1", Function.COIL, 6, 0))
            with pytest.raises(ReadbackMismatch) as info:
                await relay.switch(True)
            assert info.value.wrote == [1] and info.value.read == [0]
            assert str(info.value) == "device dio1 (unit 6) coil 0 (0x0000): wrote [1] but read back [0]"
        finally:
            await link.close()
            await server.shutdown()

    asyncio.run(go())


def test_analog_output_written_in_microamps_and_confirmed():
    async def go() -> None:
        profile = get_profile("enertrek-aio-2-2")
        sim = await serve_devices({7: ProfileDevice("aio1", profile, None)})
        link = ModbusLink(TransportKind.TCP, port=port_of(sim.endpoint), timeout=3.0)
        point = AnalogOutPoint.model_validate(
            {
                "id": "valve",
                "device": "aio1",
                "kind": "analog-out",
                "channel": 1,
                "range": [0, 100],
                "unit": "%",
            }
        )
        aio = IODevice("aio1", [point], clock=lambda: 5.0)
        try:
            target = output_target(profile, "aio1", 7, "analog_output", 1)
            reading = await aio.set_analog_output("valve", 75.0, link, target, factor=0.001)
            assert (reading.ts, reading.quantity, reading.value) == (5.0, "analog_output", 75.0)
            assert await link.read(Function.HOLDING, 7, 0, 1) == [16000]  # 16 mA = 75 % of 4…20 mA
        finally:
            await link.close()
            await sim.close()

    asyncio.run(go())
