"""Publish instances follow a live configuration change, and an HTTP instance is "connecting" until its
first POST is answered.

A real gateway (started: its sinks and pumps run) served by the web app, a private Mosquitto with
``mosquitto_sub`` as the independent witness, and a plain ``http.server`` that records the POSTs. The site
starts without any publish instance, so the publish sink subscribes to nothing at first."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from meterhub.bus import SinkKind
from meterhub.checks import parse_site
from meterhub.publish.sink import PublishSink
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.web.app import create_app

from .conftest import Broker, Subscriber, free_port
from .helpers import aligned_past, three_phase, wait_until_sync
from .test_http_upload import _recorder

ADMIN_PW = "correct horse"
SITE = """\
site: {name: Live change}
buses: [{id: b, kind: modbus-tcp, port: 1502}]
devices: [{id: m, bus: b, unit: 1, profile: eastron-sdm630, enabled: false}]
circuits:
  - {id: main, name: Main incomer, device: m, channels: [1, 2, 3], wiring: 3P4W, zone: plant}
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Gateway, dict[str, str]]]:
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    cfg = parse_site(SITE, str(path))
    data = tmp_path / "data"
    gw = Gateway(cfg, data_dir=data, config_path=path, storage=open_storage(cfg.storage, data))
    with TestClient(create_app(gw)) as client:
        store = client.app.state.auth.store  # type: ignore[attr-defined]
        store.add("alice", ADMIN_PW, "admin")
        r = client.post("/api/v1/auth/login", json={"username": "alice", "password": ADMIN_PW})
        assert r.status_code == 200, r.text
        client.portal.call(gw.start)  # type: ignore[union-attr]
        try:
            yield client, gw, {"X-CSRF-Token": r.json()["csrf"]}
        finally:
            client.portal.call(gw.stop)  # type: ignore[union-attr]


def _states(client: TestClient) -> dict[str, str]:
    r = client.get("/api/v1/publish")
    assert r.status_code == 200, r.text
    return {i["id"]: i["state"] for i in r.json()["instances"]}


def _emit_interval(client: TestClient, gw: Gateway) -> float:
    """Readings of one 1-s interval that ended 3 s ago, emitted into the running gateway (as a source
    would, on its event loop); return the interval's start [s since the epoch]."""
    t0 = aligned_past(1.0, back=4)

    async def emit() -> None:
        gw.emit(three_phase(t0 + 0.2))
        await asyncio.sleep(0)

    client.portal.call(emit)  # type: ignore[union-attr]
    return t0


def test_an_instance_added_by_the_config_api_starts_publishing_and_stops_when_disabled_or_removed(
    served: tuple[TestClient, Gateway, dict[str, str]], broker: Broker, subscribers: list[Subscriber]
) -> None:
    client, gw, csrf = served
    sub = Subscriber(broker.folder, broker.port, "meterhub/site-1/#")
    subscribers.append(sub)
    assert _states(client) == {}
    body = {"id": "live", "broker": broker.url, "site_id": "site-1", "interval": 1}

    r = client.put("/api/v1/config/publish/live", json=body, headers=csrf)
    assert r.status_code == 200, r.text
    assert r.json()["state"] in ("connecting", "connected")
    assert "id: live" in (gw.config_path or Path()).read_text(encoding="utf-8")  # written back
    assert wait_until_sync(lambda: _states(client) == {"live": "connected"})
    t0 = _emit_interval(client, gw)
    got = sub.wait_for(lambda m: any(x["topic"] == "meterhub/site-1/circuits/main" for x in m))
    (msg,) = [json.loads(str(x["payload"])) for x in got if x["topic"] == "meterhub/site-1/circuits/main"]
    assert msg["key"] == f"site-1/main/{int(t0) + 1}" and msg["site"] == "site-1"
    assert wait_until_sync(lambda: client.get("/api/v1/publish").json()["instances"][0]["sent_total"] >= 1)

    r = client.put("/api/v1/config/publish/live", json={**body, "enabled": False}, headers=csrf)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "disabled" and _states(client) == {"live": "disabled"}
    sink = gw.sinks[SinkKind.PUBLISH]
    assert isinstance(sink, PublishSink) and sink.runners == []
    # the clean stop says so on the retained status topic (online at the start, offline now)
    sub.wait_for(
        lambda m: [x["payload"] for x in m if x["topic"] == "meterhub/site-1/status"][-1:] == ["offline"]
    )

    r = client.put("/api/v1/config/publish/live", json=body, headers=csrf)  # enabled again
    assert wait_until_sync(lambda: _states(client) == {"live": "connected"})
    r = client.put("/api/v1/config/publish/live", json={**body, "id": "other"}, headers=csrf)
    assert r.status_code == 422 and "is not the path's 'live'" in r.text
    assert client.delete("/api/v1/config/publish/live", headers=csrf).status_code == 204
    assert _states(client) == {} and sink.runners == []
    r = client.delete("/api/v1/config/publish/live", headers=csrf)
    assert r.status_code == 404 and "no publish instance 'live'" in r.text


def test_an_http_instance_is_connecting_until_its_first_post_is_answered(
    served: tuple[TestClient, Gateway, dict[str, str]], tmp_path: Path
) -> None:
    client, gw, csrf = served
    server, requests = _recorder([])
    url = f"http://127.0.0.1:{server.server_address[1]}/upload"
    try:
        body = {"id": "up", "transport": "http", "url": url, "site_id": "site-1", "interval": 1}
        r = client.put("/api/v1/config/publish/up", json=body, headers=csrf)
        assert r.status_code == 200, r.text
        got = client.get("/api/v1/publish").json()["instances"][0]
        assert got["state"] == "connecting" and requests == []  # nothing was POSTed: nothing is known
        assert "no POST answered by" in got["message"]
        _emit_interval(client, gw)
        assert wait_until_sync(lambda: _states(client) == {"up": "connected"})
        assert [r["status"] for r in requests] == [200] and len(requests[0]["body"]) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_instance_whose_server_is_away_goes_from_connecting_to_down(
    served: tuple[TestClient, Gateway, dict[str, str]],
) -> None:
    client, gw, csrf = served
    url = f"http://127.0.0.1:{free_port()}/upload"  # nobody listens there
    body = {"id": "up", "transport": "http", "url": url, "site_id": "site-1", "interval": 1}
    assert client.put("/api/v1/config/publish/up", json=body, headers=csrf).status_code == 200
    assert _states(client) == {"up": "connecting"}
    _emit_interval(client, gw)
    assert wait_until_sync(lambda: _states(client) == {"up": "down"})
    got = client.get("/api/v1/publish").json()["instances"][0]
    assert "not connected to" in got["message"] and got["backlog"] == 1
