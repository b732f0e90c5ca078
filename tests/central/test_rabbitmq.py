"""Central ingests through RabbitMQ's MQTT plugin (issue 15: "show that RabbitMQ's MQTT plugin works too").

The test uses a RabbitMQ that already runs; it never configures one (the machine's broker is not ours to
change). It finds the MQTT listener from ``METERHUB_TEST_RABBITMQ_MQTT`` (``mqtt://HOST:PORT``, with
``METERHUB_TEST_RABBITMQ_USER`` / ``METERHUB_TEST_RABBITMQ_PASSWORD`` when the plugin's anonymous login is
off), else from the ports RabbitMQ's Erlang VM (``beam.smp``) listens on (1883, 1884, 8883), and is skipped
with what it found otherwise.

RabbitMQ facts (rabbitmq.com/docs/mqtt): the plugin speaks MQTT 5 from RabbitMQ 3.13 (3.1.1 before),
and it has no ``$share/`` shared subscriptions, so central runs with ``share_group: null`` (one worker, a
plain subscription; its session is a durable queue).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from meterhub.central.config import CentralConfig
from meterhub.central.simulate import circuit_message
from meterhub.central.worker import CentralWorker

from .conftest import count, wait_until

pytestmark = pytest.mark.postgres

MQTT_PORTS = (1883, 1884, 8883)


def _rabbit_listeners() -> list[int]:
    """TCP ports the Erlang VM (RabbitMQ) listens on, from ``ss -ltnp``."""
    try:
        out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    ports = set()
    for line in out.splitlines():
        if "beam.smp" in line:
            m = re.search(r":(\d+)\s", line)
            if m:
                ports.add(int(m.group(1)))
    return sorted(ports)


def _rabbit_mqtt_url() -> str:
    url = os.environ.get("METERHUB_TEST_RABBITMQ_MQTT")
    if url:
        return url
    ports = _rabbit_listeners()
    mqtt = [p for p in ports if p in MQTT_PORTS]
    if not mqtt:
        pytest.skip(
            "RabbitMQ has no MQTT listener here (its Erlang VM listens on "
            f"{', '.join(map(str, ports)) or 'nothing visible'}: AMQP 5672, distribution 25672; the "
            "rabbitmq_mqtt plugin is not enabled). Enable it (rabbitmq-plugins enable rabbitmq_mqtt, "
            "mqtt.listeners.tcp.default = 1884 when Mosquitto holds 1883) and set "
            "METERHUB_TEST_RABBITMQ_MQTT=mqtt://127.0.0.1:1884"
        )
    return f"mqtt://127.0.0.1:{mqtt[0]}"


def test_central_ingests_through_rabbitmq_mqtt(dsn: str, tmp_path: Path) -> None:
    url = _rabbit_mqtt_url()
    user = os.environ.get("METERHUB_TEST_RABBITMQ_USER")
    cfg = CentralConfig(
        mqtt=url,
        dsn=dsn,
        worker_id=f"central-rabbit-{os.getpid()}",
        share_group=None,  # RabbitMQ's MQTT plugin has no shared subscriptions
        batch_delay=0.05,
        username=user,
        password_env="METERHUB_TEST_RABBITMQ_PASSWORD" if user else None,
        data=tmp_path,
    )
    worker = CentralWorker(cfg)
    worker.start()
    try:
        assert wait_until(lambda: worker.stats.connected, 10), (
            f"central's MQTT v5 client could not connect to RabbitMQ at {url}: RabbitMQ speaks MQTT 5 "
            "from 3.13 only (3.1.1 before)"
        )
        time.sleep(0.5)  # subscribed
        host, port = url.removeprefix("mqtt://").split(":")
        pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        if user:
            pub.username_pw_set(user, os.environ.get("METERHUB_TEST_RABBITMQ_PASSWORD", ""))
        pub.connect(host, int(port))
        pub.loop_start()
        ts = int(time.time()) // 10 * 10
        # site number 3, circuit c0: 10 series, P = 1000·(1 + 3)·1 = 4000 W (central/simulate.py)
        infos = [
            pub.publish("meterhub/rabbit-3/circuits/c0", circuit_message("rabbit-3", 3, 0, 10, t, 10), qos=1)
            for t in (ts - 20, ts - 10, ts)
        ]
        for i in infos:
            i.wait_for_publish(10)
        pub.disconnect()
        pub.loop_stop()
        assert wait_until(lambda: count(dsn, "SELECT count(*) FROM fleet_messages") == 3, 20)
        assert count(dsn, "SELECT count(*) FROM fleet_points") == 30
        assert (
            count(
                dsn,
                "SELECT p.value FROM fleet_points p JOIN fleet_series s ON s.id = p.series "
                f"WHERE s.quantity = 'active_power' AND s.phase = 'total' AND p.ts = {ts}",
            )
            == 4000
        )
    finally:
        worker.stop()
