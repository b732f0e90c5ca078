"""Power-quality events from the waveform engine into the power-quality log: a dip on L2 fed to the
waveform source as ADC frames reaches the gateway's entry point and the log, with start, duration,
residual voltage, phase and the IEC 61000-4-30 §4.7 flag."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from meterhub.config.schema import Bus, BusKind, Circuit, CTSpec, Device, SiteConfig, SiteInfo
from meterhub.drivers.base import SourceContext
from meterhub.drivers.waveform.protocol import FORMAT_FLOAT32, decode_frame, encode_frame
from meterhub.drivers.waveform.source import WaveformSource
from meterhub.metering.events import FrequencyDeviationDetector, FrequencyEvent
from meterhub.model.pq import PqEvent, PqKind, PqSource
from meterhub.runtime import Gateway
from meterhub.sim.waveform import Tone, record_3p4w
from meterhub.storage.events import EventStore

FS = 6400.0
T_START = 1_800_000_000.0
DIP_AT, DIP_LEN, DEPTH = 2.0, 0.1, 0.6  # L2 falls to 60 % (138 V) from 2.0 s for 100 ms


def site() -> SiteConfig:
    return SiteConfig(
        site=SiteInfo(name="pq test"),
        buses=[Bus(id="adc", kind=BusKind.WAVEFORM, port=1)],
        devices=[Device(id="board", bus="adc", profile="meterhub-adc-8x3")],
        circuits=[
            Circuit(
                id="press",
                device="board",
                channels=[1, 2, 3],
                wiring="3P4W",
                ct=CTSpec(kind="adapter-5a", ratio="100/5"),
            ),
        ],  # fmt: skip
    )


def _stream(seconds: float, f: float = 50.0, dip: bool = True, theta0: float = 1.0) -> np.ndarray:
    """27 board channels: 230 V three-phase at ``f`` [Hz] (U L1 at ``theta0`` [rad] at sample 0),
    0.5 A secondary, with a dip on L2 (channel 1)."""
    cur = tuple(Tone(0.5, a - 30.0) for a in (0.0, -120.0, 120.0))
    v, i = record_3p4w(fs=FS, duration=seconds, f=f, currents=cur, theta0=theta0)
    if dip:
        a, b = int(DIP_AT * FS), int((DIP_AT + DIP_LEN) * FS)
        v[1, a:b] *= DEPTH
    out = np.zeros((27, v.shape[1]))
    out[:3], out[3:6] = v, i
    return out.astype(np.float32).astype(np.float64)


def _feed(source: WaveformSource, x: np.ndarray) -> None:
    block = 640
    for seq, first in enumerate(range(0, x.shape[1] - block + 1, block)):
        frame = decode_frame(
            encode_frame(seq, first, FS, T_START + first / FS, x[:, first : first + block], FORMAT_FLOAT32)
        )
        source.process(frame, lambda batch: None)  # type: ignore[arg-type]


def test_a_dip_on_l2_reaches_the_entry_point_with_phase_residual_and_duration(tmp_path: Path) -> None:
    cfg = site()
    got: list[PqEvent] = []
    ctx = SourceContext(cfg, cfg.buses[0], cfg.devices, {}, tmp_path, publish_pq_events=got.extend)
    source = WaveformSource(ctx, cfg.devices[0], emit_interval=1.0)
    _feed(source, _stream(4.0))
    asyncio.run(source.close())
    assert len(got) == 1
    dip = got[0]
    assert (dip.kind, dip.phase, dip.device, dip.source, dip.unit) == (
        PqKind.DIP, "L2", "board", PqSource.WAVEFORM, "V",
    )  # fmt: skip
    assert dip.flagged and dip.threshold == 90.0
    assert dip.extreme == pytest.approx(230.0 * DEPTH, rel=0.01)  # residual 138 V
    # Urms(½) is refreshed every half cycle: start and end are known to about a cycle (20 ms).
    assert dip.start == pytest.approx(T_START + DIP_AT, abs=0.02)
    assert dip.duration == pytest.approx(DIP_LEN, abs=0.02)


def test_the_gateway_logs_power_quality_events_and_hands_them_to_listeners(tmp_path: Path) -> None:
    gw = Gateway(site(), data_dir=tmp_path)
    heard: list[PqEvent] = []
    gw.pq_listeners.append(heard.extend)
    dip = PqEvent(
        PqKind.DIP, T_START + 2, 0.1, 138.0, "V", "board", PqSource.WAVEFORM, phase="L2", threshold=90.0
    )
    gw.emit_pq_events([dip])
    assert gw.event_log.wait_written(10.0)
    store = gw.storage
    assert isinstance(store, EventStore)
    assert [s.event for s in store.pq_log(T_START, T_START + 10).rows] == [dip]
    assert heard == [dip]
    assert gw.health()["sink:event-log"].counters["written"] == 1
    gw.event_log.close()
    gw.storage.close()


def _windows(spans: list[tuple[float, float]], t0: float, width: float = 0.2) -> tuple[np.ndarray, ...]:
    """Analysis windows of ``width`` [s] from ``t0``: (frequency [Hz], seconds) spans in turn."""
    f = np.concatenate([np.full(int(round(sec / width)), hz) for hz, sec in spans])
    t = t0 + width * np.arange(f.size)
    return t, np.full(f.size, width), f


def test_frequency_deviation_is_one_event_over_whole_10s_intervals() -> None:
    t0 = 1_800_000_000.0  # a multiple of 10 s
    # 20 s at 50 Hz, 30 s at 49.3 Hz with 5 s at 49.1 Hz inside, 20 s at 50 Hz; ±0.4 Hz swings stay inside
    t, d, f = _windows([(50.0, 20), (49.3, 15), (49.1, 5), (49.3, 10), (50.4, 10), (49.6, 10)], t0)
    one = FrequencyDeviationDetector(50.0).process(t, d, f)
    assert one == [FrequencyEvent(start=t0 + 20, duration=30.0, extreme=pytest.approx(49.2), limit=49.5)]
    # the 10-s value of the interval holding the 5 s at 49.1 Hz is their mean with 5 s at 49.3 Hz
    streamed = FrequencyDeviationDetector(50.0)
    got: list[FrequencyEvent] = []
    for k in range(0, t.size, 7):  # blocks of 1.4 s, as the source feeds them
        got += streamed.process(t[k : k + 7], d[k : k + 7], f[k : k + 7])
    assert [(e.start, e.duration, e.limit) for e in got] == [(e.start, e.duration, e.limit) for e in one]
    assert got[0].extreme == pytest.approx(one[0].extreme, abs=1e-9)
    # no measurement (NaN) for a while: the deviation ends with the last interval measured
    t, d, f = _windows([(50.0, 10), (50.8, 20), (float("nan"), 30), (50.0, 20)], t0)
    assert FrequencyDeviationDetector(50.0).process(t, d, f) == [
        FrequencyEvent(start=t0 + 10, duration=20.0, extreme=pytest.approx(50.8), limit=50.5)
    ]


def test_the_waveform_source_reports_a_frequency_deviation(tmp_path: Path) -> None:
    cfg = site()
    got: list[PqEvent] = []
    ctx = SourceContext(cfg, cfg.buses[0], cfg.devices, {}, tmp_path, publish_pq_events=got.extend)
    source = WaveformSource(ctx, cfg.devices[0], emit_interval=1.0)
    source.frequency_detector.interval = 1.0  # 1-s intervals, so a few seconds of samples show it
    low = _stream(3.0, f=49.2, dip=False)
    after = 1.0 + 2 * np.pi * 49.2 * low.shape[1] / FS  # the phase goes on where the first part ended
    _feed(source, np.concatenate([low, _stream(3.0, dip=False, theta0=after)], axis=1))
    asyncio.run(source.close())
    (dev,) = got
    assert (dev.kind, dev.unit, dev.device, dev.phase, dev.flagged) == (
        PqKind.FREQUENCY,
        "Hz",
        "board",
        None,
        False,
    )
    assert dev.extreme == pytest.approx(49.2, abs=0.02) and dev.threshold == pytest.approx(49.5)
    # 3 s at 49.2 Hz are the 1-s intervals [0, 1), [1, 2), [2, 3) of the stream
    assert (dev.start, dev.duration) == (T_START, 3.0)
