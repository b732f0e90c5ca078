"""The simulated ADC board on a loopback port, read by the waveform source, against the physical model."""

from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from meterhub.config.schema import (
    Bus,
    BusKind,
    Circuit,
    CTSpec,
    Device,
    LoadSpec,
    Simulation,
    SiteConfig,
    SiteInfo,
)
from meterhub.drivers.base import SourceContext
from meterhub.drivers.waveform.protocol import (
    HEADER,
    FrameError,
    FrameReader,
    decode_frame,
    encode_frame,
)
from meterhub.drivers.waveform.source import WaveformSource, waveform_sources
from meterhub.model.readings import Quality, Reading, SeriesKey, Spectrum
from meterhub.model.topology import Phase
from meterhub.sim.adc import start_adc_simulator
from meterhub.sim.base import SimContext
from meterhub.sim.physics import SiteModel


def site(port: int | None = None) -> SiteConfig:
    motor = {"model": "motor", "power_factor": 0.8, "period": 1e6}
    return SiteConfig(
        site=SiteInfo(name="adc test"),
        buses=[Bus(id="adc", kind=BusKind.WAVEFORM, port=port)],
        devices=[Device(id="board", bus="adc", profile="meterhub-adc-8x3")],
        circuits=[
            Circuit(
                id="press",
                device="board",
                channels=[1, 2, 3],
                wiring="3P4W",
                ct=CTSpec(kind="current-output", ratio="100/0.05", burden=10),
            ),
            Circuit(
                id="oven",
                device="board",
                channels=[4, 5, 6],
                wiring="3P4W",
                ct=CTSpec(kind="rogowski", ratio="200/1"),
            ),
            Circuit(
                id="desk",
                device="board",
                channels=[7],
                wiring="1P2W",
                phases=["L2"],
                ct=CTSpec(kind="voltage-output", ratio="50/0.333"),
            ),
        ],  # fmt: skip
        simulation=Simulation(
            voltage_variation=0.0,
            loads={
                "press": LoadSpec(rated_power=9000, **motor),
                "oven": LoadSpec(rated_power=15000, **motor),
                "desk": LoadSpec(rated_power=2000, **motor),
            },
        ),
    )


def latest(readings: list[Reading], circuit: str, quantity: str, phase: Phase) -> float:
    vals = [r.value for r in readings if (r.circuit, r.quantity, r.phase) == (circuit, quantity, phase)]
    assert vals, f"no {circuit}/{quantity}/{phase}"
    return vals[-1]


async def _run_board(
    tmp_path: Path, seconds_of_readings: int, spectra: list[Spectrum] | None = None
) -> tuple[list[Reading], SiteModel, WaveformSource]:
    """Readings of the simulated board (and its spectra into ``spectra``, when given)."""
    cfg = site()
    model = SiteModel(cfg)
    server = await start_adc_simulator(SimContext(cfg, cfg.buses[0], cfg.devices, model))
    try:
        port = int(server.endpoint.rsplit(":", 1)[1])
        cfg2 = site(port)
        ctx = SourceContext(
            cfg2,
            cfg2.buses[0],
            cfg2.devices,
            {},
            tmp_path,
            publish_spectra=None if spectra is None else spectra.extend,
        )
        (src,) = waveform_sources(ctx)
        assert isinstance(src, WaveformSource)
        batches: list[list[Reading]] = []
        task = asyncio.create_task(src.run(lambda rs: batches.append(list(rs))))
        for _ in range(400):
            await asyncio.sleep(0.05)
            if len(batches) >= seconds_of_readings:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await src.close()
    finally:
        await server.close()
    return [r for b in batches for r in b], model, src


def test_adc_board_readings_match_the_physical_model(tmp_path: Path) -> None:
    readings, model, src = asyncio.run(_run_board(tmp_path, 4))
    status = src.status
    assert status.online and status.last_seen is not None and status.errors == 0
    supply = model.supply()
    for cid, dev_channels, phases in (("press", (1, 2, 3), (Phase.L1, Phase.L2, Phase.L3)),
                                      ("oven", (4, 5, 6), (Phase.L1, Phase.L2, Phase.L3)),
                                      ("desk", (7,), (Phase.L2,))):  # fmt: skip
        p_total = 0.0
        for ch, ph in zip(dev_channels, phases, strict=True):
            st = model.channel("board", ch)
            u = supply.voltage[int(ph.value[1]) - 1]
            # stated tolerances: U 0.2 %; I and P 0.5 % (int16 samples, the model's harmonic powers)
            assert latest(readings, cid, "voltage", ph) == pytest.approx(u, rel=2e-3)
            assert latest(readings, cid, "current", ph) == pytest.approx(st.current, rel=5e-3)
            assert latest(readings, cid, "active_power", ph) == pytest.approx(st.active_power, rel=5e-3)
            assert latest(readings, cid, "reactive_power", ph) == pytest.approx(st.reactive_power, rel=1e-2)
            p_total += st.active_power
        assert latest(readings, cid, "active_power", Phase.TOTAL) == pytest.approx(p_total, rel=5e-3)
        imp = [
            r
            for r in readings
            if (r.circuit, r.quantity, r.phase) == (cid, "energy_active_import", Phase.TOTAL)
        ]
        assert len(imp) >= 3 and all(b.value >= a.value for a, b in zip(imp, imp[1:], strict=False))
        assert imp[-1].value > 0
    assert latest(readings, "press", "frequency", Phase.TOTAL) == pytest.approx(supply.frequency, abs=0.05)
    assert (tmp_path / "waveform-adc.json").exists()


def test_harmonic_spectra_of_each_phase_reach_the_live_side_with_the_readings(tmp_path: Path) -> None:
    spectra: list[Spectrum] = []
    readings, model, _ = asyncio.run(_run_board(tmp_path, 3, spectra))
    assert spectra, "the source published no spectra"
    supply = model.supply()
    last_ts = max(r.ts for r in readings)
    latest = {s.key: s for s in spectra if s.ts == last_ts}
    kinds = (
        "harmonics_voltage",
        "harmonics_voltage_percent",
        "harmonics_current",
        "harmonics_current_percent",
    )
    for cid, dev_channels, phases in (("press", (1, 2, 3), (Phase.L1, Phase.L2, Phase.L3)),
                                      ("desk", (7,), (Phase.L2,))):  # fmt: skip
        assert {(k.quantity, k.phase) for k in latest if k.circuit == cid} == {
            (q, ph) for q in kinds for ph in phases
        }
        for ch, ph in zip(dev_channels, phases, strict=True):
            u = latest[SeriesKey(cid, "harmonics_voltage", ph)]
            i = latest[SeriesKey(cid, "harmonics_current", ph)]
            i_pct = latest[SeriesKey(cid, "harmonics_current_percent", ph)]
            u_pct = latest[SeriesKey(cid, "harmonics_voltage_percent", ph)]
            assert list(u.orders) == list(range(51)) and len(i.values) == 51
            assert u.quality in (Quality.GOOD, Quality.FLAGGED)
            assert i_pct.values[1] == pytest.approx(100.0) and u_pct.values[1] == pytest.approx(100.0)
            # the model's supply: 5th harmonic 2.2 % × (1 ± 10 %); the motor's current: 5th 4 %, 7th 2 %
            k = int(ph.value[1]) - 1
            assert u_pct.values[5] == pytest.approx(100 * supply.harmonics_voltage[k][5], abs=0.05)
            st = model.channel("board", ch)
            assert i_pct.values[5] == pytest.approx(100 * st.harmonics_current[5], abs=0.1)
            assert i_pct.values[7] == pytest.approx(100 * st.harmonics_current[7], abs=0.1)
            # the RMS of all orders is the channel's RMS, as the readings of the same interval say
            rms = np.sqrt(np.nansum(np.square(i.values)))
            current = [r for r in readings if r.key == SeriesKey(cid, "current", ph) and r.ts == last_ts]
            assert rms == pytest.approx(current[0].value, rel=5e-3)
            u_rms = [r for r in readings if r.key == SeriesKey(cid, "voltage", ph) and r.ts == last_ts]
            assert np.sqrt(np.nansum(np.square(u.values))) == pytest.approx(u_rms[0].value, rel=2e-3)


def test_energy_registers_continue_after_a_restart(tmp_path: Path) -> None:
    first, _, _ = asyncio.run(_run_board(tmp_path, 2))
    second, _, _ = asyncio.run(_run_board(tmp_path, 2))
    key = ("press", "energy_active_import", Phase.TOTAL)
    e1 = [r.value for r in first if (r.circuit, r.quantity, r.phase) == key][-1]
    e2 = [r.value for r in second if (r.circuit, r.quantity, r.phase) == key][0]
    assert e2 >= e1


# -- protocol ---------------------------------------------------------------------------------


def test_frame_roundtrip_and_golden_header() -> None:
    samples = np.array([[1.0, -2.0, 0.5], [10.0, 0.0, -10.0]])
    data = encode_frame(7, 1280, 6400.0, 1_700_000_000.25, samples)
    # header: magic, version 1, int16, 2 channels, sequence 7, 3 samples, first sample 1280, fs, t0
    assert data[:16] == b"MHWF\x01\x01\x02\x00\x07\x00\x00\x00\x03\x00\x00\x00"
    assert struct.unpack("<Q", data[16:24]) == (1280,)
    assert len(data) == HEADER.size + 4 * 2 + 3 * 2 * 2 + 4
    f = decode_frame(data)
    assert f.sequence == 7 and f.first_sample == 1280 and f.fs == 6400.0
    np.testing.assert_allclose(f.samples, samples, atol=2.0 / 32000 * 10)
    f32 = decode_frame(encode_frame(1, 0, 6400.0, 0.0, samples, fmt=2))
    np.testing.assert_allclose(f32.samples, samples, rtol=1e-7)


def test_corrupted_frame_names_its_sequence_and_the_next_frame_is_read() -> None:
    samples = np.ones((27, 64))
    good = encode_frame(41, 0, 6400.0, 0.0, samples)
    bad = bytearray(encode_frame(42, 64, 6400.0, 0.0, samples))
    bad[100] ^= 0xFF  # flip a sample byte: the CRC no longer matches
    after = encode_frame(43, 128, 6400.0, 0.0, samples)

    async def read_all() -> list[object]:
        reader = asyncio.StreamReader()
        reader.feed_data(good + bytes(bad) + b"garbage!" + after)
        reader.feed_eof()
        fr = FrameReader(reader)
        out: list[object] = []
        while True:
            try:
                out.append((await fr.next()).sequence)
            except FrameError as exc:
                out.append(str(exc))
            except asyncio.IncompleteReadError:
                return out

    out = asyncio.run(read_all())
    assert out[0] == 41
    assert out[1] == "frame 42: CRC mismatch"
    assert "lost frame sync" in str(out[2]) or "bad magic" in str(out[2])
    assert out[-1] == 43


def test_bad_crc_is_rejected_by_decode() -> None:
    data = bytearray(encode_frame(5, 0, 6400.0, 0.0, np.zeros((3, 4))))
    data[-1] ^= 1
    with pytest.raises(FrameError, match="frame 5: CRC mismatch"):
        decode_frame(bytes(data))
    assert zlib.crc32(b"") == 0


def test_source_reconnects_after_the_board_restarts(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int, bool]:
        cfg = site()
        model = SiteModel(cfg)
        server = await start_adc_simulator(SimContext(cfg, cfg.buses[0], cfg.devices, model))
        port = int(server.endpoint.rsplit(":", 1)[1])
        cfg2 = site(port)
        src = WaveformSource(SourceContext(cfg2, cfg2.buses[0], cfg2.devices, {}, tmp_path), cfg2.devices[0])
        batches: list[list[Reading]] = []
        task = asyncio.create_task(src.run(lambda rs: batches.append(list(rs))))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if batches:
                break
        before = len(batches)
        await server.close()  # the board goes away: the source sees EOF and retries with backoff
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not src.status.online:
                break
        offline = not src.status.online
        server = await start_adc_simulator(SimContext(cfg2, cfg2.buses[0], cfg2.devices, model))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if len(batches) > before + 1:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.close()
        return before, len(batches), offline

    before, after, offline = asyncio.run(scenario())
    assert before >= 1 and offline and after > before + 1
