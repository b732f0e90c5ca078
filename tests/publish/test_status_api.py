"""``GET /api/v1/publish`` and ``POST /api/v1/publish/{id}/test`` against a private Mosquitto, with
``mosquitto_sub`` as the independent witness of what arrived.

The site has three instances: ``live`` (our broker), ``nowhere`` (a free port nobody listens on) and
``off`` (``enabled: false``). Only the publish sink of the gateway runs (no sources): the test feeds it
one interval of readings by hand, so every count can be checked."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from meterhub.bus import SinkKind
from meterhub.publish import status as publish_status
from meterhub.publish.sink import PublishSink
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.web.app import create_app

from .conftest import Broker, Subscriber
from .helpers import aligned_past, feed, status_site, three_phase, wait_until_sync

ADMIN_PW = "correct horse"


@pytest.fixture
def served(tmp_path: Path, broker: Broker) -> Iterator[tuple[TestClient, Gateway, PublishSink]]:
    cfg = status_site(broker.url)
    data = tmp_path / "data"
    gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"))
    sink = gw.sinks[SinkKind.PUBLISH]
    assert isinstance(sink, PublishSink)
    with TestClient(create_app(gw)) as client:
        store = client.app.state.auth.store  # type: ignore[attr-defined]
        store.add("alice", ADMIN_PW, "admin")
        store.add("rita", ADMIN_PW, "reader")
        client.portal.call(sink.start)  # type: ignore[union-attr]
        try:
            yield client, gw, sink
        finally:
            client.portal.call(sink.stop)  # type: ignore[union-attr]
    gw.storage.close()


def _login(client: TestClient, user: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/login", json={"username": user, "password": ADMIN_PW})
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf"]}


def _by_id(client: TestClient) -> dict[str, dict[str, object]]:
    r = client.get("/api/v1/publish")
    assert r.status_code == 200, r.text
    return {i["id"]: i for i in r.json()["instances"]}


def test_status_lists_every_instance_with_its_state_and_outbox(
    served: tuple[TestClient, Gateway, PublishSink], broker: Broker, subscribers: list[Subscriber]
) -> None:
    client, gw, sink = served
    assert client.get("/api/v1/publish").status_code == 401  # not signed in
    _login(client, "rita")  # a reader may look
    assert wait_until_sync(lambda: _by_id(client)["live"]["state"] == "connected")
    assert wait_until_sync(lambda: _by_id(client)["nowhere"]["state"] == "down", timeout=15)
    sub = Subscriber(broker.folder, broker.port, "meterhub/site-1/circuits/#")
    subscribers.append(sub)

    t0 = aligned_past(1.0, back=4)
    client.portal.call(feed, sink, gw.bus, [three_phase(t0 + 0.2)])  # type: ignore[union-attr]
    # the sink's ticker closes the interval (it ended 3 s ago) and renders it; one interval, one circuit: one meterhub-json message per instance
    sub.wait_for(lambda m: len(m) >= 1)
    assert wait_until_sync(lambda: _by_id(client)["live"]["sent_total"] == 1)

    got = _by_id(client)
    live, nowhere, off = got["live"], got["nowhere"], got["off"]
    assert list(got) == ["live", "nowhere", "off"]  # the site file's order
    assert live["name"] == "Local broker" and live["transport"] == "mqtt"
    assert live["formats"] == ["meterhub-json"] and live["endpoint"] == broker.url
    assert live["backlog"] == 0 and live["oldest"] is None and live["oldest_age_s"] == 0
    assert live["dropped"] == 0
    sent = datetime.fromisoformat(str(live["last_sent"]).replace("Z", "+00:00")).timestamp()
    assert abs(sent - time.time()) < 30
    assert "publish live: connected to" in str(live["message"])

    # the interval's message waits in the unreachable instance's outbox (its sink may render it a moment later)
    assert wait_until_sync(lambda: _by_id(client)["nowhere"]["backlog"] == 1, timeout=15)
    nowhere = _by_id(client)["nowhere"]
    assert nowhere["enabled"] is True and nowhere["last_sent"] is None and nowhere["sent_total"] == 0
    assert nowhere["oldest"] is not None and float(nowhere["oldest_age_s"]) >= 0  # type: ignore[arg-type]
    assert "publish nowhere: not connected to mqtt://127.0.0.1:" in str(nowhere["message"])
    assert "Connection refused" in str(nowhere["message"])

    assert off == {
        "id": "off",
        "name": "off",
        "transport": "mqtt",
        "formats": ["meterhub-json"],
        "enabled": False,
        "endpoint": broker.url,
        "state": "disabled",
        "message": "publish off: disabled in the site file",
        "last_sent": None,
        "backlog": 0,
        "oldest": None,
        "oldest_age_s": 0.0,
        "dropped": 0,
        "sent_total": 0,
    }


def test_a_test_message_arrives_at_the_broker_with_its_message_id(
    served: tuple[TestClient, Gateway, PublishSink], broker: Broker, subscribers: list[Subscriber]
) -> None:
    client, _gw, _sink = served
    sub = Subscriber(broker.folder, broker.port, "meterhub/site-1/test")
    subscribers.append(sub)
    _login(client, "rita")
    assert client.post("/api/v1/publish/live/test").status_code in (403,)  # readers may not send
    csrf = _login(client, "alice")
    assert wait_until_sync(lambda: _by_id(client)["live"]["state"] == "connected")

    r = client.post("/api/v1/publish/live/test", headers=csrf)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["acknowledged"] is True
    assert answer["target"] == "meterhub/site-1/test"
    assert "the broker acknowledged it (PUBACK)" in answer["message"]
    msgs = sub.wait_for(lambda m: len(m) >= 1)
    assert [m["message_id"] for m in msgs] == [answer["message_id"]]
    assert '"test": true' in str(msgs[0]["payload"]) and '"by": "alice"' in str(msgs[0]["payload"])

    r = client.post("/api/v1/publish/nope/test", headers=csrf)
    assert r.status_code == 404 and "no publish instance 'nope' (known: live, nowhere, off)" in r.text
    r = client.post("/api/v1/publish/off/test", headers=csrf)
    assert r.status_code == 409 and "publish off is disabled" in r.text


def test_a_test_message_to_a_broker_that_is_away_waits_and_says_why(
    served: tuple[TestClient, Gateway, PublishSink], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _gw, _sink = served
    monkeypatch.setattr(publish_status, "TEST_TIMEOUT", 0.5)
    csrf = _login(client, "alice")
    r = client.post("/api/v1/publish/nowhere/test", headers=csrf)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["acknowledged"] is False
    assert "not acknowledged within 0.5 s" in answer["message"]
    assert "it stays in the outbox" in answer["message"]
    assert _by_id(client)["nowhere"]["backlog"] == 1


def test_a_broker_outage_turns_the_state_down_and_the_backlog_drains_after_it(
    served: tuple[TestClient, Gateway, PublishSink], broker: Broker
) -> None:
    client, gw, sink = served
    _login(client, "alice")
    assert wait_until_sync(lambda: _by_id(client)["live"]["state"] == "connected")
    broker.stop()
    assert wait_until_sync(lambda: _by_id(client)["live"]["state"] == "down")
    live = _by_id(client)["live"]
    assert "publish live: not connected to" in str(live["message"]) and "connection lost" in str(
        live["message"]
    )
    t0 = aligned_past(1.0, back=4)
    client.portal.call(feed, sink, gw.bus, [three_phase(t0 + 0.2)])  # type: ignore[union-attr]
    assert wait_until_sync(lambda: _by_id(client)["live"]["backlog"] == 1)  # rendered by the ticker
    live = _by_id(client)["live"]
    assert live["oldest"] is not None and live["state"] == "down"
    broker.start()  # paho retries after 1, 2, 4 … s
    assert wait_until_sync(lambda: _by_id(client)["live"]["backlog"] == 0, timeout=40)
    assert _by_id(client)["live"]["state"] == "connected"
