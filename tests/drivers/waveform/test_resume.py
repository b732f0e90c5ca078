"""The waveform source across lost connections, sample gaps, replays and board restarts: every received
sample metered once, readings time-stamped on the board's clock (no drift)."""

from __future__ import annotations

import asyncio
import json
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
from meterhub.drivers.waveform.protocol import FORMAT_FLOAT32, decode_frame, encode_frame
from meterhub.drivers.waveform.source import WaveformSource
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.sim.adc import AdcBoard, AdcServer
from meterhub.sim.physics import SiteModel
from meterhub.sim.waveform import Tone, record_3p4w

FS = 6400.0
GAIN = 20.0  # a 100/5 CT behind a 5 A adapter: primary amps per secondary amp
T_START = 1_700_000_000.0
THETA0 = 1.0  # phase of U L1 at sample 0 [rad]: zero crossings fall between samples


def site(port: int = 1) -> SiteConfig:
    return SiteConfig(
        site=SiteInfo(name="resume test"),
        buses=[Bus(id="adc", kind=BusKind.WAVEFORM, port=port)],
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
        simulation=Simulation(
            voltage_variation=0.0,
            loads={"press": LoadSpec(model="motor", rated_power=9000, power_factor=0.8, period=1e6)},
        ),
    )


def _stream(seconds: float) -> np.ndarray:
    """27 board channels [V, secondary A]: 230 V, 10 A primary at 30° lag on CT inputs 1…3."""
    cur = tuple(Tone(10.0 / GAIN, a - 30.0) for a in (0.0, -120.0, 120.0))
    v, i = record_3p4w(fs=FS, duration=seconds, f=50.0, currents=cur, theta0=THETA0)
    out = np.zeros((27, v.shape[1]))
    out[:3], out[3:6] = v, i
    return out.astype(np.float32).astype(np.float64)  # what float32 frames carry, exactly


def _frame(x: np.ndarray, seq: int, first: int, block: int = 640, origin: float = T_START) -> object:
    return decode_frame(
        encode_frame(seq, first, FS, origin + first / FS, x[:, first : first + block], FORMAT_FLOAT32)
    )


def _wh(x: np.ndarray) -> float:
    """Σu·i/fs of the circuit over the samples ``x`` [Wh]."""
    return float(np.sum(x[:3] * x[3:6] * GAIN)) / FS / 3600.0


def _source(tmp_path: Path, port: int = 1, emit_interval: float = 1.0) -> WaveformSource:
    cfg = site(port)
    return WaveformSource(
        SourceContext(cfg, cfg.buses[0], cfg.devices, {}, tmp_path),
        cfg.devices[0],
        emit_interval=emit_interval,
    )


def _registers(tmp_path: Path) -> dict[str, float]:
    return json.loads((tmp_path / "waveform-adc.json").read_text())["press"]["total"]


def _window_ends(readings: list[Reading]) -> list[float]:
    return sorted({r.ts for r in readings if r.quantity == Q.ACTIVE_POWER and r.phase is Phase.TOTAL})


def _cycles_from_crossing(ts: float, origin: float) -> float:
    """How far ``ts`` is from a positive zero crossing of U L1 of a stream whose sample 0 is at
    ``origin`` [cycles, −0.5…0.5]."""
    c = (THETA0 + 2 * np.pi * 50.0 * (ts - origin)) / (2 * np.pi)
    return float(c - np.round(c))


def test_a_gap_an_overlap_and_a_duplicate_meter_each_received_sample_once_on_the_boards_clock(
    tmp_path: Path,
) -> None:
    x = _stream(8.0)
    src = _source(tmp_path, emit_interval=0.2)  # a reading per window: every window end is checked
    readings: list[Reading] = []
    firsts = list(range(0, 12800, 640))
    pos = 12800 + 3333  # 3333 samples (0.52 s) never arrive
    while pos + 640 <= 25000:
        firsts.append(pos)
        if len(firsts) == 26:  # the board replays: the same frame again, then one overlapping by 100
            firsts += [pos, pos + 540]
            pos += 540
        pos += 640
    fed = np.zeros(x.shape[1], dtype=bool)
    for seq, first in enumerate(firsts):
        src.process(_frame(x, seq, first), readings.extend)  # type: ignore[arg-type]
        fed[first : first + 640] = True
    asyncio.run(src.close())
    assert src.lost_samples == 3333 and src.duplicates == 1
    truth = _wh(x[:, fed])
    assert _registers(tmp_path)[Q.ENERGY_ACTIVE_IMPORT] == pytest.approx(truth, rel=1e-9)
    # 3·230 V·10 A·cos 30° = 5975.6 W over the samples received
    assert truth == pytest.approx(5975.6 * fed.sum() / FS / 3600, rel=1e-3)
    ends = _window_ends(readings)
    assert len(ends) >= 5 and ends[-1] > T_START + 12800 / FS + 0.52  # readings from after the gap
    for ts in ends:  # every window ends on a zero crossing of the board's U L1: no drift by the gap
        assert abs(_cycles_from_crossing(ts, T_START)) < 0.6 / 128, ts  # ±0.6 sample (128 per cycle)


def test_a_restarted_board_starts_a_new_stream_with_its_own_time_and_the_registers_continue(
    tmp_path: Path,
) -> None:
    x = _stream(4.0)
    src = _source(tmp_path)
    readings: list[Reading] = []
    for seq, first in enumerate(range(0, 12800, 640)):
        src.process(_frame(x, seq, first), readings.extend)  # type: ignore[arg-type]
    later = T_START + 100.003  # the board came back 100 s later, counting samples from 0 again
    for seq, first in enumerate(range(0, 12800, 640)):
        src.process(_frame(x, seq, first, origin=later), readings.extend)  # type: ignore[arg-type]
    asyncio.run(src.close())
    assert _registers(tmp_path)[Q.ENERGY_ACTIVE_IMPORT] == pytest.approx(2 * _wh(x[:, :12800]), rel=1e-9)
    ends = _window_ends(readings)
    after = [ts for ts in ends if ts > later]
    assert after and len(ends) > len(after)
    for ts in after:
        assert abs(_cycles_from_crossing(ts, later)) < 0.6 / 128, ts


def test_dropped_connection_resumes_from_the_next_sample_and_loses_nothing(tmp_path: Path) -> None:
    """The board on a loopback port; its connection is cut mid-stream. The client asks to resume from
    the sample it needs, the board replays it, and the energy equals the simulator's Σu·i/fs."""

    async def scenario() -> tuple[WaveformSource, AdcServer, dict[int, float], list[int], list[Reading]]:
        cfg = site()
        model = SiteModel(cfg)
        board = AdcBoard(model, cfg.devices[0], cfg.circuits, dip_interval=0)
        truth: dict[
            int, float
        ] = {}  # first sample of each block → its Σu·i/fs [Wh], from the board's samples
        synth = board.block

        def block(n: int) -> np.ndarray:
            out = synth(n)
            x = out.astype(np.float32).astype(np.float64)
            truth[board.sample - n] = _wh(x)
            return out

        board.block = block  # type: ignore[method-assign]
        # never skipping ahead: on a loaded test host the board would otherwise make gaps of its own
        server = AdcServer(board, "127.0.0.1", 0, fmt=FORMAT_FLOAT32, max_lag=1e9)
        await server.start()
        src = _source(tmp_path, server.port, emit_interval=0.2)
        firsts: list[int] = []
        process = src.process
        src.process = lambda frame, emit: (firsts.append(frame.first_sample), process(frame, emit))[1]  # type: ignore[method-assign]
        readings: list[Reading] = []
        task = asyncio.create_task(src.run(readings.extend))
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                if len(_window_ends(readings)) >= 5:
                    break
            server.drop_clients()  # the cable is pulled; the board samples on
            for _ in range(100):
                await asyncio.sleep(0.05)
                if not src.status.online:
                    break
            assert not src.status.online
            before = len(firsts)
            for _ in range(200):
                await asyncio.sleep(0.05)
                if len(firsts) > before + 20:
                    break
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await src.close()
            await server.close()
        return src, server, truth, firsts, readings

    src, server, truth, firsts, readings = asyncio.run(scenario())
    assert src.lost_samples == 0
    assert src.status.errors == 1 and "IncompleteReadError" in str(src.status.last_error)  # the cut only
    start = firsts[0]
    end = src._next_sample
    assert end is not None and end - start > 2 * FS
    fed = [k for k in truth if start <= k < end]
    assert len(fed) * 640 == end - start  # every block of the range reached the analyser
    expected = sum(truth[k] for k in fed)
    assert _registers(tmp_path)[Q.ENERGY_ACTIVE_IMPORT] == pytest.approx(expected, rel=1e-9)
    # readings sit on the board's clock: the last window ends at most ~0.5 s before the last sample fed
    ends = _window_ends(readings)
    t_end = server.t_start + end / FS
    assert all(b > a for a, b in zip(ends, ends[1:], strict=False))
    assert ends[-1] <= t_end + 1e-6 and ends[-1] >= t_end - 0.5
