"""Alarm notification benchmark: prints one JSON object.

Every figure runs against an SMTP server started by this script (aiosmtpd on a free loopback port, plain
SMTP, in its own thread), which stamps each mail's arrival time. The events are the air compressor's
power-factor alarm (one recipient, ``group_window: 0``, no rate limit: one mail per event).

1. ``latency`` — ``--events`` alarm events handed to :meth:`Notifier.on_event` one every ``--spacing``
   seconds; per event the time from ``on_event`` to the mail's arrival at the server [s]: p50, p99, max
   (target p99 ≤ 1 s, issue 11). The path: commit to the SQLite outbox (fsync), wake the delivery task,
   plan, connect, send, acknowledge.
2. ``throughput`` — ``--burst`` events queued at once (an alarm storm), timed from the first ``on_event``
   until the last mail arrived: mails/s; ``queue_s``: the part spent in ``on_event`` (one fsync'd outbox
   commit per event, before any mail can go); ``send_mails_per_s``: mails/s after the queueing.
3. ``baseline_raw`` — the same mails rendered by :func:`meterhub.alarms.smtp.render_mail` and sent by
   aiosmtplib directly (no outbox, no planning) in the same run: latency with one connection per mail as
   the notifier uses per round, and mails/s over one connection. ``ratio`` = notifier ``send_mails_per_s`` /
   raw mails/s (both send over one connection; the notifier also plans and deletes each mail's rows).

Usage: ``PYTHONPATH=src .venv/bin/python bench/notify.py [--events 200] [--spacing 0.05] [--burst 1000]``
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib
from aiosmtpd.controller import Controller

from meterhub.alarms.model import AlarmEvent, AlarmState, EventKind, Severity
from meterhub.alarms.notify import Notifier
from meterhub.alarms.smtp import render_mail
from meterhub.config.notify import NotificationsConfig
from meterhub.model.quantities import Q


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stamp:
    """aiosmtpd handler: the arrival time of each mail by its first event seq."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.time()
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        seq = int(str(msg["X-Meterhub-Seq"]).split(",")[0])
        with self.lock:
            self.arrived[seq] = now
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.arrived)


def event(seq: int) -> AlarmEvent:
    return AlarmEvent(
        seq=seq,
        alarm_id="compressor-pf-low/compressor/total",
        rule="compressor-pf-low",
        kind=EventKind.RAISED,
        state=AlarmState.UNACK_ACTIVE,
        severity=Severity.HIGH,
        target="compressor",
        phase="total",
        quantity=Q.POWER_FACTOR,
        value=0.62,
        limit=0.8,
        unit=None,
        ts=time.time(),
        title="Power factor low on compressor",
        message="PF 0.62 below 0.8 on compressor",
    )


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


async def wait_count(stamp: Stamp, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while stamp.count() < n and time.monotonic() < deadline:
        await asyncio.sleep(0.002)


async def notifier_run(
    cfg: NotificationsConfig, folder: Path, stamp: Stamp, args: argparse.Namespace
) -> dict[str, Any]:
    n = Notifier(cfg, data_dir=folder, site="bench site")
    await n.start()
    sent_at: dict[int, float] = {}
    for seq in range(1, args.events + 1):
        sent_at[seq] = time.time()
        n.on_event(event(seq))
        await asyncio.sleep(args.spacing)
    await wait_count(stamp, args.events, 60)
    lat = [stamp.arrived[s] - sent_at[s] for s in sent_at if s in stamp.arrived]
    base = 1_000_000
    t0 = time.time()
    for k in range(args.burst):
        n.on_event(event(base + k))
    queued = time.time() - t0
    await wait_count(stamp, args.events + args.burst, 300)
    t1 = max(stamp.arrived.values())
    await n.stop()
    return {
        "latency": {
            "events": args.events,
            "delivered": len(lat),
            "p50_s": round(pct(lat, 0.5), 4),
            "p99_s": round(pct(lat, 0.99), 4),
            "max_s": round(max(lat), 4),
            "target_p99_s": 1.0,
        },
        "throughput": {
            "mails": args.burst,
            "seconds": round(t1 - t0, 3),
            "mails_per_s": round(args.burst / (t1 - t0), 1),
            "queue_s": round(queued, 3),
            "send_mails_per_s": round(args.burst / max(1e-9, t1 - t0 - queued), 1),
        },
    }


async def raw_run(
    cfg: NotificationsConfig, port: int, stamp: Stamp, args: argparse.Namespace
) -> dict[str, Any]:
    assert cfg.email is not None
    kw: dict[str, Any] = {
        "recipient": "facility@example.net",
        "settings": cfg.email,
        "site": "bench site",
        "tz": ZoneInfo("UTC"),
    }
    lat: list[float] = []
    base = 2_000_000
    for k in range(args.events):
        t = time.time()
        msg = render_mail([event(base + k)], **kw)
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as smtp:
            await smtp.send_message(msg)
        with stamp.lock:
            lat.append(stamp.arrived[base + k] - t)
        await asyncio.sleep(args.spacing)
    base = 3_000_000
    before = stamp.count()
    t0 = time.time()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as smtp:
        for k in range(args.burst):
            await smtp.send_message(render_mail([event(base + k)], **kw))
    await wait_count(stamp, before + args.burst, 60)
    t1 = time.time()
    return {
        "latency_p50_s": round(pct(lat, 0.5), 4),
        "latency_p99_s": round(pct(lat, 0.99), 4),
        "mails_per_s": round(args.burst / (t1 - t0), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=200, help="events for the latency figure")
    ap.add_argument("--spacing", type=float, default=0.05, help="seconds between those events")
    ap.add_argument("--burst", type=int, default=1000, help="events queued at once for mails/s")
    args = ap.parse_args()
    stamp = Stamp()
    port = free_port()
    ctl = Controller(stamp, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        cfg = NotificationsConfig.model_validate(
            {
                "group_window": 0,
                "rate_limit": None,
                "email": {
                    "host": "127.0.0.1",
                    "port": port,
                    "security": "none",
                    "from": "meterhub <alarms@example.net>",
                    "to": ["facility@example.net"],
                },
            }
        )
        with tempfile.TemporaryDirectory(prefix="mh-bench-notify-") as tmp:
            ours = asyncio.run(notifier_run(cfg, Path(tmp), stamp, args))
        raw = asyncio.run(raw_run(cfg, port, stamp, args))
    finally:
        ctl.stop()
    ours["baseline_raw"] = raw
    ours["ratio"] = round(ours["throughput"]["send_mails_per_s"] / raw["mails_per_s"], 3)
    print(json.dumps(ours, indent=2))


if __name__ == "__main__":
    main()
