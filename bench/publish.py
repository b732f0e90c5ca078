"""MQTT publish benchmark: prints one JSON object.

Every figure runs against a private Mosquitto started by this script on a free loopback port
(persistence off, stopped by PID), with the same payloads: the real meterhub-json messages of
``--circuits`` three-phase circuits (rendered by ``meterhub.publish.formats`` from a full poll), QoS 1,
at most ``--window`` unacknowledged messages (or the broker's Receive Maximum if smaller: Mosquitto says
20), MQTT v5 with the ``message-id`` user property.

1. ``raw_paho`` — paho-mqtt publishing the payloads directly (the same ``message-id`` property bytes),
   timed until the last PUBACK, with at most the broker's Receive Maximum unacknowledged (MQTT v5 §3.3.4;
   paho's inflight limit), as the outbox path does. ``raw_paho_beyond_receive_maximum``: the same without
   that limit — faster, but outside the protocol (a broker that enforces it disconnects the client).
2. ``outbox_path`` — the full path: the payloads handed to the SQLite outbox as the publish sink does
   (:meth:`~meterhub.storage.outbox.Outbox.stage`, ``--per-commit`` messages at a time, by default the
   2·n + 1 messages of one interval of n circuits in all three formats; the outbox's writer thread
   commits what waits in one fsync'd transaction — ``commits`` says how many there were — and only
   committed messages are sent) while :class:`~meterhub.publish.mqtt.MqttLink` drains it, timed from the
   first hand-over until the outbox is empty (every message committed, its PUBACK received and its row
   deleted). ``ratio`` = outbox_path / raw_paho messages/s (target ≥ 0.8).
   ``cpu_ratio``: raw paho's CPU time per message over the full path's (medians of the rounds; every
   thread of this process) — the steadier figure on a machine shared with other work.
   ``outbox_path_commit_each``: the same with :meth:`~meterhub.storage.outbox.Outbox.put`, which waits
   for each interval's own fsync'd commit (the sink's behaviour before group commit).
3. ``replay`` — ``--backlog`` messages already in the outbox (a long outage: filled first, not timed),
   then the link starts; timed until the outbox is empty. Messages/s of the replay (target ≥ 10 000).
   The count is stated; nothing is extrapolated.
4. ``disk`` — one day of ``--circuits`` circuits at 1-minute intervals in all three formats, rendered and
   committed to an outbox: its file size (payloads are stored zlib-compressed), and 90 times that; and
   the CPU time of the rendering (per interval in all three formats, per meterhub-json message), the
   part of the sink's path the figures above leave out (both sides there send the same ready payloads).

Usage: ``PYTHONPATH=src .venv/bin/python bench/publish.py [--messages 20000] [--backlog 200000]``
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from meterhub.config.publish import PublishInstance
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality
from meterhub.model.topology import Phase
from meterhub.publish import formats, homeassistant
from meterhub.publish.interval import CircuitInfo, CircuitInterval, Value
from meterhub.publish.mqtt import MessageIdProperty, MqttLink
from meterhub.storage.outbox import Message, Outbox

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_broker(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n"
    )
    proc = subprocess.Popen(
        ["/usr/sbin/mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.02)
    raise SystemExit("mosquitto did not start")


def _intervals(circuits: int, end: float, shift: int = 0) -> list[CircuitInterval]:
    out = []
    for c in range(circuits):
        values = {
            (q, ph): Value(
                1000.0 + 17.3 * c + i * 3.1 + j + 0.731 * shift + 0.0137 * (c * shift % 97), Quality.GOOD, 60
            )
            for i, q in enumerate(QUANTITIES)
            for j, ph in enumerate(PHASES)
        }
        info = CircuitInfo(f"circuit-{c:02d}", f"Circuit {c}", "office", "3P4W", c + 1)
        out.append(CircuitInterval(info, end, 60.0, values))
    return out


def _payloads(circuits: int, n: int, kind: str) -> list[Message]:
    msgs: list[Message] = []
    k = 0
    while len(msgs) < n:
        for ci in _intervals(circuits, 1_800_000_000 + 60 * k):
            if kind == "meterhub-json":
                payload = formats.meterhub_json(ci, site_id="bench")
                msgs.append(Message(f"meterhub/bench/circuits/{ci.circuit.id}", payload))
            else:
                payload = homeassistant.state_payload(ci)
                msgs.append(Message(homeassistant.state_topic("meterhub/bench", ci.circuit.id), payload))
        k += 1
    return msgs[:n]


def receive_maximum(port: int) -> int:
    """The broker's MQTT v5 Receive Maximum, from the CONNACK of a probe connection."""
    got: list[int] = []
    connected = threading.Event()

    def on_connect(client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        got.append(int(getattr(props, "ReceiveMaximum", 65535)))
        connected.set()

    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-probe", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    connected.wait(5)
    client.disconnect()
    client.loop_stop()
    return got[0]


def raw_paho(port: int, msgs: list[Message], *, inflight: int) -> dict[str, float]:
    """paho alone; ``inflight``: its limit of unacknowledged messages (0: none)."""
    acked = 0
    done = threading.Event()

    def on_publish(client: paho.Client, userdata: object, mid: int, rc: object, props: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(msgs):
            done.set()

    connected = threading.Event()
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.max_inflight_messages_set(inflight)
    client.on_publish = on_publish
    client.on_connect = lambda *a: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    connected.wait(5)
    t0, c0 = time.perf_counter(), time.process_time()
    for i, m in enumerate(msgs):
        client.publish(m.topic, m.payload, qos=1, properties=MessageIdProperty(i + 1))
    done.wait(300)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    client.disconnect()
    client.loop_stop()
    return {
        "messages": len(msgs),
        "seconds": round(dt, 3),
        "messages_per_s": round(len(msgs) / dt),
        "cpu_us_per_message": round(cpu / len(msgs) * 1e6, 1),
        "inflight_limit": inflight,
    }


def _link(port: int, box: Outbox, window: int) -> MqttLink:
    inst = PublishInstance.model_validate({"id": "bench", "broker": f"mqtt://127.0.0.1:{port}"})
    return MqttLink(
        inst,
        box,
        availability_topic="meterhub/bench/status",
        client_id="bench-outbox",
        password=None,
        window=window,
    )


def _wait_connected(link: MqttLink) -> None:
    deadline = time.monotonic() + 5
    while not link.state().connected and time.monotonic() < deadline:
        time.sleep(0.01)


def outbox_path(
    port: int, folder: Path, msgs: list[Message], per_commit: int, window: int, *, wait_each: bool = False
) -> dict[str, float]:
    box = Outbox(folder / ("put.sqlite" if wait_each else "path.sqlite"), name="bench")
    link = _link(port, box, window)
    link.start()
    _wait_connected(link)
    hand_over = box.put if wait_each else box.stage
    t0, c0 = time.perf_counter(), time.process_time()
    for k in range(0, len(msgs), per_commit):
        hand_over(msgs[k : k + per_commit])
        link.wake()
    while box.stats().backlog:
        time.sleep(0.002)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    link.stop()
    commits = box.commits
    box.close()
    return {
        "messages": len(msgs),
        "seconds": round(dt, 3),
        "messages_per_s": round(len(msgs) / dt),
        "cpu_us_per_message": round(cpu / len(msgs) * 1e6, 1),
        "commits": commits,
    }


def replay(port: int, folder: Path, msgs: list[Message], backlog: int, window: int) -> dict[str, float]:
    box = Outbox(folder / "replay.sqlite", name="bench")
    t0 = time.perf_counter()
    for k in range(0, backlog, 1000):
        box.put([msgs[(k + i) % len(msgs)] for i in range(min(1000, backlog - k))])
    fill = time.perf_counter() - t0
    st = box.stats()
    file_bytes = sum(p.stat().st_size for p in folder.glob("replay.sqlite*"))
    link = _link(port, box, window)
    t0 = time.perf_counter()
    link.start()
    while box.stats().backlog:
        time.sleep(0.01)
    dt = time.perf_counter() - t0
    link.stop()
    box.close()
    return {
        "messages": backlog,
        "seconds": round(dt, 2),
        "messages_per_s": round(backlog / dt),
        "fill_seconds": round(fill, 2),
        "outbox_file_bytes": file_bytes,
        "file_bytes_per_message": round(file_bytes / backlog, 1),
        "payload_bytes_per_message": round((st.size / backlog), 1),
    }


def disk_per_day(folder: Path, circuits: int) -> dict[str, float]:
    """One day of 1-minute intervals of ``circuits`` circuits in all three formats, rendered by the
    formats and committed to an outbox (one transaction per interval, as the sink does); the file size
    after a checkpoint is the figure. Values vary per circuit and minute like the synthetic ones above."""
    box = Outbox(folder / "day.sqlite", name="day")
    day0 = 1_800_000_000
    t0 = time.perf_counter()
    count = 0
    render_cpu = json_cpu = 0.0
    for minute in range(1440):
        ivs = _intervals(circuits, day0 + 60 * (minute + 1), shift=minute)
        c0 = time.process_time()
        msgs = [Message("meterhub/bench/rtdata", formats.rtdata(ivs, "bench"))]
        for ci in ivs:
            c1 = time.process_time()
            payload = formats.meterhub_json(ci, site_id="bench")
            json_cpu += time.process_time() - c1
            msgs.append(Message(f"meterhub/bench/circuits/{ci.circuit.id}", payload))
            msgs.append(
                Message(
                    homeassistant.state_topic("meterhub/bench", ci.circuit.id),
                    homeassistant.state_payload(ci),
                )
            )
        render_cpu += time.process_time() - c0
        box.put(msgs)
        count += len(msgs)
    seconds = time.perf_counter() - t0
    box.close()
    con = sqlite3.connect(folder / "day.sqlite")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    size = sum(p.stat().st_size for p in folder.glob("day.sqlite*"))
    return {
        "circuits": circuits,
        "messages_per_day": count,
        "render_and_commit_seconds": round(seconds, 1),
        # CPU time of rendering (process time: includes other threads' — none run here)
        "render_cpu_us_per_interval_all_formats": round(render_cpu / 1440 * 1e6),
        "render_cpu_us_per_meterhub_json_message": round(json_cpu / (1440 * circuits) * 1e6, 1),
        "outbox_mib_per_day_all_formats": round(size / 2**20, 1),
        "outbox_gib_for_90_days": round(90 * size / 2**30, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--backlog", type=int, default=200_000)
    ap.add_argument("--circuits", type=int, default=20)
    ap.add_argument("--window", type=int, default=2000)
    ap.add_argument(
        "--per-commit",
        type=int,
        default=0,
        help="messages per outbox transaction; default: one interval of --circuits in all three formats (2·n + 1)",
    )
    ap.add_argument(
        "--payload",
        choices=["meterhub-json", "homeassistant"],
        default="meterhub-json",
        help="the messages: meterhub-json (≈6 kB, 40 series) or Home Assistant state (≈1.1 kB)",
    )
    ap.add_argument("--rounds", type=int, default=3, help="raw / outbox pairs, interleaved (best of)")
    args = ap.parse_args()
    msgs = _payloads(args.circuits, args.messages, args.payload)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        proc, port = _start_broker(folder)
        try:
            raws, paths, unlimited, each = [], [], [], []
            # MQTT v5 §3.3.4 allows at most Receive Maximum unacknowledged QoS 1 messages (Mosquitto: 20);
            # paho does not apply it by itself. Without it (0 = no limit) is faster, and outside the protocol.
            limit = receive_maximum(port)
            for r in range(args.rounds):
                raws.append(raw_paho(port, msgs, inflight=limit))
                unlimited.append(raw_paho(port, msgs, inflight=0))
                sub = folder / f"r{r}"
                sub.mkdir()
                per_commit = args.per_commit or 2 * args.circuits + 1
                paths.append(outbox_path(port, sub, msgs, per_commit, args.window))
                each.append(outbox_path(port, sub, msgs, per_commit, args.window, wait_each=True))
            best_raw = max(raws, key=lambda x: x["messages_per_s"])
            best_unlimited = max(unlimited, key=lambda x: x["messages_per_s"])
            best_path = max(paths, key=lambda x: x["messages_per_s"])
            best_each = max(each, key=lambda x: x["messages_per_s"])
            rep = replay(port, folder, msgs, args.backlog, args.window)
            day = disk_per_day(folder, args.circuits)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    payload = sum(len(m.payload) + len(m.topic) for m in msgs) / len(msgs)
    out = {
        "payload": args.payload,
        "payload_bytes_mean": round(payload),
        "raw_paho": best_raw,
        "raw_paho_beyond_receive_maximum": best_unlimited,
        "outbox_path": best_path,
        "ratio": round(best_path["messages_per_s"] / best_raw["messages_per_s"], 2),
        "outbox_path_commit_each": best_each,
        "ratio_commit_each": round(best_each["messages_per_s"] / best_raw["messages_per_s"], 2),
        "replay_ratio": round(rep["messages_per_s"] / best_raw["messages_per_s"], 2),
        # On a shared machine the wall-clock rates swing with other load; CPU time per message (every
        # thread of this process; the broker's is the same for both) is steadier. Medians of the rounds.
        "cpu_us_per_message_median": {
            "raw_paho": statistics.median(x["cpu_us_per_message"] for x in raws),
            "outbox_path": statistics.median(x["cpu_us_per_message"] for x in paths),
            "outbox_path_commit_each": statistics.median(x["cpu_us_per_message"] for x in each),
        },
        "cpu_ratio": round(
            statistics.median(x["cpu_us_per_message"] for x in raws)
            / statistics.median(x["cpu_us_per_message"] for x in paths),
            2,
        ),
        "rounds_messages_per_s": {
            "raw_paho": [x["messages_per_s"] for x in raws],
            "raw_paho_beyond_receive_maximum": [x["messages_per_s"] for x in unlimited],
            "outbox_path": [x["messages_per_s"] for x in paths],
            "outbox_path_commit_each": [x["messages_per_s"] for x in each],
        },
        "replay": rep,
        "disk": day,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
