"""The site file's publish: section: typed, unknown keys refused, each error at its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterhub.checks import parse_site
from meterhub.cli import app
from meterhub.config import ConfigError
from meterhub.config.publish import PublishFormat, parse_broker

SITE = """\
site: {name: Test}
buses:
  - {id: b1, kind: modbus-tcp, port: 5020}
devices:
  - {id: d1, bus: b1, unit: 1, profile: eastron-sdm630}
circuits:
  - {id: c1, device: d1, channels: [1, 2, 3], wiring: 3P4W, zone: office}
publish:
  - id: cloud
"""


def issues(body: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_site(SITE + body, "site.yaml")
    return [str(i) for i in err.value.issues]


def test_a_complete_instance_is_read_with_its_defaults() -> None:
    cfg = parse_site(
        SITE
        + "    broker: mqtts://broker.example:8884\n"
        + "    tls: {ca_file: /etc/ca.pem}\n"
        + "    username: site-17\n"
        + "    password_env: MQTT_PASSWORD\n"
        + "    formats: [eniscope-rtdata, homeassistant]\n"
        + "    selection: {zones: [office], quantities: [active_power]}\n"
    )
    assert cfg.publish is not None
    inst = cfg.publish[0]
    assert (inst.qos, inst.retain, inst.interval, inst.enabled) == (1, False, 60, True)
    assert inst.formats == [PublishFormat.ENISCOPE_RTDATA, PublishFormat.HOMEASSISTANT]
    assert inst.prefix == "meterhub/cloud" and inst.outbox.max_days == 90
    addr = inst.address
    assert (addr.scheme, addr.host, addr.port) == ("mqtts", "broker.example", 8884)
    assert parse_broker("mqtt://h").port == 1883 and parse_broker("mqtts://h").port == 8883


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "    broker: mqtt://b:1883\n    transport: http\n",
            "site.yaml:9: publish[0]: transport 'http' needs a url (http://… or https://…)",
        ),
        (
            "    broker: http://b\n",
            "site.yaml:10: publish[0].broker: broker 'http://b': use mqtt://HOST:PORT or mqtts://HOST:PORT (TLS)",
        ),
        ("    broker: mqtt://b:1883\n    qos: 2\n", "site.yaml:11: publish[0].qos: Input should be 0 or 1"),
        (
            "    broker: mqtt://b:1883\n    interval: 0.5\n",
            "site.yaml:11: publish[0].interval: Input should be greater than or equal to 1",
        ),
        (
            "    broker: mqtt://b:1883\n    formats: [csv]\n",
            "site.yaml:11: publish[0].formats[0]: Input should be 'eniscope-rtdata', 'meterhub-json' or 'homeassistant'",
        ),
        (
            "    broker: mqtt://b:1883\n    pasword_env: X\n",
            "site.yaml:11: publish[0].pasword_env: unknown field (check the spelling; see examples/demo-site.yaml)",
        ),
        (
            "    broker: mqtt://b:1883\n    selection: {quantities: [active_pwr]}\n",
            "site.yaml:11: publish[0].selection.quantities: unknown quantity 'active_pwr' "
            "(did you mean active_power, active_power_import, active_power_export?)",
        ),
        (
            "    broker: mqtt://b:1883\n    selection: {circuits: [c2]}\n",
            "site.yaml:11: publish[0].selection.circuits[0]: unknown circuit 'c2'; known: c1",
        ),
        (
            "    broker: mqtt://b:1883\n    selection: {zones: [canteen]}\n",
            "site.yaml:11: publish[0].selection.zones[0]: unknown zone 'canteen'; known: office",
        ),
        (
            "    broker: mqtt://b:1883\n    username: u\n    password_env: A\n    password_file: /x\n",
            "site.yaml:9: publish[0]: give the password by password_env or password_file, not both",
        ),
        (
            "    broker: mqtt://b:1883\n    tls: {ca_file: /ca.pem}\n",
            "site.yaml:9: publish[0]: 'tls' needs an mqtts:// broker",
        ),
    ],
)
def test_a_wrong_value_is_refused_at_its_line(body: str, expected: str) -> None:
    assert issues(body) == [expected]


def test_publish_is_a_list_of_instances() -> None:
    with pytest.raises(ConfigError) as err:
        parse_site(
            SITE.replace("publish:\n  - id: cloud\n", "publish: {mqtt: {host: broker}}\n"), "site.yaml"
        )
    assert [str(i) for i in err.value.issues] == ["site.yaml:8: publish: Input should be a valid list"]


def test_two_instances_with_one_id_are_refused() -> None:
    body = "    broker: mqtt://b\n  - {id: cloud, broker: 'mqtt://c'}\n"
    assert issues(body) == ["site.yaml:11: publish[1].id: duplicate id 'cloud' (also publish[0])"]


def test_demo_refuses_a_wrong_broker_url_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--data", str(tmp_path / "d"), "--mqtt", "tcp://127.0.0.1:1883"]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "error: --mqtt tcp://127.0.0.1:1883 / --site-id demo: broker 'tcp://127.0.0.1:1883': "
        "use mqtt://HOST:PORT or mqtts://HOST:PORT (TLS)"
    )
