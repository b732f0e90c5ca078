"""DS18B20 probes through a fake Linux 1-wire sysfs tree in tmp_path."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from meterhub.drivers.base import DeviceStatus
from meterhub.drivers.io.config import TemperaturePoint
from meterhub.drivers.io.errors import ProbeCrcError, ProbeFormatError, ProbeMissing, ProbePowerOnValue
from meterhub.drivers.io.onewire import OneWireSource, crc8_maxim, discover, parse_w1_slave, read_probe
from meterhub.model.readings import Reading

# Scratchpads as the w1_therm driver prints them; byte 8 is the Maxim CRC-8 of bytes 0…7.
GOOD_23_125 = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
MINUS_10_125 = "5e ff 4b 46 7f ff 02 10 b6 : crc=b6 YES\n5e ff 4b 46 7f ff 02 10 b6 t=-10125\n"
POWER_ON = "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n"
KERNEL_CRC_NO = "72 01 4b 46 7f ff 0e 10 00 : crc=57 NO\n72 01 4b 46 7f ff 0e 10 00 t=23125\n"
ZEROS = "00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=0\n"


def make_probe(root: Path, sensor: str, text: str) -> None:
    d = root / sensor
    d.mkdir(parents=True, exist_ok=True)
    (d / "w1_slave").write_text(text, encoding="ascii")


def test_crc8_maxim_matches_the_scratchpad_crc_bytes():
    assert crc8_maxim(bytes.fromhex("72014b467fff0e10")) == 0x57
    assert crc8_maxim(bytes.fromhex("50054b467fff0c10")) == 0x1C
    # Maxim AN27 example ROM: family 02, serial 1C B8 01 00 00 00 → CRC A2
    assert crc8_maxim(bytes.fromhex("021cb801000000")) == 0xA2


def test_parse_good_and_negative_temperatures():
    s = parse_w1_slave(GOOD_23_125, "28-000000000001")
    assert s.temperature == 23.125
    assert s.scratchpad[:2] == bytes([0x72, 0x01])  # 0x0172 = 370 / 16 = 23.125 °C
    assert parse_w1_slave(MINUS_10_125, "28-000000000001").temperature == -10.125


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        (POWER_ON, ProbePowerOnValue, "85 °C power-on"),
        (KERNEL_CRC_NO, ProbeCrcError, "CRC error"),
        (
            GOOD_23_125.replace("10 57 t=", "10 58 t=")
            .replace("10 57 :", "10 58 :")
            .replace("crc=57", "crc=58"),
            ProbeCrcError,
            "does not match",
        ),
        (ZEROS, ProbeCrcError, "all-zero"),
        ("garbage\n", ProbeFormatError, "expected 2"),
        (
            "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\nno temperature here\n",
            ProbeFormatError,
            "w1_therm format",
        ),
        (GOOD_23_125.replace("t=23125", "t=127937"), ProbeFormatError, "outside the sensor range"),
    ],
)
def test_parse_rejects_bad_readings_naming_the_probe(text, error, match):
    with pytest.raises(error, match=match) as info:
        parse_w1_slave(text, "28-0316a2795bff")
    assert "28-0316a2795bff" in str(info.value)


def test_discover_lists_temperature_probes_only(tmp_path: Path):
    make_probe(tmp_path, "28-0316a2795bff", GOOD_23_125)
    make_probe(tmp_path, "10-000802b4c1a2", GOOD_23_125)
    (tmp_path / "w1_bus_master1").mkdir()
    (tmp_path / "01-00000ff1a2b3").mkdir()  # a DS2401 silicon serial number, not a thermometer
    assert discover(tmp_path) == ["10-000802b4c1a2", "28-0316a2795bff"]
    assert discover(tmp_path / "absent") == []


def test_read_probe_missing_and_bad_id(tmp_path: Path):
    with pytest.raises(ProbeMissing, match="unplugged"):
        read_probe(tmp_path, "28-0316a2795bff")
    with pytest.raises(ProbeFormatError, match="not a w1 temperature probe id"):
        read_probe(tmp_path, "../etc")


def point(pid: str, sensor: str, **kw: object) -> TemperaturePoint:
    return TemperaturePoint.model_validate(
        {"id": pid, "device": "w1", "kind": "temperature", "sensor": sensor, **kw}
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_source_poll_emits_good_probes_and_counts_bad_ones(tmp_path: Path, caplog):
    make_probe(tmp_path, "28-0316a2795bff", GOOD_23_125)
    make_probe(tmp_path, "28-0416a2795bff", POWER_ON)
    status = DeviceStatus(id="w1", name="w1", profile="linux-w1", bus="local")
    clock = FakeClock()
    src = OneWireSource(
        device="w1",
        points=[point("boiler", "28-0316a2795bff", offset=-0.125), point("tank", "28-0416a2795bff")],
        root=tmp_path,
        interval=10.0,
        status=status,
        clock=clock,
    )
    readings = asyncio.run(src.poll(src.points))
    assert [(r.circuit, r.quantity, r.value, r.ts) for r in readings] == [
        ("boiler", "temperature", 23.0, 1000.0)
    ]
    assert status.requests == 2 and status.errors == 1
    assert "device w1 point tank: 1-wire probe 28-0416a2795bff: 85 °C" in caplog.text
    # the same error again is counted but not logged again
    caplog.clear()
    asyncio.run(src.poll(src.points[1:]))
    assert status.errors == 2 and "85 °C" not in caplog.text


def test_source_run_reads_each_probe_at_its_interval(tmp_path: Path):
    make_probe(tmp_path, "28-0316a2795bff", GOOD_23_125)
    make_probe(tmp_path, "28-0416a2795bff", MINUS_10_125)
    clock = FakeClock()
    batches: list[list[Reading]] = []

    async def fake_sleep(seconds: float) -> None:
        clock.now += seconds
        if clock.now >= 1030.0:
            raise asyncio.CancelledError

    src = OneWireSource(
        device="w1",
        points=[point("a", "28-0316a2795bff"), point("b", "28-0416a2795bff", poll_interval=15.0)],
        root=tmp_path,
        interval=10.0,
        clock=clock,
        sleep=fake_sleep,
    )
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(src.run(batches.append))
    seen = [(r.ts, r.circuit) for batch in batches for r in batch]
    assert seen == [(1000.0, "a"), (1000.0, "b"), (1010.0, "a"), (1015.0, "b"), (1020.0, "a")]
