"""Central end to end on a private Mosquitto and PostgreSQL: messages in, points stored once, refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from meterhub.central.config import CentralConfig
from meterhub.central.payload import parse_circuit_message
from meterhub.central.simulate import FleetSpec, circuit_message, run_fleet
from meterhub.central.store import Batch, CentralStore
from meterhub.central.worker import CentralWorker

from .conftest import Broker, count, value, wait_until

pytestmark = pytest.mark.postgres


def _publish(url: str, items: list[tuple[str, bytes]]) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    c = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    c.connect(host, int(port))
    c.loop_start()
    infos = [c.publish(t, p, qos=1) for t, p in items]
    for i in infos:
        i.wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


def test_store_writes_each_point_once_however_often_a_message_comes(dsn: str) -> None:
    store = CentralStore(dsn)
    store.connect()
    m = parse_circuit_message(circuit_message("s1", 1, 0, 10, 1_796_572_560, 10), "s1", "c0")
    first = store.write(Batch(messages=[m, m]))  # the same message twice in one batch
    again = store.write(Batch(messages=[m]))  # and once more later (a replay)
    assert (first.new_messages, first.new_points) == (1, 10)
    assert (again.new_messages, again.new_points) == (0, 0)
    assert count(dsn, "SELECT count(*) FROM fleet_points") == 10
    assert count(dsn, "SELECT messages FROM fleet_sites WHERE id = 's1'") == 3  # received, duplicates too
    # site 1, circuit c0: P = 1000·(1 + 1)·1 = 2000 W; the register 2000 · ts / 3600 Wh
    with store.db.cursor() as cur:
        rows = dict(
            cur.execute(
                "SELECT s.quantity || '/' || s.phase, p.value FROM fleet_points p JOIN fleet_series s "
                "ON s.id = p.series"
            ).fetchall()
        )
    assert rows["active_power/total"] == 2000.0
    assert rows["energy_active_import/total"] == pytest.approx(2000 * 1_796_572_560 / 3600, rel=1e-6)
    assert rows["current/L1"] == pytest.approx(2000 / 3 / 230, rel=1e-6)
    # a month partition was made for it (no TimescaleDB on this machine)
    assert store.layout == "partitioned"
    assert count(dsn, "SELECT count(*) FROM fleet_points_202612") == 10
    store.close()


def test_worker_stores_a_simulated_fleet_and_refuses_a_foreign_site(
    broker: Broker, dsn: str, tmp_path: Path
) -> None:
    cfg = CentralConfig(mqtt=broker.url, dsn=dsn, worker_id="w1", batch_delay=0.05)
    worker = CentralWorker(cfg)
    worker.start()
    try:
        assert wait_until(lambda: worker.stats.connected, 5)
        time.sleep(0.3)  # subscribed
        sent = run_fleet(
            FleetSpec(
                broker=broker.url,
                sites=4,
                series=20,
                circuits=2,
                interval=1,
                count=2,
                processes=2,
                backfill=3,
            )
        )
        # 4 sites × 2 circuits × (3 replayed + 2 live intervals)
        assert sent["messages"] == 4 * 2 * 5
        assert wait_until(lambda: count(dsn, "SELECT count(*) FROM fleet_messages") == 40)
        assert count(dsn, "SELECT count(*) FROM fleet_points") == 40 * 10
        # site-b publishes a payload claiming to be site-a: refused, counted on site-b
        forged = circuit_message("sim-00000", 0, 0, 10, int(time.time()) // 10 * 10, 10)
        _publish(broker.url, [("meterhub/sim-00001/circuits/c0", forged)])
        assert wait_until(lambda: count(dsn, "SELECT refused FROM fleet_sites WHERE id = 'sim-00001'") == 1)
        assert count(dsn, "SELECT count(*) FROM fleet_messages") == 40
        reason = str(value(dsn, "SELECT last_refusal FROM fleet_sites WHERE id = 'sim-00001'"))
        assert "disagrees with the topic's site 'sim-00001'" in reason
        # a gateway's diagnostic state gives the backlog
        _publish(
            broker.url,
            [
                (
                    "meterhub/sim-00002/ha/_gateway/state",
                    json.dumps({"publish_demo_backlog": 17, "publish_demo_connected": "ON"}).encode(),
                )
            ],
        )
        assert wait_until(lambda: count(dsn, "SELECT backlog FROM fleet_sites WHERE id = 'sim-00002'") == 17)
        assert worker.stats.refused == 1
    finally:
        worker.stop()
