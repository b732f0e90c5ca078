"""check-config of MQTT ingest: a bus of kind mqtt, its devices and their mappings; errors name file:line."""

from __future__ import annotations

import pytest

from meterhub.checks import load_site, parse_site
from meterhub.config import ConfigError
from meterhub.config.mqtt import parse_path
from meterhub.model.topology import Phase

HEAD = """site: {name: Ingest}
buses:
  - {id: broker, kind: mqtt, host: 10.0.0.5, username: gw, password_env: MQTT_PASSWORD}
  - {id: rs485, kind: modbus-tcp, port: 1502}
devices:
"""


def issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_site(text, "site.yaml")
    return [str(i) for i in err.value.issues]


def test_the_example_site_file_is_accepted() -> None:
    cfg = load_site("examples/mqtt-ingest.yaml")
    bus = cfg.bus("broker")
    assert (bus.host, bus.mqtt_port, bus.username) == ("127.0.0.1", 1883, "meterhub")
    plug = cfg.device("plug")
    assert plug.mqtt is not None and plug.profile == ""
    assert [m.factor for m in plug.mqtt.mapping] == [1000.0, 1000.0, 1.0]


def test_a_mapping_phase_defaults_only_for_single_phase_quantities() -> None:
    cfg = parse_site(
        HEAD + "  - {id: p, bus: broker, mqtt: {topic: t, format: json, mapping: "
        "[{path: f, quantity: frequency, unit: Hz}]}}\ncircuits: [{id: c, device: p}]\n",
        "site.yaml",
    )
    d = cfg.device("p")
    assert d.mqtt is not None and d.mqtt.mapping[0].phase is Phase.TOTAL
    assert d.mqtt.silence_limit == 180.0  # 3 × the default interval of 60 s


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (
            "  - {id: p, bus: broker, mqtt: {topic: t, format: json, mapping: "
            "[{path: a, quantity: active_power, phase: total, unit: kWh}]}}",
            "site.yaml:6: devices[0].mqtt.mapping[0]: unit 'kWh' is not a unit of active_power; "
            "use one of 'W', 'mW', 'kW', 'MW', 'GW'",
        ),
        (
            "  - {id: p, bus: broker, mqtt: {topic: t, format: json, mapping: "
            "[{path: a, quantity: power_active, phase: total, unit: W}]}}",
            "site.yaml:6: devices[0].mqtt.mapping[0].quantity: unknown quantity 'power_active'",
        ),
        (
            "  - {id: p, bus: broker, mqtt: {topic: t, format: json, mapping: "
            "[{path: a, quantity: active_power, unit: W}]}}",
            "site.yaml:6: devices[0].mqtt.mapping[0]: active_power needs 'phase' (one of L1, L2, L3, total)",
        ),
        (
            "  - {id: p, bus: broker, mqtt: {topic: t, format: json, mapping: "
            "[{path: 'a..b', quantity: active_power, phase: total, unit: W}]}}",
            "site.yaml:6: devices[0].mqtt.mapping[0].path: path 'a..b': empty part (write a.b[0].c)",
        ),
        (
            "  - {id: p, bus: broker, mqtt: {topic: t, format: json}}",
            "site.yaml:6: devices[0].mqtt: format 'json' needs a 'mapping' (a list of {path, quantity, phase, unit})",
        ),
        (
            "  - {id: p, bus: broker, mqtt: {topic: 'a/#/b', format: eniscope-rtdata}}",
            "site.yaml:6: devices[0].mqtt.topic: topic 'a/#/b': '#' must be a whole level and the last one (a/b/#)",
        ),
        (
            "  - {id: p, bus: broker, mqtt: {topic: t, format: csv}}",
            "site.yaml:6: devices[0].mqtt.format: ",
        ),
        (
            "  - {id: p, bus: broker, profile: eastron-sdm630, mqtt: {topic: t, format: eniscope-rtdata}}",
            "site.yaml:6: devices[0]: a device with 'mqtt:' has no 'profile'",
        ),
        (
            "  - {id: p, bus: broker}",
            "site.yaml:6: devices[0]: a device needs 'profile' (e.g. eastron-sdm630)",
        ),
    ],
)
def test_schema_errors_name_file_line_and_field(device: str, expected: str) -> None:
    (issue,) = issues(HEAD + device + "\ncircuits: [{id: c, device: p}]\n")
    assert issue.startswith(expected), issue


def test_cross_check_errors_name_file_line_and_field() -> None:
    text = (
        HEAD
        + """  - {id: eni, bus: broker, mqtt: {topic: "e/#", format: eniscope-rtdata}}
  - {id: plug, bus: broker, mqtt: {topic: p, format: json, mapping: [{path: a, quantity: voltage, phase: L1, unit: V}]}}
  - {id: lost, bus: broker, profile: eastron-sdm630}
  - {id: m, bus: rs485, unit: 1, mqtt: {topic: x, format: meterhub-json}}
circuits:
  - {id: a, device: eni, channels: [2]}
  - {id: b, device: eni, channels: [2]}
  - {id: c, device: plug}
  - {id: d, device: plug}
"""
    )
    assert issues(text) == [
        "site.yaml:9: devices[3].profile: unknown profile '' (meterhub profiles list)",
        "site.yaml:12: circuits[1].channels: rtdata did 2 of device 'eni' is already circuit 'a'",
        "site.yaml:7: devices[1].mqtt.mapping[0]: say which 'circuit' (device 'plug' has 2 circuits: c, d)",
        "site.yaml:8: devices[2]: device 'lost' on mqtt bus 'broker' needs 'mqtt: {topic, format}'",
        "site.yaml:9: devices[3].mqtt: 'mqtt' belongs to a device on a bus of kind mqtt, not modbus-tcp",
    ]


@pytest.mark.parametrize(
    ("bus", "expected"),
    [
        ("{id: b, kind: mqtt, password_file: /etc/pw}", "site.yaml:3: buses[0]: a password needs a username"),
        (
            "{id: b, kind: modbus-tcp, port: 502, username: x}",
            "site.yaml:3: buses[0]: username: only a bus of kind mqtt has a broker login",
        ),
        (
            "{id: b, kind: mqtt, username: u, password_env: 'not a name'}",
            "site.yaml:3: buses[0]: password_env 'not a name' is not an environment variable name",
        ),
    ],
)
def test_broker_login_errors(bus: str, expected: str) -> None:
    assert issues(f"site: {{name: S}}\nbuses:\n  - {bus}\n") == [expected]


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("a.b[0].c", ("a", "b", 0, "c")),
        ("meters[0]", ("meters", 0)),
        ("[2].x", (2, "x")),
        ("a[1][2]", ("a", 1, 2)),
    ],
)
def test_paths_are_keys_and_indexes(path: str, parts: tuple[str | int, ...]) -> None:
    assert parse_path(path) == parts
