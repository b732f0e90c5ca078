"""Alarm engine benchmark: 10,000 rules over 5,000 series at 1 Hz. Prints one JSON object.

The site: 500 three-phase circuits on 50 devices, 10 watched series per circuit (total active power,
voltage and current per phase, power factor, frequency, current THD) = 5,000 series; two rules per series
(a high limit and a low limit, with deadband, on-delay and recovery) = 10,000 rules. Each simulated second
every device sends one batch of its 100 readings (50 batches per second, as 50 Modbus polls would); values
wander so that a few rules change state every second.

(a) ``cpu`` — CPU time [s] per second of readings for the engine (:class:`AlarmEngine`: ``update`` of
    every batch and the 1 Hz ``tick``), against a naive engine that loops over the rules in Python for
    every batch, same readings, same run. Issue 11 target: ≤ 5 % of one core.
(b) ``latency`` — through the real path: a :class:`ReadingBus`, the alarm sink's subscription and its
    pump in asyncio, batches published at 1 Hz in real time. The rules have no on-delay and no recovery
    here, so a reading itself changes the state (with an on-delay the change waits for the timer, by
    design). Latency = from ``bus.publish`` of a batch to the listener receiving the event it caused
    [ms], p50/p99/max. Target: p99 ≤ 50 ms.

Usage: ``PYTHONPATH=src .venv/bin/python bench/alarms.py [--seconds 60] [--latency-seconds 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np

from meterhub.alarms.engine import AlarmEngine
from meterhub.alarms.model import AlarmEvent
from meterhub.alarms.rules import AlarmDef, expand_rules
from meterhub.alarms.sink import AlarmSink
from meterhub.bus import ReadingBus, pump
from meterhub.config.schema import SiteConfig
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase

N_DEVICES = 50
CIRCUITS_PER_DEVICE = 10
T0 = 1_763_784_000.0

#: (quantity, phase, nominal value, relative noise, high limit, low limit, deadband) per watched series
SERIES: list[tuple[str, Phase, float, float, float, float, float]] = [
    (Q.ACTIVE_POWER, Phase.TOTAL, 10_000.0, 0.05, 11_000.0, 500.0, 200.0),
    (Q.VOLTAGE, Phase.L1, 230.0, 0.02, 236.0, 207.0, 1.0),
    (Q.VOLTAGE, Phase.L2, 230.0, 0.02, 236.0, 207.0, 1.0),
    (Q.VOLTAGE, Phase.L3, 230.0, 0.02, 236.0, 207.0, 1.0),
    (Q.CURRENT, Phase.L1, 15.0, 0.05, 16.5, 0.5, 0.2),
    (Q.CURRENT, Phase.L2, 15.0, 0.05, 16.5, 0.5, 0.2),
    (Q.CURRENT, Phase.L3, 15.0, 0.05, 16.5, 0.5, 0.2),
    (Q.POWER_FACTOR, Phase.TOTAL, 0.92, 0.02, 0.999, 0.88, 0.01),
    (Q.FREQUENCY, Phase.TOTAL, 50.0, 0.002, 50.2, 49.8, 0.02),
    (Q.THD_CURRENT, Phase.L1, 20.0, 0.1, 25.0, 1.0, 1.0),
]


def site(on_delay: float = 5.0, recovery: float = 10.0) -> SiteConfig:
    """The benchmark site (validated by the schema; built as data, it is larger than a site file may be)."""
    devices = [
        {"id": f"d{k}", "bus": "b", "unit": k + 1, "profile": "enertrek-m30"} for k in range(N_DEVICES)
    ]
    circuits = [
        {"id": f"c{k}-{j}", "device": f"d{k}", "channels": [1, 2, 3], "wiring": "3P4W"}
        for k in range(N_DEVICES)
        for j in range(CIRCUITS_PER_DEVICE)
    ]
    rules: list[dict[str, Any]] = []
    for c in circuits:
        for q, ph, _, _, hi, lo, db in SERIES:
            base = {"target": c["id"], "quantity": q.value, "phase": ph.value, "deadband": db}
            base |= {"on_delay": on_delay, "recovery": recovery}
            tag = f"{c['id']}-{q.value}-{ph.value}"
            rules.append({**base, "id": f"h-{tag}".lower()[:64], "condition": "high", "high": hi})
            rules.append({**base, "id": f"l-{tag}".lower()[:64], "condition": "low", "low": lo})
    return SiteConfig.model_validate(
        {
            "site": {"name": "bench"},
            "buses": [{"id": "b", "kind": "modbus-tcp", "port": 5020}],
            "devices": devices,
            "circuits": circuits,
            "alarms": {"rules": rules},
        }
    )


class Readings:
    """Values of every series: a mean-reverting random walk around the nominal value (seeded)."""

    def __init__(self, cfg: SiteConfig) -> None:
        self.rng = np.random.default_rng(11)
        self.keys = [(c.id, c.device, q, ph) for c in cfg.circuits for q, ph, *_ in SERIES]
        self.nominal = np.array([s[2] for c in cfg.circuits for s in SERIES])
        self.noise = np.array([s[3] for c in cfg.circuits for s in SERIES]) * self.nominal
        self.x = self.nominal.copy()
        per = CIRCUITS_PER_DEVICE * len(SERIES)
        self.batches = [slice(k * per, (k + 1) * per) for k in range(N_DEVICES)]

    def second(self, ts: float) -> list[list[Reading]]:
        self.x += 0.3 * (self.nominal - self.x) + self.noise * self.rng.standard_normal(len(self.x))
        vals = self.x.tolist()
        out = []
        for sl in self.batches:
            out.append(
                [Reading(ts, c, q, ph, vals[i]) for i, (c, _, q, ph) in enumerate(self.keys[sl], sl.start)]
            )
        return out


class NaiveEngine:
    """The baseline: every rule checked in a Python loop for every batch (same conditions and timers)."""

    def __init__(self, defs: list[AlarmDef]) -> None:
        self.rules = []
        for d in defs:
            s = d.slots[0]
            self.rules.append(
                [s.series, s.low, s.high, s.deadband, d.on_delay, d.recovery, False, None, None, False]
            )
        self.values: dict[tuple[Any, ...], float] = {}
        self.events = 0

    def update(self, batch: list[Reading], now: float) -> None:
        fresh = set()
        for r in batch:
            key = (r.circuit, r.quantity, r.phase)
            self.values[key] = r.value
            fresh.add(key)
        for rule in self.rules:
            if rule[0] not in fresh:  # its timers run at the tick, as in the engine
                continue
            v = self.values[rule[0]]
            incond = rule[6]
            band = rule[3] if incond else 0.0
            cond = v > rule[2] - band or v < rule[1] + band
            rule[6] = cond
            self._timers(rule, cond, now)

    def _timers(self, rule: list[Any], cond: bool, now: float) -> None:
        if cond:
            rule[8] = None
            if rule[7] is None:
                rule[7] = now
            if not rule[9] and now - rule[7] >= rule[4]:
                rule[9] = True
                self.events += 1
        else:
            if not rule[9]:
                rule[7] = None
            elif rule[8] is None:
                rule[8] = now
            elif now - rule[8] >= rule[5]:
                rule[9], rule[7], rule[8] = False, None, None
                self.events += 1

    def tick(self, now: float) -> None:
        for rule in self.rules:
            self._timers(rule, rule[6], now)


class Count:
    def __init__(self) -> None:
        self.n = 0

    def on_event(self, event: AlarmEvent) -> None:
        self.n += 1


def cpu_run(cfg: SiteConfig, seconds: int) -> dict[str, Any]:
    defs = expand_rules(cfg)
    gen = Readings(cfg)
    seconds_data = [gen.second(T0 + s) for s in range(seconds)]
    counter = Count()
    ours = AlarmEngine(defs, listeners=[counter], clock=lambda: T0)
    naive = NaiveEngine(defs)
    naive_seconds = min(seconds, 10)  # 10 s of readings suffice for the naive loop's rate
    ours_early = 0
    t = time.process_time()
    for s, batches in enumerate(seconds_data):
        now = T0 + s
        for b in batches:
            ours.update(b, now)
        ours.tick(now)
        if s == naive_seconds - 1:
            ours_early = counter.n
    ours_cpu = time.process_time() - t
    t = time.process_time()
    for s, batches in enumerate(seconds_data[:naive_seconds]):
        now = T0 + s
        for b in batches:
            naive.update(b, now)
        naive.tick(now)
    naive_cpu = time.process_time() - t
    return {
        "rules": len(defs),
        "series": len(ours.series),
        "readings_per_s": sum(len(b) for b in seconds_data[0]),
        "batches_per_s": len(seconds_data[0]),
        "seconds_of_readings": seconds,
        "events": counter.n,
        "ours_cpu_per_s": ours_cpu / seconds,
        "ours_core_percent": 100 * ours_cpu / seconds,
        "naive_seconds_of_readings": naive_seconds,
        "naive_events": naive.events,
        "ours_events_in_naive_seconds": ours_early,  # equal to naive_events: the same decisions
        "naive_cpu_per_s": naive_cpu / naive_seconds,
        "naive_core_percent": 100 * naive_cpu / naive_seconds,
        "speedup": (naive_cpu / naive_seconds) / (ours_cpu / seconds),
        "target_core_percent": 5.0,
    }


async def latency_run(cfg: SiteConfig, seconds: int) -> dict[str, Any]:
    gen = Readings(cfg)
    latencies: list[float] = []
    published: dict[int, float] = {}  # id of a batch's first reading → perf_counter at publish

    with TemporaryDirectory() as tmp:
        bus = ReadingBus()
        sink = AlarmSink(cfg, bus, Path(tmp), device_status=dict, clock=time.time)
        current: list[float | None] = [None]

        class Latency:
            def on_event(self, event: AlarmEvent) -> None:
                start = current[0]
                if start is not None:  # caused by a reading (not by the 1 Hz timer tick)
                    latencies.append(time.perf_counter() - start)

        sink.add_listener(Latency())
        real_deliver = sink.deliver

        async def deliver(batch: list[Reading]) -> None:
            current[0] = published.pop(id(batch[0]), None)
            try:
                await real_deliver(batch)
            finally:
                current[0] = None

        sink.deliver = deliver  # type: ignore[method-assign]
        await sink.start()
        task = asyncio.create_task(pump(sink))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for s in range(seconds):
            t_next = wall0 + s + 1
            for b in gen.second(time.time()):
                published[id(b[0])] = time.perf_counter()  # the bus copies the list, not the readings
                bus.publish(b)
                await asyncio.sleep(0)  # sources publish from their own tasks, between other work
            await asyncio.sleep(max(0.0, t_next - time.perf_counter()))
        cpu = time.process_time() - cpu0
        task.cancel()
        await sink.stop()
    ms = np.array(latencies) * 1000
    return {
        "seconds": seconds,
        "events": len(latencies),
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else math.nan,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else math.nan,
        "max_ms": float(ms.max()) if len(ms) else math.nan,
        "process_core_percent": 100 * cpu / seconds,
        "note": "process CPU includes generating the 5,000 readings per second",
        "target_p99_ms": 50.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60, help="seconds of readings for the CPU figure")
    ap.add_argument("--latency-seconds", type=int, default=20, help="real seconds of the latency run")
    args = ap.parse_args()
    cfg = site()
    out = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "cpu": cpu_run(cfg, args.seconds),
        "latency": asyncio.run(latency_run(site(on_delay=0.0, recovery=0.0), args.latency_seconds)),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
