"""``meterhub simulate-fleet``: many lightweight simulated gateways publishing ``meterhub-json``.

No web, no metering engine: each simulated site has ``circuits`` circuits with ``series`` series in
all, and at every ``interval`` boundary (Unix-aligned, as a real gateway's publish instance) sends one
``meterhub-json/1`` message per circuit to ``meterhub/<site>/circuits/<circuit>`` with QoS 1 — the
exact shape :func:`meterhub.publish.formats.meterhub_json` produces. The sites are split over a few
processes, one MQTT connection each (MQTT 5, or 3.1.1 for a broker without MQTT 5). With ``netns``, each
process runs in its own network namespace and reaches the broker through the broker namespace's address
(:mod:`meterhub.central.netns`).

Values are deterministic, so a test can check them by hand: circuit ``c<k>`` of site number ``i`` draws
``P = 1000·(1 + i mod 10)·(k + 1)`` W on its total ``active_power`` (each phase a third); its
``energy_active_import`` register is ``P · ts / 3600`` Wh (it never goes backwards); voltages 230 V,
currents ``P / 3 / 230`` A, frequency 50 Hz.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from meterhub.central.netns import NetnsFleet, enter
from meterhub.config.publish import parse_broker
from meterhub.model.formats import METERHUB_JSON_SCHEMA
from meterhub.model.quantities import CATALOGUE, Q, obis_code
from meterhub.model.topology import Phase

__all__ = ["SERIES", "FleetSpec", "circuit_message", "run_fleet", "site_ids"]

_T, _L1, _L2, _L3 = Phase.TOTAL, Phase.L1, Phase.L2, Phase.L3
#: The series a simulated circuit offers, in order: the first ``series per circuit`` are used.
SERIES: tuple[tuple[Q, Phase], ...] = (
    (Q.ENERGY_ACTIVE_IMPORT, _T),
    (Q.ACTIVE_POWER, _T),
    (Q.ACTIVE_POWER, _L1),
    (Q.ACTIVE_POWER, _L2),
    (Q.ACTIVE_POWER, _L3),
    (Q.VOLTAGE, _L1),
    (Q.VOLTAGE, _L2),
    (Q.VOLTAGE, _L3),
    (Q.CURRENT, _L1),
    (Q.CURRENT, _L2),
    (Q.CURRENT, _L3),
    (Q.FREQUENCY, _T),
    (Q.POWER_FACTOR, _T),
    (Q.REACTIVE_POWER, _T),
    (Q.REACTIVE_POWER, _L1),
    (Q.REACTIVE_POWER, _L2),
    (Q.REACTIVE_POWER, _L3),
    (Q.APPARENT_POWER, _T),
    (Q.THD_VOLTAGE, _L1),
    (Q.THD_VOLTAGE, _L2),
    (Q.THD_VOLTAGE, _L3),
    (Q.THD_CURRENT, _L1),
    (Q.THD_CURRENT, _L2),
    (Q.THD_CURRENT, _L3),
)


@dataclass(frozen=True)
class FleetSpec:
    """What to simulate. ``interval`` [s]; ``backfill`` [s]: intervals of the past sent first, as a
    gateway back from an outage replays its outbox; ``count``: live intervals, then stop (None: run
    until interrupted); ``mqtt_version``: "5" or "3.1.1"; ``netns``: each process in its own network
    namespace (root only)."""

    broker: str
    sites: int
    series: int = 50
    circuits: int = 5
    interval: int = 10
    prefix: str = "sim-"
    first: int = 0
    processes: int = 2
    count: int | None = None
    backfill: int = 0
    topic_root: str = "meterhub"
    username: str | None = None
    password: str | None = None
    mqtt_version: str = "5"
    netns: bool = False


def site_ids(spec: FleetSpec) -> list[str]:
    return [f"{spec.prefix}{i:05d}" for i in range(spec.first, spec.first + spec.sites)]


def _value(q: str, phase: Phase, power: float, ts: int) -> float:
    third = power / 3
    if q == Q.ENERGY_ACTIVE_IMPORT:
        return power * ts / 3600
    if q == Q.ACTIVE_POWER:
        return power if phase is _T else third
    if q == Q.VOLTAGE:
        return 230.0
    if q == Q.CURRENT:
        return third / 230.0
    if q == Q.FREQUENCY:
        return 50.0
    if q == Q.POWER_FACTOR:
        return 0.95
    if q in (Q.REACTIVE_POWER, Q.APPARENT_POWER):
        return (power if phase is _T else third) * (0.33 if q == Q.REACTIVE_POWER else 1.05)
    return 2.5  # THD [%]


def circuit_message(site: str, number: int, k: int, per_circuit: int, ts: int, interval: int) -> bytes:
    """The meterhub-json/1 message of circuit ``c<k>`` of site ``site`` (number ``number``) for the
    interval ending at ``ts`` [Unix s]."""
    power = 1000.0 * (1 + number % 10) * (k + 1)
    values = []
    for q, ph in sorted(SERIES[:per_circuit], key=lambda s: (s[0].value, s[1].value)):
        spec = CATALOGUE[q]
        values.append(
            {
                "quantity": q.value,
                "phase": ph.value,
                "value": float(f"{_value(q, ph, power, ts):.7g}"),
                "unit": spec.unit,
                "kind": spec.kind.value,
                "obis": obis_code(spec, ph),
                "quality": "good",
                "samples": interval,
            }
        )
    circuit = f"c{k}"
    msg = {
        "schema": METERHUB_JSON_SCHEMA,
        "key": f"{site}/{circuit}/{ts}",
        "site": site,
        "circuit": circuit,
        "name": f"Circuit {k}",
        "zone": None,
        "start": datetime.fromtimestamp(ts - interval, UTC).isoformat().replace("+00:00", "Z"),
        "end": datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z"),
        "ts": ts,
        "interval": interval,
        "values": values,
    }
    return json.dumps(msg, separators=(",", ":")).encode()


def _per_circuit(spec: FleetSpec) -> int:
    return max(1, min(len(SERIES), spec.series // spec.circuits))


def _messages(spec: FleetSpec, numbers: list[int], ts: int) -> Iterator[tuple[str, bytes]]:
    per = _per_circuit(spec)
    for n in numbers:
        site = f"{spec.prefix}{n:05d}"
        for k in range(spec.circuits):
            yield (
                f"{spec.topic_root}/{site}/circuits/c{k}",
                circuit_message(site, n, k, per, ts, spec.interval),
            )


class _Acks:
    """Counts the broker's PUBACKs (paho ``on_publish``): a message published while the connection is
    down is queued by paho and sent after the reconnect, so waiting on acknowledgements, not on
    ``wait_for_publish`` (which gives up on a message queued while disconnected), survives a broker restart."""

    def __init__(self) -> None:
        self.count = 0
        self.cond = threading.Condition()

    def on_publish(self, *_: Any) -> None:
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 120) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.count >= n, timeout)


def _set_signal(sig: signal.Signals, handler: Any) -> Any:
    """``signal.signal`` in the main thread (the only one allowed to); elsewhere nothing (None)."""
    if threading.current_thread() is not threading.main_thread() or handler is None:
        return None
    return signal.signal(sig, handler)


def _interrupt(*_: Any) -> None:
    """SIGTERM (and a second signal) as Ctrl-C: once, so the clean-up is not interrupted in its turn."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker(
    spec: FleetSpec, numbers: list[int], start_ts: int, out: Any, netns: str | None, broker: str
) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    # prctl(PR_SET_PDEATHSIG, SIGTERM): stop with the parent, even one killed with SIGKILL
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before that
        return
    if netns:
        try:
            enter(netns)  # before any socket or thread: paho's network thread follows
        except Exception as exc:
            out.put((0, 0, f"{netns}: {exc}"))
            return
    addr = parse_broker(broker)
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        protocol=MQTTProtocolVersion.MQTTv5 if spec.mqtt_version == "5" else MQTTProtocolVersion.MQTTv311,
        client_id=f"simfleet-{numbers[0]}-{time.time_ns() % 10**9}",
    )
    if spec.username:
        client.username_pw_set(spec.username, spec.password)
    acks = _Acks()
    client.on_publish = acks.on_publish
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(1, 2)
    try:
        client.connect(addr.host, addr.port, keepalive=30)
    except (OSError, KeyboardInterrupt) as exc:
        out.put((0, 0, f"cannot connect to {broker}: {exc}" if isinstance(exc, OSError) else None))
        return
    client.loop_start()
    sent = 0
    per = _per_circuit(spec)
    try:
        replay = list(range(start_ts - spec.backfill, start_ts, spec.interval)) if spec.backfill else []
        for past in replay:  # a gateway back from an outage: as fast as the broker takes it
            for t, p in _messages(spec, numbers, past):
                client.publish(t, p, qos=1)
                sent += 1
            acks.wait(sent - 2000)  # at most 2000 unacknowledged
        live = 0
        ts = start_ts
        while spec.count is None or live < spec.count:
            pause = ts - time.time()
            if pause > 0:
                time.sleep(pause)
            for t, p in _messages(spec, numbers, ts):
                client.publish(t, p, qos=1)
                sent += 1
            live += 1
            ts += spec.interval
        acks.wait(sent)
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
        out.put((acks.count, acks.count * per, None))


def run_fleet(spec: FleetSpec) -> dict[str, Any]:
    """Run the simulation (blocking) until ``count`` intervals are sent, or Ctrl-C / SIGTERM; the counts
    the broker acknowledged: ``{"sites", "messages", "points", "first_ts", "last_ts"}`` (with ``netns``
    also ``"netns"``: the namespaces used, all deleted again). The first live interval is the next
    boundary at least 1 s away. :class:`~meterhub.central.netns.NetnsError` when the namespaces cannot
    be made; :class:`RuntimeError` naming the cause when a process could not publish at all."""
    numbers = list(range(spec.first, spec.first + spec.sites))
    nproc = max(1, min(spec.processes, len(numbers)))
    slices = [numbers[i::nproc] for i in range(nproc)]
    fleet: NetnsFleet | None = None
    broker = spec.broker
    previous_term = _set_signal(signal.SIGTERM, _interrupt)
    previous_int = signal.getsignal(signal.SIGINT)
    try:
        if spec.netns:
            addr = parse_broker(spec.broker)
            fleet = NetnsFleet(nproc, (addr.host, addr.port))
            fleet.open()
            broker = fleet.broker_url
        now = time.time()
        start_ts = (int(now + 1) // spec.interval + 1) * spec.interval
        sent, points, errors = _run_processes(spec, slices, start_ts, fleet, broker)
    finally:
        _set_signal(signal.SIGINT, signal.SIG_IGN)  # the namespaces are deleted, whatever comes
        try:
            if fleet is not None:
                fleet.close()
        finally:
            _set_signal(signal.SIGTERM, previous_term)
            _set_signal(signal.SIGINT, previous_int)
    if errors and not sent:
        raise RuntimeError("; ".join(errors))
    last = start_ts + spec.interval * ((spec.count or 1) - 1)
    result: dict[str, Any] = {
        "sites": spec.sites,
        "messages": sent,
        "points": points,
        "first_ts": start_ts - spec.backfill,
        "last_ts": last,
    }
    if fleet is not None:
        result["netns"] = {
            "broker": f"{fleet.broker_ns} {fleet.broker_url}",
            "gateways": [f"{g} {fleet.gateway_address(k)}" for k, g in enumerate(fleet.gateway_ns)],
        }
    if errors:
        result["errors"] = errors
    return result


def _run_processes(
    spec: FleetSpec, slices: list[list[int]], start_ts: int, fleet: NetnsFleet | None, broker: str
) -> tuple[int, int, list[str]]:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(spec, s, start_ts, out, fleet.gateway_ns[i] if fleet else None, broker),
            daemon=True,
        )
        for i, s in enumerate(slices)
    ]
    for p in procs:
        p.start()
    sent = points = 0
    errors: list[str] = []
    reported = 0

    def collect(timeout: float | None) -> None:
        nonlocal sent, points, reported
        s, n, err = out.get(timeout=timeout)
        sent += s
        points += n
        reported += 1
        if err:
            errors.append(err)

    try:
        while reported < len(procs):
            collect(None)
    except KeyboardInterrupt:
        _set_signal(signal.SIGINT, signal.SIG_IGN)
        for p in procs:  # SIGTERM reached only this process; Ctrl-C reached them all
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM)
        try:
            while reported < len(procs):
                collect(10)
        except queue.Empty:
            errors.append(f"{len(procs) - reported} process(es) did not report their counts")
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    return sent, points, errors
