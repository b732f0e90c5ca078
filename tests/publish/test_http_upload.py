"""HTTP upload (``transport: http``) against real receivers: a meterhub gateway served by uvicorn on a free
port (``POST /api/v1/ingest`` into SQLite), and a plain ``http.server`` that records what arrives.

Readings arrive once, a receiver outage of a few seconds loses and doubles nothing, a wrong token keeps
every message and turns the health DOWN with the server's "401 …", and the wire format (gzip, bearer
token, Idempotency-Key = outbox id range) is checked byte by byte."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from meterhub.config import SiteConfig, parse_config
from meterhub.model.readings import SeriesKey, iso_utc
from meterhub.model.topology import Phase
from meterhub.publish.sink import PublishSink
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.web.app import create_app

from .conftest import free_port
from .helpers import aligned_past, feed, make_sink, three_phase, wait_until

RECEIVER_SITE = """
site: {name: Receiver}
buses: [{id: b, kind: modbus-tcp, port: 1502}]
devices: [{id: m, bus: b, unit: 1, profile: eastron-sdm630}]
circuits: [{id: own, device: m, channels: [1], wiring: 1P2W}]
"""

P_TOTAL = SeriesKey("site-1/main", "active_power", Phase.TOTAL)


def sender_site(url: str, token_file: Path, *, extra: str = "") -> SiteConfig:
    text = f"""
site: {{name: Sender}}
buses: [{{id: b, kind: modbus-tcp, port: 1502}}]
devices: [{{id: m, bus: b, unit: 1, profile: eastron-sdm630}}]
circuits:
  - {{id: main, name: Main incomer, device: m, channels: [1, 2, 3], wiring: 3P4W, zone: plant}}
publish:
  - id: up
    transport: http
    url: {url}
    token_file: {token_file}
    site_id: site-1
    interval: 1
{extra}
"""
    return parse_config(text, "site.yaml")


class Receiver:
    """A meterhub gateway (SQLite, no sources) whose web app uvicorn serves on ``port``; ``stop()`` and
    ``start()`` take the server away and bring it back on the same port, the storage stays open."""

    def __init__(self, tmp: Path, *, ssl: dict[str, Any] | None = None) -> None:
        """``ssl``: uvicorn's ``ssl_*`` settings (certfile, keyfile, ca_certs, cert_reqs) for HTTPS."""
        self.port = free_port()
        self.ssl = ssl or {}
        scheme = "https" if ssl else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/api/v1/ingest"
        cfg = parse_config(RECEIVER_SITE, "receiver.yaml")
        data = tmp / "receiver"
        data.mkdir()
        self.gateway = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"))
        self.app = create_app(self.gateway)
        self.app.state.auth.store.add("hub", "correct horse", "admin")
        _, self.token = self.app.state.auth.store.create_token("hub", "sender")
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            **{f"ssl_{k}": v for k, v in self.ssl.items()},
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = None

    def close(self) -> None:
        self.stop()
        self.gateway.storage.close()

    def stored(self, key: SeriesKey = P_TOTAL) -> list[tuple[float, float]]:
        return [(p.ts, p.last) for p in self.gateway.storage.history(key, 0, 2e9)]


@pytest.fixture
def receiver(tmp_path: Path) -> Any:
    r = Receiver(tmp_path)
    r.start()
    yield r
    r.close()


def _token_file(tmp: Path, secret: str) -> Path:
    path = tmp / "upload.token"
    path.write_text(secret + "\n", encoding="utf-8")
    return path


def test_readings_arrive_once_in_the_receivers_storage(tmp_path: Path, receiver: Receiver) -> None:
    cfg = sender_site(receiver.url, _token_file(tmp_path, receiver.token))
    t0 = aligned_past(back=20)

    async def go() -> PublishSink:
        sink, bus = make_sink(cfg, tmp_path / "data")
        await sink.start()
        await feed(sink, bus, [three_phase(t0 + k + 0.5) for k in range(5)])
        runner = sink.runners[0]
        assert await wait_until(lambda: runner.link is not None and runner.link.acked == 5)
        health = sink.health()
        assert health.state.value == "ok", health.message
        await sink.stop()
        return sink

    asyncio.run(go())
    # One message per circuit and interval, stored at the interval's end under <site>/<circuit>.
    assert receiver.stored() == [(t0 + k + 1, 7200.0) for k in range(5)]
    assert receiver.stored(SeriesKey("site-1/main", "voltage", Phase.L1)) == [
        (t0 + k + 1, 230.0) for k in range(5)
    ]
    energy = receiver.stored(SeriesKey("site-1/main", "energy_active_import", Phase.TOTAL))
    assert energy == [(t0 + k + 1, 6000.0) for k in range(5)]
    # Every series the sender polled: 32 instantaneous values and 20 registers (helpers.three_phase).
    assert len(receiver.gateway.storage.series()) == 52


def test_a_receiver_outage_delays_delivery_and_stores_everything_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    cfg = sender_site(receiver.url, _token_file(tmp_path, receiver.token))
    t0 = aligned_past(back=30)

    async def go() -> dict[str, Any]:
        sink, bus = make_sink(cfg, tmp_path / "data")
        runner = sink.runners[0]
        await sink.start()
        await feed(sink, bus, [three_phase(t0 + k + 0.5) for k in range(3)])
        assert await wait_until(lambda: runner.link is not None and runner.link.acked == 3)
        receiver.stop()
        await feed(sink, bus, [three_phase(t0 + k + 0.5) for k in range(3, 6)])
        assert await wait_until(lambda: runner.outbox is not None and runner.outbox.stats().backlog == 3)
        await asyncio.sleep(2.5)  # the sender backs off: 1 s, 2 s …
        during = sink.health().as_dict()
        receiver.start()
        await feed(sink, bus, [three_phase(t0 + k + 0.5) for k in range(6, 9)])
        assert await wait_until(lambda: runner.outbox is not None and runner.outbox.stats().backlog == 0, 15)
        await sink.stop()
        return during

    during = asyncio.run(go())
    assert during["state"] == "degraded"
    assert "connection failed" in str(during["message"]) and "3 message(s) wait" in str(during["message"])
    assert receiver.stored() == [(t0 + k + 1, 7200.0) for k in range(9)]


def test_a_wrong_token_keeps_every_message_and_the_health_says_401(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = sender_site(receiver.url, _token_file(tmp_path, "mh_not-the-token"))
    t0 = aligned_past(back=20)

    async def go() -> tuple[dict[str, Any], int]:
        sink, bus = make_sink(cfg, tmp_path / "data")
        runner = sink.runners[0]
        await sink.start()
        await feed(sink, bus, [three_phase(t0 + k + 0.5) for k in range(3)])
        assert await wait_until(lambda: runner.link is not None and runner.link.failed is not None)
        health = sink.health().as_dict()
        assert runner.outbox is not None
        backlog = runner.outbox.stats().backlog
        await sink.stop()
        return health, backlog

    with caplog.at_level(logging.WARNING, logger="meterhub.publish"):
        health, backlog = asyncio.run(go())
    assert health["state"] == "down"
    assert health["message"] == 'publish up: HTTP 401 Unauthorized: "invalid API token"'
    assert backlog == 3  # nothing deleted
    refusals = [r.getMessage() for r in caplog.records if "refused batch" in r.getMessage()]
    assert refusals == [
        f"publish up: {receiver.url} refused batch up:1-3 (3 message(s), kept): "
        'HTTP 401 Unauthorized: "invalid API token"'
    ]
    assert "mh_not-the-token" not in caplog.text
    assert receiver.stored() == []


def test_the_receiver_refuses_a_gzip_bomb_over_the_network(receiver: Receiver) -> None:
    bomb = gzip.compress(b"[" + b" " * (20 * 1024 * 1024) + b"]", compresslevel=9)
    request = urllib.request.Request(
        receiver.url,
        data=bomb,
        method="POST",
        headers={"Authorization": f"Bearer {receiver.token}", "Content-Encoding": "gzip"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 413
    assert "decompressed body is larger than" in err.value.read().decode()
    err.value.close()


class Recorder(BaseHTTPRequestHandler):
    """Records each POST (headers and inflated body); answers with the next status of ``statuses``."""

    requests: list[dict[str, Any]]
    statuses: list[tuple[int, bytes]]
    max_messages: int

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(gzip.decompress(raw))
        status, answer = self.statuses.pop(0) if self.statuses else (200, b'{"accepted": 0}')
        if len(body) > self.max_messages:
            status, answer = 413, b'{"detail": "too large"}'
        self.requests.append(
            {"status": status, "headers": dict(self.headers.items()), "raw": raw, "body": body}
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _recorder(
    statuses: list[tuple[int, bytes]], max_messages: int = 10_000
) -> tuple[ThreadingHTTPServer, list[dict[str, Any]]]:
    """A recording server; a body of more than ``max_messages`` messages is answered 413."""
    requests: list[dict[str, Any]] = []
    handler = type(
        "Handler", (Recorder,), {"requests": requests, "statuses": statuses, "max_messages": max_messages}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, requests


def test_wire_format_gzip_bearer_token_and_idempotency_key(tmp_path: Path) -> None:
    # The first POST meets a 503: the same batch comes again, with the same key.
    server, requests = _recorder([(503, b'{"detail": "busy"}')])
    url = f"http://127.0.0.1:{server.server_address[1]}/upload"
    cfg = sender_site(url, _token_file(tmp_path, "mh_secret-value"), extra="    batch: 2")
    t0 = aligned_past(back=20)

    async def go() -> None:
        sink, bus = make_sink(cfg, tmp_path / "data")
        runner = sink.runners[0]
        await sink.start()
        await feed(sink, bus, [three_phase(t0 + k + 0.5) for k in range(5)])
        assert await wait_until(lambda: runner.link is not None and runner.link.acked == 5, 10)
        await sink.stop()

    try:
        asyncio.run(go())
    finally:
        server.shutdown()
        server.server_close()
    first = requests[0]
    assert first["headers"]["Content-Encoding"] == "gzip"
    assert first["headers"]["Content-Type"] == "application/json"
    assert first["headers"]["Authorization"] == "Bearer mh_secret-value"
    assert first["raw"][:2] == b"\x1f\x8b"  # gzip magic
    keys = [(r["status"], r["headers"]["Idempotency-Key"]) for r in requests]
    # Ticks may close the five intervals in one or several goes; batches never exceed 2 messages,
    # ids follow each other, and the refused batch is sent again with its key.
    assert keys[0][0] == 503 and keys[1] == (200, keys[0][1])
    delivered = [r for r in requests if r["status"] == 200]
    ranges = [
        tuple(int(x) for x in r["headers"]["Idempotency-Key"].removeprefix("up:").split("-"))
        for r in delivered
    ]
    assert [i for a, b in ranges for i in range(a, b + 1)] == [1, 2, 3, 4, 5]
    assert all(b - a < 2 for a, b in ranges)
    msgs = [m for r in delivered for m in r["body"]]
    assert [m["key"] for m in msgs] == [f"site-1/main/{int(t0) + k + 1}" for k in range(5)]
    assert all(m["schema"] == "meterhub-json/1" for m in msgs)


def test_a_refusal_keeps_the_batch_and_shows_the_servers_answer(tmp_path: Path) -> None:
    """A 4xx (not 408/429) keeps the batch, is not repeated before the longest backoff (60 s), and the
    health names the server's answer."""
    server, requests = _recorder([(400, b'{"detail": [{"loc": ["body", 0, "ts"], "msg": "bad ts"}]}')])
    url = f"http://127.0.0.1:{server.server_address[1]}/upload"
    cfg = sender_site(url, _token_file(tmp_path, "mh_x"))
    t0 = aligned_past(back=20)

    async def go() -> str:
        sink, bus = make_sink(cfg, tmp_path / "data")
        runner = sink.runners[0]
        await sink.start()
        await feed(sink, bus, [three_phase(t0 + 0.5)])
        assert await wait_until(lambda: runner.link is not None and runner.link.failed is not None)
        message = sink.health().message
        await sink.stop()
        return message

    try:
        message = asyncio.run(go())
    finally:
        server.shutdown()
        server.server_close()
    assert message == 'publish up: HTTP 400 Bad Request: [{"loc": ["body", 0, "ts"], "msg": "bad ts"}]'
    assert len(requests) == 1


def test_a_413_halves_the_batches_until_they_pass(tmp_path: Path) -> None:
    server, requests = _recorder([], max_messages=2)
    url = f"http://127.0.0.1:{server.server_address[1]}/upload"
    cfg = sender_site(url, _token_file(tmp_path, "mh_x"), extra="    batch: 10")
    t0 = aligned_past(back=20)

    async def go() -> str:
        sink, bus = make_sink(cfg, tmp_path / "data")
        runner = sink.runners[0]
        await feed(sink, bus, [three_phase(t0 + k + 0.5) for k in range(5)])  # before start: one outbox write
        await sink.start()
        assert await wait_until(lambda: runner.link is not None and runner.link.acked == 5, 10)
        state = sink.health().state.value
        await sink.stop()
        return state

    try:
        state = asyncio.run(go())
    finally:
        server.shutdown()
        server.server_close()
    assert state == "ok"
    sizes = [(r["status"], len(r["body"])) for r in requests]
    assert sizes == [(413, 5), (200, 2), (200, 2), (200, 1)]
    keys = [r["headers"]["Idempotency-Key"] for r in requests]
    assert keys == ["up:1-5", "up:1-2", "up:3-4", "up:5-5"]


class LostAnswer(BaseHTTPRequestHandler):
    """A proxy in front of a meterhub receiver that hands the first POST to the receiver (which stores
    it) and then closes the connection without an answer — the sender cannot know it arrived. Later POSTs
    are passed through with their answer. ``seen``: (Idempotency-Key, receiver's answer) of each POST."""

    target: str
    seen: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        names = ("Authorization", "Content-Type", "Content-Encoding", "Idempotency-Key")
        forward = urllib.request.Request(
            self.target, data=raw, method="POST", headers={h: self.headers[h] for h in names}
        )
        with urllib.request.urlopen(forward, timeout=10) as resp:
            status, answer = resp.status, resp.read()
        self.seen.append((self.headers["Idempotency-Key"], json.loads(answer)))
        if len(self.seen) == 1:
            self.close_connection = True  # the answer is lost: nothing is written back
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_connection_dropped_without_an_answer_keeps_the_batch_and_the_receiver_stores_it_once(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    handler = type("Handler", (LostAnswer,), {"target": receiver.url, "seen": seen})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{proxy.server_address[1]}/api/v1/ingest"
    cfg = sender_site(url, _token_file(tmp_path, receiver.token), extra="    batch: 500")
    t0 = aligned_past(back=20)

    async def go() -> tuple[int, int]:
        sink, bus = make_sink(cfg, tmp_path / "data")
        runner = sink.runners[0]
        await sink.start()
        await feed(sink, bus, [three_phase(t0 + k + 0.5) for k in range(3)])  # closed in one tick: one batch
        assert await wait_until(lambda: runner.link is not None and runner.link.acked == 3, 15)
        link = runner.link
        assert link is not None and runner.outbox is not None
        backlog = runner.outbox.stats().backlog
        await sink.stop()
        return backlog, link.acked

    try:
        with caplog.at_level(logging.WARNING, logger="meterhub.publish"):
            backlog, acked = asyncio.run(go())
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert (backlog, acked) == (0, 3)
    # The first POST was stored by the receiver, but its answer never came: the batch stayed in the
    # outbox and went again with the same Idempotency-Key; the receiver answered from its memory.
    assert [key for key, _ in seen] == ["up:1-3", "up:1-3"]
    assert seen[0][1] == {"accepted": 3, "duplicates": 0, "refused": []}
    assert seen[1][1] == {"accepted": 0, "duplicates": 3, "refused": []}
    assert receiver.stored() == [(t0 + k + 1, 7200.0) for k in range(3)]  # each value once
    warnings = [r.getMessage() for r in caplog.records]
    assert any("publish up: cannot deliver to" in w and "without response" in w for w in warnings), warnings


def test_uploaded_circuits_show_in_the_receivers_history_api(tmp_path: Path, receiver: Receiver) -> None:
    cfg = sender_site(receiver.url, _token_file(tmp_path, receiver.token))
    t0 = aligned_past(back=20)

    async def go() -> None:
        sink, bus = make_sink(cfg, tmp_path / "data")
        await sink.start()
        await feed(sink, bus, [three_phase(t0 + k + 0.5) for k in range(3)])
        runner = sink.runners[0]
        assert await wait_until(lambda: runner.link is not None and runner.link.acked == 3)
        await sink.stop()

    asyncio.run(go())
    base = receiver.url.removesuffix("/ingest")
    auth = {"Authorization": f"Bearer {receiver.token}"}

    def get(path: str) -> Any:
        with urllib.request.urlopen(urllib.request.Request(base + path, headers=auth), timeout=10) as r:
            return json.loads(r.read())

    listed = get("/ingest/series")
    assert [(c["site"], c["circuit"], c["series_id"]) for c in listed] == [("site-1", "main", "site-1/main")]
    assert {"quantity": "active_power", "phase": "total", "unit": "W"} in listed[0]["series"]
    assert {"quantity": "voltage", "phase": "L1", "unit": "V"} in listed[0]["series"]
    span = f"start={int(t0)}&end={int(t0) + 10}&resolution=raw"
    power = get(f"/circuits/site-1/main/history?{span}")
    assert (power["circuit"], power["quantity"], power["phase"], power["unit"]) == (
        "site-1/main",
        "active_power",
        "total",
        "W",
    )
    assert [(p["ts"], p["last"]) for p in power["points"]] == [
        (iso_utc(t0 + k + 1), 7200.0) for k in range(3)
    ]
    volts = get(f"/circuits/site-1/main/history?quantity=voltage&phase=L2&{span}")
    assert [p["last"] for p in volts["points"]] == [231.0] * 3
    with pytest.raises(urllib.error.HTTPError) as err:
        get(f"/circuits/site-9/main/history?{span}")
    assert err.value.code == 404
    assert "nothing uploaded for circuit 'site-9/main' (uploaded: site-1/main)" in err.value.read().decode()
    err.value.close()
