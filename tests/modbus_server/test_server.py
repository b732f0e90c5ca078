"""The Modbus server read by independent peers: pysunspec2 (the SunSpec Alliance's client) walks the
SunSpec devices, pymodbus's and mbpoll's clients read the flat map and get the spec's exceptions."""

from __future__ import annotations

import socket
import struct
import subprocess

import pytest
import sunspec2.modbus.client as sunspec_client
from pymodbus.client import ModbusTcpClient

from meterhub.checks import parse_site
from meterhub.errors import ConfigurationError
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality
from meterhub.model.topology import Phase
from meterhub.publish import modbus_map

from .conftest import SITE, T0, Served, r, serve

L1, L2, L3, TOTAL = Phase.L1, Phase.L2, Phase.L3, Phase.TOTAL

GRID = [
    r("grid", Q.VOLTAGE, L1, 230.14),
    r("grid", Q.VOLTAGE, L2, 231.0),
    r("grid", Q.VOLTAGE, L3, 229.96),
    r("grid", Q.VOLTAGE, TOTAL, 230.37),
    r("grid", Q.VOLTAGE_LINE, L1, 398.7),
    r("grid", Q.CURRENT, L1, 10.004),
    r("grid", Q.CURRENT, L2, 12.5),
    r("grid", Q.CURRENT, L3, 7.25),
    r("grid", Q.ACTIVE_POWER, L1, 2100.4),
    r("grid", Q.ACTIVE_POWER, TOTAL, -5234.6),  # exporting
    r("grid", Q.POWER_FACTOR, TOTAL, -0.9712),
    r("grid", Q.FREQUENCY, TOTAL, 49.987),
    r("grid", Q.ENERGY_ACTIVE_IMPORT, TOTAL, 1_234_567.8),
    r("grid", Q.ENERGY_ACTIVE_EXPORT, TOTAL, 99.2),
]
OFFICE = [
    r("office", Q.VOLTAGE, L2, 229.5),
    r("office", Q.CURRENT, L2, 4.25),
    r("office", Q.ACTIVE_POWER, L2, 950.5),
    r("office", Q.ACTIVE_POWER, TOTAL, 950.5),
    r("office", Q.ENERGY_ACTIVE_IMPORT, TOTAL, 45_678.25),
]
MOTOR = [
    r("motor", Q.CURRENT, L1, 40.5),
    r("motor", Q.CURRENT, L3, 41.0),
    r("motor", Q.VOLTAGE_LINE, L1, 400.2),
    r("motor", Q.ACTIVE_POWER, TOTAL, 25_000.0),
]


def walk(port: int, unit: int) -> dict[str, dict[str, object]]:
    """pysunspec2's scan of one unit: model name → point name → computed value (None: not implemented)."""
    dev = sunspec_client.SunSpecModbusClientDeviceTCP(
        slave_id=unit, ipaddr="127.0.0.1", ipport=port, timeout=5
    )
    try:
        dev.scan()
        return {
            str(name): {k: p.cvalue for k, p in models[0].points.items()}
            for name, models in dev.models.items()
            if isinstance(name, str)
        }
    finally:
        dev.close()


def test_pysunspec2_walks_each_circuit_as_the_meter_model_of_its_wiring(served: Served) -> None:
    served.publish(GRID + OFFICE + MOTOR)
    grid = walk(served.port, 1)
    assert list(grid) == ["common", "ac_meter_abcn"]  # models 1 and 203
    common, m = grid["common"], grid["ac_meter_abcn"]
    assert (common["Mn"], common["SN"], common["Opt"], common["DA"]) == ("meterhub", "grid", "3P4W", 1)
    assert m["PhVphA"] == pytest.approx(230.1) and m["PhV"] == pytest.approx(230.4)  # 0.1 V steps
    assert m["PhVphAB"] == pytest.approx(398.7)
    assert m["AphA"] == pytest.approx(10.0) and m["A"] == pytest.approx(29.75)  # A: the phases' sum
    assert m["W"] == -5235 and m["WphA"] == 2100 and m["WphB"] is None  # no reading: not implemented
    assert m["PF"] == pytest.approx(-97.12)  # percent (units "Pct")
    assert m["Hz"] == pytest.approx(49.99)
    assert m["TotWhImp"] == 1_234_568 and m["TotWhExp"] == 99
    assert m["VA"] is None and m["Evt"] == 0

    office = walk(served.port, 2)
    assert list(office) == ["common", "ac_meter_an_or_ab_float"]  # model 211
    f = office["ac_meter_an_or_ab_float"]
    assert f["PhVphA"] == pytest.approx(229.5) and f["AphA"] == pytest.approx(4.25)  # L2 is its phase A
    assert f["W"] == pytest.approx(950.5) and f["TotWhImp"] == pytest.approx(45_678.25)
    assert f["Hz"] is None  # float "not implemented" is NaN

    motor = walk(served.port, 3)
    assert list(motor) == ["common", "ac_meter_abc"]  # model 204
    d = motor["ac_meter_abc"]
    assert (d["AphA"], d["AphB"], d["AphC"]) == (pytest.approx(40.5), None, pytest.approx(41.0))
    assert d["A"] is None  # the sum needs every phase: L2 is not measured in Aron connection
    assert d["PhVphAB"] == pytest.approx(400.2) and d["W"] == 25_000


def test_a_stale_value_is_served_as_not_implemented(served: Served) -> None:
    served.publish(GRID)
    assert walk(served.port, 1)["ac_meter_abcn"]["W"] == -5235
    # grid's device polls every 2 s: its values go stale after 3 × 2 s = 6 s
    served.clock.now = T0 + 6.5
    m = walk(served.port, 1)["ac_meter_abcn"]
    assert m["W"] is None and m["PhVphA"] is None and m["TotWhImp"] is None  # acc32 "not implemented" is 0
    assert m["Evt"] == 1 << 7  # M_EVENT_Missing_Sensor
    served.publish([r("grid", Q.ACTIVE_POWER, TOTAL, 100.0, ts=T0 + 6.4)])
    assert walk(served.port, 1)["ac_meter_abcn"]["W"] == 100


def test_an_invalid_reading_replaces_the_last_good_one_at_once(served: Served) -> None:
    served.publish(GRID)
    served.publish([r("grid", Q.ACTIVE_POWER, TOTAL, float("nan"), Quality.INVALID, ts=T0 + 0.1)])
    assert walk(served.port, 1)["ac_meter_abcn"]["W"] is None


def _flat_float(regs: list[int]) -> float:
    return struct.unpack(">f", struct.pack(">2H", *regs))[0]


def test_pymodbus_reads_the_flat_map(served: Served) -> None:
    served.publish(GRID + OFFICE)
    p = modbus_map.entry_of(Q.ACTIVE_POWER, TOTAL)
    e = modbus_map.entry_of(Q.ENERGY_ACTIVE_IMPORT, TOTAL)
    with ModbusTcpClient("127.0.0.1", port=served.port) as c:
        header = c.read_holding_registers(0, count=4, device_id=247).registers
        assert header == [1, 3, 1000, 20]  # version 1, three circuits
        block = c.read_holding_registers(2000, count=17, device_id=247).registers  # circuit 2: office
        assert block[0] == 2 and struct.pack(">16H", *block[1:17]).rstrip(b"\0") == b"office"
        power = c.read_input_registers(2000 + p.offset, count=2, device_id=247).registers  # FC 4 too
        assert _flat_float(power) == pytest.approx(950.5)
        energy = c.read_holding_registers(1000 + e.offset, count=4, device_id=247).registers
        assert struct.unpack(">d", struct.pack(">4H", *energy))[0] == pytest.approx(1_234_567.8)
        missing = c.read_holding_registers(3000 + p.offset, count=2, device_id=247).registers  # motor
        assert missing == [0x7FC0, 0]  # no value: NaN


def test_mbpoll_reads_the_flat_map(served: Served) -> None:
    served.publish(GRID)
    p = modbus_map.entry_of(Q.ACTIVE_POWER, L1)
    out = subprocess.run(
        [
            "mbpoll",
            "-m",
            "tcp",
            "-a",
            "247",
            "-0",
            "-r",
            str(1000 + p.offset),
            "-t",
            "4:float",
            "-B",
            "-c",
            "1",
            "-1",
            "-p",
            str(served.port),
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    ).stdout
    assert f"[{1000 + p.offset}]: \t2100.4" in out, out


def test_bad_requests_get_the_modbus_exceptions_and_the_server_keeps_serving(served: Served) -> None:
    served.publish(GRID)
    with ModbusTcpClient("127.0.0.1", port=served.port) as c:
        assert c.write_register(40002, 1, device_id=1).exception_code == 1  # read-only: illegal function
        assert c.write_registers(40002, [1, 2], device_id=1).exception_code == 1
        assert c.read_coils(0, count=1, device_id=1).exception_code == 1  # no coils
        assert c.read_holding_registers(39990, count=4, device_id=1).exception_code == 2  # below "SunS"
        assert c.read_holding_registers(40000 + 178, count=4, device_id=1).exception_code == 2  # past the end
        assert c.read_holding_registers(530 + 1000, count=2, device_id=247).exception_code == 2  # block gap
        assert c.read_holding_registers(40000, count=2, device_id=9).exception_code == 0x0B  # no such unit
        assert c.read_holding_registers(40000, count=2, device_id=1).registers == [0x5375, 0x6E53]
    # a count of 126 (the client library refuses to send it): raw MBAP frame → exception 03
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as s:
        s.sendall(struct.pack(">HHHBBHH", 7, 0, 6, 1, 3, 40000, 126))
        assert s.recv(64) == struct.pack(">HHHBBB", 7, 0, 3, 1, 0x83, 3)
        s.sendall(struct.pack(">HHHBB", 8, 0, 2, 1, 0x41))  # a function code nobody defined
        answer = s.recv(64)  # exception 01; pymodbus 3.16 puts 0x80 in the function code byte, not 0xC1
        assert answer[:7] == struct.pack(">HHHB", 8, 0, 3, 1) and answer[7] & 0x80 and answer[8] == 1
        s.sendall(struct.pack(">HHHBBHH", 9, 0, 6, 1, 3, 40000, 2))
        assert s.recv(64)[-4:] == b"SunS"
    with ModbusTcpClient("127.0.0.1", port=served.port) as c:
        assert c.read_holding_registers(40000, count=2, device_id=1).registers == [0x5375, 0x6E53]
    assert served.sink.health().counters["exceptions"] >= 7


def test_a_port_in_use_is_a_configuration_error_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            ConfigurationError, match=rf"modbus_server.tcp: port 127.0.0.1:{port} is already in use"
        ):
            serve(SITE.replace("port: 0}", f"port: {port}}}"))


def test_a_changed_site_is_served_without_a_restart(served: Served) -> None:
    served.publish(GRID + OFFICE)
    changed = parse_site(SITE.replace("    - {circuit: office, unit: 2, encoding: float}\n", ""), "lab.yaml")
    served.sink.reconfigure(changed)
    assert walk(served.port, 1)["ac_meter_abcn"]["W"] == -5235  # kept its latest readings
    with ModbusTcpClient("127.0.0.1", port=served.port) as c:
        assert (
            c.read_holding_registers(40000, count=2, device_id=2).exception_code == 0x0B
        )  # no longer served
