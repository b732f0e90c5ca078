"""The gateway reads the seed 002 meter emulator over DLMS/COSEM: a ``kind: dlms`` bus over the TCP
wrapper, over HDLC on TCP, and through the optical port's mode E switch on a socat pty."""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterhub.checks import parse_site
from meterhub.config.loader import ConfigError
from meterhub.drivers.base import DeviceStatus, SourceContext
from meterhub.drivers.dlms.errors import DlmsError
from meterhub.drivers.dlms.source import DlmsSource
from meterhub.energy.pipeline import EnergyPipeline
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.sim.dlms import DlmsMeter, hdlc_session, serve_dlms_serial, serve_dlms_tcp
from meterhub.sim.iec62056 import IecMeter, serve_iec_serial
from meterhub.storage import open_storage

SITE = """
site: {name: dlms}
buses:
  - {id: meter-bus, kind: dlms, BUS, timeout: 1.0, retries: 1}
devices:
  - {id: m002, bus: meter-bus, profile: seed002-1p-dlms, poll_interval: 0.2}
circuits:
  - {id: home, device: m002, channels: [1], wiring: 1P2W}
"""


def _site(bus: str) -> str:
    return SITE.replace("BUS", bus)


def test_the_gateway_reads_the_emulator_over_the_wrapper_with_lls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meter = DlmsMeter()
    monkeypatch.setenv("METER_READER_PW", "22222222")

    async def go() -> Gateway:
        srv = await serve_dlms_tcp(meter, framing="wrapper")
        cfg = parse_site(
            _site(f"host: 127.0.0.1, port: {srv.port}, client_sap: 17, password_env: METER_READER_PW"),
            "site.yaml",
        )
        data = tmp_path / "data"
        gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"))
        await gw.start()
        try:
            deadline = time.monotonic() + 10
            while gw.live.get(SeriesKey("home", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL)) is None:
                assert time.monotonic() < deadline, gw.status["m002"]
                await asyncio.sleep(0.05)
        finally:
            await gw.stop()
            await srv.close()
        return gw

    gw = asyncio.run(go())
    v = meter.values()
    energy = gw.live.get(SeriesKey("home", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL))
    voltage = gw.live.get(SeriesKey("home", Q.VOLTAGE, Phase.L1))
    pf = gw.live.get(SeriesKey("home", Q.POWER_FACTOR, Phase.TOTAL))
    assert energy is not None and voltage is not None and pf is not None
    assert energy.quality is Quality.GOOD
    assert energy.value == pytest.approx(v["1.0.1.8.0.255"], abs=50.0)  # Wh, read up to a second ago
    assert voltage.value == pytest.approx(v["1.0.32.7.0.255"], abs=5.0)
    assert pf.value == pytest.approx(0.95)
    assert gw.status["m002"].online


def _source(text: str) -> tuple[DlmsSource, list[tuple[str, str]]]:
    cfg = parse_site(text, "site.yaml")
    serials: list[tuple[str, str]] = []
    status: dict[str, DeviceStatus] = {}
    ctx = SourceContext(
        cfg, cfg.buses[0], cfg.devices, status, Path("."), device_serial=lambda d, s: serials.append((d, s))
    )
    return DlmsSource(ctx), serials


def _by_key(batch: list[Reading]) -> dict[tuple[str, Phase | None], float]:
    return {(r.quantity, r.phase): r.value for r in batch}


def test_the_source_reads_over_hdlc_on_tcp_and_the_public_client_gets_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HDLC framing on TCP. The public client may not read registers: the poll fails with the reason
    (shown in the device status). The reader client (LLS) reads them."""
    meter = DlmsMeter()
    monkeypatch.setenv("METER_READER_PW", "22222222")

    async def go() -> tuple[dict[tuple[str, Phase | None], float], list[tuple[str, str]]]:
        srv = await serve_dlms_tcp(meter, framing="hdlc")
        try:
            public, _ = _source(_site(f"host: 127.0.0.1, port: {srv.port}, framing: hdlc"))
            with pytest.raises(
                DlmsError, match="the meter gives client SAP 16 none of the 16 registers of profile"
            ):
                await public.poll_once()
            await public.close()
            reader, serials = _source(
                _site(
                    f"host: 127.0.0.1, port: {srv.port}, framing: hdlc, client_sap: 17, password_env: METER_READER_PW"
                )
            )
            batch = await reader.poll_once()
            assert (
                reader.clock_drift is not None and abs(reader.clock_drift) < 2.0
            )  # the same machine's clock
            assert reader.status is not None and reader.status.extra_counters is not None
            assert set(reader.status.extra_counters()) == {
                "refused_values",
                "profile_entries_filled",
                "billing_snapshots_read",
                "pq_events_read",
                "device_events_read",
                "clock_offset_ms",
            }
            await reader.close()
            return _by_key(batch), serials
        finally:
            await srv.close()

    got, serials = asyncio.run(go())
    v = meter.values()
    assert got[(Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL)] == pytest.approx(v["1.0.1.8.0.255"], abs=50.0)
    assert got[(Q.FREQUENCY, Phase.TOTAL)] == pytest.approx(v["1.0.14.7.0.255"], abs=0.05)
    assert got[(Q.CURRENT, Phase.L1)] == pytest.approx(v["1.0.31.7.0.255"], rel=0.05)
    assert serials == [("m002", "20260002")]


def test_a_wrong_password_shows_in_the_device_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METER_READER_PW", "wrong")

    async def go() -> DeviceStatus:
        srv = await serve_dlms_tcp(DlmsMeter(), framing="wrapper")
        src, _ = _source(
            _site(f"host: 127.0.0.1, port: {srv.port}, client_sap: 17, password_env: METER_READER_PW")
        )
        task = asyncio.create_task(src.run(lambda b: None))
        try:
            deadline = time.monotonic() + 5
            while src.status is not None and src.status.errors == 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await src.close()
            await srv.close()
        assert src.status is not None
        return src.status

    st = asyncio.run(go())
    assert not st.online
    assert st.last_error is not None and st.last_error.endswith("association refused: authentication failure")


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    if shutil.which("socat") is None:  # pragma: no cover
        pytest.skip("socat is not installed")
    a, b = tmp_path / "meter", tmp_path / "gateway"
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (a.exists() and b.exists()):
            assert time.monotonic() < deadline, "socat did not create its ptys"
            time.sleep(0.02)
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(5)


def test_the_source_reads_through_the_optical_port_mode_e_on_a_pty(
    pty_pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seed 002's optical port: IEC 62056-21 sign-on, ACK 2 5 2 (mode E at 9600 bd), then HDLC 8N1."""
    meter_end, gateway_end = pty_pair
    dlms = DlmsMeter()
    monkeypatch.setenv("METER_READER_PW", "22222222")

    async def go() -> dict[tuple[str, Phase | None], float]:
        async def mode_e(read, write):  # type: ignore[no-untyped-def]
            await hdlc_session(dlms, read, write)

        sim = await serve_iec_serial(IecMeter(mode="C"), meter_end, hdlc=mode_e)
        src, serials = _source(
            _site(f"serial: {gateway_end}, framing: mode-e, client_sap: 17, password_env: METER_READER_PW")
        )
        try:
            batch = await src.poll_once()
            again = await src.poll_once()  # the association stays open between polls
            assert again
        finally:
            await src.close()
            await sim.close()
        assert serials == [("m002", "20260002")]
        return _by_key(batch)

    got = asyncio.run(go())
    v = dlms.values()
    assert got[(Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL)] == pytest.approx(v["1.0.1.8.0.255"], abs=50.0)
    assert got[(Q.VOLTAGE, Phase.L1)] == pytest.approx(v["1.0.32.7.0.255"], abs=5.0)


@pytest.mark.parametrize(
    ("bus", "message"),
    [
        ("host: 127.0.0.1", "a dlms bus needs 'port'"),
        ("serial: /dev/ttyUSB0, framing: wrapper", "framing 'wrapper' is for TCP"),
        ("port: 4059, username: x", "a dlms bus has a client SAP and a password only"),
        ("port: 4059, client_sap: 200", "client_sap"),
    ],
)
def test_dlms_bus_configuration_errors(bus: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_site(_site(bus), "site.yaml")
    assert message in str(info.value.issues[0])


def test_framing_is_only_for_dlms_buses() -> None:
    text = (
        _site("port: 4059")
        .replace("kind: dlms", "kind: modbus-tcp")
        .replace("port: 4059", "port: 502, framing: hdlc")
    )
    with pytest.raises(ConfigError) as info:
        parse_site(text, "site.yaml")
    assert "framing hdlc: only a bus of kind dlms has it" in str(info.value.issues[0])


def test_the_source_reads_hdlc_on_a_serial_pty(
    pty_pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HDLC directly on a serial line (8N1, framing hdlc, the default on a serial port)."""
    meter_end, gateway_end = pty_pair
    meter = DlmsMeter()
    monkeypatch.setenv("METER_READER_PW", "22222222")

    async def go() -> dict[tuple[str, Phase | None], float]:
        sim = await serve_dlms_serial(meter, meter_end)
        src, serials = _source(_site(f"serial: {gateway_end}, client_sap: 17, password_env: METER_READER_PW"))
        try:
            batch = await src.poll_once()
        finally:
            await src.close()
            await sim.close()
        assert serials == [("m002", "20260002")]
        return _by_key(batch)

    got = asyncio.run(go())
    assert got[(Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL)] == pytest.approx(
        meter.values()["1.0.1.8.0.255"], abs=50.0
    )


@pytest.mark.slow
def test_noise_on_the_hdlc_pty_is_survived(
    pty_pair: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bursts of noise towards the gateway (a second writer on the meter's end of the pty pair) while the
    source polls: frames hit by noise fail their FCS, the poll fails with that reason, the next poll
    associates again; the source never stops and keeps delivering."""
    import serial

    meter_end, gateway_end = pty_pair
    monkeypatch.setenv("METER_READER_PW", "22222222")

    async def go() -> tuple[DeviceStatus, int]:
        sim = await serve_dlms_serial(DlmsMeter(), meter_end)
        noise = serial.Serial(meter_end, 9600, timeout=0)
        src, _ = _source(
            _site(f"serial: {gateway_end}, client_sap: 17, password_env: METER_READER_PW").replace(
                "poll_interval: 0.2", "poll_interval: 0.1"
            )
        )
        batches: list[int] = []
        task = asyncio.create_task(src.run(lambda b: batches.append(len(b))))
        try:
            for k in range(30):
                noise.write(bytes([0x7E, 0xA0, 0x30 + k, 0x55, 0x7E, 0x00, 0xFF]))
                await asyncio.sleep(0.1)
            assert not task.done()  # still polling
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await src.close()
            noise.close()
            await sim.close()
        assert src.status is not None
        return src.status, sum(1 for n in batches if n > 1)  # polls (a maximum demand is a batch of 1)

    status, delivered = asyncio.run(go())
    assert delivered >= 3 and status.last_seen is not None
    assert status.requests >= delivered


def test_an_outage_is_filled_from_the_meters_load_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two hours without a good poll: the next poll brings the meter's eight 15-min entries of the gap
    first (each at its interval end, with the meter's exact register), then the poll itself."""
    monkeypatch.setenv("METER_READER_PW", "22222222")
    clock = [1_796_000_460.0]  # 60 s after a quarter hour
    meter = DlmsMeter(wall=lambda: clock[0])

    async def go() -> tuple[list[list[Reading]], list[Reading], int]:
        srv = await serve_dlms_tcp(meter, framing="wrapper")
        src, _ = _source(
            _site(f"host: 127.0.0.1, port: {srv.port}, client_sap: 17, password_env: METER_READER_PW")
        )
        src.wall = lambda: clock[0]
        try:
            await src.poll_once()
            # the maximum demand at its capture time only (see the test below)
            assert [[r.quantity for r in b] for b in src.backfill] == [[Q.MAX_DEMAND_ACTIVE_IMPORT]]
            src.backfill = []
            clock[0] += 7200.0  # the link was down for two hours
            batch = await src.poll_once()
            return src.backfill, batch, src.filled
        finally:
            await src.close()
            await srv.close()

    backfill, batch, filled = asyncio.run(go())
    assert filled == len(backfill) == 8
    t0 = 1_796_000_460.0
    energy = [
        next(r for r in b if r.quantity == Q.ENERGY_ACTIVE_IMPORT and r.phase is Phase.TOTAL)
        for b in backfill
    ]
    assert [r.ts for r in energy] == [t0 + 840.0 + 900.0 * k for k in range(8)]  # interval ends, in order
    assert [r.value for r in energy] == [round(meter.energy_at(r.ts)) for r in energy]  # the meter's own Wh
    assert all(r.circuit == "home" for b in backfill for r in b)
    now = next(r for r in batch if r.quantity == Q.ENERGY_ACTIVE_IMPORT)
    assert now.ts == t0 + 7200.0 and now.value >= energy[-1].value
    # the energy stage takes the filled intervals as ordinary register readings, in order, none refused
    cfg = parse_site(_site("port: 4059"), "site.yaml")
    pipeline = EnergyPipeline(cfg, None, clock=lambda: t0 + 7200.0, state_file=tmp_path / "energy.json")
    first = Reading(t0, "home", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL, round(meter.energy_at(t0)))
    out = (
        [pipeline.process([first])]
        + [pipeline.process(list(b)) for b in backfill]
        + [pipeline.process(batch)]
    )
    registers = [r for b in out for r in b if r.quantity == Q.ENERGY_ACTIVE_IMPORT and r.phase is Phase.TOTAL]
    assert [r.quality for r in registers] == [Quality.GOOD] * 10


def test_the_maximum_demand_arrives_at_its_capture_time_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Extended register 1.0.1.6.0.255 (class 4): the value with its capture_time (attribute 5) as one
    reading at that time; the meter repeats it at every poll, the gateway emits it again only when
    value or time change (a new maximum, a reset)."""
    monkeypatch.setenv("METER_READER_PW", "22222222")
    clock = [1_796_000_460.0]
    meter = DlmsMeter(wall=lambda: clock[0])

    async def go() -> list[list[list[Reading]]]:
        srv = await serve_dlms_tcp(meter, framing="wrapper")
        src, _ = _source(
            _site(f"host: 127.0.0.1, port: {srv.port}, client_sap: 17, password_env: METER_READER_PW")
        )
        src.wall = lambda: clock[0]
        seen = []
        try:
            for step in (0.0, 10.0, 0.0):
                clock[0] += step
                if len(seen) == 2:
                    meter.md_reset_at = clock[0] - 3 * 900.0  # as if reset 45 min ago: a smaller maximum
                await src.poll_once()
                seen.append(src.backfill)
                src.backfill = []
        finally:
            await src.close()
            await srv.close()
        return seen

    seen = asyncio.run(go())
    first, second, after_reset = seen
    md, at = meter.max_demand(meter.t_start, 1_796_000_460.0)
    (r,) = first[0]
    assert (r.ts, r.circuit, r.quantity, r.phase) == (at, "home", Q.MAX_DEMAND_ACTIVE_IMPORT, Phase.TOTAL)
    assert r.value == round(md)  # W: the meter's raw value, scaler 0, unit W
    assert second == []  # the same maximum at the same time: nothing new
    md2, at2 = meter.max_demand(1_796_000_470.0 - 3 * 900.0, 1_796_000_470.0)
    assert [(x.ts, x.value) for b in after_reset for x in b] == [(at2, round(md2))]
    assert at2 > 1_796_000_470.0 - 3 * 900.0


def test_a_meters_own_maximum_demand_replaces_the_gateways_second_series(tmp_path: Path) -> None:
    """The energy stage computes maximum demand from the import register; once a device reports its
    own (DLMS class 4), the stage keeps computing demand but emits no second maximum-demand series."""
    cfg = parse_site(_site("port: 4059"), "site.yaml")
    t0 = 1_796_000_400.0  # a quarter hour
    pipeline = EnergyPipeline(cfg, None, clock=lambda: t0 + 3600.0, state_file=tmp_path / "energy.json")

    def reg(t: float, wh: float) -> Reading:
        return Reading(t, "home", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL, wh)

    before = pipeline.process([reg(t0, 1000.0)]) + pipeline.process([reg(t0 + 900.0, 1250.0)])
    computed = [(r.ts, r.value) for r in before if r.quantity == Q.MAX_DEMAND_ACTIVE_IMPORT]
    assert computed == [(t0 + 900.0, 1000.0)]  # 250 Wh in 15 min = 1000 W
    meters = Reading(t0 + 100.0, "home", Q.MAX_DEMAND_ACTIVE_IMPORT, Phase.TOTAL, 4321.0)
    after = pipeline.process([meters]) + pipeline.process([reg(t0 + 1800.0, 1500.0)])
    assert [(r.ts, r.value) for r in after if r.quantity == Q.MAX_DEMAND_ACTIVE_IMPORT] == [
        (t0 + 100.0, 4321.0)
    ]
    assert [(r.ts, r.value) for r in after if r.quantity == Q.DEMAND_ACTIVE_IMPORT] == [(t0 + 1800.0, 1000.0)]


def test_a_gateway_restart_is_filled_from_the_last_stored_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage holds the import register up to two hours ago (the gateway was down since): at start
    the runtime hands the source that last stored time, and the first poll brings the meter's own
    15-min entries of the two hours, each at its interval end with the meter's exact register."""
    meter = DlmsMeter()
    monkeypatch.setenv("METER_READER_PW", "22222222")
    key = SeriesKey("home", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL)
    t_prev = math.floor((time.time() - 7200.0) / 900.0) * 900.0 + 60.0  # 60 s after a quarter hour
    data = tmp_path / "data"

    async def go() -> float:
        srv = await serve_dlms_tcp(meter, framing="wrapper")
        cfg = parse_site(
            _site(f"host: 127.0.0.1, port: {srv.port}, client_sap: 17, password_env: METER_READER_PW"),
            "site.yaml",
        )
        before = open_storage(cfg.storage, data, timezone="UTC")
        before.write(
            [Reading(t_prev, "home", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL, round(meter.energy_at(t_prev)))]
        )
        before.flush()
        before.close()
        gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"))
        started = time.time()
        await gw.start()
        try:
            deadline = time.monotonic() + 10
            while gw.live.get(key) is None:
                assert time.monotonic() < deadline, gw.status["m002"]
                await asyncio.sleep(0.05)
        finally:
            await gw.stop()
            await srv.close()
        return started

    started = asyncio.run(go())
    storage = open_storage(parse_site(_site("port: 4059"), "site.yaml").storage, data, timezone="UTC")
    try:
        points = storage.history(key, t_prev, started + 60.0)
    finally:
        storage.close()
    filled = [p for p in points if p.ts % 900.0 == 0.0]
    ends = [t_prev - 60.0 + 900.0 * k for k in range(1, 10) if t_prev - 60.0 + 900.0 * k < started]
    assert [p.ts for p in filled] == ends and len(ends) >= 8
    assert [p.last for p in filled] == [round(meter.energy_at(t)) for t in ends]  # the meter's own Wh
