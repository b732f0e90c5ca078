"""``transport: http`` in the site file: url, token from the environment or a file (never in the file),
meterhub-json only, batch and timeout; each mistake refused at its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterhub.checks import parse_site
from meterhub.config import ConfigError
from meterhub.config.publish import PublishTransport
from meterhub.publish.http import read_token
from meterhub.publish.mqtt import PublishCredentialsError

SITE = """\
site: {name: Test}
buses:
  - {id: b1, kind: modbus-tcp, port: 5020}
devices:
  - {id: d1, bus: b1, unit: 1, profile: eastron-sdm630}
circuits:
  - {id: c1, device: d1, channels: [1, 2, 3], wiring: 3P4W, zone: office}
publish:
  - id: up
    transport: http
"""


def issues(body: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_site(SITE + body, "site.yaml")
    return [str(i) for i in err.value.issues]


def test_an_http_instance_is_read_with_its_defaults() -> None:
    cfg = parse_site(
        SITE
        + "    url: https://hub.example/api/v1/ingest\n    token_env: UP_TOKEN\n    tls: {ca_file: /ca.pem}\n",
        "site.yaml",
    )
    inst = (cfg.publish or [])[0]
    assert inst.transport is PublishTransport.HTTP
    assert (inst.url, inst.token_env, inst.batch, inst.timeout) == (
        "https://hub.example/api/v1/ingest",
        "UP_TOKEN",
        500,
        30,
    )
    assert [f.value for f in inst.formats] == ["meterhub-json"]
    assert inst.broker is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "    token_env: T\n",
            "site.yaml:9: publish[0]: transport 'http' needs a url (http://… or https://…)",
        ),
        (
            "    url: ftp://hub/x\n",
            "site.yaml:11: publish[0].url: url 'ftp://hub/x': use http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH",
        ),
        (
            "    url: https://me:pw@hub/x\n",
            "site.yaml:11: publish[0].url: url 'https://me:pw@hub/x': no credentials or fragment in the URL "
            "(the token goes in token_env / token_file)",
        ),
        (
            "    url: http://hub/x\n    token_env: A\n    token_file: /t\n",
            "site.yaml:9: publish[0]: give the token by token_env or token_file, not both",
        ),
        (
            "    url: http://hub/x\n    tls: {ca_file: /ca.pem}\n",
            "site.yaml:9: publish[0]: 'tls' needs an https:// url",
        ),
        (
            "    url: http://hub/x\n    formats: [eniscope-rtdata]\n",
            "site.yaml:9: publish[0]: transport 'http' sends the format meterhub-json only (formats: [meterhub-json])",
        ),
        (
            "    url: http://hub/x\n    username: u\n",
            "site.yaml:9: publish[0]: 'username' belongs to transport 'mqtt'; HTTP upload takes url and "
            "token_env/token_file",
        ),
        (
            "    url: http://hub/x\n    batch: 0\n",
            "site.yaml:12: publish[0].batch: Input should be greater than or equal to 1",
        ),
    ],
)
def test_a_wrong_http_value_is_refused_at_its_line(body: str, expected: str) -> None:
    assert issues(body) == [expected]


def test_an_mqtt_instance_takes_no_url_or_token() -> None:
    text = SITE.replace("    transport: http\n", "") + "    broker: mqtt://b:1883\n    token_env: T\n"
    with pytest.raises(ConfigError) as err:
        parse_site(text, "site.yaml")
    assert [str(i) for i in err.value.issues] == [
        "site.yaml:9: publish[0]: 'token_env' belongs to transport 'http'; an MQTT broker takes username/password"
    ]


def test_the_token_comes_from_the_environment_or_a_file_and_is_never_shown(tmp_path: Path) -> None:
    env_inst = (parse_site(SITE + "    url: http://h/x\n    token_env: UP_TOKEN\n", "s.yaml").publish or [])[
        0
    ]
    assert read_token(env_inst, {"UP_TOKEN": " mh_abc \n"}) == "mh_abc"
    with pytest.raises(PublishCredentialsError) as err:
        read_token(env_inst, {})
    assert str(err.value) == "publish up: environment variable UP_TOKEN (token_env) is not set or empty"
    path = tmp_path / "token"
    file_inst = (parse_site(SITE + f"    url: http://h/x\n    token_file: {path}\n", "s.yaml").publish or [])[
        0
    ]
    with pytest.raises(PublishCredentialsError) as err:
        read_token(file_inst)
    assert str(err.value) == f"publish up: cannot read token_file {path}: No such file or directory"
    path.write_text("mh_from_file\n", encoding="utf-8")
    assert read_token(file_inst) == "mh_from_file"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(PublishCredentialsError, match="is empty"):
        read_token(file_inst)
