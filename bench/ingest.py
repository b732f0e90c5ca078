"""Ingest benchmark: messages/s into ``POST /api/v1/ingest``; prints one JSON object.

A receiver — a meterhub gateway on SQLite in a temporary folder, its web app served by uvicorn on a free
loopback port, an admin API token — takes ``--messages`` meterhub-json messages of ``--circuits``
three-phase circuits (40 values each, rendered by :mod:`meterhub.publish.formats`), in batches of
``--batch``. Every figure counts messages (and values = 40 × messages) per second of wall time.

1. ``direct`` — the baseline, same run: the same readings (circuit ``<site>/<circuit>``) written straight
   to a storage of the same kind (``Storage.write`` + ``flush`` per batch), no HTTP, JSON or checks.
2. ``post`` — the prepared gzip bodies POSTed one after another (urllib, as the sender does), each answered
   only after the receiver validated it, checked it for duplicates and committed it. ``ratio`` =
   post / direct.
3. ``upload`` — the full sender path: the messages waiting in a sender's outbox (an outage's backlog), its
   :class:`~meterhub.publish.http.HttpLink` draining them into the receiver; timed until the outbox is
   empty.
4. ``again`` — the ``post`` bodies sent a second time with new Idempotency-Keys: every message is a
   duplicate (the receiver reads one value per message to know), nothing is written.

Usage: ``PYTHONPATH=src .venv/bin/python bench/ingest.py [--messages 5000] [--batch 500]``
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import uvicorn

from meterhub.config import parse_config
from meterhub.config.publish import PublishInstance
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase
from meterhub.publish import formats
from meterhub.publish.http import HttpLink
from meterhub.publish.interval import CircuitInfo, CircuitInterval, Value
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.storage.outbox import Message, Outbox
from meterhub.web.app import create_app

SITE = """
site: {name: Receiver}
buses: [{id: b, kind: modbus-tcp, port: 1502}]
devices: [{id: m, bus: b, unit: 1, profile: eastron-sdm630}]
circuits: [{id: own, device: m, channels: [1], wiring: 1P2W}]
"""
PHASES = (Phase.L1, Phase.L2, Phase.L3, Phase.TOTAL)
QUANTITIES = (
    Q.VOLTAGE,
    Q.CURRENT,
    Q.ACTIVE_POWER,
    Q.REACTIVE_POWER,
    Q.APPARENT_POWER,
    Q.POWER_FACTOR,
    Q.ENERGY_ACTIVE_IMPORT,
    Q.ENERGY_ACTIVE_EXPORT,
    Q.ENERGY_REACTIVE_IMPORT,
    Q.ENERGY_APPARENT,
)


def _messages(circuits: int, n: int, site: str) -> list[bytes]:
    """``n`` meterhub-json messages: ``circuits`` circuits per 1-minute interval, values varying."""
    out: list[bytes] = []
    k = 0
    while len(out) < n:
        end = 1_800_000_000 + 60 * (k + 1)
        for c in range(circuits):
            values = {
                (q, ph): Value(1000.0 + 17.3 * c + 3.1 * i + j + 0.37 * k, Quality.GOOD, 60)
                for i, q in enumerate(QUANTITIES)
                for j, ph in enumerate(PHASES)
            }
            info = CircuitInfo(f"circuit-{c:02d}", f"Circuit {c}", "office", "3P4W", c + 1)
            out.append(formats.meterhub_json(CircuitInterval(info, end, 60.0, values), site_id=site))
        k += 1
    return out[:n]


def _readings(payloads: list[bytes]) -> list[list[Reading]]:
    """The readings the receiver makes of each message (for the direct baseline)."""
    out = []
    for p in payloads:
        m = json.loads(p)
        series = f"{m['site']}/{m['circuit']}"
        phase = {ph.value: ph for ph in Phase}
        out.append(
            [
                Reading(
                    float(m["ts"]),
                    series,
                    v["quantity"],
                    phase.get(v["phase"]),
                    float(v["value"]),
                    Quality.GOOD,
                )
                for v in m["values"]
            ]
        )
    return out


class Receiver:
    """A meterhub gateway on SQLite in ``folder`` whose web app uvicorn serves on a free port."""

    def __init__(self, folder: Path) -> None:
        cfg = parse_config(SITE, "receiver.yaml")
        self.gateway = Gateway(
            cfg, data_dir=folder, storage=open_storage(cfg.storage, folder, timezone="UTC")
        )
        app = create_app(self.gateway)
        app.state.auth.store.add("hub", "bench password 1", "admin")
        _, self.token = app.state.auth.store.create_token("hub", "bench")
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/api/v1/ingest"

    def post(self, body: bytes, key: str) -> dict[str, Any]:
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "Idempotency-Key": key,
            },
        )
        with urllib.request.urlopen(request, timeout=120) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
        return answer

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.gateway.storage.close()


def _rate(n: int, seconds: float, values: int) -> dict[str, float]:
    return {
        "messages": n,
        "seconds": round(seconds, 3),
        "messages_per_s": round(n / seconds),
        "values_per_s": round(n * values / seconds),
    }


def direct(folder: Path, readings: list[list[Reading]], batch: int) -> dict[str, float]:
    cfg = parse_config(SITE, "direct.yaml")
    storage = open_storage(cfg.storage, folder, timezone="UTC")
    t0 = time.perf_counter()
    for k in range(0, len(readings), batch):
        storage.write([r for m in readings[k : k + batch] for r in m])
        storage.flush()
    dt = time.perf_counter() - t0
    storage.close()
    return _rate(len(readings), dt, len(readings[0]))


def post(receiver: Receiver, bodies: list[tuple[bytes, int]], values: int, tag: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    accepted = duplicates = 0
    for i, (body, _count) in enumerate(bodies):
        answer = receiver.post(body, f"{tag}:{i}")
        accepted += answer["accepted"]
        duplicates += answer["duplicates"]
    dt = time.perf_counter() - t0
    n = sum(c for _, c in bodies)
    return {**_rate(n, dt, values), "accepted": accepted, "duplicates": duplicates, "posts": len(bodies)}


def upload(folder: Path, receiver: Receiver, payloads: list[bytes], batch: int) -> dict[str, Any]:
    box = Outbox(folder / "sender.sqlite", name="bench")
    for k in range(0, len(payloads), 1000):
        box.put([Message("meterhub/up/circuits", p) for p in payloads[k : k + 1000]])
    inst = PublishInstance.model_validate(
        {"id": "up", "transport": "http", "url": receiver.url, "token_env": "UNUSED", "batch": batch}
    )
    link = HttpLink(inst, box, token=receiver.token)
    t0 = time.perf_counter()
    link.start()
    while box.stats().backlog and link.failed is None:
        time.sleep(0.005)
    dt = time.perf_counter() - t0
    link.stop()
    box.close()
    if link.failed is not None:
        raise SystemExit(f"upload failed: {link.failed}")
    return {**_rate(len(payloads), dt, 40), "posts": link.posts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--circuits", type=int, default=20)
    ap.add_argument("--batch", type=int, default=500, help="messages per POST (the sender's default)")
    args = ap.parse_args()
    logging.getLogger("meterhub.web.app").setLevel(logging.ERROR)  # "no admin account yet": one is added
    first = _messages(args.circuits, args.messages, "site-a")  # for post and again
    second = _messages(args.circuits, args.messages, "site-b")  # for the sender's outbox
    values = len(json.loads(first[0])["values"])
    bodies = [
        (gzip.compress(b"[" + b",".join(first[k : k + args.batch]) + b"]", 6), len(first[k : k + args.batch]))
        for k in range(0, len(first), args.batch)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "direct").mkdir()
        (folder / "receiver").mkdir()
        base = direct(folder / "direct", _readings(first), args.batch)
        receiver = Receiver(folder / "receiver")
        try:
            posted = post(receiver, bodies, values, "first")
            again = post(receiver, bodies, values, "again")
            uploaded = upload(folder, receiver, second, args.batch)
        finally:
            receiver.close()
    out = {
        "messages": args.messages,
        "circuits": args.circuits,
        "values_per_message": values,
        "batch": args.batch,
        "body_bytes_per_batch_gzip": round(sum(len(b) for b, _ in bodies) / len(bodies)),
        "direct": base,
        "post": posted,
        "ratio": round(posted["messages_per_s"] / base["messages_per_s"], 2),
        "again": again,
        "upload": uploaded,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
