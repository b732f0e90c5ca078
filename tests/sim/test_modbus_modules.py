"""The seed-000 module bus: automatic addresses (§9), hot add/remove, duplicates, power budget (§7.2)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from meterhub.checks import parse_site
from meterhub.config.loader import ConfigError
from meterhub.drivers.modbus.scan import scan_line
from meterhub.drivers.modbus.transport import ModbusExceptionResponse, ModbusLink, TransportKind
from meterhub.profiles import add_profile_dir, all_profiles, get_profile, remove_profile_dir
from meterhub.profiles.schema import Function, parse_profile
from meterhub.sim.modbus_modules import BusFullError, ModuleBus
from meterhub.sim.modbus_server import Framing, ProfileDevice, serve_devices
from meterhub.sim.physics import SiteModel


def _dev(device_id: str, profile: str) -> ProfileDevice:
    return ProfileDevice(device_id, get_profile(profile), None)


def _bus() -> ModuleBus:
    return ModuleBus(_dev("vu", "enertrek-v10"))


def test_modules_get_the_lowest_free_address_and_unplugging_frees_it():
    bus = _bus()
    assert bus.add(_dev("a", "enertrek-m30")) == 2
    assert bus.add(_dev("b", "enertrek-m10")) == 3
    assert bus.remove("a") == 2
    assert bus.add(_dev("c", "enertrek-e10")) == 2
    assert bus.units() == [1, 2, 3]
    assert bus.address_of("c") == 2


def test_power_is_summed_from_the_manual_figures():
    bus = _bus()
    bus.add(_dev("a", "enertrek-m30"))  # 0.35 W
    bus.add(_dev("b", "enertrek-e31"))  # 0.5 W
    provided, consumed = bus.power()
    assert provided == 15.0
    assert consumed == pytest.approx(0.8 + 0.35 + 0.5)  # V10 itself draws 0.8 W (seed 000 §7.1)


HEAVY = """id: test-heavy-module
vendor: Test
model: H
source: a test profile drawing 3 W from the module bus
kind: current-module
channels: 1
bus_power: {consumption: 3.0}
registers:
  - {quantity: current, channel: 1, address: 0}
"""


def test_a_module_that_would_exceed_15_w_is_refused():
    heavy = parse_profile(HEAVY)
    bus = _bus()
    for i in range(4):
        bus.add(ProfileDevice(f"h{i}", heavy, None))  # 0.8 + 4 × 3 = 12.8 W
    with pytest.raises(BusFullError, match=r"15.80 W > 15.00 W supplied"):
        bus.add(ProfileDevice("h4", heavy, None))


def test_more_than_20_current_circuits_are_refused():
    bus = _bus()
    for i in range(5):
        bus.add(_dev(f"m{i}", "enertrek-m40"))  # 5 × 4 = 20 circuits
    with pytest.raises(BusFullError, match="more than 20 current circuits"):
        bus.add(_dev("m5", "enertrek-m10"))


def test_reallocate_moves_the_second_module_of_a_duplicate_address():
    bus = _bus()
    bus.add(_dev("a", "enertrek-m10"), 5)
    bus.add(_dev("b", "enertrek-m20"), 5)
    assert bus.duplicates() == {5: ["a", "b"]}
    assert bus.reallocate() == {"b": (5, 2)}
    assert bus.duplicates() == {}


def test_scan_identifies_modules_and_reports_a_duplicate_address():
    bus = _bus()
    bus.add(_dev("m30", "enertrek-m30"))  # 2
    bus.add(_dev("a", "enertrek-m10"), 5)
    bus.add(_dev("b", "enertrek-m20"), 5)

    async def go():
        srv = await serve_devices(bus, kind=Framing.TCP, port=0)
        link = ModbusLink(TransportKind.TCP, port=srv.port, timeout=1.0)
        try:
            first = await scan_line(link, range(1, 7), all_profiles())
            bus.reallocate()
            second = await scan_line(link, range(1, 7), all_profiles())
        finally:
            await link.close()
            await srv.close()
        return first, second

    first, second = asyncio.run(go())
    found = {h.unit: h.profiles for h in first.hits}
    assert found[1] == ["enertrek-v10"] and found[2] == ["enertrek-m30"]
    assert first.duplicate_units() == [5]
    assert first.module_bus[1]["duplicates"] == 1
    assert {h.unit: h.profiles for h in second.hits} == {
        1: ["enertrek-v10"],
        2: ["enertrek-m30"],
        3: ["enertrek-m20"],
        5: ["enertrek-m10"],
    }
    assert second.duplicate_units() == []


def test_hot_add_and_remove_while_serving():
    cfg_model = SiteModel.single_meter("m", rated_power=3000.0)
    bus = _bus()

    async def go():
        srv = await serve_devices(bus, kind=Framing.TCP, port=0)
        link = ModbusLink(TransportKind.TCP, port=srv.port, timeout=1.0)
        try:
            addr = bus.add(ProfileDevice("m", get_profile("enertrek-m30"), cfg_model))
            regs = await link.read(Function.HOLDING, addr, 0xF000, 1)
            bus.remove("m")
            with pytest.raises(ModbusExceptionResponse, match="exception 0B"):
                await link.read(Function.HOLDING, addr, 0xF000, 1)
            return addr, regs
        finally:
            await link.close()
            await srv.close()

    assert asyncio.run(go()) == (2, [0x0B30])


def _site(n_modules: int, profile: str) -> str:
    devs = "\n".join(
        f"  - {{id: m{i}, bus: panel, unit: {i + 2}, profile: {profile}}}" for i in range(n_modules)
    )
    circuits = "\n".join(
        f"  - {{id: c{i}, device: m{i}, wiring: 1P2W, voltage_reference: vu}}" for i in range(n_modules)
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"""site: {{name: t}}
buses:
  - {{id: panel, kind: modbus-tcp, port: {port}}}
devices:
  - {{id: vu, bus: panel, unit: 1, profile: enertrek-v10}}
{devs}
circuits:
{circuits}
"""


def test_check_config_reports_an_overloaded_module_bus(tmp_path):
    (tmp_path / "test-heavy-module.yaml").write_text(HEAVY)
    add_profile_dir(tmp_path)
    try:
        with pytest.raises(ConfigError) as exc:
            parse_site(_site(5, "test-heavy-module"), "site.yaml")
    finally:
        remove_profile_dir(tmp_path)  # the next test in this worker sees the shipped profiles only
    assert (
        "site.yaml:3: buses[0]: module bus 'panel': modules draw 15.80 W but the supply (vu) is only 15.00 W"
    ) in str(exc.value)


def test_check_config_reports_more_than_20_circuits_per_voltage_unit():
    with pytest.raises(ConfigError, match=r"voltage unit 'vu' serves 21 circuits; at most 20"):
        parse_site(_site(21, "enertrek-m10"), "site.yaml")
    parse_site(_site(20, "enertrek-m10"), "site.yaml")  # 20 is fine
