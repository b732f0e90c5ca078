"""IODevice: raw module values + io: configuration → readings, events and persisted pulse totals."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from meterhub.config.loader import parse_config
from meterhub.drivers.io.processor import IODevice, io_devices
from meterhub.drivers.io.state import load_state, state_path
from meterhub.model.readings import Quality
from meterhub.model.topology import Phase

SITE = """\
site: {name: io}
buses:
  - {id: rs485, kind: modbus-tcp, port: 1502}
  - {id: local, kind: io}
devices:
  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10}  # supplies the module bus (seed 000 §7)
  - {id: conc1, bus: rs485, unit: 5, profile: pulse-concentrator-7}
  - {id: dio1, bus: rs485, unit: 6, profile: enertrek-dio-4-2}
  - {id: aio1, bus: rs485, unit: 7, profile: enertrek-aio-2-2}
  - {id: w1, bus: local, profile: linux-w1}
io:
  points:
    - {id: gas, kind: pulse, device: conc1, channel: 1, medium: gas, unit: l, weight: 10}
    - {id: pv, kind: pulse, device: conc1, channel: 2, medium: electricity, unit: kWh, weight: 0.001,
       initial: 100}
    - {id: q1-trip, kind: digital, device: dio1, channel: 1, function: breaker-sd, contact: NC}
    - {id: fan, kind: relay, device: dio1, channel: 2, inverted: true}
    - {id: pump, kind: digital, device: dio1, channel: 3, function: run}
    - {id: tank, kind: analog-in, device: aio1, channel: 1, signal: 4-20mA, range: [0, 10], unit: bar}
    - {id: valve, kind: analog-out, device: aio1, channel: 1, signal: 0-10V, range: [0, 100], unit: "%"}
    - {id: boiler, kind: temperature, device: w1, sensor: 28-0316a2795bff}
"""


@pytest.fixture
def devices(tmp_path: Path) -> dict[str, IODevice]:
    import meterhub.drivers.io  # noqa: F401

    return io_devices(parse_config(SITE), tmp_path)


def values(result, point: str) -> dict[str, float]:
    return {r.quantity: r.value for r in result.readings if r.circuit == point}


def test_only_modbus_io_devices_get_a_processor(devices):
    assert sorted(devices) == ["aio1", "conc1", "dio1"]


def test_pulse_counters_become_index_and_rate(devices):
    conc = devices["conc1"]
    conc.process(0.0, {("pulse_count", 1): 500.0, ("pulse_count", 2): 7.0})
    res = conc.process(60.0, {("pulse_count", 1): 506.0, ("pulse_count", 2): 67.0, ("pulse_count", 3): 9.0})
    gas, pv = values(res, "gas"), values(res, "pv")
    assert gas["pulse_count"] == 6.0
    assert gas["volume_gas"] == pytest.approx(0.06)  # 6 × 10 l
    assert gas["volume_flow"] == pytest.approx(3.6)  # 0.06 m³ in 60 s
    assert pv["energy_active_import"] == pytest.approx(100_000.0 + 60.0)  # 100 kWh + 60 × 1 Wh
    assert pv["active_power"] == pytest.approx(3600.0)  # 60 Wh in 60 s
    assert {r.circuit for r in res.readings} == {"gas", "pv"}  # channel 3 has no point
    assert all(r.phase is Phase.TOTAL for r in res.readings)


def test_digital_nc_contact_and_event(devices):
    dio = devices["dio1"]
    first = dio.process(0.0, {("digital_input", 1): 1.0, ("relay_output", 2): 0.0})
    assert values(first, "q1-trip") == {"digital_input": 0.0}  # NC contact closed: not tripped
    assert values(first, "fan") == {"relay_output": 1.0}  # inverted: coil 0 = energised
    res = dio.process(5.0, {("digital_input", 1): 0.0})
    assert values(res, "q1-trip") == {"digital_input": 1.0}
    (event,) = res.events
    assert (event.ts, event.label, event.previous) == (5.0, "tripped", "normal")


def test_analog_input_scaling_and_open_loop(devices, caplog):
    aio = devices["aio1"]
    res = aio.process(0.0, {("analog_input", 1): 12.0, ("analog_output", 1): 2.5})
    assert values(res, "tank") == {"analog_input": 5.0}
    assert values(res, "valve") == {"analog_output": 25.0}
    with caplog.at_level(logging.WARNING, "meterhub.io"):
        res = aio.process(1.0, {("analog_input", 1): 0.0})
    (r,) = res.readings
    assert r.quality is Quality.INVALID and r.value == pytest.approx(-2.5)  # unclipped, for diagnosis
    assert "device aio1 point tank channel 1: 0 on a 4-20mA input is fail low (open loop" in caplog.text


def test_bad_counter_value_is_skipped_and_logged_once(devices, caplog):
    conc = devices["conc1"]
    with caplog.at_level(logging.WARNING, "meterhub.io"):
        r1 = conc.process(0.0, {("pulse_count", 1): 1.5})
        r2 = conc.process(1.0, {("pulse_count", 1): 1.5})
    assert r1.readings == [] and r2.readings == []
    assert caplog.text.count("device conc1 point gas channel 1: pulse counter value 1.5") == 1


def test_pulse_totals_survive_a_restart_including_pulses_counted_while_down(tmp_path: Path):
    import meterhub.drivers.io  # noqa: F401

    cfg = parse_config(SITE)
    conc = io_devices(cfg, tmp_path)["conc1"]
    conc.process(0.0, {("pulse_count", 1): 100.0})
    conc.process(1.0, {("pulse_count", 1): 130.0})
    conc.close()
    path = state_path(tmp_path, "conc1")
    assert json.loads(path.read_text())["pulses"]["gas"] == {"pulses": 30, "last_raw": 130, "resets": 0}
    again = io_devices(cfg, tmp_path)["conc1"]
    res = again.process(100.0, {("pulse_count", 1): 150.0})  # 20 pulses while the gateway was down
    assert values(res, "gas")["pulse_count"] == 50.0
    assert load_state(path).pulses["gas"].pulses == 30  # not saved yet: throttled


def test_damaged_state_file_is_logged_and_ignored(tmp_path: Path, caplog):
    path = state_path(tmp_path, "conc1")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with caplog.at_level(logging.ERROR, "meterhub.io"):
        assert load_state(path).pulses == {}
    assert "unreadable" in caplog.text


def test_run_input_reports_operating_hours_that_survive_a_restart(tmp_path: Path):
    import meterhub.drivers.io  # noqa: F401

    cfg = parse_config(SITE)
    dio = io_devices(cfg, tmp_path)["dio1"]
    dio.process(0.0, {("digital_input", 3): 1.0})
    res = dio.process(900.0, {("digital_input", 3): 1.0})
    assert values(res, "pump") == {"digital_input": 1.0, "operating_hours": 0.25}
    dio.close()
    assert json.loads(state_path(tmp_path, "dio1").read_text())["hours"]["pump"] == 900.0
    again = io_devices(cfg, tmp_path)["dio1"]
    again.process(5000.0, {("digital_input", 3): 1.0})  # the gap while down is not counted
    res = again.process(5900.0, {("digital_input", 3): 0.0})
    assert values(res, "pump") == {"digital_input": 0.0, "operating_hours": 0.5}


def test_pulse_totals_and_run_hours_are_registers_the_gateway_computes(devices):
    from meterhub.drivers.base import ComputesRegisters
    from meterhub.model.readings import SeriesKey

    conc, dio = devices["conc1"], devices["dio1"]
    assert isinstance(conc, ComputesRegisters)
    assert set(conc.computed_series()) == {
        SeriesKey("gas", "pulse_count", Phase.TOTAL),
        SeriesKey("gas", "volume_gas", Phase.TOTAL),
        SeriesKey("pv", "pulse_count", Phase.TOTAL),
        SeriesKey("pv", "energy_active_import", Phase.TOTAL),
    }
    conc.process(0.0, {("pulse_count", 1): 100.0, ("pulse_count", 2): 50.0})
    conc.process(1.0, {("pulse_count", 1): 130.0, ("pulse_count", 2): 53.0})
    regs = conc.computed_registers()
    assert regs[SeriesKey("gas", "pulse_count", Phase.TOTAL)] == 30.0
    assert regs[SeriesKey("gas", "volume_gas", Phase.TOTAL)] == pytest.approx(0.3)  # 30 × 10 l
    assert regs[SeriesKey("pv", "energy_active_import", Phase.TOTAL)] == pytest.approx(100_003.0)  # Wh
    dio.process(0.0, {("digital_input", 3): 1.0})
    dio.process(1800.0, {("digital_input", 3): 1.0})
    assert dio.computed_registers() == {SeriesKey("pump", "operating_hours", Phase.TOTAL): 0.5}


def test_a_lost_state_file_continues_the_pulse_total_from_storage(tmp_path: Path, caplog):
    import meterhub.drivers.io  # noqa: F401
    from meterhub.model.readings import SeriesKey

    cfg = parse_config(SITE)
    conc = io_devices(cfg, tmp_path)["conc1"]  # no state file (deleted, or a new data folder)
    with caplog.at_level(logging.WARNING, "meterhub.io"):
        conc.seed_registers({SeriesKey("gas", "pulse_count", Phase.TOTAL): 30.0})
    assert "pulse total continues from the stored 30 pulses" in caplog.text
    conc.process(100.0, {("pulse_count", 1): 150.0})  # the first read is the new counter baseline
    res = conc.process(101.0, {("pulse_count", 1): 155.0})
    assert values(res, "gas")["pulse_count"] == 35.0  # never below the stored 30


def test_a_pulse_total_from_the_index_alone_when_no_count_was_stored(tmp_path: Path):
    import meterhub.drivers.io  # noqa: F401
    from meterhub.model.readings import SeriesKey

    conc = io_devices(parse_config(SITE), tmp_path)["conc1"]
    # pv: 1 Wh per pulse from an index of 100 kWh; 100 042 Wh stored → 42 pulses
    conc.seed_registers({SeriesKey("pv", "energy_active_import", Phase.TOTAL): 100_042.0})
    assert conc.pulses["pv"].state.pulses == 42


def test_a_state_file_with_its_device_counter_wins_over_storage(tmp_path: Path):
    # the counter makes the file exact however old it is: 30 pulses at counter 130, counter now 150
    import meterhub.drivers.io  # noqa: F401
    from meterhub.model.readings import SeriesKey

    cfg = parse_config(SITE)
    conc = io_devices(cfg, tmp_path)["conc1"]
    conc.process(0.0, {("pulse_count", 1): 100.0})
    conc.process(1.0, {("pulse_count", 1): 130.0})
    conc.close()
    again = io_devices(cfg, tmp_path)["conc1"]
    again.seed_registers({SeriesKey("gas", "pulse_count", Phase.TOTAL): 45.0})  # flushed at counter 145
    res = again.process(100.0, {("pulse_count", 1): 150.0})
    assert values(res, "gas")["pulse_count"] == 50.0  # 30 + (150 − 130): not 45 + 20


def test_run_hours_continue_from_storage_when_it_is_ahead_of_the_file(tmp_path: Path):
    import meterhub.drivers.io  # noqa: F401
    from meterhub.model.readings import SeriesKey

    cfg = parse_config(SITE)
    dio = io_devices(cfg, tmp_path)["dio1"]
    dio.process(0.0, {("digital_input", 3): 1.0})
    dio.process(900.0, {("digital_input", 3): 1.0})
    dio.close()  # the file: 900 s
    again = io_devices(cfg, tmp_path)["dio1"]
    key = SeriesKey("pump", "operating_hours", Phase.TOTAL)
    again.seed_registers({key: 0.1})  # below the file's 0.25 h: ignored
    assert again.computed_registers()[key] == 0.25
    again.seed_registers({key: 0.4})  # flushed after the file was saved (kill -9 since)
    assert again.computed_registers()[key] == 0.4


def test_a_pulse_total_is_saved_with_its_first_counter_value_so_kill_9_loses_no_pulse(tmp_path: Path):
    import meterhub.drivers.io  # noqa: F401

    cfg = parse_config(SITE)
    conc = io_devices(cfg, tmp_path)["conc1"]
    conc.process(0.0, {("pulse_count", 1): 100.0})  # saved at once: total 0 at counter 100
    conc.process(1.0, {("pulse_count", 1): 130.0})  # 30 pulses, not saved (throttled), then kill -9
    assert load_state(state_path(tmp_path, "conc1")).pulses["gas"].to_dict() == {
        "pulses": 0,
        "last_raw": 100,
        "resets": 0,
    }
    again = io_devices(cfg, tmp_path)["conc1"]
    res = again.process(50.0, {("pulse_count", 1): 160.0})
    assert values(res, "gas")["pulse_count"] == 60.0  # the 30 before the kill and 30 while down
