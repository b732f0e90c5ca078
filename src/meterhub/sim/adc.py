"""Simulated ADC board: 3 voltage inputs + 8 three-phase CT inputs, streaming samples over TCP.

The board samples continuously at ``fs`` (6400 Hz by default) and, every ``block`` samples (100 ms),
sends one frame to every connected client. Its analogue inputs follow the shared physical model
(:class:`meterhub.sim.physics.SiteModel`): the fundamental U, I, P, Q1 of each CT input are those of
``SiteModel.channel(device, ct_input)`` and the supply voltages those of ``SiteModel.supply()``, with the
model's voltage and current harmonics, unbalance and frequency drift (phase-continuous), plus an
occasional voltage dip (``dip_interval``). Each CT input carries what its sensor would output for the
circuit's ``ct`` (:mod:`meterhub.metering.sensors`): volts across the burden, 333 mV-class volts, a
Rogowski coil's di/dt volts, or the adapter's secondary amps.

The wire format is documented in :mod:`meterhub.drivers.waveform.protocol` (header with sequence number,
fs, channel count, block length; int16 samples with per-channel scale; the client's resume request).
The simulator has its own encoder (:func:`frame_bytes`) and request decoder (:func:`wanted_sample`), as a
board's firmware would, so it does not import the driver it talks to (the layers contract); golden-frame
tests hold both sides to the same bytes. The board keeps the last ``replay_seconds`` (15 s) of frames and
answers a client's resume request by replaying those from the wanted sample on, so a short reconnect
loses nothing.

Channel order: U L1, U L2, U L3 [V at the terminals; the circuits' ``vt_ratio`` is applied by the
reader], then CT inputs 1…24 (three-phase input k = CT inputs 3k−2, 3k−1, 3k) in the sensor's output
unit (V, or A for ``adapter-5a``/``built-in``/``direct``). Unused inputs carry a little noise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from meterhub.config.schema import BusKind, Circuit, Device
from meterhub.metering.sensors import Sensor, sensor_for
from meterhub.sim.base import SimContext, SimServer, register_simulator
from meterhub.sim.waveform import PhaseClock

__all__ = [
    "CT_INPUTS",
    "FORMAT_FLOAT32",
    "FORMAT_INT16",
    "VOLTAGE_CHANNELS",
    "AdcBoard",
    "AdcServer",
    "frame_bytes",
    "start_adc_simulator",
    "wanted_sample",
]

log = logging.getLogger(__name__)

CT_INPUTS = 24
VOLTAGE_CHANNELS = 3

F64 = NDArray[np.float64]

# -- the board's side of the wire format (version 1) ----------------------------------------------
FORMAT_INT16 = 1
FORMAT_FLOAT32 = 2
_FRAME_HEADER = struct.Struct("<4sBBHIIQdd")  # magic, version, format, C, sequence, B, first, fs, t0
_REQUEST = struct.Struct("<4sB3xQI")  # magic, version, reserved, wanted sample, CRC-32
_LIVE = (1 << 64) - 1


def frame_bytes(
    sequence: int, first_sample: int, fs: float, t0: float, samples: F64, fmt: int = FORMAT_INT16
) -> bytes:
    """One frame of ``samples`` (channels, block) [V or A]: int16 with a per-channel scale of
    peak/32000 (1 for a silent channel), or float32 with scale 1; CRC-32 over everything before it."""
    c, b = samples.shape
    if fmt == FORMAT_INT16:
        peak = np.max(np.abs(samples), axis=1)
        scale = np.where(peak > 0, peak / 32000.0, 1.0).astype("<f4")
        raw: NDArray[np.generic] = np.round(samples / scale.astype(np.float64)[:, None]).astype("<i2")
    elif fmt == FORMAT_FLOAT32:
        scale = np.ones(c, dtype="<f4")
        raw = samples.astype("<f4")
    else:
        raise ValueError(f"unknown sample format {fmt}")
    head = _FRAME_HEADER.pack(b"MHWF", 1, fmt, c, sequence & 0xFFFFFFFF, b, first_sample, fs, t0)
    body = head + scale.tobytes() + np.ascontiguousarray(raw.T).tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def wanted_sample(request: bytes) -> int | None:
    """The sample index a client's resume request asks for; None for the live stream or a request
    that is not one (wrong size, magic, version or CRC: the board then streams live)."""
    if len(request) != _REQUEST.size:
        return None
    magic, version, wanted, crc = _REQUEST.unpack(request)
    if magic != b"MHRQ" or version != 1 or zlib.crc32(request[:-4]) != crc or wanted == _LIVE:
        return None
    return int(wanted)


class AdcBoard:
    """Sample synthesis of one board (pure; :class:`AdcServer` adds the clock and the socket).

    Parameters
    ----------
    model : the shared physical site model
    device : the board's device entry
    circuits : circuits measured by the board (``channels`` are CT inputs 1…24)
    fs : sampling rate [Hz]
    dip_interval : mean time between simulated voltage dips [s]; 0 disables them
    seed : random seed of noise and dips
    """

    def __init__(
        self,
        model: object,
        device: Device,
        circuits: list[Circuit],
        *,
        fs: float = 6400.0,
        dip_interval: float = 120.0,
        seed: int = 1,
    ) -> None:
        self.model = model
        self.device = device
        self.fs = float(fs)
        self.clock = PhaseClock(fs, theta0=0.0)
        self.rng = np.random.default_rng(seed)
        self.dip_interval = dip_interval
        self._dip: tuple[int, int, int, float] | None = None  # start sample, end sample, phase, depth
        self._next_dip = self._draw_dip_gap()
        self.sample = 0
        f_nom = 50.0
        cfg = getattr(model, "config", None)
        if cfg is not None:
            f_nom = float(cfg.site.nominal_frequency)
        # CT input → (circuit, sensor)
        self.inputs: dict[int, tuple[Circuit, Sensor]] = {}
        for c in circuits:
            rev = c.reversed if isinstance(c.reversed, list) else [c.reversed] * len(c.channels)
            for k, ch in enumerate(c.channels):
                if not 1 <= ch <= CT_INPUTS:
                    raise ValueError(
                        f"circuit {c.id}: ADC board {device.id} has CT inputs 1…{CT_INPUTS}, not {ch}"
                    )
                self.inputs[ch] = (c, sensor_for(c.ct, fs=fs, f_nominal=f_nom, reversed=bool(rev[k])))
        self.vt_ratio = circuits[0].vt_ratio.value if circuits else 1.0

    def _draw_dip_gap(self) -> int:
        if self.dip_interval <= 0:
            return 1 << 62
        return int(self.rng.exponential(self.dip_interval) * self.fs) + int(5 * self.fs)

    def block(self, n: int) -> F64:
        """The next ``n`` samples of every channel (27, n) [V or A at the terminals]."""
        model = self.model
        supply = model.supply()  # type: ignore[attr-defined]
        seen = model.supply_for(self.device.id) if hasattr(model, "supply_for") else supply
        th = self.clock.advance(n, float(supply.frequency))
        out = np.zeros((VOLTAGE_CHANNELS + CT_INPUTS, n))
        envelope = self._dip_envelope(n)
        for k in range(3):
            ph = th + math.radians(float(supply.angle_voltage[k]))
            # a voltage input that is not connected (a simulated fault) reads 0 V
            u1 = float(seen.voltage[k]) / math.sqrt(float(np.sum(supply.harmonics_voltage[k, 1:] ** 2)))
            out[k] = _synth(ph, u1, supply.harmonics_voltage[k]) * envelope[k] / self.vt_ratio
        for ch, (_, sensor) in self.inputs.items():
            st = model.channel(self.device.id, ch)  # type: ignore[attr-defined]
            h = np.asarray(st.harmonics_current, dtype=np.float64)
            i1 = float(st.current) / math.sqrt(float(np.sum(h[1:] ** 2))) if st.current > 0 else 0.0
            ph = th + math.radians(float(st.angle_current))
            out[VOLTAGE_CHANNELS + ch - 1] = sensor.output(ph, i1, h, float(supply.frequency))
        unused = [VOLTAGE_CHANNELS + ch - 1 for ch in range(1, CT_INPUTS + 1) if ch not in self.inputs]
        if unused:
            out[unused] = self.rng.normal(0.0, 1e-4, size=(len(unused), n))
        self.sample += n
        return out

    def _dip_envelope(self, n: int) -> F64:
        env = np.ones((3, n))
        start = self.sample
        if self._dip is None and start + n > self._next_dip:
            length = int(self.rng.uniform(0.06, 0.4) * self.fs)
            phase = int(self.rng.integers(0, 3))
            depth = float(self.rng.uniform(0.55, 0.85))
            self._dip = (self._next_dip, self._next_dip + length, phase, depth)
            log.info(
                "ADC simulator: dip on L%d to %.0f %% for %.0f ms",
                phase + 1,
                depth * 100,
                length / self.fs * 1e3,
            )
        if self._dip is not None:
            a, b, phase, depth = self._dip
            idx = np.arange(start, start + n)
            env[phase, (idx >= a) & (idx < b)] = depth
            if start + n >= b:
                self._dip = None
                self._next_dip = b + self._draw_dip_gap()
        return env


def _synth(ph: F64, rms1: float, h: NDArray[np.float64]) -> F64:
    """√2·rms1·Σ_h h[h]·sin(h·ph) for h ≥ 1 (harmonic angles 0° relative to their phase) [unit]."""
    x = np.sin(ph) * h[1]
    for order in np.flatnonzero(h[2:] > 0) + 2:
        x += h[order] * np.sin(order * ph)
    return math.sqrt(2.0) * rms1 * x


class AdcServer(SimServer):
    """Serves an :class:`AdcBoard`'s frames to every TCP client, paced by the wall clock, and replays
    the last ``replay_seconds`` to a client that asks to resume from a sample (module docstring)."""

    def __init__(self, board: AdcBoard, host: str, port: int, *, block: int = 640, fmt: int = FORMAT_INT16,
                 clock: Callable[[], float] = time.time, replay_seconds: float = 15.0,
                 request_timeout: float = 1.0, max_lag: float = 2.0) -> None:  # fmt: skip
        self.board = board
        self.host = host
        self.port = port
        self.block = block
        self.fmt = fmt
        self.clock = clock
        self.request_timeout = request_timeout
        self.max_lag = max_lag  # a host stalled longer than this [s] skips ahead (a gap), as hardware would
        self.endpoint = f"tcp://{host}:{port}"
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._task: asyncio.Task[None] | None = None
        # (first sample, frame) of the last replay_seconds, oldest first
        self._replay: deque[tuple[int, bytes]] = deque(
            maxlen=max(1, math.ceil(replay_seconds * board.fs / block))
        )
        self.sequence = 0
        self.frames_sent = 0
        self.next_sample = 0  # index of the first sample of the next frame
        self.t_start = 0.0  # Unix time of sample 0 [s]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_client, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = int(sock[1])
        self.endpoint = f"tcp://{self.host}:{self.port}"
        self._task = asyncio.create_task(self._produce(), name=f"adc-sim-{self.board.device.id}")

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                request = await asyncio.wait_for(reader.readexactly(_REQUEST.size), self.request_timeout)
            except (TimeoutError, asyncio.IncompleteReadError):
                request = b""  # a client that asks nothing gets the live stream
            wanted = wanted_sample(request)
            if wanted is not None:  # no await until the client is registered: no frame missed or sent twice
                for first, frame in self._replay:
                    if first + self.block > wanted:
                        writer.write(frame)
            self._clients.add(writer)
            await reader.read()  # the board ignores further input; returns at EOF
        except (ConnectionError, OSError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    def drop_clients(self) -> None:
        """Close every client connection (a cable pulled); the board keeps sampling."""
        for w in list(self._clients):
            self._clients.discard(w)
            w.close()

    async def _produce(self) -> None:
        fs = self.board.fs
        t_start = self.t_start = self.clock()
        first = 0
        while True:
            t0 = t_start + first / fs
            due = t0 + self.block / fs
            delay = due - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            elif (
                delay < -self.max_lag
            ):  # stalled host: skip ahead rather than flood (a gap, as real hardware)
                skip = int(-delay * fs) // self.block * self.block
                first += skip
                self.board.sample += skip
                continue
            samples = self.board.block(self.block)
            frame = frame_bytes(self.sequence, first, fs, t0, samples, self.fmt)
            self._replay.append((first, frame))
            self.sequence = (self.sequence + 1) & 0xFFFFFFFF
            first += self.block
            self.next_sample = first
            for w in list(self._clients):
                if w.transport.get_write_buffer_size() > 4 << 20:  # a client that stopped reading
                    self._clients.discard(w)
                    w.close()
                    continue
                w.write(frame)
            self.frames_sent += 1

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for w in list(self._clients):
            w.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def start_adc_simulator(ctx: SimContext) -> SimServer:
    """Simulator factory for :data:`BusKind.WAVEFORM` buses: one board per bus (its first device)."""
    if not ctx.devices:
        raise ValueError(f"waveform bus {ctx.bus.id} has no device")
    device = ctx.devices[0]
    circuits = [c for c in ctx.config.circuits if c.device == device.id]
    board = AdcBoard(ctx.model, device, circuits)
    server = AdcServer(board, ctx.bus.host, ctx.bus.port or 0)
    await server.start()
    return server


register_simulator(BusKind.WAVEFORM, start_adc_simulator)
