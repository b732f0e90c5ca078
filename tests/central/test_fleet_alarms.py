"""Fleet alarms that notify (issue 15): a private Mosquitto, a private PostgreSQL schema and a real SMTP
server (aiosmtpd). Two simulated gateways go silent together → one mail naming both; central restarted →
no second mail; the SMTP server down while they come back → the clear mail waits and then arrives once; a
gateway reports a device offline → ``device_offline`` raised, then cleared; the API lists and acknowledges.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from tests.alarms.notify_peers import SmtpServer

from meterhub.central.alarms import FleetAlarms, paho_publisher, site_conditions
from meterhub.central.api import create_central_app
from meterhub.central.config import CentralConfig, CentralConfigError, parse_central_config
from meterhub.central.payload import GatewayState, PayloadError, parse_gateway_state
from meterhub.central.simulate import circuit_message
from meterhub.central.store import Batch, CentralStore
from meterhub.central.views import FleetViews
from meterhub.central.worker import CentralWorker
from meterhub.drivers.base import DeviceStatus
from meterhub.model.health import HealthState
from meterhub.publish import homeassistant
from meterhub.publish.sink import InstanceRunner
from meterhub.storage.outbox import Message
from meterhub.web.auth import AuthState, UserStore

from .conftest import Broker, count, free_port, wait_until

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

CHROMIUM = "/usr/bin/chromium"
SILENT_AFTER = 5.0  # [s] (sim-c publishes every 0.5 s: a loaded machine must not make it silent)
GROUP_WINDOW = 1.0  # [s]


def _config(broker: Broker, dsn: str, data: Path, smtp_port: int) -> CentralConfig:
    text = f"""
mqtt: {broker.url}
dsn: "{dsn}"
data: {data}
worker_id: w1
batch_delay: 0.05
silent_after: {SILENT_AFTER}
alarm_interval: 1
notifications:
  group_window: {GROUP_WINDOW}
  email:
    host: 127.0.0.1
    port: {smtp_port}
    security: none
    from: "meterhub central <fleet@central.invalid>"
    to: [ops@central.invalid]
  mqtt: {{topic: ops/fleet-alarms}}
"""
    return parse_central_config(text, "central.yaml")


class Gateways:
    """Simulated gateways on one MQTT connection: ``beat(site)`` publishes one meterhub-json message of
    circuit c0 now; ``state(site, devices)`` the diagnostic state with ``devices_offline``."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        self.client.connect(host, int(port))
        self.client.loop_start()
        self.numbers = {"sim-a": 0, "sim-b": 1, "sim-c": 2}

    def beat(self, *sites: str) -> None:
        ts = int(time.time())
        for site in sites:
            self.client.publish(
                f"meterhub/{site}/circuits/c0", circuit_message(site, self.numbers[site], 0, 4, ts, 1), qos=1
            ).wait_for_publish(5)

    def state(self, site: str, devices: list[str]) -> None:
        payload = homeassistant.gateway_state(
            "up", connected=True, backlog=0, oldest_age=0.0, dropped=0, devices_offline=devices
        )
        self.client.publish(f"meterhub/{site}/ha/_gateway/state", payload, qos=1).wait_for_publish(5)

    def collect(self, topic: str) -> list[dict[str, Any]]:
        """Every JSON message on ``topic`` from now on (filled by paho's thread)."""
        got: list[dict[str, Any]] = []
        self.client.on_message = lambda _c, _u, m: got.append(json.loads(m.payload))
        self.client.subscribe(topic, qos=1)
        time.sleep(0.3)
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Central:
    """One central process's worker and alarm evaluator, in this process."""

    def __init__(self, cfg: CentralConfig) -> None:
        self.worker = CentralWorker(cfg)
        self.worker.start()
        assert wait_until(lambda: self.worker.stats.connected, 10)
        time.sleep(0.3)  # subscribed
        self.alarms = FleetAlarms(cfg, publish=paho_publisher(self.worker.client))
        self.alarms.start()
        assert wait_until(lambda: self.alarms.evaluations >= 1, 10)  # its tables exist

    def stop(self) -> None:
        self.alarms.stop()
        self.worker.stop()


def _subjects(server: SmtpServer) -> list[str]:
    with server.mailbox.lock:
        return [str(m["Subject"]) for _, m in server.mailbox.mails]


def _bodies(server: SmtpServer) -> list[str]:
    with server.mailbox.lock:
        return [str(m.get_content()) for _, m in server.mailbox.mails]


@pytest.mark.postgres
@pytest.mark.slow
def test_silent_sites_mail_once_across_a_restart_and_an_smtp_outage(
    broker: Broker, dsn: str, tmp_path: Path
) -> None:
    server = SmtpServer(tmp_path)
    server.start()
    cfg = _config(broker, dsn, tmp_path / "central", server.port)
    gw = Gateways(broker.url)
    on_mqtt = gw.collect("ops/fleet-alarms")
    central = Central(cfg)
    stop_c = threading.Event()
    alive = {"sim-c"}  # the sites that publish every 0.5 s (sim-c throughout)

    def keep_alive() -> None:
        while not stop_c.wait(0.5):
            gw.beat(*sorted(alive))

    beat = threading.Thread(target=keep_alive, daemon=True)
    try:
        gw.beat("sim-a", "sim-b", "sim-c")
        beat.start()
        assert wait_until(lambda: count(dsn, "SELECT count(*) FROM fleet_sites") == 3, 10)
        # sim-a and sim-b fall silent together (a broker outage on their side): one mail for both
        assert wait_until(lambda: len(_subjects(server)) >= 1, 30), _subjects(server)
        time.sleep(GROUP_WINDOW + 2.5)  # two more evaluations: nothing else to say
        assert _subjects(server) == ["[high] meterhub central: 2 sites silent (raised)"]
        body = _bodies(server)[0]
        assert "sim-a: no message since" in body and "sim-b: no message since" in body
        assert "sim-c" not in body
        assert (
            count(
                dsn, "SELECT count(*) FROM fleet_alarm_log WHERE kind = 'site_silent' AND cleared_at IS NULL"
            )
            == 2
        )

        # central restarts while both stay silent: the active alarms are in PostgreSQL, no second mail
        central.stop()
        central = Central(cfg)
        time.sleep(SILENT_AFTER + 3)  # past the start grace, three evaluations
        assert len(_subjects(server)) == 1
        assert count(dsn, "SELECT count(*) FROM fleet_alarm_log") == 2
        assert count(dsn, "SELECT count(*) FROM fleet_alarm_notices") == 1

        # the SMTP server is down when they come back: the clear notification waits in the outbox
        server.stop()
        alive.update({"sim-a", "sim-b"})
        assert wait_until(
            lambda: (
                count(dsn, "SELECT count(*) FROM fleet_alarm_notices WHERE event = 'cleared' AND queued") == 1
            ),
            15,
        )
        time.sleep(1.5)
        assert len(_subjects(server)) == 1
        assert central.alarms.notifier is not None and central.alarms.notifier.backlog() == 1
        # the outage is visible (GET /api/v1/central → alarms)
        assert wait_until(lambda: central.alarms.health().state is HealthState.DEGRADED, 10)
        assert "cannot deliver to 127.0.0.1" in central.alarms.health().message
        assert "evaluating" in central.alarms.health().message
        server.start()
        assert wait_until(lambda: len(_subjects(server)) == 2, 40), _subjects(server)
        assert _subjects(server)[1] == "[high] meterhub central: 2 sites publish again (cleared)"
        assert count(dsn, "SELECT count(*) FROM fleet_alarm_log WHERE cleared_at IS NOT NULL") == 2

        # sim-c's gateway reports device m2 offline, then back: raised and cleared, one mail each
        gw.state("sim-c", ["m2"])
        assert wait_until(lambda: len(_subjects(server)) == 3, 15), _subjects(server)
        assert _subjects(server)[2] == "[medium] meterhub central: device m2 at sim-c offline (raised)"
        gw.state("sim-c", [])
        assert wait_until(lambda: len(_subjects(server)) == 4, 15), _subjects(server)
        assert _subjects(server)[3] == "[medium] meterhub central: device m2 at sim-c answers again (cleared)"
        rows = count(
            dsn,
            "SELECT count(*) FROM fleet_alarm_log WHERE kind = 'device_offline' AND subject = 'm2' "
            "AND site = 'sim-c' AND cleared_at IS NOT NULL",
        )
        assert rows == 1
        time.sleep(2)
        assert len(_subjects(server)) == 4  # every site publishes: nothing else happened
        # the same four notifications on MQTT, over central's own broker connection
        assert [(m["title"], m["kind"], m["site"]) for m in on_mqtt] == [
            ("2 sites silent", "raised", "meterhub central"),
            ("2 sites publish again", "cleared", "meterhub central"),
            ("device m2 at sim-c offline", "raised", "meterhub central"),
            ("device m2 at sim-c answers again", "cleared", "meterhub central"),
        ]
        assert on_mqtt[0]["target"] == "sim-a,sim-b" and on_mqtt[0]["value"] == 2
    finally:
        stop_c.set()
        central.stop()
        gw.close()
        server.stop()


def _api(cfg: CentralConfig) -> tuple[TestClient, dict[str, str], dict[str, str]]:
    users = UserStore(cfg.data)
    users.add("ada", "correct horse", "admin")
    users.add("rex", "battery staple", "reader")
    _, admin = users.create_token("ada", "test")
    _, reader = users.create_token("rex", "test")
    app = create_central_app(FleetViews(cfg, CentralStore(cfg.dsn)), dict, AuthState.for_data_dir(cfg.data))
    return (
        TestClient(app),
        {"Authorization": f"Bearer {admin}"},
        {"Authorization": f"Bearer {reader}"},
    )


@pytest.mark.postgres
def test_api_lists_fleet_alarms_and_an_admin_acknowledges_them(dsn: str, tmp_path: Path) -> None:
    cfg = CentralConfig(dsn=dsn, data=tmp_path / "central", silent_after=60)
    store = CentralStore(dsn)
    store.write(
        Batch(states=[GatewayState("lab-a", 0, ("m1", "m2"))], statuses={"lab-b": "offline"}), now=1000.0
    )
    store.close()
    clock = [1000.0]
    alarms = FleetAlarms(cfg, clock=lambda: clock[0])
    assert alarms.evaluate() == []  # no notifications: configured, so nothing to send
    alarms.stop()
    client, admin, reader = _api(cfg)
    answer = client.get("/api/v1/fleet/alarms", headers=reader).json()
    assert sorted((a["site"], a["kind"], a["device"]) for a in answer["active"]) == [
        ("lab-a", "device_offline", "m1"),
        ("lab-a", "device_offline", "m2"),
        ("lab-b", "gateway_offline", None),
    ]
    assert all(a["notified"] == {"raised": False, "cleared": False} for a in answer["active"])
    only = client.get("/api/v1/fleet/alarms?site=lab-a&kind=device_offline", headers=reader).json()
    assert [a["device"] for a in only["log"]] == ["m2", "m1"]  # newest first; raised together, by id
    bad = client.get("/api/v1/fleet/alarms?kind=nonsense", headers=reader)
    assert bad.status_code == 422 and "one of site_silent, gateway_offline, device_offline" in bad.text
    # the sites list shows the same conditions
    sites = {s["id"]: s for s in client.get("/api/v1/sites", headers=reader).json()["sites"]}
    assert [(a["kind"], a.get("device")) for a in sites["lab-a"]["alarms"]] == [
        ("device_offline", "m1"),
        ("device_offline", "m2"),
    ]
    target = next(a["id"] for a in answer["active"] if a["kind"] == "gateway_offline")
    assert (
        client.post(f"/api/v1/fleet/alarms/{target}/ack", json={"comment": "x"}, headers=reader).status_code
        == 403
    )
    acked = client.post(
        f"/api/v1/fleet/alarms/{target}/ack", json={"comment": "site closed for the holidays"}, headers=admin
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["acked_by"] == "ada" and acked.json()["ack_comment"] == "site closed for the holidays"
    assert client.post("/api/v1/fleet/alarms/999999/ack", json={}, headers=admin).status_code == 404


def test_gateway_state_lists_the_devices_that_stopped_answering() -> None:
    m1 = DeviceStatus("m1", "Meter 1", "eastron-sdm630", "b", online=True, last_seen=10.0)
    m2 = DeviceStatus("m2", "Meter 2", "eastron-sdm630", "b")
    m2.failed("timeout", timeout=True)  # asked and did not answer
    m3 = DeviceStatus("m3", "Meter 3", "eastron-sdm630", "b")  # not asked yet: not offline
    runner = InstanceRunner.__new__(InstanceRunner)  # only the status part is exercised
    runner._device_status = lambda: {"m1": m1, "m2": m2, "m3": m3}
    assert runner._devices_offline() == ["m2"]
    payload = homeassistant.gateway_state(
        "up", connected=True, backlog=3, oldest_age=0, dropped=0, devices_offline=runner._devices_offline()
    )
    assert json.loads(payload)["devices_offline"] == ["m2"]
    assert parse_gateway_state(payload, "lab-a") == GatewayState("lab-a", 3, ("m2",))
    # an older gateway without the list: backlog only; a list of non-ids is refused
    assert parse_gateway_state(b'{"publish_x_backlog": 2}', "s") == GatewayState("s", 2, None)
    assert parse_gateway_state(b'{"devices_offline": []}', "s") == GatewayState("s", None, ())
    with pytest.raises(PayloadError, match="devices_offline\\[0\\]"):
        parse_gateway_state(b'{"devices_offline": ["Bad/Id"]}', "s")


def test_site_conditions_by_hand() -> None:
    conds = site_conditions(
        last_seen=1000.0,
        gateway_status="offline",
        status_at=1005.0,
        devices_offline=["m9"],
        devices_at=990.0,
        now=1200.0,
        silent_after=120.0,
    )
    assert [(c.kind, c.subject, c.since) for c in conds] == [
        ("gateway_offline", "", 1005.0),
        ("site_silent", "", 1120.0),  # last message + silent_after
        ("device_offline", "m9", 990.0),
    ]
    assert "no message for 200 s" in conds[1].message
    assert (
        site_conditions(
            last_seen=1100.0,
            gateway_status="online",
            status_at=None,
            devices_offline=None,
            devices_at=None,
            now=1200.0,
            silent_after=120.0,
        )
        == []
    )


def test_central_notifications_refuse_what_central_cannot_do() -> None:
    with pytest.raises(CentralConfigError, match="central.yaml:2: notifications.kinds: .*not reminder"):
        parse_central_config("notifications:\n  kinds: [raised, reminder]\n  mqtt: {}\n", "central.yaml")
    with pytest.raises(CentralConfigError, match="remove 'publish'"):
        parse_central_config("notifications:\n  mqtt: {publish: up}\n", "central.yaml")
    cfg = parse_central_config("notifications:\n  mqtt: {topic: ops/fleet}\n", "central.yaml")
    assert cfg.notifications is not None and cfg.notifications.mqtt is not None
    assert cfg.notifications.mqtt.topic == "ops/fleet"


@pytest.mark.postgres
@pytest.mark.slow
def test_a_demo_gateway_device_offline_is_raised_and_cleared_at_central(
    broker: Broker, dsn: str, tmp_path: Path
) -> None:
    """``meterhub demo --fault m-ev:offline:5-25``: the EV charger's meter stops answering 5 s after the
    simulator started and answers again at 25 s; the gateway's diagnostic state lists it meanwhile and
    central raises ``device_offline`` (lab-f, m-ev), then clears it."""
    cfg = CentralConfig(
        mqtt=broker.url,
        dsn=dsn,
        data=tmp_path / "central",
        worker_id="w1",
        batch_delay=0.05,
        alarm_interval=1,
    )
    central = Central(cfg)
    data = tmp_path / "lab-f"
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meterhub",
            "demo",
            "--port",
            str(free_port()),
            "--data",
            str(data),
            "--mqtt",
            broker.url,
            "--site-id",
            "lab-f",
            "--fault",
            "m-ev:offline:5-25",
        ],
        env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
        stdout=(tmp_path / "demo.log").open("wb"),
        stderr=subprocess.STDOUT,
    )

    def rows() -> list[tuple[Any, ...]]:
        with psycopg.connect(dsn) as db:
            return db.execute(
                "SELECT site, kind, subject, cleared_at IS NOT NULL FROM fleet_alarm_log ORDER BY id"
            ).fetchall()

    try:
        raised = wait_until(lambda: ("lab-f", "device_offline", "m-ev", False) in rows(), 90, 1)
        assert raised, (rows(), (tmp_path / "demo.log").read_text()[-2000:])
        assert wait_until(lambda: rows() == [("lab-f", "device_offline", "m-ev", True)], 60, 1), rows()
        assert count(dsn, "SELECT cardinality(devices_offline) FROM fleet_sites WHERE id = 'lab-f'") == 0
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            demo.kill()
        central.stop()


def test_an_mqtt_notification_the_broker_refuses_stays_queued(tmp_path: Path) -> None:
    """A broker ACL without write access on the notification topic: Mosquitto answers PUBACK 0x87 and
    the publisher raises (the notification stays in its outbox), where a permitted topic goes."""
    acl = tmp_path / "acl"
    acl.write_text("topic read #\ntopic write ops/allowed\n")  # anonymous clients
    b = Broker(tmp_path, free_port(), acl_file=acl)
    b.start()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    try:
        client.connect("127.0.0.1", b.port)
        client.loop_start()
        assert wait_until(client.is_connected, 5)
        publish = paho_publisher(client)
        publish(Message("ops/allowed", b"{}", 1, False))
        with pytest.raises(ConnectionError, match="refused 'ops/denied': Not authorized"):
            publish(Message("ops/denied", b"{}", 1, False))
    finally:
        client.disconnect()
        client.loop_stop()
        b.stop()


@pytest.mark.postgres
@pytest.mark.browser
def test_the_fleet_page_shows_active_alarms_and_an_admin_acknowledges_one(dsn: str, tmp_path: Path) -> None:
    """In Debian chromium at 360 px: the section lists the three active alarms (German labels with the
    browser language de), an admin acknowledges the gateway's with a comment, and it shows who did."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    cfg = CentralConfig(dsn=dsn, data=tmp_path / "central", silent_after=60)
    store = CentralStore(dsn)
    store.write(Batch(states=[GatewayState("lab-a", 0, ("m1", "m2"))], statuses={"lab-b": "offline"}))
    store.close()
    alarms = FleetAlarms(cfg)
    alarms.evaluate()
    alarms.stop()
    UserStore(cfg.data).add("ada", "correct horse", "admin")
    app = create_central_app(FleetViews(cfg, CentralStore(dsn)), dict, AuthState.for_data_dir(cfg.data))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started, 10)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 360, "height": 800}, locale="de-DE")
            page.goto(f"http://127.0.0.1:{port}/")
            page.fill("#fleet-login [name=username]", "ada")
            page.fill("#fleet-login [name=password]", "correct horse")
            page.click("#fleet-login button")
            page.wait_for_selector("#fleet-active-alarms tr[data-fleet-alarm]", timeout=15000)
            assert page.locator("#fleet-active-alarms tr[data-fleet-alarm]").count() == 3
            assert page.locator("#fleet-alarm-list h2").inner_text().startswith("Aktive Flottenalarme")
            assert (
                page.locator("tr[data-kind='device_offline']").first.inner_text().count("Gerät offline") == 1
            )
            width = page.evaluate("document.getElementById('fleet-alarm-list').scrollWidth")
            assert width <= 360, width
            row = page.locator("tr[data-kind='gateway_offline']")
            row.locator("input[name=comment]").fill("Standort geschlossen")
            row.locator("button").click()
            page.wait_for_selector("tr[data-kind='gateway_offline'] [data-acked]", timeout=10000)
            assert "ada" in row.inner_text() and "Standort geschlossen" in row.inner_text()
            browser.close()
        with psycopg.connect(dsn) as db:
            got = db.execute(
                "SELECT acked_by, ack_comment FROM fleet_alarm_log WHERE kind = 'gateway_offline'"
            ).fetchone()
        assert got == ("ada", "Standort geschlossen")
    finally:
        server.should_exit = True
        thread.join(10)
