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


def _stream(seconds: float) -> np.ndarray:
    """27 board channels: 230 V three-phase, 0.5 A secondary, with a dip on L2 (channel 1)."""
    cur = tuple(Tone(0.5, a - 30.0) for a in (0.0, -120.0, 120.0))
    v, i = record_3p4w(fs=FS, duration=seconds, f=50.0, currents=cur, theta0=1.0)
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
