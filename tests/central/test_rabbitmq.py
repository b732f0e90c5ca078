"""Central ingests through RabbitMQ's MQTT plugin (issue 15: "show that RabbitMQ's MQTT plugin works too").

The machine's RabbitMQ (3.10.8) is not ours to reconfigure: the test starts its own node from the same
installation (``/usr/lib/rabbitmq``) in a temporary folder — its own node name, ports, database, log,
Erlang cookie and ``enabled_plugins`` file with ``rabbitmq_mqtt`` — and stops it by name and PID, as the
other tests start their own Mosquitto. ``METERHUB_TEST_RABBITMQ_MQTT=mqtt://HOST:PORT`` (with
``METERHUB_TEST_RABBITMQ_USER`` / ``_PASSWORD`` when anonymous login is off) uses a running RabbitMQ MQTT
listener instead.

What RabbitMQ 3.10's MQTT plugin speaks, checked here against the real node: MQTT 3.1.1 only (an MQTT 5
CONNECT is answered by closing the connection), no ``$share/`` shared subscriptions (the filter is taken
as a plain topic filter and matches nothing the gateways publish), persistent sessions (Clean Session 0)
that keep the subscription and redeliver unacknowledged QoS 1 messages after a reconnect. So central runs
with ``mqtt_version: 3.1.1`` and ``share_group: null`` (one worker), and the gateways with
``simulate-fleet --mqtt-version 3.1.1``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from meterhub.central.config import CentralConfig
from meterhub.central.worker import CentralWorker

from ..publish.helpers import aligned_past, feed, make_sink, site, three_phase
from ..publish.helpers import wait_until as async_wait_until
from .conftest import count, free_port, wait_until

RABBIT_BIN = Path(os.environ.get("METERHUB_TEST_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
START_TIMEOUT = 90.0  # [s] a cold node with the MQTT plugin starts in ~15 s on this machine


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class RabbitNode:
    """A private RabbitMQ node with the MQTT plugin on a free loopback port (anonymous login allowed:
    ``mqtt.allow_anonymous`` maps it to the node's own ``guest`` user, whose loopback-only rule keeps it
    local)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.node = f"mh-test-{os.getpid()}@localhost"
        self.mqtt_port = free_port()
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.mqtt_port}"
        (folder / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.mqtt_port}\n"
            "mqtt.allow_anonymous = true\n"
            # unacknowledged messages in flight to one MQTT client (default 10: a central batch would
            # hold at most 10 messages and wait batch_delay for more)
            "mqtt.prefetch = 1000\n"
        )
        self.env = {
            **os.environ,
            "HOME": str(folder),  # its own .erlang.cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
            "RABBITMQ_PID_FILE": str(folder / "rabbit.pid"),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str | None:
        """Start the node and wait for its MQTT listener; why it could not start (None: it did)."""
        server = RABBIT_BIN / "rabbitmq-server"
        if not server.exists():
            return f"RabbitMQ is not installed here ({server} is missing)"
        out = (self.folder / "server.out").open("wb")
        self.proc = subprocess.Popen(
            [str(server)], env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"rabbitmq-server exited with {self.proc.returncode}: {self._tail()}"
            if _listening(self.mqtt_port):
                return None
            time.sleep(0.3)
        self.stop()
        return f"no MQTT listener on {self.mqtt_port} after {START_TIMEOUT:.0f} s: {self._tail()}"

    def _tail(self) -> str:
        text = (self.folder / "server.out").read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-5:])

    def stop(self) -> None:
        """``rabbitmqctl stop`` (the Erlang VM halts), then the server's process group by PID."""
        if self.proc is None:
            return
        ctl = RABBIT_BIN / "rabbitmqctl"
        try:
            subprocess.run([str(ctl), "-n", self.node, "stop"], env=self.env, capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the shell and the VM it started
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="module")
def rabbit_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("METERHUB_TEST_RABBITMQ_MQTT")
    if url:
        yield url
        return
    node = RabbitNode(tmp_path_factory.mktemp("rabbit"))
    why = node.start()
    if why:
        pytest.skip(f"a private RabbitMQ node could not start: {why}")
    yield node.url
    node.stop()


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    if os.environ.get("METERHUB_TEST_RABBITMQ_USER"):
        env["METERHUB_TEST_RABBITMQ_PASSWORD"] = os.environ.get("METERHUB_TEST_RABBITMQ_PASSWORD", "")
    return env


def _central(url: str, dsn: str, data: Path) -> subprocess.Popen[bytes]:
    log = (data / "central.out").open("ab")
    args = ["--mqtt", url, "--mqtt-version", "3.1.1", "--no-share", "--dsn", dsn, "--port", "0"]
    return subprocess.Popen(
        [sys.executable, "-m", "meterhub", "central", *args, "--data", str(data), "--worker-id", "rabbit-w1"],
        env=_env(),
        stdout=log,
        stderr=log,
    )


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("mqtt://").split(":")
    return host, int(port)


@pytest.mark.postgres
@pytest.mark.slow
def test_simulated_gateways_through_rabbitmq_stored_once_over_a_central_kill_9(
    rabbit_url: str, dsn: str, tmp_path: Path
) -> None:
    """20 gateways × 2 circuits × 10 one-second intervals through RabbitMQ's MQTT plugin (3.1.1);
    central is killed with SIGKILL mid-stream and restarted with the same worker id: its persistent
    session kept the subscription and requeued what it had not acknowledged."""
    data = tmp_path / "central"
    data.mkdir()
    central = _central(rabbit_url, dsn, data)
    try:
        assert wait_until(lambda: count(dsn, "SELECT count(*) FROM fleet_meta") == 1, 20)
        time.sleep(1.0)  # subscribed: from here RabbitMQ queues the worker's messages
        sim = subprocess.Popen(
            [sys.executable, "-m", "meterhub", "simulate-fleet", "--sites", "20", "--mqtt", rabbit_url]
            + ["--mqtt-version", "3.1.1", "--series", "10", "--circuits", "2", "--interval", "1"]
            + ["--count", "10", "--processes", "2", "--prefix", "rmq-"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert wait_until(lambda: count(dsn, "SELECT count(*) FROM fleet_messages") >= 40, 30)
        central.send_signal(signal.SIGKILL)  # no flush, no disconnect
        central.wait(5)
        time.sleep(1)
        central = _central(rabbit_url, dsn, data)  # the same worker id: the same session
        out, err = sim.communicate(timeout=120)
        assert sim.returncode == 0, err.decode()
        sent = json.loads(out.decode().strip().splitlines()[-1])
        assert sent["messages"] == 20 * 2 * 10  # what RabbitMQ acknowledged (PUBACK)
        assert wait_until(lambda: count(dsn, "SELECT count(*) FROM fleet_messages") == 400, 60)
        assert count(dsn, "SELECT count(*) FROM fleet_points") == 400 * 5 == sent["points"]
        assert (
            count(dsn, "SELECT count(*) FROM (SELECT series, ts FROM fleet_points GROUP BY 1, 2) t") == 2000
        )
        assert count(dsn, "SELECT count(DISTINCT site) FROM fleet_messages") == 20
        # site rmq-00003, circuit c1: P = 1000·(1 + 3)·(1 + 1) = 8000 W (central/simulate.py)
        assert (
            count(
                dsn,
                "SELECT max(p.value) FROM fleet_points p JOIN fleet_series s ON s.id = p.series WHERE "
                "s.site = 'rmq-00003' AND s.circuit = 'c1' AND s.quantity = 'active_power' AND s.phase = 'total'",
            )
            == 8000
        )
    finally:
        central.send_signal(signal.SIGTERM)
        central.wait(15)


@pytest.mark.postgres
@pytest.mark.slow  # the private node takes 15–30 s to start (module fixture)
def test_a_gateway_publisher_on_mqtt_3_1_1_reaches_central_through_rabbitmq(
    rabbit_url: str, dsn: str, tmp_path: Path
) -> None:
    """The gateway's own publisher (``publish:`` with ``mqtt_version: 3.1.1``) through RabbitMQ into a
    3.1.1 central worker: one interval of circuit ``main`` of site ``site-1``."""
    worker = CentralWorker(
        CentralConfig(
            mqtt=rabbit_url,
            mqtt_version="3.1.1",
            dsn=dsn,
            worker_id=f"rabbit-gw-{os.getpid()}",
            share_group=None,
            batch_delay=0.05,
            data=tmp_path,
        )
    )
    worker.start()
    try:
        assert wait_until(lambda: worker.stats.connected, 20)
        time.sleep(0.5)  # subscribed
        cfg = site(rabbit_url, formats="[meterhub-json]", extra="    mqtt_version: 3.1.1")
        t0 = aligned_past()

        async def go() -> None:
            sink, bus = make_sink(cfg, tmp_path / "gateway")
            await sink.start()
            runner = sink.runners[0]
            assert await async_wait_until(lambda: runner.link is not None and runner.link.state().connected)
            # two polls of one interval: instantaneous values ×1.0 and ×1.1 → ×1.05
            await feed(sink, bus, [[*three_phase(t0 + 0.2)], [*three_phase(t0 + 0.6, scale=1.1)]])
            assert await async_wait_until(
                lambda: runner.published_intervals == 1 and runner.outbox.stats().backlog == 0
            )
            await sink.stop()

        asyncio.run(go())
        assert wait_until(lambda: count(dsn, "SELECT count(*) FROM fleet_messages") == 1, 20)
        # P = (2200 + 2400 + 2600 W) × 1.05 = 7560 W over the interval ending at t0 + 1
        assert (
            count(
                dsn,
                "SELECT p.value FROM fleet_points p JOIN fleet_series s ON s.id = p.series WHERE "
                "s.site = 'site-1' AND s.circuit = 'main' AND s.quantity = 'active_power' AND "
                f"s.phase = 'total' AND p.ts = {int(t0) + 1}",
            )
            == 7560
        )
    finally:
        worker.stop()


@pytest.mark.postgres
@pytest.mark.slow
def test_rabbitmq_3_10_refuses_mqtt_5_and_has_no_shared_subscriptions(
    rabbit_url: str, dsn: str, tmp_path: Path
) -> None:
    """What the plugin cannot do, on the real node: central's default MQTT 5 worker never connects, and a
    ``$share/g/…`` filter is a plain filter (it receives nothing of ``meterhub/…``)."""
    if os.environ.get("METERHUB_TEST_RABBITMQ_MQTT"):
        pytest.skip("checks RabbitMQ 3.10's limits on the private node only")
    host, port = _host_port(rabbit_url)
    worker = CentralWorker(
        CentralConfig(mqtt=rabbit_url, dsn=dsn, worker_id="rabbit-v5", share_group=None, data=tmp_path)
    )
    worker.start()
    try:
        assert not wait_until(lambda: worker.stats.connected, 3)
    finally:
        worker.stop()

    got: list[str] = []
    sub = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="rabbit-share", protocol=MQTTProtocolVersion.MQTTv311
    )
    sub.on_message = lambda _c, _u, m: got.append(m.topic)
    sub.connect(host, port)
    sub.loop_start()
    sub.subscribe([("$share/g/meterhub/+/status", 1), ("meterhub/+/status", 1)])
    time.sleep(0.5)
    pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv311)
    pub.connect(host, port)
    pub.loop_start()
    pub.publish("meterhub/x/status", b"online", qos=1).wait_for_publish(10)
    time.sleep(1.0)
    pub.disconnect()
    pub.loop_stop()
    sub.disconnect()
    sub.loop_stop()
    assert got == ["meterhub/x/status"]  # once: through the plain filter only


def test_mqtt_3_1_1_needs_a_plain_subscription(tmp_path: Path) -> None:
    cfg = tmp_path / "central.yaml"
    cfg.write_text("port: 0\nmqtt_version: 3.1.1\nshare_group: fleet\n")
    res = subprocess.run(
        [sys.executable, "-m", "meterhub", "central", "--config", str(cfg)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0
    assert f"{cfg}:3: share_group: MQTT 3.1.1 has no shared subscriptions" in res.stderr
    assert "Traceback" not in res.stderr
