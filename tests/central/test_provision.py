"""``meterhub central provision``: per-site broker users and ACLs on a private Mosquitto that reads the
files central writes; a gateway publishing under another site is refused by the broker and by central."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from typer.testing import CliRunner

from meterhub.central.config import load_central_config
from meterhub.central.provision import mosquitto_hash, verify_mosquitto_hash
from meterhub.central.simulate import circuit_message
from meterhub.central.worker import CentralWorker
from meterhub.cli import app

from .conftest import Broker, count, free_port, value, wait_until

pytestmark = pytest.mark.postgres


class Gateway:
    """A paho client logged in as one site; remembers each PUBACK's reason code."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.c = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5, client_id=user)
        self.c.username_pw_set(user, password)
        self.acks: dict[int, int] = {}
        self.connect_rc: int | None = None
        self.done = threading.Event()
        self.c.on_publish = lambda _c, _u, mid, rc, _p: self.acks.__setitem__(mid, rc.value)
        self.c.on_connect = lambda _c, _u, _f, rc, _p: (
            setattr(self, "connect_rc", rc.value),
            self.done.set(),
        )
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.done.wait(5)

    def publish(self, topic: str, payload: bytes) -> int:
        info = self.c.publish(topic, payload, qos=1)
        assert wait_until(lambda: info.mid in self.acks, 5)
        return self.acks[info.mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_mosquitto_hash_matches_the_documented_format() -> None:
    h = mosquitto_hash("secret", salt=b"\x00" * 12)
    assert h.startswith("$7$101$AAAAAAAAAAAAAAAA$")
    assert verify_mosquitto_hash("secret", h) and not verify_mosquitto_hash("Secret", h)


def test_a_gateway_can_publish_only_under_its_own_site(
    tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("MH_CENTRAL_PW", "central-secret")
    conf = tmp_path / "central.yaml"
    conf.write_text(
        f"mqtt: mqtt://127.0.0.1:{port}\nusername: central\npassword_env: MH_CENTRAL_PW\n"
        f'dsn: "{dsn}"\nworker_id: w1\nbatch_delay: 0.05\n'
        f"broker_files:\n  password_file: {tmp_path}/mosquitto.passwd\n  acl_file: {tmp_path}/mosquitto.acl\n"
    )
    runner = CliRunner()
    secrets = {}
    for site in ("site-a", "site-b"):
        res = runner.invoke(
            app,
            [
                "central",
                "--config",
                str(conf),
                "provision",
                site,
                "--secret-out",
                str(tmp_path / f"{site}.secret"),
            ],
        )
        assert res.exit_code == 0, res.output
        assert f"site_id: {site}" in res.output and f"username: {site}" in res.output
        secrets[site] = (tmp_path / f"{site}.secret").read_text().strip()
    again = runner.invoke(app, ["central", "--config", str(conf), "provision", "site-a"])
    assert again.exit_code == 2 and "already provisioned" in again.output
    acl = (tmp_path / "mosquitto.acl").read_text()
    assert (
        "user site-a\ntopic write meterhub/site-a/#" in acl and "user central\ntopic read meterhub/#" in acl
    )

    folder = tmp_path / "broker"
    folder.mkdir()
    broker = Broker(
        folder, port, password_file=tmp_path / "mosquitto.passwd", acl_file=tmp_path / "mosquitto.acl"
    )
    broker.start()
    worker = CentralWorker(load_central_config(conf))
    worker.start()
    a = b = None
    try:
        assert wait_until(lambda: worker.stats.connected, 5), worker.stats.last_error
        time.sleep(0.3)
        wrong = Gateway(port, "site-a", "not-the-password")
        assert wrong.connect_rc == 135  # MQTT v5 CONNACK 0x87 Not authorized (what Mosquitto 2.0 answers)
        wrong.close()
        a = Gateway(port, "site-a", secrets["site-a"])
        b = Gateway(port, "site-b", secrets["site-b"])
        ts = int(time.time()) // 10 * 10
        # site-b under site-a's topic: the broker refuses it (PUBACK 0x87 Not authorized)
        assert b.publish("meterhub/site-a/circuits/c0", circuit_message("site-a", 0, 0, 10, ts, 10)) == 135
        # site-b under its own topic but claiming site-a: the broker lets it through, central refuses it
        assert b.publish("meterhub/site-b/circuits/c0", circuit_message("site-a", 0, 0, 10, ts, 10)) == 0
        # what each may do
        assert a.publish("meterhub/site-a/circuits/c0", circuit_message("site-a", 0, 0, 10, ts, 10)) == 0
        assert b.publish("meterhub/site-b/circuits/c0", circuit_message("site-b", 1, 0, 10, ts, 10)) == 0
        assert wait_until(lambda: count(dsn, "SELECT count(*) FROM fleet_messages") == 2)
        assert wait_until(lambda: count(dsn, "SELECT refused FROM fleet_sites WHERE id = 'site-b'") == 1)
        assert count(dsn, "SELECT count(*) FROM fleet_messages WHERE site = 'site-a'") == 1
        assert "disagrees with the topic's site 'site-b'" in str(
            value(dsn, "SELECT last_refusal FROM fleet_sites WHERE id = 'site-b'")
        )
    finally:
        for g in (a, b):
            if g is not None:
                g.close()
        worker.stop()
        broker.stop()
