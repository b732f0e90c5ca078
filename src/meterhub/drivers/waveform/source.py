"""The waveform source: reads an ADC board's sample stream and meters its circuits.

One :class:`WaveformSource` per device on a :data:`~meterhub.config.BusKind.WAVEFORM` bus. It connects to
the bus's ``host:port``, decodes frames (:mod:`.protocol`), and runs one
:class:`~meterhub.metering.engine.Analyzer` over them: the board's three voltage inputs (times the
circuits' ``vt_ratio``) serve every circuit whose ``device`` is the board; a circuit's ``channels`` are
CT inputs 1…24 (three-phase input k = inputs 3k−2…3k), converted by the circuit's ``ct`` sensor model.
Engine state persists across frames, so windows are gapless while the stream is.

Every ~``emit_interval`` (1 s = five 10/12-cycle windows) the windows since the last emission are
aggregated (IEC 61000-4-30 rules) and emitted as readings keyed by circuit: per phase and total, with
catalogue ids, time-stamped at the end of the last window, ``Quality.FLAGGED`` when a window overlapped a
dip, swell or interruption; and the four-quadrant energy registers (float64, per phase and total).
The harmonic spectra of the same interval (voltage and current per phase, RMS of the subgroups of
orders 0…50 per IEC 61000-4-7, and the same in % of the fundamental) go to the live cache only, through
``SourceContext.publish_spectra``: 51 values per phase each second are not worth storing.
The registers are the gateway's own computation, so the source keeps them across a crash
(:class:`~meterhub.drivers.base.ComputesRegisters`): the runtime stores them at every storage flush in
the same transaction as the readings, and seeds the source at start with what storage holds, taken
where it is above the source's own state file ``DATA_DIR/waveform-<bus>.json`` (saved every
``save_interval`` and on close, a secondary copy). After ``kill -9`` the registers restart from the
last flush: no lower than any value stored, at most one flush interval of energy behind.

A lost connection reconnects with exponential backoff (0.5 s … 10 s) and asks the board to resume from
the next sample it needs (the board replays up to ≥ 10 s), so a short outage loses nothing. A malformed
frame is logged with its sequence number and skipped. A gap in the sample stream (samples the board no
longer had) ends the stream segment: every sample received is metered (:meth:`Analyzer.flush`), the
windows restart after the gap and time is re-based on the frames' own time stamps, so readings never
drift by the outage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from meterhub.config.schema import Circuit, Device, SiteConfig
from meterhub.drivers.base import DeviceStatus, Emit, Source, SourceContext
from meterhub.drivers.waveform.protocol import Frame, FrameError, FrameReader, encode_request
from meterhub.metering.aggregation import aggregate
from meterhub.metering.energy import ENERGY_IDS, REGISTER_IDS, named_registers
from meterhub.metering.engine import Analyzer, Batch, CircuitSpec, EngineConfig
from meterhub.metering.events import FrequencyDeviationDetector
from meterhub.metering.power import Quantities
from meterhub.metering.sensors import Sensor, sensor_for
from meterhub.metering.sync import cycles_per_window
from meterhub.model.pq import PqEvent, PqKind, PqSource
from meterhub.model.quantities import CATALOGUE, Kind, Q
from meterhub.model.readings import Quality, Reading, SeriesKey, Spectrum
from meterhub.model.topology import Phase, Wiring

__all__ = [
    "CT_INPUTS",
    "VOLTAGE_INPUTS",
    "WaveformSource",
    "circuit_layout",
    "interval_values",
    "readings_of",
    "waveform_sources",
]

log = logging.getLogger(__name__)

CT_INPUTS = 24
VOLTAGE_INPUTS = 3
_GROUP_PHASE = {"L1": Phase.L1, "L2": Phase.L2, "L3": Phase.L3, "N": Phase.N, "total": Phase.TOTAL}
_PHASE_INDEX = {Phase.L1: 0, Phase.L2: 1, Phase.L3: 2}
_SAME_STREAM = 0.5  # frames whose sample 0 lies further apart in time come from a new stream [s]
_SKIP = {Q.VOLTAGE_MAX, Q.VOLTAGE_MIN, Q.VOLTAGE_LINE_MAX, Q.VOLTAGE_LINE_MIN, Q.CURRENT_MAX}
#: spectrum (RMS per order) → the same spectrum in % of the fundamental; both catalogue ids
_PERCENT_OF: dict[str, str] = {
    Q.HARMONICS_VOLTAGE: Q.HARMONICS_VOLTAGE_PERCENT,
    Q.HARMONICS_CURRENT: Q.HARMONICS_CURRENT_PERCENT,
}
if any(
    CATALOGUE.get(k) is None or CATALOGUE[k].kind is not Kind.SPECTRUM
    for kv in _PERCENT_OF.items()
    for k in kv
):
    raise RuntimeError("the spectrum ids of the waveform source are not in the catalogue")  # pragma: no cover


def circuit_layout(
    config: SiteConfig, device: Device, fs: float
) -> tuple[list[CircuitSpec], dict[int, Sensor], list[Circuit]]:
    """Engine circuits, sensors by current channel (CT input − 1), and the circuits they came from."""
    specs: list[CircuitSpec] = []
    sensors: dict[int, Sensor] = {}
    used: list[Circuit] = []
    f_nom = float(config.site.nominal_frequency)
    for c in config.circuits:
        if c.device != device.id:
            continue
        if c.wiring is Wiring.DC:
            log.warning(
                "circuit %s: a DC circuit cannot be measured by the AC board %s; skipped", c.id, device.id
            )
            continue
        bad = [ch for ch in c.channels if not 1 <= ch <= CT_INPUTS]
        if bad:
            log.error(
                "circuit %s: CT input(s) %s outside 1…%d of board %s; skipped",
                c.id,
                bad,
                CT_INPUTS,
                device.id,
            )
            continue
        rev = c.reversed if isinstance(c.reversed, list) else [c.reversed] * len(c.channels)
        phases = c.supply_phases
        try:
            for k, ch in enumerate(c.channels):
                sensors[ch - 1] = sensor_for(
                    c.ct, fs=fs, f_nominal=f_nom, reversed=bool(rev[k] if k < len(rev) else False)
                )
        except ValueError as exc:
            log.error("circuit %s: %s; skipped", c.id, exc)
            continue
        specs.append(
            CircuitSpec(
                c.id,
                c.wiring,
                tuple(ch - 1 for ch in c.channels),
                tuple(_PHASE_INDEX[p] for p in phases),
                tuple(p.value for p in phases) if c.wiring is not Wiring.P3W3 else (),
            )
        )
        used.append(c)
    return specs, sensors, used


class WaveformSource(Source):
    """Meters the circuits of one ADC board (see the module docstring)."""

    def __init__(
        self,
        ctx: SourceContext,
        device: Device,
        *,
        emit_interval: float = 1.0,
        save_interval: float = 10.0,
        state_file: Path | None = None,
    ) -> None:
        self.ctx = ctx
        self.device = device
        self.name = f"waveform:{ctx.bus.id}:{device.id}"
        self.emit_interval = emit_interval
        self.save_interval = save_interval
        self.state_file = state_file or Path(ctx.data_dir) / f"waveform-{ctx.bus.id}.json"
        self.status: DeviceStatus = ctx.status.setdefault(
            device.id, DeviceStatus(device.id, device.name or device.id, device.profile, ctx.bus.id)
        )
        self._energy: dict[str, dict[str, dict[str, float]]] = self._load_energy()
        self._analyzer: Analyzer | None = None
        self._fs: float | None = None
        self._next_sample: int | None = None
        self._next_seq: int | None = None
        self._t_base = 0.0  # Unix time of analyser sample 0 [s]
        self._origin = 0.0  # the board's time of its sample 0 [s]
        self.duplicates = 0  # frames dropped because their samples had been fed already
        self.lost_samples = 0  # samples the board no longer had when the stream resumed
        self.status.extra_counters = lambda: {
            "lost_samples": self.lost_samples,
            "duplicate_frames": self.duplicates,
        }
        self._pending: list[Batch] = []
        self._pending_s = 0.0
        self._last_save = time.monotonic()
        self._writer: asyncio.StreamWriter | None = None
        self.frames = 0
        self.events: list[dict[str, Any]] = []
        #: Frequency deviations over 10-s intervals (EN 50160 §4.2.1: nominal ± 1 %).
        self.frequency_detector = FrequencyDeviationDetector(float(ctx.config.site.nominal_frequency))

    # -- energy persistence -------------------------------------------------------------------
    def _load_energy(self) -> dict[str, dict[str, dict[str, float]]]:
        try:
            data = json.loads(self.state_file.read_text())
            return {
                c: {g: {k: float(v) for k, v in d.items()} for g, d in gs.items()} for c, gs in data.items()
            }
        except FileNotFoundError:
            return {}
        except (ValueError, AttributeError, OSError) as exc:
            log.error(
                "%s: cannot read energy registers (%s); starting at the stored readings' values",
                self.state_file,
                exc,
            )
            return {}

    def _save_energy(self) -> None:
        if self._analyzer is not None:
            self._energy = self._analyzer.energy()
        tmp = self.state_file.with_suffix(".tmp")
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self._energy))
            os.replace(tmp, self.state_file)
        except OSError as exc:
            log.error("%s: cannot save energy registers: %s", self.state_file, exc)
        self._last_save = time.monotonic()

    # -- registers the source computes (ComputesRegisters) ------------------------------------
    def computed_series(self) -> list[SeriesKey]:
        """The energy register series of the board's circuits (per phase and total), the reactive
        import and export (R+ = Q1 + Q2, R− = Q3 + Q4) included."""
        keys: list[SeriesKey] = []
        for c in self.ctx.config.circuits:
            if c.device != self.device.id or c.wiring is Wiring.DC:
                continue
            groups = [] if c.wiring is Wiring.P3W3 else [p.value for p in c.supply_phases]
            for group in (*groups, "total"):
                keys += [k for name in REGISTER_IDS if (k := _energy_key(c.id, group, name)) is not None]
        return keys

    def computed_registers(self) -> dict[SeriesKey, float]:
        """Every energy register now [Wh, varh, VAh] (the analyser's, or the loaded ones before it)."""
        energy = self._analyzer.energy() if self._analyzer is not None else self._energy
        out: dict[SeriesKey, float] = {}
        for cid, groups in energy.items():
            for group, regs in groups.items():
                for name, value in regs.items():
                    key = _energy_key(cid, group, name)
                    if key is not None:
                        out[key] = float(value)
        return out

    def seed_registers(self, registers: Mapping[SeriesKey, float]) -> None:
        """Continue from stored registers where they are above the state file's [Wh, varh, VAh].

        Only the seven accumulated registers are taken; reactive import and export follow from their
        quadrants (so they are not below their stored values either)."""
        ours = set(self.computed_series())
        raised: list[tuple[SeriesKey, float]] = []
        for key, value in registers.items():
            if (
                key not in ours
                or key.quantity not in ENERGY_IDS
                or key.phase is None
                or not np.isfinite(value)
            ):
                continue
            regs = self._energy.setdefault(key.circuit, {}).setdefault(key.phase.value, {})
            before = regs.get(key.quantity)
            if before is None or value > before:
                regs[key.quantity] = float(value)
                raised.append((key, float(value) - (before or 0.0)))
                if self._analyzer is not None and key.circuit in self._analyzer.registers:
                    self._analyzer.registers[key.circuit].preset(key.phase.value, key.quantity, value)
        for circuit, group in {(k.circuit, k.phase.value) for k, _ in raised if k.phase is not None}:
            regs = self._energy[circuit][group]
            regs.update(named_registers([regs.get(name, 0.0) for name in ENERGY_IDS]))
        if raised:
            key, step = max(raised, key=lambda kv: kv[1])
            log.info(
                "%s: %d energy registers continue from storage, above %s (most: %s by %.6g)",
                self.name,
                len(raised),
                self.state_file,
                key,
                step,
            )

    # -- engine -------------------------------------------------------------------------------
    def _new_analyzer(self, frame: Frame) -> Analyzer:
        """A fresh analyser for the stream ``frame`` starts, its registers continuing the old one's
        (whose buffered samples are integrated first)."""
        cfg = self.ctx.config
        specs, sensors, used = circuit_layout(cfg, self.device, frame.fs)
        f_nom = float(cfg.site.nominal_frequency)
        self._vt = used[0].vt_ratio.value if used else 1.0
        an = Analyzer(
            EngineConfig(
                fs=frame.fs,
                f_nominal=f_nom,
                declared_voltage=float(cfg.site.nominal_voltage),
                # windows analysed together, one emit interval's worth: the cost is mostly per analysis
                batch_windows=max(1, int(self.emit_interval * f_nom / cycles_per_window(f_nom) + 1e-9)),
            ),
            specs,
            current_channels=CT_INPUTS,
            sensors=sensors,
        )
        if self._analyzer is not None:
            self._analyzer.flush()
            self._energy = self._analyzer.energy()
        energy = self._energy
        for cid, groups in energy.items():
            if cid in an.registers:
                for g, regs in groups.items():
                    for k, v in regs.items():
                        if k in ENERGY_IDS:
                            an.registers[cid].preset(g, k, v)
        self._fs = frame.fs
        return an

    def process(self, frame: Frame, emit: Emit) -> None:
        """Feed one frame; emit readings when ``emit_interval`` of windows has accumulated.

        Frames are placed by their first-sample index: what was already fed (a replay after a
        reconnect) is dropped, a gap ends the stream segment (:meth:`Analyzer.flush`, nothing received is
        lost) and re-bases time on the frame's own time stamp, so readings never drift. A frame whose
        sample 0 lies at another time (the board restarted) or with another rate starts a new analyser.
        """
        if frame.samples.shape[0] < VOLTAGE_INPUTS + CT_INPUTS:
            raise FrameError(
                f"{frame.samples.shape[0]} channels, the board has {VOLTAGE_INPUTS + CT_INPUTS}",
                frame.sequence,
            )
        fs = frame.fs
        s, first, t0 = frame.samples, frame.first_sample, frame.t0
        origin = t0 - first / fs  # the board's time of its sample 0 [s]
        if (
            self._analyzer is not None
            and self._next_sample is not None
            and fs == self._fs
            and abs(origin - self._origin) <= _SAME_STREAM
        ):
            if first + frame.block <= self._next_sample:
                self.duplicates += 1  # replayed or repeated: already fed
                return
            if first < self._next_sample:  # overlaps what was fed: keep only the new samples
                cut = self._next_sample - first
                s, first, t0 = s[:, cut:], self._next_sample, t0 + cut / fs
            elif first > self._next_sample:
                lost = first - self._next_sample
                self.lost_samples += lost
                log.warning(
                    "%s: %d samples (%.3f s) missing before frame %d; windows restart after the gap",
                    self.name, lost, lost / fs, frame.sequence,
                )  # fmt: skip
                self._end_segment(emit)
                self._t_base = t0 - self._analyzer.next_sample / fs
        else:
            if self._analyzer is not None:
                log.warning(
                    "%s: a new sample stream from frame %d (board restarted?)", self.name, frame.sequence
                )
            self._end_segment(emit)
            self._analyzer = self._new_analyzer(frame)
            self._t_base = t0
        self._origin = origin
        if self._next_seq is not None and frame.sequence != self._next_seq:
            log.warning(
                "%s: frame %d follows %d", self.name, frame.sequence, (self._next_seq - 1) & 0xFFFFFFFF
            )
        self._next_seq = (frame.sequence + 1) & 0xFFFFFFFF
        self._next_sample = first + s.shape[1]
        batch = self._analyzer.feed(
            s[:VOLTAGE_INPUTS] * self._vt, s[VOLTAGE_INPUTS : VOLTAGE_INPUTS + CT_INPUTS]
        )
        self.frames += 1
        for e in batch.events:
            ev = {"type": e.kind, "channel": e.channel, "start": self._t_base + e.start, "duration": e.duration,
                  "extreme": e.extreme}  # fmt: skip
            self.events.append(ev)
            del self.events[:-100]
            log.info("%s: voltage %s on channel %d for %.0f ms, extreme %.1f V", self.name, e.kind, e.channel + 1,
                     e.duration * 1e3, e.extreme)  # fmt: skip
        pq = [
            self._pq_event(e.kind, e.channel, self._t_base + e.start, e.duration, e.extreme)
            for e in batch.events
        ]
        if batch.windows:
            for f in self.frequency_detector.process(self._t_base + batch.t, batch.duration, batch.frequency):
                log.info(
                    "%s: frequency %.3f Hz beyond %.2f Hz for %.0f s",
                    self.name,
                    f.extreme,
                    f.limit,
                    f.duration,
                )
                pq.append(PqEvent(PqKind.FREQUENCY, f.start, f.duration, f.extreme, "Hz", self.device.id,
                                  PqSource.WAVEFORM, flagged=False, threshold=f.limit))  # fmt: skip
        if pq and self.ctx.publish_pq_events is not None:
            self.ctx.publish_pq_events(pq)
        if batch.windows:
            self._pending.append(batch)
            self._pending_s += float(batch.duration.sum())
            if self._pending_s >= self.emit_interval - 1e-9:
                self._flush(emit)
        if time.monotonic() - self._last_save >= self.save_interval:
            self._save_energy()

    def _pq_event(self, kind: str, channel: int, start: float, duration: float, extreme: float) -> PqEvent:
        """The power-quality log's record of an event of the engine (IEC 61000-4-30 §5.4, §5.5): start
        [s, Unix], duration [s], extreme Urms(½) [V] on voltage input ``channel`` (0 = L1)."""
        th = self._analyzer.detector.thresholds if self._analyzer is not None else None
        # The engine watches line-to-line voltages (declared × √3) when the board measures them.
        line = th is not None and th.declared > 1.5 * float(self.ctx.config.site.nominal_voltage)
        phases = ("L1-L2", "L2-L3", "L3-L1") if line else ("L1", "L2", "L3")
        pk = PqKind(kind)
        threshold = None
        if th is not None:
            threshold = {
                PqKind.DIP: th.dip,
                PqKind.SWELL: th.swell,
                PqKind.INTERRUPTION: th.interruption,
            }.get(pk)
        return PqEvent(
            kind=pk,
            start=start,
            duration=duration,
            extreme=extreme,
            unit="V",
            device=self.device.id,
            source=PqSource.WAVEFORM,
            phase=phases[channel] if 0 <= channel < len(phases) else None,
            flagged=True,  # a dip, swell or interruption flags the values of its time (§4.7)
            threshold=threshold,
        )

    def _end_segment(self, emit: Emit) -> None:
        """The stream segment ended: analyse the windows held back, meter the tail, emit the readings."""
        if self._analyzer is not None:
            held = self._analyzer.flush()
            if held.windows:
                self._pending.append(held)
        self._flush(emit)

    def _flush(self, emit: Emit) -> None:
        if not self._pending or self._analyzer is None:
            self._pending, self._pending_s = [], 0.0
            return
        batches, self._pending, self._pending_s = self._pending, [], 0.0
        readings, spectra = interval_values(batches, self._t_base)
        publish = self.ctx.publish_spectra
        if spectra and publish is not None:
            publish(spectra)
        if readings:
            emit(readings)

    # -- I/O ----------------------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        bus = self.ctx.bus
        if bus.port is None:
            msg = f"waveform bus {bus.id} has no 'port'"
            self.status.failed(msg)
            log.error(msg)
            return
        backoff = 0.5
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(bus.host, bus.port), timeout=bus.timeout * 5
                )
                self._writer = writer
                log.info("%s: connected to %s:%d", self.name, bus.host, bus.port)
                # resume where the last connection stopped: the board replays what it buffered
                writer.write(encode_request(self._next_sample))
                await writer.drain()
                backoff = 0.5
                await self._stream(reader, emit)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                msg = f"{bus.host}:{bus.port}: {type(exc).__name__}: {exc}".rstrip(": ")
                self.status.failed(msg, timeout=isinstance(exc, TimeoutError))
                log.warning("%s: %s; reconnecting in %.1f s", self.name, msg, backoff)
            finally:
                self._close_writer()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2.0, 10.0)

    async def _stream(self, reader: asyncio.StreamReader, emit: Emit) -> None:
        frames = FrameReader(reader)
        timeout = max(self.ctx.bus.timeout * 5, 2.0)
        while True:
            frame: Frame | None = None
            try:
                frame = await asyncio.wait_for(frames.next(), timeout=timeout)
                self.status.requests += 1
                self.process(frame, emit)
                self.status.ok(time.time())
            except FrameError as exc:
                self.status.errors += 1
                self.status.last_error = str(exc)
                log.error("%s: malformed frame skipped: %s", self.name, exc)
            except (ValueError, ArithmeticError, IndexError) as exc:  # never let one frame stop metering
                self.status.errors += 1
                seq = frame.sequence if frame is not None else -1
                self.status.last_error = f"frame {seq}: {exc}"
                log.exception("%s: frame %d could not be analysed; resynchronising", self.name, seq)
                self._pending, self._pending_s = [], 0.0
                if self._analyzer is not None:
                    self._energy = self._analyzer.energy()
                self._analyzer = None

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def close(self) -> None:
        """Disconnect; the samples not yet in a complete window are integrated and the registers saved."""
        self._close_writer()
        if self._analyzer is not None:
            self._analyzer.flush()
        self._save_energy()


def _energy_key(circuit: str, group: str, name: str) -> SeriesKey | None:
    """The series of an energy register of the engine (group "L1" … "total"), or None when the
    catalogue has no such series (the register is then neither emitted nor stored)."""
    phase = _GROUP_PHASE.get(group)
    meta = CATALOGUE.get(name)
    if phase is None or meta is None or phase not in meta.phases:
        return None
    return SeriesKey(circuit, name, phase)


def readings_of(batches: list[Batch], t_base: float) -> list[Reading]:
    """Readings of the windows of ``batches``, aggregated into one interval (see module docstring)."""
    return interval_values(batches, t_base)[0]


def interval_values(batches: list[Batch], t_base: float) -> tuple[list[Reading], list[Spectrum]]:
    """Readings and harmonic spectra of the windows of ``batches``, aggregated into one interval.

    batches : engine output of consecutive windows
    t_base : Unix time of the analyser's sample 0 [s]

    Every value is aggregated over the interval by the IEC 61000-4-30 §4.5 rules
    (:func:`meterhub.metering.aggregation.aggregate`; a harmonic order is the RMS of its window values)
    and time-stamped at the end of the last window. Spectra are ``harmonics_voltage`` [V] and
    ``harmonics_current`` [A] (subgroups of orders 0…50, IEC 61000-4-7 §3.2.3) per phase, each also as
    ``…_percent`` [% of order 1 of the aggregated spectrum; NaN when order 1 is 0].
    """
    batches = [b for b in batches if b.windows]
    if not batches:
        return [], []
    dur = np.concatenate([b.duration for b in batches])
    flagged = bool(np.concatenate([b.flagged for b in batches]).any())
    freq = np.concatenate([b.frequency for b in batches])
    t_end = t_base + float(batches[-1].t[-1] + batches[-1].duration[-1])
    quality = Quality.FLAGGED if flagged else Quality.GOOD
    starts = np.array([0], dtype=np.int64)
    out: list[Reading] = []
    spectra: list[Spectrum] = []
    for cid in batches[-1].circuits:
        q: Quantities = {
            g: {k: np.concatenate([b.circuits[cid][g][k] for b in batches]) for k in d}
            for g, d in batches[-1].circuits[cid].items()
        }
        q.setdefault("total", {})[Q.FREQUENCY] = freq
        agg = aggregate(q, dur, starts)
        for group, vals in agg.items():
            phase = _GROUP_PHASE.get(group)
            if phase is None:
                continue
            for name, arr in vals.items():
                meta = CATALOGUE.get(name)
                if meta is None or name in _SKIP or phase not in meta.phases:
                    continue
                if meta.kind is Kind.SPECTRUM:
                    spectra.extend(_spectra(t_end, cid, name, phase, arr[0], quality))
                    continue
                value = float(arr[0])
                if np.isfinite(value):
                    out.append(Reading(t_end, cid, name, phase, value, quality))
        for group, regs in batches[-1].energy.get(cid, {}).items():
            phase = _GROUP_PHASE.get(group)
            if phase is None:
                continue
            for name, value in regs.items():
                meta = CATALOGUE.get(name)
                if meta is not None and phase in meta.phases:
                    out.append(Reading(t_end, cid, name, phase, float(value), Quality.GOOD))
    return out, spectra


def _spectra(
    ts: float, circuit: str, name: str, phase: Phase, h: np.ndarray, quality: Quality
) -> list[Spectrum]:
    """The spectrum ``h`` (RMS of orders 0…50 [V or A]) and, when ``name`` has one, its percent form."""
    out = [Spectrum(ts, circuit, name, phase, tuple(h.tolist()), quality)]
    percent = _PERCENT_OF.get(name)
    if percent is not None:
        h1 = float(h[1])
        rel = 100.0 * h / h1 if h1 > 0 else np.full(h.shape, np.nan)
        out.append(Spectrum(ts, circuit, percent, phase, tuple(rel.tolist()), quality))
    return out


def waveform_sources(ctx: SourceContext) -> list[Source]:
    """Source factory for waveform buses: one source per enabled device."""
    return [WaveformSource(ctx, d) for d in ctx.devices if d.enabled]
