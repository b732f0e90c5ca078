"""MQTT notifications (``alarms.notifications.mqtt``): alarm events through a publish instance's broker
connection and durable outbox, received by an independent ``mosquitto_sub`` from a private Mosquitto
(tests/publish/conftest.py). A real gateway, bus, alarm engine and publish sink; the readings are emitted
into the gateway as a source would."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from tests.publish.conftest import Broker, Subscriber, free_port

from meterhub.checks import parse_site
from meterhub.config.loader import ConfigError
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.storage import open_storage

SITE = """\
site: {name: MQTT alarms}
buses:
  - {id: b1, kind: modbus-tcp, port: 5020}
devices:
  - {id: d1, bus: b1, unit: 1, profile: eastron-sdm630, enabled: false}
circuits:
  - {id: compressor, device: d1, channels: [1, 2, 3], wiring: 3P4W}
publish:
  - {id: cloud, broker: "BROKER", site_id: plant-7, interval: 3600}
alarms:
  rules:
    - {id: compressor-hot, title: "Compressor power high", target: compressor, quantity: active_power,
       condition: high, high: 5, unit: kW, severity: high}
  notifications:
    mqtt: {publish: cloud}
"""
TOPIC = "meterhub/plant-7/alarms"


def power(watts: float) -> list[Reading]:
    return [Reading(time.time(), "compressor", Q.ACTIVE_POWER, Phase.TOTAL, watts, Quality.GOOD)]


def alarm_messages(sub: Subscriber) -> list[dict[str, object]]:
    return [json.loads(str(m["payload"])) for m in sub.messages() if m["topic"] == TOPIC]


async def settle(gw: Gateway, seconds: float = 0.3) -> None:
    await asyncio.sleep(seconds)  # the alarm sink's pump takes the batch; the engine emits at once


@pytest.mark.slow
def test_alarm_events_arrive_on_the_topic_and_an_outage_of_the_broker_delays_but_loses_none(tmp_path: Path):
    folder = tmp_path / "broker"
    folder.mkdir()
    broker = Broker(folder, free_port())
    broker.start()
    sub = Subscriber(folder, broker.port, "meterhub/#")
    cfg = parse_site(SITE.replace("BROKER", broker.url), "site.yaml")
    data = tmp_path / "data"

    async def go() -> None:
        gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data))
        gw.emit(power(7200.0))  # before start: the event waits in the channel's own outbox
        await gw.start()
        try:
            await settle(gw)
            got = await asyncio.to_thread(sub.wait_for, lambda m: any(m["topic"] == TOPIC for m in m))
            assert [m["topic"] for m in got if m["topic"] == TOPIC] == [TOPIC]
            broker.stop()  # the broker goes away; the alarm clears meanwhile
            gw.emit(power(1000.0))
            await settle(gw)
            h = gw.health()["service:notify mqtt"]
            assert h.counters["forwarded"] == 2 and h.counters["backlog"] == 0, h  # in the publish outbox
            await asyncio.sleep(1.0)
            broker.start()
            await asyncio.to_thread(
                sub.wait_for, lambda m: len([x for x in m if x["topic"] == TOPIC]) >= 2, 15
            )
        finally:
            await gw.stop()

    try:
        asyncio.run(go())
    finally:
        sub.stop()
        broker.stop()
    raised, cleared = alarm_messages(sub)
    assert raised["kind"] == "raised" and cleared["kind"] == "cleared"
    assert raised["alarm_id"] == "compressor-hot/compressor" and raised["rule"] == "compressor-hot"
    assert (raised["value"], raised["limit"], raised["unit"]) == (7.2, 5.0, "kW")
    assert (raised["severity"], raised["title"], raised["site"]) == (
        "high",
        "Compressor power high",
        "MQTT alarms",
    )
    assert cleared["seq"] > raised["seq"]


@pytest.mark.parametrize(
    ("publish", "mqtt", "words"),
    [
        (
            '{id: cloud, broker: "mqtt://127.0.0.1:1883"}',
            "{publish: clod}",
            "unknown publish instance 'clod'",
        ),
        (
            '{id: cloud, transport: http, url: "https://example.net/in"}',
            "{publish: cloud}",
            "MQTT notifications need transport mqtt",
        ),
        ('{id: cloud, broker: "mqtt://127.0.0.1:1883", enabled: false}', "{publish: cloud}", "is disabled"),
        ('{id: cloud, broker: "mqtt://127.0.0.1:1883"}', '{publish: cloud, topic: "a/#"}', "not a topic"),
    ],
)
def test_a_wrong_mqtt_notification_setting_is_refused_with_file_and_line(publish: str, mqtt: str, words: str):
    text = SITE.replace('{id: cloud, broker: "BROKER", site_id: plant-7, interval: 3600}', publish).replace(
        "mqtt: {publish: cloud}", f"mqtt: {mqtt}"
    )
    with pytest.raises(ConfigError) as err:
        parse_site(text, "site.yaml")
    assert words in str(err.value) and "site.yaml:" in str(err.value)
