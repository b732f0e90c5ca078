"""MQTT publish end to end with real components: the publish sink → its SQLite outbox → paho → our own
Mosquitto → ``mosquitto_sub`` (independent subscriber)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jsonschema_rs
import pytest

import meterhub
from meterhub.model.readings import Quality, Reading
from meterhub.publish.formats import RTDATA_FIELDS

from .conftest import Broker, Subscriber
from .helpers import aligned_past, feed, make_sink, site, three_phase, wait_until

SCHEMA = Path(__file__).parents[2] / "docs" / "schemas" / "meterhub-json-1.schema.json"

#: Seed 001's rtdata field list, in the order of the issue.
SEED_FIELDS = (
    "uid did ts V1 V2 V3 V U1 U2 U3 U I1 I2 I3 I In P1 P2 P3 P Q1 Q2 Q3 Q S1 S2 S3 S PF1 PF2 PF3 PF A1 A2 A3 F "
    "E E1 E2 E3 Ex Ex1 Ex2 Ex3 RE RE1 RE2 RE3 REx REx1 REx2 REx3 AE AE1 AE2 AE3"
).split()


def _publish_one_interval(broker: Broker, subscribers: list[Subscriber], tmp_path: Path, **site_kw: str):
    cfg = site(broker.url, **site_kw)
    sub = Subscriber(tmp_path, broker.port)
    subscribers.append(sub)
    t0 = aligned_past()

    async def go() -> dict[str, object]:
        sink, bus = make_sink(cfg, tmp_path / "data")
        await sink.start()
        link = sink.runners[0].link
        assert await wait_until(lambda: link is not None and link.state().connected)
        # Two polls in one interval (instantaneous values averaged: ×1.0 and ×1.1 → ×1.05), and an
        # INVALID poll with absurd values that must not leave the gateway.
        await feed(
            sink,
            bus,
            [
                three_phase(t0 + 0.2),
                three_phase(t0 + 0.6, scale=1.1),
                three_phase(t0 + 0.7, scale=1000.0, quality=Quality.INVALID),
            ],
        )
        runner = sink.runners[0]
        assert await wait_until(
            lambda: runner.published_intervals == 1 and runner.outbox.stats().backlog == 0
        )
        health = sink.health().as_dict()
        await sink.stop()
        return health

    health = asyncio.run(go())
    msgs = sub.wait_for(lambda m: any(x["topic"] == "site/test" for x in m), timeout=1.0)
    return t0, msgs, health


def test_rtdata_holds_every_seed_field_with_the_interval_values(
    broker: Broker, subscribers: list[Subscriber], tmp_path: Path
) -> None:
    t0, msgs, health = _publish_one_interval(broker, subscribers, tmp_path, formats="[eniscope-rtdata]")
    rt = [m for m in msgs if m["topic"] == "meterhub/site-1/rtdata"]
    assert len(rt) == 1
    entries = json.loads(str(rt[0]["payload"]))["rtdata"]
    assert len(entries) == 1
    e = entries[0]
    assert list(e) == SEED_FIELDS == ["uid", "did", "ts", *(f.name for f in RTDATA_FIELDS)]
    assert e["uid"] == "site-1:00:01" and e["did"] == 1 and e["ts"] == int(t0) + 1
    # Instantaneous values: mean of ×1.0 and ×1.1 = ×1.05; the INVALID ×1000 poll is not in it.
    assert (e["V1"], e["V2"], e["V3"], e["V"]) == (241.5, 242.55, 240.45, 241.5)
    assert (e["U1"], e["U2"], e["U3"], e["U"]) == (418.95, 420.0, 421.05, 420.0)
    assert (e["I1"], e["I2"], e["I3"]) == (10.5, 11.55, 12.6)
    assert e["I"] == pytest.approx(34.65)  # seed 001: I = I1 + I2 + I3
    assert e["In"] == 1.575
    assert (e["P1"], e["P2"], e["P3"], e["P"]) == (2310.0, 2520.0, 2730.0, 7560.0)
    assert (e["Q1"], e["Q2"], e["Q3"], e["Q"]) == (315.0, 325.5, 336.0, 976.5)
    assert (e["S1"], e["S"]) == (2415.0, 7968.45)
    assert (e["PF1"], e["PF"]) == (0.9975, 0.987)  # averaged like every instantaneous value
    assert (e["A1"], e["A2"], e["A3"]) == (19.11, 20.895, 22.68)
    assert e["F"] == 52.521
    # Registers: the last value of the interval [Wh, varh, VAh], never scaled.
    assert (e["E"], e["E1"], e["E2"], e["E3"]) == (6000.0, 1000.0, 2000.0, 3000.0)
    assert (e["Ex"], e["Ex1"], e["Ex2"], e["Ex3"]) == (60.0, 10.0, 20.0, 30.0)
    assert (e["RE"], e["RE1"], e["REx"], e["REx3"]) == (1200.0, 200.0, 120.0, 60.0)
    assert (e["AE"], e["AE1"], e["AE2"], e["AE3"]) == (6600.0, 1100.0, 2200.0, 3300.0)
    assert rt[0]["message_id"] == 1 and rt[0]["retain"] is False
    assert health["state"] == "ok"
    counters = health["counters"]
    assert isinstance(counters, dict)
    assert (
        counters["backlog"] == 0 and counters["connected"] == 1 and counters["invalid_skipped"] == 52
    )  # the whole INVALID poll


def test_meterhub_json_messages_are_valid_against_the_schema(
    broker: Broker, subscribers: list[Subscriber], tmp_path: Path
) -> None:
    t0, msgs, _ = _publish_one_interval(broker, subscribers, tmp_path, formats="[meterhub-json]")
    native = [m for m in msgs if m["topic"] == "meterhub/site-1/circuits/main"]
    assert len(native) == 1
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    msg = json.loads(str(native[0]["payload"]))
    errors = [e.message for e in validator.iter_errors(msg)]
    assert errors == []
    assert msg["schema"] == "meterhub-json/1" and msg["key"] == f"site-1/main/{int(t0) + 1}"
    values = {(v["quantity"], v["phase"]): v for v in msg["values"]}
    p = values[("active_power", "total")]
    assert (p["value"], p["unit"], p["obis"], p["quality"], p["samples"]) == (
        7560.0,
        "W",
        "1.0.16.7.0",
        "good",
        2,
    )
    e = values[("energy_active_import", "L1")]
    assert (e["value"], e["unit"], e["obis"], e["kind"]) == (1000.0, "Wh", "1.0.21.8.0", "cumulative")
    # A payload that breaks the schema is caught by it (the test would notice a schema that accepts anything).
    assert not validator.is_valid({**msg, "values": [{"quantity": "active_power"}]})


#: Home Assistant's documented combinations (sensor device classes and their units; state classes).
HA_DOCUMENTED = {
    "power": ({"W", "kW"}, {"measurement"}),
    "reactive_power": ({"var", "kvar"}, {"measurement"}),
    "apparent_power": ({"VA", "kVA"}, {"measurement"}),
    "voltage": ({"V", "mV"}, {"measurement"}),
    "current": ({"A", "mA"}, {"measurement"}),
    "frequency": ({"Hz", "kHz"}, {"measurement"}),
    "power_factor": ({None, "%"}, {"measurement"}),
    "energy": ({"Wh", "kWh", "MWh"}, {"total", "total_increasing"}),
    "reactive_energy": ({"varh", "kvarh"}, {"total", "total_increasing"}),
}


def test_home_assistant_discovery_follows_the_documented_classes(
    broker: Broker, subscribers: list[Subscriber], tmp_path: Path
) -> None:
    _, msgs, _ = _publish_one_interval(broker, subscribers, tmp_path, formats="[homeassistant]")
    every = {m["topic"]: json.loads(str(m["payload"])) for m in msgs if str(m["topic"]).endswith("/config")}
    # Configs are retained: a subscriber that comes later (Home Assistant restarting) still gets them.
    late = Subscriber(tmp_path, broker.port, "homeassistant/#")
    subscribers.append(late)
    retained = late.wait_for(lambda m: len(m) >= len(every), timeout=3)
    assert {m["topic"] for m in retained} == set(every) and all(m["retain"] for m in retained)
    configs = {t: c for t, c in every.items() if "/site-1_main/" in t}
    assert len(configs) == 52 - 3  # every series of the poll but the 3 angles (not in HA_SENSORS)
    gateway = {t: c for t, c in every.items() if t not in configs}
    assert sorted(gateway) == [
        "homeassistant/binary_sensor/site-1__gateway/publish_test_connected/config",
        "homeassistant/sensor/site-1__gateway/publish_test_backlog/config",
        "homeassistant/sensor/site-1__gateway/publish_test_dropped/config",
        "homeassistant/sensor/site-1__gateway/publish_test_oldest_pending/config",
    ]
    energy = configs["homeassistant/sensor/site-1_main/energy_active_import_total/config"]
    assert energy["device_class"] == "energy" and energy["state_class"] == "total_increasing"
    assert energy["unit_of_measurement"] == "Wh"
    power = configs["homeassistant/sensor/site-1_main/active_power_l1/config"]
    assert (power["device_class"], power["state_class"], power["unit_of_measurement"]) == (
        "power",
        "measurement",
        "W",
    )
    assert power["state_topic"] == "meterhub/site-1/ha/main/state"
    assert power["availability_topic"] == "meterhub/site-1/status"
    assert power["device"] == {
        "identifiers": ["meterhub_site-1_main"],
        "name": "Main incomer",
        "manufacturer": "meterhub",
        "model": "circuit 3P4W",
        "via_device": "meterhub_site-1",
    }
    unique = [c["unique_id"] for c in every.values()]
    assert len(unique) == len(set(unique)) == len(every)
    # The gateway is a device of its own, the one every circuit's via_device names; its entities are
    # diagnostic (Home Assistant: a sensor's entity_category "must be diagnostic").
    for topic, c in gateway.items():
        assert c["device"] == {
            "identifiers": ["meterhub_site-1"],
            "name": "Test site",
            "manufacturer": "meterhub",
            "model": "meterhub gateway",
            "sw_version": meterhub.__version__,
        }, topic
        assert (
            c["entity_category"] == "diagnostic" and c["state_topic"] == "meterhub/site-1/ha/_gateway/state"
        )
        assert c["availability_topic"] == "meterhub/site-1/status"
    assert power["device"]["via_device"] in gateway[next(iter(gateway))]["device"]["identifiers"]
    connected = gateway["homeassistant/binary_sensor/site-1__gateway/publish_test_connected/config"]
    assert connected["device_class"] == "connectivity" and "unit_of_measurement" not in connected
    oldest = gateway["homeassistant/sensor/site-1__gateway/publish_test_oldest_pending/config"]
    assert (oldest["device_class"], oldest["unit_of_measurement"], oldest["state_class"]) == (
        "duration",
        "s",
        "measurement",
    )
    backlog = gateway["homeassistant/sensor/site-1__gateway/publish_test_backlog/config"]
    assert "device_class" not in backlog and backlog["unit_of_measurement"] == "messages"
    gw_state = next(m for m in msgs if m["topic"] == "meterhub/site-1/ha/_gateway/state")
    # rendered while connected, with nothing else waiting: the outbox was empty before this interval
    assert json.loads(str(gw_state["payload"])) == {
        "publish_test_connected": "ON",
        "publish_test_backlog": 0,
        "publish_test_oldest_pending": 0,
        "publish_test_dropped": 0,
        "devices_offline": [],  # for meterhub central's device_offline alarm: every device answers
    }
    for topic, c in configs.items():
        dc = c.get("device_class")
        if dc is None:  # apparent energy: Home Assistant has no device class for it
            assert c["unit_of_measurement"] == "VAh" and c["state_class"] == "total_increasing", topic
            continue
        units, states = HA_DOCUMENTED[dc]
        assert c.get("unit_of_measurement") in units, topic
        assert c["state_class"] in states, topic
    state = next(m for m in msgs if m["topic"] == "meterhub/site-1/ha/main/state")
    values = json.loads(str(state["payload"]))
    assert values["active_power_total"] == 7560.0 and values["energy_active_import_total"] == 6000.0
    status = [m["payload"] for m in msgs if m["topic"] == "meterhub/site-1/status"]
    assert status[0] == "online" and status[-1] == "offline"  # online on connect, offline on a clean stop


def test_a_circuit_that_disappears_has_its_discovery_configs_removed(
    broker: Broker, subscribers: list[Subscriber], tmp_path: Path
) -> None:
    two = "  - {id: spare, device: m2, channels: [1], wiring: 1P2W}"
    data = tmp_path / "data"
    t0 = aligned_past()

    async def run(cfg_circuits: str) -> None:
        sink, bus = make_sink(site(broker.url, formats="[homeassistant]", circuits=cfg_circuits), data)
        await sink.start()
        spare = [Reading(t0 + 0.5, "spare", "active_power", None, 5.0)] if cfg_circuits else []
        await feed(sink, bus, [three_phase(t0 + 0.5) + spare])
        runner = sink.runners[0]
        await wait_until(lambda: runner.published_intervals == 1 and runner.outbox.stats().backlog == 0)
        await sink.stop()

    asyncio.run(run(two))
    sub = Subscriber(tmp_path, broker.port, "homeassistant/sensor/site-1_spare/#")
    subscribers.append(sub)
    msgs = sub.wait_for(lambda m: len(m) >= 1, timeout=3)
    assert [m["topic"] for m in msgs] == ["homeassistant/sensor/site-1_spare/active_power_value/config"]
    asyncio.run(run(""))  # the site file lost circuit 'spare'
    msgs = sub.wait_for(lambda m: len(m) >= 2, timeout=5)
    assert msgs[-1]["payload"] == "" and msgs[-1]["topic"].endswith("active_power_value/config")
    late = Subscriber(tmp_path, broker.port, "homeassistant/sensor/site-1_spare/#")
    subscribers.append(late)
    assert late.wait_for(lambda m: False, timeout=0.5) == []  # nothing retained any more
