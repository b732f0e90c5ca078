"""The gateway reads the seed 002 meter emulator: a ``kind: iec62056-21`` bus over TCP and over a socat
pty (7E1 serial), corrupted frames and garbage on the pty, and the bus's configuration rules."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import serial

from meterhub.checks import parse_site
from meterhub.config.loader import ConfigError, parse_config
from meterhub.config.schema import BusKind
from meterhub.drivers.base import DeviceStatus, SourceContext, source_factory
from meterhub.drivers.iec62056.link import SerialLink, TcpLink
from meterhub.drivers.iec62056.source import Iec62056Source
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.sim.iec62056 import serve_iec_serial, serve_iec_tcp
from meterhub.storage import open_storage

from .conftest import frozen_meter

SITE = """
site: {name: optical}
buses:
  - {id: optical, kind: iec62056-21, BUS, timeout: 0.5, retries: 1}
devices:
  - {id: m002, bus: optical, profile: seed002-1p-dlms, poll_interval: 0.2}
circuits:
  - {id: home, device: m002, channels: [1], wiring: 1P2W}
"""


def _site(bus: str) -> str:
    return SITE.replace("BUS", bus)


def _by_key(batch: list[Reading]) -> dict[tuple[str, Phase | None], float]:
    return {(r.quantity, r.phase): r.value for r in batch}


def test_the_gateway_reads_the_emulator_over_tcp(tmp_path: Path) -> None:
    meter = frozen_meter("C")
    expected = meter.values()

    async def go() -> Gateway:
        srv = await serve_iec_tcp(meter)
        cfg = parse_site(_site(f"host: 127.0.0.1, port: {srv.port}"), "site.yaml")
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
    energy = gw.live.get(SeriesKey("home", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL))
    voltage = gw.live.get(SeriesKey("home", Q.VOLTAGE, Phase.L1))
    power = gw.live.get(SeriesKey("home", Q.ACTIVE_POWER, Phase.TOTAL))
    assert energy is not None and voltage is not None and power is not None
    assert energy.value == pytest.approx(expected[Q.ENERGY_ACTIVE_IMPORT], abs=1.0)  # 1 Wh resolution
    assert voltage.value == pytest.approx(expected[Q.VOLTAGE], abs=0.05)
    assert power.value == pytest.approx(expected[Q.ACTIVE_POWER], abs=0.5)
    assert energy.quality is Quality.GOOD
    st = gw.status["m002"]
    assert st.online and st.errors == 0 and st.requests >= 1


def _source(cfg_text: str, link: TcpLink | SerialLink, *, checked: bool = True) -> Iec62056Source:
    """The source of the site's first bus; ``checked=False`` parses with the schema only (what the source
    itself does with a site the site-file checks would refuse)."""
    cfg = parse_site(cfg_text, "site.yaml") if checked else parse_config(cfg_text, "site.yaml")
    status: dict[str, DeviceStatus] = {}
    serials: list[tuple[str, str]] = []
    ctx = SourceContext(
        cfg, cfg.buses[0], cfg.devices, status, Path("."), device_serial=lambda d, s: serials.append((d, s))
    )
    src = Iec62056Source(ctx, link=link)
    src.serials = serials  # type: ignore[attr-defined]
    return src


def test_the_source_reads_the_emulator_over_a_pty(pty_pair: tuple[str, str]) -> None:
    meter_end, gateway_end = pty_pair
    meter = frozen_meter("C")
    expected = meter.values()

    async def go() -> list[Reading]:
        sim = await serve_iec_serial(meter, meter_end)
        src = _source(_site(f"serial: {gateway_end}"), SerialLink(gateway_end))
        try:
            batch = await src.poll_once()
        finally:
            await src.close()
            await sim.close()
        assert src.serials == [("m002", "20260002")]  # type: ignore[attr-defined]
        return batch

    got = _by_key(asyncio.run(go()))
    assert got[(Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL)] == pytest.approx(
        expected[Q.ENERGY_ACTIVE_IMPORT], abs=1.0
    )
    assert got[(Q.ENERGY_ACTIVE_EXPORT, Phase.TOTAL)] == pytest.approx(
        expected[Q.ENERGY_ACTIVE_EXPORT], abs=1.0
    )
    assert got[(Q.CURRENT, Phase.L1)] == pytest.approx(expected[Q.CURRENT], abs=0.005)
    assert got[(Q.FREQUENCY, Phase.TOTAL)] == pytest.approx(expected[Q.FREQUENCY], abs=0.005)


def test_a_corrupted_frame_on_the_pty_is_retried_and_counted(pty_pair: tuple[str, str]) -> None:
    meter_end, gateway_end = pty_pair
    meter = frozen_meter("C")
    meter.corrupt = 2  # both attempts of the first poll (retries: 1) see a flipped bit

    async def go() -> Iec62056Source:
        sim = await serve_iec_serial(meter, meter_end)
        src = _source(_site(f"serial: {gateway_end}"), SerialLink(gateway_end))
        batches: list[list[Reading]] = []
        task = asyncio.create_task(src.run(lambda b: batches.append(list(b))))
        try:
            deadline = time.monotonic() + 10
            while not batches:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await src.close()
            await sim.close()
        return src

    src = asyncio.run(go())
    st = src.status
    assert st is not None and st.online
    assert st.errors == 1 and st.requests >= 3  # one failed poll of two attempts, then a good one
    assert st.last_error is not None and "block check character" in st.last_error


def test_garbage_on_the_pty_never_crashes_the_source(pty_pair: tuple[str, str]) -> None:
    meter_end, gateway_end = pty_pair

    async def go() -> Iec62056Source:
        noisy = serial.Serial(meter_end, 300, bytesize=7, parity="E", timeout=0)
        src = _source(_site(f"serial: {gateway_end}"), SerialLink(gateway_end))
        task = asyncio.create_task(src.run(lambda b: None))
        try:
            for _ in range(20):
                noisy.write(b"\x7f\x00/\x02garbage\x03!\r\n")  # noise, half a frame, no identification
                await asyncio.sleep(0.1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await src.close()
            noisy.close()
        return src

    src = asyncio.run(go())
    st = src.status
    assert st is not None and not st.online and st.errors >= 1
    assert st.last_error is not None and st.last_error.startswith(f"serial://{gateway_end}: ")


def test_a_second_device_on_an_optical_bus_is_shown_with_the_reason() -> None:
    text = _site("host: 127.0.0.1, port: 1").replace(
        "circuits:", "  - {id: m2, bus: optical, profile: obis-generic}\ncircuits:"
    )
    src = _source(text, TcpLink("127.0.0.1", 1), checked=False)
    st = src.ctx.status["m2"]
    assert st.last_error == (
        "bus optical already reads m002: an IEC 62056-21 optical port is point to point (one meter per bus)"
    )


def test_an_unknown_obis_profile_is_shown_in_the_status() -> None:
    src = _source(
        _site("host: 127.0.0.1, port: 1").replace("seed002-1p-dlms", "eastron-sdm630"),
        TcpLink("x", 1),
        checked=False,
    )
    assert src.device is None
    assert src.ctx.status["m002"].last_error is not None
    assert src.ctx.status["m002"].last_error.startswith("unknown OBIS profile 'eastron-sdm630'")


def test_the_bus_kind_has_a_registered_source() -> None:
    assert source_factory(BusKind.IEC62056_21) is not None


@pytest.mark.parametrize(
    ("bus", "message"),
    [
        ("host: 127.0.0.1", "an iec62056-21 bus needs 'serial'"),
        ("port: 2101, parity: N", "an iec62056-21 line is 7E1 (IEC 62056-21 §6.3.14): parity must be E"),
        ("port: 2101, stopbits: 2", "stopbits must be 1"),
    ],
)
def test_bus_configuration_errors_name_what_is_wrong(bus: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_site(_site(bus), "site.yaml")
    assert message in str(info.value.issues[0])


def test_a_7e1_bus_is_accepted() -> None:
    cfg = parse_site(_site("serial: /dev/ttyUSB0, parity: E, baud: 9600"), "site.yaml")
    assert cfg.buses[0].kind is BusKind.IEC62056_21
