"""Modbus server benchmark: prints one JSON object.

Requests per second that meterhub's Modbus server (``modbus_server:``, :mod:`meterhub.publish.modbus_server`)
answers, against a bare pymodbus server holding the same register images (pymodbus's own ``SimDevice``
datastore), in the same run. 20 circuits as SunSpec meters (203) and the flat map; every server runs in a
child process of its own and is loaded by ``--clients`` concurrent pymodbus clients in this process, each
reading the whole meter model (107 registers from 40070) of a rotating unit in a tight loop. As in a
gateway polling every second, meterhub's server gets new readings for every circuit each second (same
values, new time), so each image is rebuilt once per second on the first request after; the bare server
holds a fixed copy. In each round every client alternates one request to each server and times them
(requests/s = clients / median latency), so whatever else the shared machine does slows both alike; the
ratio is per round, then the median. Target: ≥ 80 %.

Second figure, ``gateway``: the latency the Modbus gateway (``modbus_gateway:``) adds over a direct
request. A simulated SDM630 on a Modbus TCP line (loopback, in its own process) is polled by meterhub
every 50 ms (a whole ``Gateway``: source, energy stage, sinks); one client reads 12 input registers
straight from the device and, alternately, through the gateway. Medians and 95th percentiles of both
and of their difference [ms]; the poll requests done meanwhile (an SDM630 poll is several block reads) show that polling kept its share. Target: added
median ≤ 5 ms.

Third figure, ``share_under_load`` (``--share-seconds``, default 10): four clients flood the gateway
while meterhub polls a simulated 19 200-baud line every 50 ms (it wants the whole line), once with
``modbus_gateway.share: 1.0`` (no limit: the baseline) and once with 0.25: the share of the line's time
each side held [-]. Target: the gateway ≤ its share (plus a 0.25 s burst), polling the rest.

``--soak 600`` adds the issue's "done when": a SCADA reading through the gateway (5 requests/s) for 10
minutes while meterhub polls the same simulated 19 200-baud RS485 line; collisions (poll errors and
timeouts, wrong gateway answers) must be 0.

Usage: ``PYTHONPATH=src .venv/bin/python bench/modbus_server.py [--seconds 1] [--rounds 11] [--clients 4] [--soak 600]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from meterhub.bus import ReadingBus, SinkContext
from meterhub.config.loader import parse_config
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase
from meterhub.publish.modbus_server import modbus_server_sink

N_CIRCUITS = 20
METER_START, METER_COUNT = 40070, 107  # model 203 with its ID and L


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _site(port: int) -> str:
    devices = "\n".join(
        f"  - {{id: m{i}, bus: b, unit: {i + 1}, profile: eastron-sdm630}}" for i in range(N_CIRCUITS)
    )
    circuits = "\n".join(
        f"  - {{id: c{i}, device: m{i}, channels: [1, 2, 3], wiring: 3P4W}}" for i in range(N_CIRCUITS)
    )
    return (
        "site: {name: bench}\nbuses:\n  - {id: b, kind: modbus-tcp, port: 1502}\n"
        f"devices:\n{devices}\ncircuits:\n{circuits}\n"
        f"modbus_server:\n  tcp: {{host: 127.0.0.1, port: {port}}}\n  stale_after: 3600\n"
    )


def _readings(now: float) -> list[Reading]:
    out: list[Reading] = []
    for i in range(N_CIRCUITS):
        c = f"c{i}"
        for k, ph in enumerate((Phase.L1, Phase.L2, Phase.L3)):
            out += [
                Reading(now, c, Q.VOLTAGE, ph, 229.0 + k, Quality.GOOD),
                Reading(now, c, Q.CURRENT, ph, 10.0 + i + k, Quality.GOOD),
                Reading(now, c, Q.ACTIVE_POWER, ph, 2000.0 + 10 * i + k, Quality.GOOD),
                Reading(now, c, Q.POWER_FACTOR, ph, 0.93, Quality.GOOD),
            ]
        out += [
            Reading(now, c, Q.ACTIVE_POWER, Phase.TOTAL, 6003.0 + 30 * i, Quality.GOOD),
            Reading(now, c, Q.FREQUENCY, Phase.TOTAL, 50.01, Quality.GOOD),
            Reading(now, c, Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL, 1.0e6 + i, Quality.GOOD),
        ]
    return out


async def _meterhub_server(port: int, ready: Any, stop: Any) -> None:
    config = parse_config(_site(port), "bench.yaml")
    bus = ReadingBus()
    ctx = SinkContext(config, bus, None, None, dict, time.time)  # type: ignore[arg-type]
    sink = modbus_server_sink(ctx)
    await sink.start()
    bus.publish(_readings(time.time()))
    while (batch := sink.subscription.get_nowait()) is not None:
        await sink.deliver(batch)
    # the images the bare server will hold: exactly what meterhub serves now
    assert sink.store is not None
    images = {u: sink.store.units[u].ranges(time.time()) for u in sink.store.sunspec}
    ready.send(images)
    last = time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.1)
        if time.monotonic() - last >= 1.0:  # a gateway's poll: every circuit gets new readings each second
            last = time.monotonic()
            bus.publish(_readings(time.time()))
            while (batch := sink.subscription.get_nowait()) is not None:
                await sink.deliver(batch)
    await sink.stop()


async def _bare_server(
    port: int, images: dict[int, list[tuple[int, list[int]]]], ready: Any, stop: Any
) -> None:
    devices = [
        SimDevice(
            unit,
            simdata=[SimData(start, values=regs, datatype=DataType.REGISTERS) for start, regs in ranges],
        )
        for unit, ranges in images.items()
    ]
    server = ModbusTcpServer(devices, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    ready.send(True)
    while not stop.is_set():
        await asyncio.sleep(0.1)
    await server.shutdown()


def _run_meterhub(port: int, ready: Any, stop: Any) -> None:
    asyncio.run(_meterhub_server(port, ready, stop))


def _run_bare(port: int, images: dict[int, list[tuple[int, list[int]]]], ready: Any, stop: Any) -> None:
    asyncio.run(_bare_server(port, images, ready, stop))


async def _both(bare: int, ours: int, seconds: float, clients: int, check: list[int]) -> tuple[float, float]:
    """Both servers in the same window: each client alternates one request to the bare server and one
    to meterhub's, timing each, so whatever else the shared machine does slows both alike. Returns the
    requests per second each would serve to ``clients`` clients (clients / median latency)."""
    pairs = []
    for port in (bare, ours):
        conns = [AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5) for _ in range(clients)]
        for c in conns:
            await c.connect()
        first = await conns[0].read_holding_registers(METER_START, count=METER_COUNT, device_id=1)
        if first.registers != check:
            raise SystemExit("the bare server does not hold meterhub's register image")
        pairs.append(conns)
    lat: list[list[float]] = [[], []]  # per server: every request's latency [s]
    deadline = time.perf_counter() + seconds

    async def one(i: int) -> None:
        unit = 1 + i
        while time.perf_counter() < deadline:
            for k in (0, 1):
                t = time.perf_counter()
                res = await pairs[k][i].read_holding_registers(METER_START, count=METER_COUNT, device_id=unit)
                lat[k].append(time.perf_counter() - t)
                if res.isError():
                    raise SystemExit(f"unit {unit}: {res}")
            unit = unit % N_CIRCUITS + 1

    await asyncio.gather(*(one(i) for i in range(clients)))
    for conns in pairs:
        for c in conns:
            c.close()
    # the median, not the mean: a stall of the shared machine hits one request of one server
    return clients / statistics.median(lat[0]), clients / statistics.median(lat[1])


def _gateway_site(line: int, gateway: int) -> str:
    return (
        "site: {name: bench}\n"
        f"buses:\n  - {{id: line, kind: modbus-tcp, port: {line}, timeout: 0.5}}\n"
        "devices:\n  - {id: m, bus: line, unit: 3, profile: eastron-sdm630, poll_interval: 0.05}\n"
        "circuits:\n  - {id: m, device: m, channels: [1, 2, 3], wiring: 3P4W}\n"
        f"modbus_gateway:\n  tcp: {{host: 127.0.0.1, port: {gateway}}}\n  routes:\n    - {{unit: 13, bus: line, address: 3}}\n"
    )


def _serve_meter(port: int, ready: Any, stop: Any) -> None:
    from meterhub.profiles import get_profile  # lazy: only the child process serving the meter
    from meterhub.sim.modbus_server import ProfileDevice, serve_devices
    from meterhub.sim.physics import SiteModel

    async def go() -> None:
        model = SiteModel.single_meter("m", rated_power=6000.0)
        srv = await serve_devices({3: ProfileDevice("m", get_profile("eastron-sdm630"), model)}, port=port)
        ready.send(True)
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await srv.close()

    asyncio.run(go())


async def _gateway_latency(line: int, requests: int) -> dict[str, Any]:
    import tempfile  # lazy: only this figure needs a data folder

    from meterhub.runtime import Gateway  # lazy: the whole runtime, for this figure only
    from meterhub.storage import open_storage

    gw_port = _free_port()
    cfg = parse_config(_gateway_site(line, gw_port), "bench.yaml")
    with tempfile.TemporaryDirectory() as data:
        gw = Gateway(cfg, data_dir=Path(data), storage=open_storage(cfg.storage, Path(data), timezone="UTC"))
        await gw.start()
        try:
            await asyncio.sleep(1.0)
            direct = AsyncModbusTcpClient("127.0.0.1", port=line, timeout=5)
            via = AsyncModbusTcpClient("127.0.0.1", port=gw_port, timeout=5)
            await direct.connect()
            await via.connect()
            polls = gw.status["m"].requests
            began = time.perf_counter()
            d_ms: list[float] = []
            g_ms: list[float] = []
            for _ in range(requests):
                t = time.perf_counter()
                rr = await direct.read_input_registers(0, count=12, device_id=3)
                d_ms.append((time.perf_counter() - t) * 1e3)
                t = time.perf_counter()
                rg = await via.read_input_registers(0, count=12, device_id=13)
                g_ms.append((time.perf_counter() - t) * 1e3)
                if rr.isError() or rg.isError():
                    raise SystemExit(f"gateway bench: {rr} / {rg}")
            elapsed = time.perf_counter() - began
            polls = gw.status["m"].requests - polls
            direct.close()
            via.close()
        finally:
            await gw.stop()

    def p95(x: list[float]) -> float:
        return sorted(x)[int(0.95 * (len(x) - 1))]

    added = [g - d for g, d in zip(g_ms, d_ms, strict=True)]
    return {
        "requests": requests,
        "direct_ms_median": round(statistics.median(d_ms), 3),
        "direct_ms_p95": round(p95(d_ms), 3),
        "gateway_ms_median": round(statistics.median(g_ms), 3),
        "gateway_ms_p95": round(p95(g_ms), 3),
        "added_ms_median": round(statistics.median(added), 3),
        "added_ms_p95": round(p95(added), 3),
        "poll_requests_meanwhile": polls,
        "poll_requests_per_s_meanwhile": round(polls / elapsed, 1),
        "target_added_ms_median": 5.0,
    }


def _soak_site(line: int, gateway: int) -> str:
    return (
        "site: {name: soak}\n"
        f"buses:\n  - {{id: line, kind: modbus-rtu-over-tcp, port: {line}, timeout: 0.5}}\n"
        "devices:\n  - {id: m, bus: line, unit: 3, profile: eastron-sdm630, poll_interval: 1.0}\n"
        "circuits:\n  - {id: m, device: m, channels: [1, 2, 3], wiring: 3P4W}\n"
        f"modbus_gateway:\n  tcp: {{host: 127.0.0.1, port: {gateway}}}\n  routes:\n    - {{unit: 13, bus: line, address: 3}}\n"
    )


async def _gateway_soak(seconds: float, rate: float) -> dict[str, float]:
    """A SCADA reading through the gateway at ``rate`` requests/s for ``seconds`` while meterhub polls
    the same simulated 19 200-baud RS485 line (each exchange takes its wire time) every second: every
    poll failure and every gateway answer that is not the meter's registers counts as a collision."""
    import tempfile  # lazy: only this figure needs a data folder

    from meterhub.profiles import get_profile  # lazy: the simulator and runtime, for this figure only
    from meterhub.profiles.schema import Function
    from meterhub.runtime import Gateway
    from meterhub.sim.modbus_server import Framing, ProfileDevice, serve_devices
    from meterhub.sim.physics import SiteModel
    from meterhub.storage import open_storage

    line, gw_port = _free_port(), _free_port()
    model = SiteModel.single_meter("m", rated_power=6000.0, clock=lambda: 1_790_000_030.0)
    model.advance()
    device = ProfileDevice("m", get_profile("eastron-sdm630"), model)
    expected = device.registers(Function.INPUT, 0, 12)
    sim = await serve_devices({3: device}, kind=Framing.RTU_OVER_TCP, port=line, line_baud=19200)
    cfg = parse_config(_soak_site(line, gw_port), "soak.yaml")
    ok = bad = 0
    with tempfile.TemporaryDirectory() as data:
        gw = Gateway(cfg, data_dir=Path(data), storage=open_storage(cfg.storage, Path(data), timezone="UTC"))
        await gw.start()
        try:
            client = AsyncModbusTcpClient("127.0.0.1", port=gw_port, timeout=5)
            await client.connect()
            began = time.perf_counter()
            polls = gw.status["m"].requests
            busy = sim.context.wire_busy
            while (elapsed := time.perf_counter() - began) < seconds:
                rr = await client.read_input_registers(0, count=12, device_id=13)
                if not rr.isError() and list(rr.registers) == expected:
                    ok += 1
                else:
                    bad += 1
                await asyncio.sleep(max(0.0, (ok + bad) / rate - (time.perf_counter() - began)))
            client.close()
            st = gw.status["m"]
            link = gw.modbus_links()["line"]
            assert gw.modbus_gateway is not None
            gw_time = gw.modbus_gateway.stats.wire_time
            result = {
                "seconds": round(elapsed, 1),
                "gateway_requests_ok": ok,
                "gateway_requests_wrong": bad,
                "poll_requests": st.requests - polls,
                "poll_errors": st.errors,
                "poll_timeouts": st.timeouts,
                "collisions": bad + st.errors + st.timeouts,
                "line_busy_share": round((sim.context.wire_busy - busy) / elapsed, 3),
                "gateway_line_share": round(gw_time / elapsed, 3),
                "polling_line_share": round((link.stats.busy - gw_time) / elapsed, 3),
                "configured_share": cfg.modbus_gateway.share if cfg.modbus_gateway else 1.0,
            }
        finally:
            await gw.stop()
            await sim.close()
    return result


async def _gateway_share(seconds: float, share: float, clients: int = 4) -> dict[str, float]:
    """``clients`` SCADA clients asking the gateway as fast as they are answered for ``seconds`` while
    meterhub polls the same simulated 19 200-baud line every 0.05 s (it wants the whole line): the share
    of the line each side held [-], with ``modbus_gateway.share`` = ``share``."""
    import tempfile  # lazy: only this figure needs a data folder

    from meterhub.profiles import get_profile  # lazy: the simulator and runtime, for this figure only
    from meterhub.profiles.schema import Function
    from meterhub.runtime import Gateway
    from meterhub.sim.modbus_server import Framing, ProfileDevice, serve_devices
    from meterhub.sim.physics import SiteModel
    from meterhub.storage import open_storage

    line, gw_port = _free_port(), _free_port()
    model = SiteModel.single_meter("m", rated_power=6000.0, clock=lambda: 1_790_000_030.0)
    model.advance()
    device = ProfileDevice("m", get_profile("eastron-sdm630"), model)
    expected = device.registers(Function.INPUT, 0, 60)
    sim = await serve_devices({3: device}, kind=Framing.RTU_OVER_TCP, port=line, line_baud=19200)
    text = (
        _soak_site(line, gw_port).replace("poll_interval: 1.0", "poll_interval: 0.05") + f"  share: {share}\n"
    )
    cfg = parse_config(text, "share.yaml")
    counts = {"ok": 0, "busy": 0, "wrong": 0}
    with tempfile.TemporaryDirectory() as data:
        gw = Gateway(cfg, data_dir=Path(data), storage=open_storage(cfg.storage, Path(data), timezone="UTC"))
        await gw.start()
        try:
            await asyncio.sleep(0.5)
            link = gw.modbus_links()["line"]
            assert gw.modbus_gateway is not None
            stats = gw.modbus_gateway.stats
            busy0, gw0, polls0 = link.stats.busy, stats.wire_time, gw.status["m"].requests
            began = time.perf_counter()

            async def client() -> None:
                c = AsyncModbusTcpClient("127.0.0.1", port=gw_port, timeout=5)
                await c.connect()
                while time.perf_counter() - began < seconds:
                    rr = await c.read_input_registers(0, count=60, device_id=13)
                    if rr.isError():
                        counts["busy" if rr.exception_code == 6 else "wrong"] += 1
                    else:
                        counts["ok" if list(rr.registers) == expected else "wrong"] += 1
                c.close()

            await asyncio.gather(*(client() for _ in range(clients)))
            elapsed = time.perf_counter() - began
            gateway = stats.wire_time - gw0
            st = gw.status["m"]
            return {
                "configured_share": share,
                "seconds": round(elapsed, 1),
                "gateway_line_share": round(gateway / elapsed, 3),
                "polling_line_share": round((link.stats.busy - busy0 - gateway) / elapsed, 3),
                "poll_requests_per_s": round((st.requests - polls0) / elapsed, 1),
                "gateway_answers_ok": counts["ok"],
                "gateway_answers_busy_06": counts["busy"],
                "gateway_answers_wrong": counts["wrong"],
                "poll_failures": st.errors + st.timeouts,
            }
        finally:
            await gw.stop()
            await sim.close()


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--gateway-requests", type=int, default=500)
    ap.add_argument(
        "--soak", type=float, default=0.0, help="also run the gateway soak this long [s] (e.g. 600)"
    )
    ap.add_argument("--soak-rate", type=float, default=5.0, help="gateway requests per second in the soak")
    ap.add_argument(
        "--share-seconds",
        type=float,
        default=10.0,
        help="gateway flooded by 4 clients this long [s], with share 1.0 (baseline) and 0.25; 0: skip",
    )
    args = ap.parse_args(argv)
    ctx = mp.get_context("spawn")
    ours_port, bare_port = _free_port(), _free_port()
    stop = ctx.Event()
    r1, w1 = ctx.Pipe(duplex=False)
    ours = ctx.Process(target=_run_meterhub, args=(ours_port, w1, stop), daemon=True)
    ours.start()
    images = r1.recv()
    r2, w2 = ctx.Pipe(duplex=False)
    bare = ctx.Process(target=_run_bare, args=(bare_port, images, w2, stop), daemon=True)
    bare.start()
    r2.recv()
    reference = images[1][0][1][METER_START - 40000 : METER_START - 40000 + METER_COUNT]
    rounds: list[dict[str, float]] = []
    try:
        for _ in range(args.rounds):
            b, o = asyncio.run(_both(bare_port, ours_port, args.seconds, args.clients, reference))
            rounds.append({"bare": round(b, 1), "meterhub": round(o, 1), "ratio": round(o / b, 3)})
    finally:
        stop.set()
        ours.join(10)
        bare.join(10)
    line = _free_port()
    stop2 = ctx.Event()
    r3, w3 = ctx.Pipe(duplex=False)
    meter = ctx.Process(target=_serve_meter, args=(line, w3, stop2), daemon=True)
    meter.start()
    r3.recv()
    try:
        gateway = asyncio.run(_gateway_latency(line, args.gateway_requests))
    finally:
        stop2.set()
        meter.join(10)
    if args.share_seconds > 0:
        gateway["share_under_load"] = [
            asyncio.run(_gateway_share(args.share_seconds, share)) for share in (1.0, 0.25)
        ]
    if args.soak > 0:
        gateway["soak"] = asyncio.run(_gateway_soak(args.soak, args.soak_rate))
    print(
        json.dumps(
            {
                "benchmark": "modbus_server",
                "circuits": N_CIRCUITS,
                "registers_per_request": METER_COUNT,
                "clients": args.clients,
                "seconds_per_round": args.seconds,
                "rounds": rounds,
                "bare_pymodbus_requests_per_s_median": statistics.median(r["bare"] for r in rounds),
                "meterhub_requests_per_s_median": statistics.median(r["meterhub"] for r in rounds),
                "ratio_median": statistics.median(r["ratio"] for r in rounds),
                "target_ratio": 0.8,
                "gateway": gateway,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
