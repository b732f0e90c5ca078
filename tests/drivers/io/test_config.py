"""The ``io:`` section of a site file: typed points and file:line errors from the site loader."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from meterhub.checks import parse_site
from meterhub.config.loader import ConfigError
from meterhub.drivers.io.config import (
    AnalogInPoint,
    Medium,
    PulsePoint,
    PulseUnit,
    TemperaturePoint,
    io_section,
)

SITE = """\
site: {name: io test}
buses:
  - {id: rs485, kind: modbus-tcp, port: 1502}
  - {id: local, kind: io}
devices:
  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10}  # supplies the module bus (seed 000 §7)
  - {id: conc1, bus: rs485, unit: 5, profile: pulse-concentrator-7}
  - {id: dio1, bus: rs485, unit: 6, profile: enertrek-dio-4-2}
  - {id: w1, bus: local, profile: linux-w1}
  - {id: aio1, bus: rs485, unit: 7, profile: enertrek-aio-2-2}
io:
  w1_root: /tmp/w1
  points:
"""


def site(points: str) -> str:
    return SITE + textwrap.indent(textwrap.dedent(points), "    ")


def issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_site(text, "site.yaml")
    return [str(i) for i in info.value.issues]


def test_points_parse_into_typed_models():
    cfg = parse_site(
        site(
            """\
            - {id: gas, kind: pulse, device: conc1, channel: 1, medium: gas, unit: m³, weight: 0.01}
            - {id: tank, kind: analog-in, device: aio1, channel: 1, range: [0, 10], unit: bar}
            - {id: boiler, kind: temperature, device: w1, sensor: 28-0316a2795bff}
            """
        )
    )
    section = io_section(cfg)
    gas, tank, boiler = section.points
    assert isinstance(gas, PulsePoint) and gas.unit is PulseUnit.M3 and gas.medium is Medium.GAS
    assert gas.debounce == 0.1
    assert isinstance(tank, AnalogInPoint) and tank.range == (0.0, 10.0)
    assert isinstance(boiler, TemperaturePoint)
    assert section.w1_root == "/tmp/w1"
    assert [p.id for p in section.on_device("w1")] == ["boiler"]


def test_no_io_section_is_an_empty_section():
    cfg = parse_site("site: {name: x}\n")
    assert io_section(cfg).points == []


def test_field_error_names_line_and_field():
    found = issues(site("- {id: gas, kind: pulse, device: conc1, channel: 1, weight: -1}\n"))
    assert found == ["site.yaml:14: io.points[0].weight: Input should be greater than 0"]


def test_unit_must_fit_the_medium():
    found = issues(
        site("- {id: w, kind: pulse, device: conc1, channel: 2, medium: water, unit: kWh, weight: 1}\n")
    )
    assert found == ["site.yaml:14: io.points[0]: a water pulse meter counts in m3 or l, not kWh"]


def test_unknown_kind_lists_the_kinds():
    (found,) = issues(site("- {id: x, kind: counter, device: conc1, channel: 1}\n"))
    assert found.startswith(
        "site.yaml:14: io.points[0]: unknown kind 'counter'; use one of analog-in, analog-out"
    )


def test_cross_references_devices_channels_ids_and_probes():
    found = issues(
        site(
            """\
            - {id: a, kind: digital, device: dio1, channel: 1}
            - {id: b, kind: digital, device: dio1, channel: 1}
            - {id: a, kind: relay, device: dio1, channel: 1}
            - {id: c, kind: digital, device: nope, channel: 1}
            - {id: t1, kind: temperature, device: dio1, sensor: 28-0316a2795bff}
            - {id: t2, kind: temperature, device: w1, sensor: 28-0316a2795bff}
            - {id: ok, kind: pulse, device: dio1, channel: 1, weight: 1}
            - {id: r3, kind: relay, device: dio1, channel: 3}
            - {id: ai, kind: analog-in, device: conc1, channel: 1, range: [0, 1]}
            - {id: p9, kind: pulse, device: w1, channel: 1, weight: 1}
            """
        )
    )
    assert found == [
        "site.yaml:15: io.points[1].channel: digital_input channel 1 of device 'dio1' is already used by point 'a'",
        "site.yaml:16: io.points[2].id: duplicate point id 'a' (also io.points[0])",
        "site.yaml:17: io.points[3].device: unknown device 'nope'; known devices: aio1, conc1, dio1, vu, w1",
        "site.yaml:18: io.points[4].device: a 1-wire probe needs a device on a bus of kind 'io'; "
        "'dio1' is on modbus-tcp bus 'rs485'",
        "site.yaml:19: io.points[5].sensor: probe 28-0316a2795bff is already used by point 't1'",
        # points[6]: a pulse point on input 1 next to its digital point is fine (state and counter)
        "site.yaml:21: io.points[7].channel: device 'dio1': profile enertrek-dio-4-2 has no relay_output "
        "channel 3 (channels: 1, 2)",
        "site.yaml:22: io.points[8].channel: device 'conc1': profile pulse-concentrator-7 has no "
        "analog_input channel 1 (channels: none)",
        "site.yaml:23: io.points[9].channel: device 'w1': a pulse point needs an IO module (DIO-4/2, "
        "AIO-2/2, pulse concentrator), not the 1-wire master",
    ]


def test_the_documented_example_is_a_valid_io_section():
    import meterhub.config.io as module

    doc = module.__doc__ or ""
    example = doc.split("::\n\n", 1)[1].split("\n\nThe schema validates", 1)[0]
    text = (
        "site: {name: doc}\n"
        "buses: [{id: rs485, kind: modbus-rtu, serial: /dev/ttyUSB0}, {id: local, kind: io}]\n"
        "devices:\n"
        "  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10}\n"
        "  - {id: conc1, bus: rs485, unit: 2, profile: pulse-concentrator-7}\n"
        "  - {id: dio1, bus: rs485, unit: 3, profile: enertrek-dio-4-2}\n"
        "  - {id: aio1, bus: rs485, unit: 4, profile: enertrek-aio-2-2}\n"
        "  - {id: w1, bus: local, profile: linux-w1}\n" + textwrap.dedent(example) + "\n"
    )
    points = io_section(parse_site(text)).points
    assert [p.kind for p in points] == ["pulse", "pulse", "digital", "relay", "analog-in", "temperature"]


def test_a_relative_w1_root_lies_in_the_data_folder(tmp_path) -> None:
    absolute = io_section(
        parse_site(site("- {id: t, kind: temperature, device: w1, sensor: 28-0316a2795bff}"))
    )
    assert absolute.w1_folder(tmp_path) == Path("/tmp/w1")
    relative = io_section(
        parse_site(
            site("- {id: t, kind: temperature, device: w1, sensor: 28-0316a2795bff}").replace(
                "w1_root: /tmp/w1", "w1_root: w1"
            )
        )
    )
    assert relative.w1_folder(tmp_path) == tmp_path / "w1"
    assert relative.w1_folder(None) == Path("w1")
