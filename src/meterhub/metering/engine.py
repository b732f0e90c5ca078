"""The metering engine: sampled voltages and currents in, per-window quantities, energy and events out.

One :class:`Analyzer` serves one voltage unit (up to three voltage channels) and any number of circuits
whose current channels are measured against it. :meth:`Analyzer.feed` takes sample blocks of any size;
state (synchronisation, partial window, open events, energy registers) is kept between calls so that a
stream cut into blocks gives exactly the windows of the uncut record (gapless, IEC 61000-4-30 §4.4).
:meth:`Analyzer.flush` ends a stream: the samples before the first and after the last complete window are
integrated too, so the active energy of any record equals Σu·i/fs.

Pure numpy; no I/O. All windows of a block and all channels are processed with array operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from meterhub.metering.energy import (
    ENERGY_IDS,
    EnergyRegisters,
    add_compensated,
    named_registers,
    window_energy,
)
from meterhub.metering.events import Event, EventDetector, EventThresholds, urms_half
from meterhub.metering.power import Quantities, circuit_quantities, dc_quantities
from meterhub.metering.sensors import Sensor
from meterhub.metering.sync import ZeroCrossingTracker, cycles_per_window
from meterhub.metering.windows import ChannelWindows, RowSums, concat, empty_windows, measure, measure_all
from meterhub.model.quantities import Q
from meterhub.model.topology import PHASES_OF_WIRING, Wiring

__all__ = ["Analyzer", "Batch", "CircuitSpec", "EngineConfig", "VoltageInput"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _Edge:
    """Uncorrected fundamental phasors of every voltage and current channel (derived ones included)
    of one complete window, and its frequency (1,) [Hz]."""

    u: NDArray[np.complex128]
    i: NDArray[np.complex128]
    f: F64


class VoltageInput(StrEnum):
    """What the voltage channels measure."""

    LN = "LN"  # phase-to-neutral
    LL = "LL"  # line-to-line L1-L2, L2-L3, L3-L1 (3P3W without neutral)


@dataclass(frozen=True, slots=True)
class CircuitSpec:
    """One circuit's channels in the analyser's arrays.

    id : circuit id
    wiring : wiring system
    currents : index of each conductor's current channel in the current array (L1, L2, L3 order;
        a 3P3W Aron circuit may give two: L1 and L3, L2 is then −(L1 + L3))
    voltages : voltage channel (0, 1, 2 = L1, L2, L3 phase-to-neutral) of each current channel
    labels : phase label of each conductor ("L1" …)
    neutral : index of a measured neutral current channel, or None
    """

    id: str
    wiring: Wiring
    currents: tuple[int, ...]
    voltages: tuple[int, ...]
    labels: tuple[str, ...] = ()
    neutral: int | None = None

    def phase_labels(self) -> tuple[str, ...]:
        if self.labels:
            return self.labels
        return tuple(p.value for p in PHASES_OF_WIRING[self.wiring])


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Analyser settings.

    fs : sampling rate [Hz]
    f_nominal : nominal frequency, 50 or 60 [Hz]
    declared_voltage : declared phase-to-neutral voltage Udin [V] (events, synchronisation threshold)
    voltage_input : whether the voltage channels are L-N or L-L
    voltage_channels : number of voltage channels (1, 2 or 3)
    dip, swell, interruption, hysteresis : event thresholds [% of declared]
    net_phases : split the total energy by the sign of ΣP (True) or sum per-phase splits (False)
    dc : DC system (fixed windows of the nominal length, no synchronisation or spectra)
    batch_windows : complete windows :meth:`Analyzer.feed` waits for before analysing them together
        (1: each feed analyses what it completes). The cost of an analysis is mostly per call, so a
        stream of short frames (0.1 s) runs as fast as one of long blocks when its windows are
        analysed in batches (the live source uses its emit interval, five windows); :meth:`Analyzer.flush`
        analyses what is held back.
    """

    fs: float
    f_nominal: float = 50.0
    declared_voltage: float = 230.0
    voltage_input: VoltageInput = VoltageInput.LN
    voltage_channels: int = 3
    dip: float = 90.0
    swell: float = 110.0
    interruption: float = 5.0
    hysteresis: float = 2.0
    net_phases: bool = True
    dc: bool = False
    batch_windows: int = 1


@dataclass
class Batch:
    """What one :meth:`Analyzer.feed` produced (W complete windows).

    t : start of each window [s since the first sample]
    duration : [s]
    frequency : fundamental frequency per window [Hz] (NaN for DC)
    flagged : window overlaps a dip, swell or interruption (IEC 61000-4-30 §4.7)
    circuits : circuit id → group → quantity → (W,) or (W, 51)
    energy : circuit id → group → energy id → register value after these windows but the last, whose
        energy is held back until the next analysis or flush [Wh, varh, VAh]
    increments : circuit id → group → energy id → (W,) energy of each window (the first window of a
        stream includes the samples before it) [Wh, varh, VAh]
    events : events that ended in this block (start in s since the first sample)
    """

    t: F64
    duration: F64
    frequency: F64
    flagged: NDArray[np.bool_]
    circuits: dict[str, Quantities] = field(default_factory=dict)
    energy: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    increments: dict[str, dict[str, dict[str, F64]]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    @property
    def windows(self) -> int:
        return int(self.t.size)


class Analyzer:
    """Streaming analyser for one voltage unit and its circuits (see module docstring)."""

    def __init__(
        self,
        config: EngineConfig,
        circuits: list[CircuitSpec],
        *,
        current_channels: int,
        sensors: Mapping[int, Sensor] | None = None,
    ) -> None:
        """``sensors`` maps a current channel index to its sensor model; those channels are fed in the
        sensor's terminal unit and converted (:mod:`meterhub.metering.sensors`), others are amps."""
        self.config = config
        self.sensors = dict(sensors or {})
        self.circuits = list(circuits)
        self.cycles = cycles_per_window(config.f_nominal)
        self.n_i = int(current_channels)
        nv = config.voltage_channels
        if config.batch_windows < 1:
            raise ValueError(f"batch_windows must be at least 1, got {config.batch_windows}")
        if nv not in (1, 2, 3):
            raise ValueError(f"voltage_channels must be 1, 2 or 3, got {nv}")
        if config.voltage_input is VoltageInput.LL and nv != 3:
            raise ValueError("line-to-line voltage input needs three channels (L1-L2, L2-L3, L3-L1)")
        for c in self.circuits:
            for idx in (*c.currents, *(() if c.neutral is None else (c.neutral,))):
                if not 0 <= idx < self.n_i:
                    raise ValueError(f"circuit {c.id}: current channel {idx} outside 0…{self.n_i - 1}")
            for vi in c.voltages:
                if not 0 <= vi < nv:
                    raise ValueError(f"circuit {c.id}: voltage channel {vi} outside 0…{nv - 1}")
        bad = [k for k in self.sensors if not 0 <= k < self.n_i]
        if bad:
            raise ValueError(f"sensors given for current channel(s) {bad} outside 0…{self.n_i - 1}")
        self._derive_rows, self._layout = self._plan()
        # the derived rows as (input row, weight) terms: a sparse signed sum instead of a dense product
        nz = [np.flatnonzero(r) for r in self._derive_rows]
        width = max((len(z) for z in nz), default=1)
        self._derive_idx = np.zeros((len(nz), width), dtype=np.int64)
        self._derive_w = np.zeros((len(nz), width))
        for k, z in enumerate(nz):
            self._derive_idx[k, : len(z)] = z
            self._derive_w[k, : len(z)] = self._derive_rows[k, z]
        # circuits computed together: same wiring, phases and neutral arrangement (vectorised over circuits)
        groups: dict[tuple[object, ...], list[CircuitSpec]] = {}
        for c in self.circuits:
            lay = self._layout[c.id]
            key = (c.wiring, lay["labels"], c.neutral is None, lay["n_calc"] is None)
            groups.setdefault(key, []).append(c)
        self._groups = list(groups.values())
        rms_only = np.ones(self._derive_rows.shape[0], dtype=bool)
        rms_only[self._spectral_rows] = False
        rr = np.flatnonzero(rms_only)  # derived rows measured by RMS only, with the input channels
        self._rms_sums = RowSums(self._derive_idx[rr], self._derive_w[rr]) if rr.size else None
        self._v_of_i = np.full(self.n_i + self._derive_rows.shape[0], -1, dtype=np.int64)
        for lay in self._layout.values():
            for ci, vi in zip(lay["currents"], lay["voltages"], strict=True):  # type: ignore[call-overload]
                self._v_of_i[ci] = vi
        amp = np.sqrt(2.0) * config.declared_voltage
        self.tracker = ZeroCrossingTracker(fs=config.fs, f_nominal=config.f_nominal, amplitude=amp)
        ev_declared = config.declared_voltage * (np.sqrt(3.0) if self._events_on_line() else 1.0)
        self.detector = EventDetector(
            EventThresholds(ev_declared, config.dip, config.swell, config.interruption, config.hysteresis)
        )
        # registers of a group of circuits live in one (C, groups, 7) array pair, updated at once;
        # each circuit's EnergyRegisters holds views of its rows
        self.registers: dict[str, EnergyRegisters] = {}
        self._stores: list[tuple[F64, F64]] = []
        self._store_names: list[tuple[str, ...]] = []
        for members in self._groups:
            names = (*self._layout[members[0].id]["labels"], "total")  # type: ignore[misc]
            self._store_names.append(names)
            sums = np.zeros((len(members), len(names), len(ENERGY_IDS)))
            comps = np.zeros_like(sums)
            self._stores.append((sums, comps))
            for k, c in enumerate(members):
                self.registers[c.id] = EnergyRegisters(
                    sums={g: sums[k, j] for j, g in enumerate(names)},
                    comps={g: comps[k, j] for j, g in enumerate(names)},
                )
        self.registers = {c.id: self.registers[c.id] for c in self.circuits}  # circuit order
        self._energy_key = b""  # the stores' bytes when _energy_cache was built
        self._energy_cache: dict[str, dict[str, dict[str, float]]] | None = None
        # buffered samples: views of the start of buffers that are reused (no allocation per block)
        self._vbuf = np.zeros((nv, 0))
        self._v = self._vbuf[:, :0]
        self._ibuf = np.zeros((self.n_i, 0))
        self._i = self._ibuf[:, :0]
        self._start = 0  # absolute index of the first buffered sample
        self._next = 0  # absolute index of the next sample to arrive
        self._pending = np.zeros(0)  # crossings from the current window start on (absolute)
        self._head = not config.dc  # the samples before the first window are still to be integrated
        # per group, the last window analysed, not yet in the registers: its powers (C, 1), duration (1,)
        # and (C, groups, 7) energy
        self._held: list[tuple[Quantities, F64, F64] | None] = [None] * len(self._groups)
        self._edges: dict[str, _Edge] = {}  # fundamentals of the first and last window of the last feed

    # -- layout -------------------------------------------------------------------------------
    def _events_on_line(self) -> bool:
        c = self.config
        return c.voltage_input is VoltageInput.LL or (
            bool(self.circuits) and all(x.wiring is Wiring.P3W3 for x in self.circuits)
        )

    def _plan(self) -> tuple[F64, dict[str, dict[str, object]]]:
        """Derived current rows (matrix over the input currents) and each circuit's channel indices."""
        rows: list[F64] = []
        self._spectral_rows: list[int] = []
        layout: dict[str, dict[str, object]] = {}
        for c in self.circuits:
            cur = list(c.currents)
            volt = list(c.voltages)
            labels = list(c.phase_labels())
            n_calc: int | None = None
            if c.wiring is Wiring.P3W3 and len(cur) == 2:
                r = np.zeros(self.n_i)
                r[cur[0]] = r[cur[1]] = -1.0
                rows.append(r)
                self._spectral_rows.append(len(rows) - 1)  # L2 of an Aron circuit: a full channel
                cur = [cur[0], self.n_i + len(rows) - 1, cur[1]]
                volt = [volt[0], 1, volt[1]] if len(volt) == 2 else volt
                labels = ["L1", "L2", "L3"]
            if c.wiring in (Wiring.P3W4, Wiring.P1W3) and len(cur) >= 2:
                r = np.zeros(self.n_i)
                r[list(c.currents)] = 1.0
                rows.append(r)
                n_calc = self.n_i + len(rows) - 1
            layout[c.id] = {"currents": cur, "voltages": volt, "labels": tuple(labels), "n_calc": n_calc}
        derive = np.array(rows) if rows else np.zeros((0, self.n_i))
        return derive, layout

    # -- public -------------------------------------------------------------------------------
    def feed(self, v: F64, i: F64) -> Batch:
        """Add a block of samples and analyse the windows completed so far, once there are
        ``batch_windows`` of them.

        v : (voltage channels, n) [V] as configured (L-N or L-L)
        i : (current channels, n) [A]
        """
        v = np.atleast_2d(np.asarray(v, dtype=np.float64))
        i = np.atleast_2d(np.asarray(i, dtype=np.float64)) if self.n_i else np.zeros((0, v.shape[1]))
        if v.shape[0] != self.config.voltage_channels or i.shape[0] != self.n_i or v.shape[1] != i.shape[1]:
            raise ValueError(
                f"expected ({self.config.voltage_channels}, n) voltages and ({self.n_i}, n) currents, "
                f"got {v.shape} and {i.shape}"
            )
        if self.config.voltage_input is VoltageInput.LL:
            u12, u23, u31 = v
            v = np.vstack(((u12 - u31) / 3.0, (u23 - u12) / 3.0, (u31 - u23) / 3.0))
        if self.sensors:
            i = i.copy()
            for idx, sensor in self.sensors.items():
                i[idx] = sensor.convert(i[idx])
        first = self._next
        self._vbuf, self._v = _append(self._vbuf, self._v.shape[1], v)
        self._ibuf, self._i = _append(self._ibuf, self._i.shape[1], i)
        self._next += v.shape[1]
        if self.config.dc:
            return self._feed_dc(final=False)
        zc = self.tracker.feed(v[0], first)
        self._pending = np.concatenate((self._pending, zc)) if self._pending.size else zc
        return self._windows(final=False)

    def _windows(self, final: bool) -> Batch:
        """Analyse the complete windows buffered, when there are ``batch_windows`` of them (or any,
        when ``final``)."""
        n = self.cycles
        w = (self._pending.size - 2) // n
        if w <= 0 or (w < self.config.batch_windows and not final):
            return self._empty()
        bnd = self._pending[: w * n + 1 : n]
        sb = np.round(bnd).astype(np.int64)
        c = self._pending[: w * n + 2]
        mids = 0.5 * (c[:-1] + c[1:])
        hb = np.empty(2 * (w * n + 1))
        hb[0::2] = c[: w * n + 1]
        hb[1::2] = mids[: w * n + 1]
        hbi = np.round(hb).astype(np.int64) - self._start
        fs = self.config.fs
        batch = self._analyse(sb - self._start, sb, fs * n / np.diff(bnd), n / np.diff(bnd))
        ev_v = self._event_channels()
        urms = urms_half(ev_v, hbi)
        t_half = 0.5 * (hb[:-2] + hb[2:]) / fs
        events, active = self.detector.process(urms, t_half)
        batch.events = events
        batch.flagged = np.asarray(active.reshape(w, 2 * n).any(axis=1), dtype=bool)
        self._pending = self._pending[w * n :]
        self._trim(int(sb[-1]))
        return batch

    def flush(self) -> Batch:
        """End the stream: integrate the samples after the last complete window, then start over.

        The buffered samples that no complete window holds (the tail, and the head before the first
        synchronised zero crossing when no window was completed at all) are added to the energy
        registers (see :meth:`_partial_powers`), so the active energy over everything fed equals
        Σu·i/fs. Synchronisation then restarts: the next sample fed begins a new stream segment (after a
        sample gap, say) with the registers kept; its absolute index continues at :attr:`next_sample`.
        Returns the complete windows held back by ``batch_windows`` (analysed now) and the registers
        after the tail.
        """
        batch = self._feed_dc(final=True) if self.config.dc else self._windows(final=True)
        rest = self._v.shape[1]
        self._book_tail(self._partial_powers(0, rest, self._edges.get("last")) if rest else None)
        batch.energy = self.energy()
        self._trim(self._next)
        self.tracker = ZeroCrossingTracker(
            fs=self.config.fs,
            f_nominal=self.config.f_nominal,
            amplitude=np.sqrt(2.0) * self.config.declared_voltage,
        )
        self._pending = np.zeros(0)
        self._head = not self.config.dc
        self._edges = {}
        return batch

    @property
    def next_sample(self) -> int:
        """Absolute index of the next sample to be fed (samples fed so far). [samples]"""
        return self._next

    def energy(self) -> dict[str, dict[str, dict[str, float]]]:
        """Energy register values of every circuit [Wh, varh, VAh].

        While the registers do not change, successive calls return the same dictionary (a feed that
        completes no window costs no rebuild): treat it as read-only.
        """
        key = b"".join(s.tobytes() + c.tobytes() for s, c in self._stores)
        if key == self._energy_key and self._energy_cache is not None:
            return self._energy_cache
        out: dict[str, dict[str, dict[str, float]]] = {}
        outside = False
        for members, (sums, comps), names in zip(self._groups, self._stores, self._store_names, strict=True):
            vals = (sums + comps).tolist()  # one conversion per group of circuits
            for k, c in enumerate(members):
                reg = self.registers[c.id]
                if len(reg.sums) == len(names):
                    out[c.id] = {g: named_registers(vals[k][j]) for j, g in enumerate(names)}
                else:  # a group preset from outside the store
                    out[c.id] = reg.values()
                    outside = True
        result = {cid: out[cid] for cid in self.registers}
        # registers outside the stores may change without changing the key: never cached
        self._energy_key, self._energy_cache = (b"", None) if outside else (key, result)
        return result

    # -- internals ----------------------------------------------------------------------------
    def _empty(self) -> Batch:
        z = np.zeros(0)
        return Batch(t=z, duration=z, frequency=z, flagged=np.zeros(0, dtype=bool), energy=self.energy())

    def _trim(self, keep_from: int) -> None:
        """Drop buffered samples before ``keep_from``; keep the rest in arrays of our own (the caller
        may reuse the blocks it passed)."""
        cut = max(0, keep_from - self._start)
        rest = self._v.shape[1] - cut
        if cut:
            self._vbuf[:, :rest] = self._vbuf[:, cut : cut + rest]
            self._ibuf[:, :rest] = self._ibuf[:, cut : cut + rest]
        self._v = self._vbuf[:, :rest]
        self._i = self._ibuf[:, :rest]
        self._start += cut

    def _voltages(self) -> tuple[F64, F64 | None]:
        """Buffered L-N voltages and line-to-line voltages (None for single phase)."""
        v = self._v
        if v.shape[0] == 3:
            return v, np.vstack((v[0] - v[1], v[1] - v[2], v[2] - v[0]))
        if v.shape[0] == 2:
            return v, (v[0] - v[1])[None, :]
        return v, None

    def _event_channels(self) -> F64:
        v, ll = self._voltages()
        if self._events_on_line() and ll is not None:
            return ll
        return v

    def _measure(
        self, lb: I64, spectrum: bool, cps: F64 | None
    ) -> tuple[ChannelWindows, ChannelWindows, F64, F64 | None]:
        """Voltage and current windows (derived channels appended), active power per current channel
        [W] and line-to-line RMS [V] (None for one voltage channel) of the windows ``lb`` (local)."""
        v = self._v
        nv = v.shape[0]
        mw = measure_all(
            v, self._i, self._v_of_i[: self.n_i], lb, self.cycles, spectrum=spectrum, cycles_per_sample=cps,
            u_sums=_LINE_PAIRS.get(nv),
            i_sums=self._rms_sums,
        )  # fmt: skip
        uw, iw, p = mw.u, mw.i, mw.p
        if self._derive_rows.shape[0]:
            iw, p = self._derived(v, lb, iw, p, spectrum, cps, mw.i_sums)
        return uw, iw, p, (mw.u_sums if nv > 1 else None)

    def _analyse(self, lb: I64, sb_abs: I64, freq: F64, cps: F64 | None = None) -> Batch:
        """Quantities and energy of the windows with local bounds ``lb`` (absolute ``sb_abs``).

        The samples before the first window of a stream (the head) join its energy; the last window's
        energy is held back until the next analysis or :meth:`flush` (where the tail joins it), so a
        segment shorter than a cycle is never split into import and export on its own.
        """
        fs = self.config.fs
        uw, iw, p, ll_rms = self._measure(lb, not self.config.dc, cps)
        # the uncorrected fundamental phasors of the first and last window stand in for those of the
        # partial segments before and after them (too short for a synchronised DFT)
        self._edges = {
            "first": _Edge(uw.fundamental[:, 0].copy(), iw.fundamental[:, 0].copy(), freq[:1].copy()),
            "last": _Edge(uw.fundamental[:, -1].copy(), iw.fundamental[:, -1].copy(), freq[-1:].copy()),
        }
        head = None
        if self._head and lb[0] > 0:
            head = self._partial_powers(0, int(lb[0]), self._edges["first"])
        self._head = False
        self._correct_sensors(uw, iw, p, freq)
        duration = np.diff(sb_abs) / fs
        batch = Batch(
            t=sb_abs[:-1] / fs, duration=duration, frequency=freq, flagged=np.zeros(duration.size, bool)
        )
        for gi, (members, labels, q) in enumerate(self._group_quantities(uw, iw, p, ll_rms)):
            pw, dur = _powers(q, labels, slice(None)), duration
            if head is not None:  # the head joins the first window's energy
                first, t0 = _merged(_powers(q, labels, slice(0, 1)), duration[:1], *head[gi])
                pw = {g: {k: np.concatenate((first[g][k], x[..., 1:]), axis=-1) for k, x in d.items()}
                      for g, d in pw.items()}  # fmt: skip
                dur = np.concatenate((t0, duration[1:]))
            inc = self._energy_increments(pw, labels, dur)
            per_window = _inc_windows(inc, labels)  # (C, groups, W, 7)
            total = per_window[:, :, :-1].sum(axis=2)
            held = self._held[gi]
            if held is not None:  # the window held back from the previous analysis
                total += held[2]
            add_compensated(*self._stores[gi], total)
            last = _powers(pw, labels, slice(-1, None))
            self._held[gi] = (
                {g: {k: x.copy() for k, x in d.items()} for g, d in last.items()},
                dur[-1:].copy(),
                per_window[:, :, -1].copy(),
            )
            q_rows = _per_circuit(q, len(members))
            inc_rows = _per_circuit(inc, len(members))
            for k, c in enumerate(members):
                batch.circuits[c.id] = q_rows[k]
                batch.increments[c.id] = inc_rows[k]
        batch.energy = self.energy()
        return batch

    def _book_tail(self, tail: list[tuple[Quantities, F64]] | None) -> None:
        """Add the held window's energy, joined by the ``tail`` segment's, to the registers."""
        for gi, held in enumerate(self._held):
            labels = self._store_names[gi][:-1]
            if held is not None and tail is not None:
                pw, dur = _merged(held[0], held[1], *tail[gi])
            elif held is not None:
                add_compensated(*self._stores[gi], held[2])
                self._held[gi] = None
                continue
            elif tail is not None:  # no window in this stream segment: the segment alone
                pw, dur = tail[gi]
            else:
                continue
            inc = self._energy_increments(pw, labels, dur)
            add_compensated(*self._stores[gi], _inc_windows(inc, labels).sum(axis=2))
            self._held[gi] = None

    def _partial_powers(self, a: int, b: int, edge: _Edge | None) -> list[tuple[Quantities, F64]]:
        """Per group of circuits: active, reactive and apparent power (C, 1) of the local samples
        ``a``…``b`` − 1, which are not a complete window, and the segment's duration (1,) [s].

        Active power is the mean of u·i over the segment itself (IEEE 1459 §3.1.1.4), so active energy
        is exact for any length; RMS values and apparent power are the segment's own. The fundamental
        phasors (hence Q1 and the sensors' phase correction) are those of the adjacent complete window
        ``edge``: a segment shorter than N cycles has no synchronised DFT. Without one (a stream shorter
        than a window) Q1 is 0.
        """
        lb = np.array([a, b], dtype=np.int64)
        uw, iw, p, ll_rms = self._measure(lb, False, None)
        freq = np.array([self.config.f_nominal])
        if edge is not None and not self.config.dc:
            uw.fundamental[:, 0] = edge.u
            iw.fundamental[:, 0] = edge.i
            freq = np.where(np.isfinite(edge.f), edge.f, freq)
        self._correct_sensors(uw, iw, p, freq)
        dur = np.array([(b - a) / self.config.fs])
        return [
            (_powers(q, labels, slice(None)), dur)
            for _, labels, q in self._group_quantities(uw, iw, p, ll_rms)
        ]

    def _group_quantities(
        self, uw: ChannelWindows, iw: ChannelWindows, p: F64, ll_rms: F64 | None
    ) -> list[tuple[list[CircuitSpec], tuple[str, ...], Quantities]]:
        """Per group of circuits: its members, phase labels and quantities (C, W) of the windows."""
        out: list[tuple[list[CircuitSpec], tuple[str, ...], Quantities]] = []
        nv = self._v.shape[0]
        u_line = ll_rms if (ll_rms is not None and nv == 3) else None
        for members in self._groups:
            lays = [self._layout[c.id] for c in members]
            ci = np.array([lay["currents"] for lay in lays], dtype=np.int64)  # (C, k)
            vi = np.array([lay["voltages"] for lay in lays], dtype=np.int64)
            c0 = members[0]
            labels: tuple[str, ...] = lays[0]["labels"]  # type: ignore[assignment]
            if self.config.dc:
                q = dc_quantities(
                    u_dc=uw.dc[vi[:, 0]],
                    i_dc=iw.dc[ci[:, 0]],
                    p=p[ci[:, 0]],
                    u_rms=uw.rms[vi[:, 0]],
                    i_rms=iw.rms[ci[:, 0]],
                )
            else:
                neutral = [c.neutral for c in members]
                n_calc = [lay["n_calc"] for lay in lays]
                q = circuit_quantities(
                    wiring=c0.wiring,
                    labels=labels,
                    u=_take(uw, vi),
                    u_line_rms=u_line,
                    i=_take(iw, ci),
                    p=p[ci],
                    i_n_rms=iw.rms[np.array(neutral)] if neutral[0] is not None else None,
                    i_n_calc_rms=iw.rms[np.array(n_calc)] if n_calc[0] is not None else None,
                    u_ref=uw.fundamental[0],
                )
            out.append((members, labels, q))
        return out

    def _derive(self, end: int, rows: I64) -> F64:
        """Samples of the derived current ``rows`` up to ``end``: a signed sum of ≤ 3 input rows each."""
        src = self._i[:, :end]
        idx, w = self._derive_idx[rows], self._derive_w[rows]
        out = w[:, 0, None] * src[idx[:, 0]]
        for j in range(1, idx.shape[1]):  # over the ≤ 3 terms, not over samples
            out += w[:, j, None] * src[idx[:, j]]
        return np.asarray(out, dtype=np.float64)

    def _derived(
        self, v: F64, lb: I64, iw: ChannelWindows, p: F64, spectrum: bool, cps: F64 | None, rms: F64
    ) -> tuple[ChannelWindows, F64]:
        """Append the derived current channels: Aron L2 measured fully, calculated neutrals RMS only
        (``rms``, measured with the input channels)."""
        n = self.cycles
        nd = self._derive_rows.shape[0]
        dw = empty_windows(nd, lb.size - 1)
        dp = np.zeros((nd, lb.size - 1))
        full = np.zeros(nd, dtype=bool)
        full[self._spectral_rows] = True
        if full.any():
            rows = np.flatnonzero(full)
            derived = self._derive(self._i.shape[1], rows)
            _, fw, fp = measure(
                v, derived, self._v_of_i[self.n_i + rows], lb, n, spectrum=spectrum, cycles_per_sample=cps,
                voltages=False,
            )  # fmt: skip
            for k in ("rms", "peak", "dc", "fundamental", "harmonics", "groups"):
                getattr(dw, k)[rows] = getattr(fw, k)
            dp[rows] = fp
        if (~full).any():
            dw.rms[~full] = rms
        return concat(iw, dw), np.concatenate((p, dp), axis=0)

    def _correct_sensors(self, uw: ChannelWindows, iw: ChannelWindows, p: F64, freq: F64) -> None:
        """Apply each sensor's per-window correction (:meth:`Sensor.correction`) to its channel."""
        for idx, sensor in self.sensors.items():
            corr = sensor.correction(freq, iw.rms[idx])
            if corr is None:
                continue
            f1, fh = corr
            old1 = iw.fundamental[idx].copy()
            new1 = old1 * f1
            h_old = iw.harmonics[idx]
            h_new = h_old * fh
            d2 = (
                np.nansum(h_new[:, 2:] ** 2 - h_old[:, 2:] ** 2, axis=1)
                + np.abs(new1) ** 2
                - np.abs(old1) ** 2
            )
            iw.rms[idx] = np.sqrt(np.maximum(iw.rms[idx] ** 2 + d2, 0.0))
            iw.harmonics[idx] = h_new
            iw.groups[idx] = iw.groups[idx] * fh
            iw.fundamental[idx] = new1
            vi = int(self._v_of_i[idx])
            if vi >= 0:
                p[idx] += np.real(uw.fundamental[vi] * np.conj(new1 - old1))

    def _energy_increments(
        self, q: Quantities, labels: tuple[str, ...], duration: F64
    ) -> dict[str, dict[str, F64]]:
        inc = {
            lab: window_energy(
                q[lab][Q.ACTIVE_POWER], q[lab][Q.REACTIVE_POWER], q[lab][Q.APPARENT_POWER], duration
            )
            for lab in labels
        }
        tot = q["total"]
        if self.config.net_phases or len(labels) == 1:
            inc["total"] = window_energy(
                tot[Q.ACTIVE_POWER], tot[Q.REACTIVE_POWER], tot[Q.APPARENT_POWER], duration
            )
        else:
            summed = {k: np.sum([inc[lab][k] for lab in labels], axis=0) for k in inc[labels[0]]}
            summed[Q.ENERGY_APPARENT] = np.abs(tot[Q.APPARENT_POWER]) * duration / 3600.0
            inc["total"] = summed
        return inc

    def _feed_dc(self, final: bool) -> Batch:
        fs = self.config.fs
        length = int(round(fs * self.cycles / self.config.f_nominal))
        avail = self._next - self._start
        w = avail // length
        if w <= 0 or (w < self.config.batch_windows and not final):
            return self._empty()
        lb = np.arange(w + 1, dtype=np.int64) * length
        sb = lb + self._start
        batch = self._analyse(lb, sb, np.full(w, np.nan))
        self._trim(int(sb[-1]))
        return batch


_POWERS = (Q.ACTIVE_POWER, Q.REACTIVE_POWER, Q.APPARENT_POWER)
"""What a window's energy is made of (:func:`~meterhub.metering.energy.window_energy`)."""


def _powers(q: Quantities, labels: tuple[str, ...], sl: slice) -> Quantities:
    """The powers (:data:`_POWERS`) of the windows ``sl`` of each phase and the total [W, var, VA]."""
    return {g: {k: q[g][k][..., sl] for k in _POWERS} for g in (*labels, "total")}


def _merged(a: Quantities, ta: F64, b: Quantities, tb: F64) -> tuple[Quantities, F64]:
    """Powers of one window made of the windows ``a`` (duration ``ta``) and ``b`` (``tb``): the
    duration-weighted means, so the energy of the whole is the sum of the energies [W, var, VA], [s]."""
    t = ta + tb
    return {g: {k: (x * ta + b[g][k] * tb) / t for k, x in d.items()} for g, d in a.items()}, t


def _inc_windows(inc: dict[str, dict[str, F64]], labels: tuple[str, ...]) -> F64:
    """(C, groups, W, 7) window increments in register order [Wh, varh, VAh]."""
    return np.stack([np.stack([inc[g][k] for k in ENERGY_IDS], axis=-1) for g in (*labels, "total")], axis=1)


_LINE_PAIRS = {
    2: RowSums(np.array([[0, 1]]), np.array([[1.0, -1.0]])),
    3: RowSums(np.array([[0, 1], [1, 2], [2, 0]]), np.array([[1.0, -1.0]] * 3)),
}
"""Line-to-line voltages (L1-L2, L2-L3, L3-L1) as sums of L-N channels, by number of voltage channels."""


def _append(buf: F64, n: int, x: F64) -> tuple[F64, F64]:
    """Copy ``x`` after the ``n`` valid columns of ``buf`` (grown when too small); returns the buffer
    and the view of its valid part."""
    need = n + x.shape[1]
    if buf.shape[1] < need:  # room for two blocks, so a steady stream allocates once
        grown = np.empty((buf.shape[0], max(need, 2 * buf.shape[1], 2 * x.shape[1])))
        grown[:, :n] = buf[:, :n]
        buf = grown
    buf[:, n:need] = x
    return buf, buf[:, :need]


def _per_circuit(q: dict[str, dict[str, F64]], n: int) -> list[dict[str, dict[str, F64]]]:
    """Split group → name → (C, …) arrays into C dictionaries of (…) rows (views)."""
    out: list[dict[str, dict[str, F64]]] = [{} for _ in range(n)]
    for g, d in q.items():
        names = list(d)
        rows = zip(*(list(x) for x in d.values()), strict=True)  # list(x): the C row views
        for k, r in enumerate(rows):
            out[k][g] = dict(zip(names, r, strict=True))
    return out


def _take(cw: ChannelWindows, idx: I64) -> ChannelWindows:
    """The channels ``idx`` of ``cw``."""
    return ChannelWindows(
        rms=cw.rms[idx],
        peak=cw.peak[idx],
        dc=cw.dc[idx],
        fundamental=cw.fundamental[idx],
        harmonics=cw.harmonics[idx],
        groups=cw.groups[idx],
    )
