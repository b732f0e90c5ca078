"""The physical model of a simulated site: a 3P4W supply and the loads of its circuits.

Every simulator (Modbus devices, the ADC board) takes its values from one :class:`SiteModel`, so what
the gateway reads over different protocols is one consistent installation:

* per phase, ``S = U·I``, ``PF = P/S``, ``N = √(S² − P²)``, ``cos φ1 = P/√(P² + Q1²)`` and
  ``I = I1·√(1 + THDi²)`` with ``I1 = √(P² + Q1²)/U`` (IEEE 1459 quantities for a sinusoidal voltage);
* circuit totals: ``P = ΣP``, ``Q = ΣQ``, ``S = ΣS`` (arithmetic, as the simulated meters report it);
* the ``supply`` load model (the grid incomer) carries the phase-wise sum of all other circuits;
* energy registers (float64) integrate the circuit's total P and Q on a fixed grid of absolute time:
  within each cell ``[k·MAX_STEP, (k+1)·MAX_STEP)`` the power is its value at the cell's start, and the
  registers grow by exactly ``P·dt`` for the part of the cell that passed. The registers are therefore a
  function of time alone (given their value at one instant), however often or rarely they are read.

A real meter keeps counting while the gateway (and the demo with it) is down, so the model does too.
The registers are saved to ``state_file`` with their time ``t`` (every few seconds by the demo, and on
exit); on load the model continues from them *and* integrates from ``t`` to now. Because the grid is
absolute, the first :data:`CATCHUP_FINE` seconds after ``t`` are integrated exactly as the process that
was killed integrated them, so every value it served after its last save (within that span) is
reproduced, and the registers never go back whatever was served between the last save and a
``kill -9``. Catching up is bounded: beyond :data:`CATCHUP_FINE` the gap is integrated in at most
:data:`CATCHUP_STEPS` equal steps, each at the load model's power at the step's middle (the loads are
pure functions of time, so that is the power "at that time"; a day's gap costs ~1 s). The simulated
clock of ``simulation.start_hour`` continues across a restart up to :data:`CATCHUP_FINE` of downtime
(the killed process's clock, so the reproduced span matches); after a longer one it starts again at
``start_hour``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from meterhub.config.faults import Fault, check_faults
from meterhub.config.schema import Bus, BusKind, Circuit, Device, LoadSpec, Simulation, SiteConfig, SiteInfo
from meterhub.model.quantities import FOUR_QUADRANT_ENERGY, Q
from meterhub.model.topology import Phase, Wiring
from meterhub.sim.loads import LoadModel, LoadPoint, make_load

__all__ = [
    "CATCHUP_FINE",
    "CATCHUP_STEPS",
    "MAX_STEP",
    "REGISTERS",
    "ChannelState",
    "SiteModel",
    "SupplyState",
]

log = logging.getLogger("meterhub.sim")

MAX_STEP = 0.1  # [s] integration cell of the energy registers (a grid of absolute time)
CATCHUP_FINE = 60.0  # [s] after a saved state integrated cell by cell on load (reproduces what was served)
CATCHUP_STEPS = 500  # coarse steps at most for the rest of a gap since the saved state
FRESH = 0.05  # [s] age after which a query recomputes the state
REGISTERS = FOUR_QUADRANT_ENERGY
_PHASES = (Phase.L1, Phase.L2, Phase.L3)
_V_HARMONICS = {3: 0.006, 5: 0.022, 7: 0.012, 11: 0.005, 13: 0.003}  # typical LV network, THDu ≈ 2.6 %


@dataclass
class SupplyState:
    """The 3P4W supply at one instant."""

    voltage: np.ndarray  # phase-to-neutral RMS, L1..L3 [V]
    voltage_line: np.ndarray  # L1-L2, L2-L3, L3-L1 RMS [V]
    angle_voltage: np.ndarray  # fundamental angles referenced to U L1 [°]
    frequency: float  # [Hz]
    thd_voltage: np.ndarray  # [%]
    harmonics_voltage: np.ndarray  # shape (3, 51), fractions of the fundamental [-]


@dataclass
class ChannelState:
    """One current channel (one phase of one circuit) at one instant."""

    phase: Phase
    voltage: float  # [V]
    current: float  # [A]
    active_power: float  # [W]
    reactive_power: float  # fundamental Q1 [var]
    apparent_power: float  # [VA]
    power_factor: float  # [-]
    displacement_power_factor: float  # [-]
    thd_current: float  # [%]
    angle_current: float  # fundamental current angle referenced to U L1 [°]
    harmonics_current: np.ndarray  # 0…50, fractions of the fundamental [-]
    energy: dict[str, float] = field(default_factory=dict)  # float64 registers of this phase


def _phase_state(
    phase: Phase, u: float, u_angle: float, p: float, q: float, harmonics: np.ndarray
) -> ChannelState:
    thd = float(np.sqrt(np.sum(harmonics[2:] ** 2)))
    s1 = math.hypot(p, q)
    i1 = s1 / u if u > 0 else 0.0
    i = i1 * math.sqrt(1.0 + thd * thd)
    s = u * i
    pf = p / s if s > 0 else 1.0
    dpf = p / s1 if s1 > 0 else 1.0
    # current angle: voltage angle minus φ1 (φ1 > 0 when the current lags, i.e. Q > 0)
    phi = math.degrees(math.atan2(q, p))
    ang = (u_angle - phi + 180.0) % 360.0 - 180.0
    return ChannelState(phase, float(u), i, p, q, s, pf, dpf, thd * 100.0, ang, harmonics)


class SiteModel:
    """The simulated installation of a :class:`SiteConfig`; see the module docstring."""

    def __init__(
        self,
        config: SiteConfig,
        *,
        clock: Callable[[], float] = time.time,
        state_file: Path | None = None,
        faults: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.sim: Simulation = config.simulation or Simulation()
        self.faults: list[Fault] = check_faults(config, [*self.sim.faults, *faults])
        self.clock = clock
        self.state_file = state_file
        self._lock = threading.Lock()
        self._tz = ZoneInfo(config.site.timezone)
        self._t0 = clock()
        #: when this simulator started [s, clock]: ``offline`` faults count from here (not from the
        #: restored simulated time)
        self.started = self._t0
        self._offline = [f for f in self.faults if f.kind == "offline"]
        self._circuits: dict[str, Circuit] = {c.id: c for c in config.circuits}
        # device → its circuits: value() is asked for every register of every simulated request
        self._device_circuits: dict[str, list[Circuit]] = {}
        for c in config.circuits:
            self._device_circuits.setdefault(c.device, []).append(c)
        self._loads: dict[str, LoadModel] = {}
        for i, c in enumerate(config.circuits):
            spec = self.sim.loads.get(c.id) or LoadSpec(model="constant", rated_power=500.0)
            self._loads[c.id] = make_load(spec, len(c.supply_phases), seed=i + 1)
        self._supply_circuits = [cid for cid in self._loads if self._loads[cid].spec.model == "supply"]
        self._wiring = _Wiring(config, self.faults)
        #: circuit → whether its supply is switched on (a load whose ``enable`` relay is released draws nothing)
        self._gates: dict[str, Callable[[], bool]] = {}
        #: other simulated parts that follow a changed configuration too (the IO modules' points)
        self.followers: list[Callable[[SiteConfig], None]] = []
        # (device, channel) → (circuit id, index of the phase in the circuit)
        self._channels: dict[tuple[str, int], tuple[str, int]] = {}
        for c in config.circuits:
            for k, ch in enumerate(c.channels):
                self._channels[(c.device, ch)] = (c.id, k)
        self._registers: dict[str, np.ndarray] = {
            cid: np.zeros((len(c.supply_phases) + 1, len(REGISTERS)), dtype=np.float64)
            for cid, c in self._circuits.items()
        }  # rows: phases of the circuit, then total
        self._t_last = self._t0
        self._cell: tuple[int, dict[str, list[ChannelState]]] | None = None  # states at a cell's start
        self._cache_t = -1.0
        self._cache: dict[str, list[ChannelState]] = {}
        self._cache_supply: SupplyState | None = None
        if state_file is not None and state_file.exists():
            self._load(state_file)

    def device_offline(self, device_id: str) -> bool:
        """True while an ``offline`` fault (:mod:`meterhub.config.faults`) keeps ``device_id`` from
        answering: from its START to its END [s] after this simulator started."""
        if not self._offline:
            return False
        elapsed = self.clock() - self.started
        return any(f.target == device_id and f.down(elapsed) for f in self._offline)

    # -- construction helpers ------------------------------------------------------------------
    @classmethod
    def single_meter(
        cls,
        device_id: str = "meter",
        wiring: Wiring = Wiring.P3W4,
        rated_power: float = 10_000.0,
        *,
        clock: Callable[[], float] = time.time,
        model: str = "kitchen",
        state_file: Path | None = None,
    ) -> SiteModel:
        """A site of one meter measuring one circuit (for ``meterhub simulate PROFILE``)."""
        n = {Wiring.P1W2: 1, Wiring.P1W3: 2, Wiring.DC: 1}.get(wiring, 3)
        cfg = SiteConfig(
            site=SiteInfo(name="single meter"),
            buses=[Bus(id="bus", kind=BusKind.MODBUS_TCP, port=502)],
            devices=[Device(id=device_id, bus="bus", unit=1, profile="any")],
            circuits=[Circuit(id=device_id, device=device_id, channels=list(range(1, n + 1)), wiring=wiring)],
            simulation=Simulation(
                loads={device_id: LoadSpec.model_validate({"model": model, "rated_power": rated_power})}
            ),
        )
        return cls(cfg, clock=clock, state_file=state_file)

    def gate(self, circuit_id: str, energised: Callable[[], bool]) -> None:
        """Switch ``circuit_id``'s load by a relay: it draws its model's power only while
        ``energised()`` (``simulation.loads.<id>.enable``, e.g. an EV charger's enable contact)."""
        if circuit_id not in self._loads:
            raise KeyError(f"no circuit {circuit_id!r} in the simulated site")
        self._gates[circuit_id] = energised

    # -- time ----------------------------------------------------------------------------------
    def local_hour(self, t: float) -> float:
        """Simulated local hour of the site at real time t [h]."""
        if self.sim.start_hour is None:
            dt = datetime.fromtimestamp(t, self._tz)
            return dt.hour + dt.minute / 60 + dt.second / 3600
        elapsed = (t - self._t0) * self.sim.time_scale
        return (self.sim.start_hour + elapsed / 3600.0) % 24.0

    # -- physics -------------------------------------------------------------------------------
    def _supply_at(self, t: float) -> SupplyState:
        sim = self.sim
        var = sim.voltage_variation
        slow = [
            math.sin(2 * math.pi * t / 97.0 + k * 2.1) * 0.6 + math.sin(2 * math.pi * t / 13.0 + k) * 0.4
            for k in range(3)
        ]
        u = np.array([sim.voltage * (1.0 + var * (0.3 * (k - 1) + s)) for k, s in enumerate(slow)])
        ang = np.array([0.0, -120.0 + 0.3 * slow[1], 120.0 + 0.3 * slow[2]])
        ph = np.exp(1j * np.radians(ang)) * u
        ul = np.abs(np.array([ph[0] - ph[1], ph[1] - ph[2], ph[2] - ph[0]]))
        f = (
            sim.frequency
            + 0.02 * math.sin(2 * math.pi * t / 300.0)
            + 0.005 * math.sin(2 * math.pi * t / 17.0)
        )
        hv = np.zeros((3, 51))
        hv[:, 1] = 1.0
        for order, frac in _V_HARMONICS.items():
            hv[:, order] = frac * (1.0 + 0.1 * np.array(slow))
        thd = np.sqrt(np.sum(hv[:, 2:] ** 2, axis=1)) * 100.0
        return SupplyState(u, ul, ang, f, thd, hv)

    def _states_at(self, t: float) -> tuple[SupplyState, dict[str, list[ChannelState]]]:
        supply = self._supply_at(t)
        hour = self.local_hour(t)
        states: dict[str, list[ChannelState]] = {}
        per_phase_p = np.zeros(3)
        per_phase_q = np.zeros(3)
        per_phase_h = np.zeros((3, 51))
        for cid, load in self._loads.items():
            if load.spec.model == "supply":
                continue
            c = self._circuits[cid]
            out = []
            points = load.points(t, hour)
            gate = self._gates.get(cid)
            if gate is not None and not gate():  # its contactor is open: no current at all
                points = [LoadPoint(p=0.0, q=0.0, thd_i=0.0, harmonics=np.eye(51)[1]) for _ in points]
            for k, pt in enumerate(points):
                ph = c.supply_phases[k]
                i = _PHASES.index(ph)
                out.append(
                    _phase_state(ph, supply.voltage[i], supply.angle_voltage[i], pt.p, pt.q, pt.harmonics)
                )
                per_phase_p[i] += pt.p
                per_phase_q[i] += pt.q
                per_phase_h[i] += pt.harmonics * out[-1].current / math.sqrt(1 + (pt.thd_i**2))
            states[cid] = self._wiring.measured(c, out, supply) if self._wiring.active else out
        for cid in self._supply_circuits:
            c = self._circuits[cid]
            out = []
            for ph in c.supply_phases:
                i = _PHASES.index(ph)
                h = per_phase_h[i] / per_phase_h[i, 1] if per_phase_h[i, 1] > 0 else np.eye(51)[1]
                h[1] = 1.0
                out.append(
                    _phase_state(
                        ph, supply.voltage[i], supply.angle_voltage[i], per_phase_p[i], per_phase_q[i], h
                    )
                )
            states[cid] = out
        return supply, states

    def _refresh(self, t: float) -> None:
        if t != self._cache_t:
            self._cache_supply, self._cache = self._states_at(t)
            self._cache_t = t

    def advance(self, now: float | None = None) -> None:
        """Integrate the energy registers up to ``now`` [s] on the grid of ``MAX_STEP`` cells (a gap
        longer than :data:`CATCHUP_FINE`, e.g. a suspended host, in coarse steps beyond that)."""
        now = self.clock() if now is None else now
        with self._lock:
            t = self._t_last
            if now <= t:
                return
            self._integrate(t, now)
            self._t_last = now
            self._refresh(now)

    def _integrate(self, t: float, now: float) -> None:
        """Add the energy of ``[t, now)`` [s] to the registers (see the module docstring)."""
        fine_end = min(now, t + CATCHUP_FINE)
        k = math.floor(t / MAX_STEP)
        while t < fine_end:
            end = min((k + 1) * MAX_STEP, fine_end)
            if end > t:
                states = self._cell[1] if self._cell is not None and self._cell[0] == k else None
                if states is None:
                    states = self._states_at(k * MAX_STEP)[1]
                    self._cell = (k, states)
                for cid, chans in states.items():
                    self._accumulate(self._registers[cid], chans, end - t)
                t = end
            k += 1
        if now > t:  # the rest of a long gap: bounded cost, the power at each step's middle
            steps = min(CATCHUP_STEPS, max(1, math.ceil((now - t) / MAX_STEP)))
            dt = (now - t) / steps
            for j in range(steps):
                _, states = self._states_at(t + (j + 0.5) * dt)
                for cid, chans in states.items():
                    self._accumulate(self._registers[cid], chans, dt)

    @staticmethod
    def _accumulate(reg: np.ndarray, chans: list[ChannelState], dt: float) -> None:
        h = dt / 3600.0
        rows = [(c.active_power, c.reactive_power, c.apparent_power) for c in chans]
        rows.append(tuple(sum(x) for x in zip(*rows, strict=True)))  # total: phases netted
        for r, (p, q, s) in enumerate(rows):
            if p >= 0:
                reg[r, 0] += p * h
            else:
                reg[r, 1] += -p * h
            # quadrant columns: 2 = QI (P+, Q+), 3 = QII (P−, Q+), 4 = QIII (P−, Q−), 5 = QIV (P+, Q−)
            col = (2 if q >= 0 else 5) if p >= 0 else (3 if q >= 0 else 4)
            reg[r, col] += abs(q) * h
            reg[r, 6] += s * h

    # -- queries -------------------------------------------------------------------------------
    def _fresh(self) -> None:
        # Values are recomputed at most every FRESH seconds so a request for many registers is cheap.
        if self.clock() - self._t_last >= FRESH or self._cache_supply is None:
            self.advance()
            self._refresh(self._t_last)

    def supply(self) -> SupplyState:
        self._fresh()
        if self._cache_supply is None:  # pragma: no cover - _fresh always fills it
            raise RuntimeError("supply state not computed")
        return self._cache_supply

    def supply_for(self, device_id: str) -> SupplyState:
        """The supply as the voltage inputs of ``device_id`` see it (a dropped phase reads 0 V)."""
        return self._wiring.supply_seen(device_id, self.supply())

    def reconfigure(self, config: SiteConfig) -> None:
        """Follow a changed configuration where a device follows it: a current module computes each
        channel's power with the voltage of the phase it is configured on (seed 001: "phase type" per
        meter point). The wiring itself (which conductor each CT clamps, and how) does not change.
        :attr:`followers` are told too (an IO module serves a point added to its inputs)."""
        with self._lock:
            self._wiring.reconfigure(config)
            self._cache_t = -1.0
            self._cell = None
            self._refresh(self._t_last)
        for follow in self.followers:
            follow(config)

    def circuit(self, circuit_id: str) -> list[ChannelState]:
        """States of every phase of a circuit, with their energy registers."""
        self._fresh()
        chans = self._cache[circuit_id]
        reg = self._registers[circuit_id]
        for k, ch in enumerate(chans):
            ch.energy = {name: float(reg[k, j]) for j, name in enumerate(REGISTERS)}
        return chans

    def circuit_energy(self, circuit_id: str) -> dict[str, float]:
        """Total (netted) energy registers of a circuit [Wh, varh, VAh]."""
        self._fresh()
        reg = self._registers[circuit_id]
        return {name: float(reg[-1, j]) for j, name in enumerate(REGISTERS)}

    def channel(self, device_id: str, channel: int) -> ChannelState:
        try:
            cid, k = self._channels[(device_id, channel)]
        except KeyError:
            raise KeyError(f"device {device_id!r} has no simulated channel {channel}") from None
        return self.circuit(cid)[k]

    def value(
        self, device_id: str, quantity: str, phase: Phase | None, channel: int | None = None
    ) -> float | None:
        """The value a register of ``device_id`` shows for a catalogue quantity, or None."""
        supply = self.supply_for(device_id)
        if quantity in _SUPPLY_QUANTITIES:
            return _supply_value(supply, quantity, phase)
        if channel is not None:
            if (device_id, channel) not in self._channels:
                return None
            ch = self.channel(device_id, channel)
            if quantity == Q.VOLTAGE:
                return ch.voltage
            if quantity in ch.energy:
                return ch.energy[quantity]
            return _channel_value(ch, quantity)
        circuits = self._device_circuits.get(device_id, [])
        if not circuits and quantity == Q.VOLTAGE:  # a voltage unit: the supply itself
            if phase in _PHASES:
                return float(supply.voltage[_PHASES.index(phase)])
            return float(np.mean(supply.voltage))
        if len(circuits) != 1:
            return None
        c = circuits[0]
        chans = self.circuit(c.id)
        if quantity == Q.CURRENT and phase is Phase.N:
            return _neutral_current(chans)
        if phase is None or phase is Phase.TOTAL:
            return _total_value(chans, quantity, self.circuit_energy(c.id))
        if phase not in c.supply_phases:
            return None
        ch = chans[c.supply_phases.index(phase)]
        if quantity in ch.energy:
            return ch.energy[quantity]
        return _channel_value(ch, quantity)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: Path | None = None) -> None:
        """Write the energy registers, their time and the simulated clock's start atomically (JSON)."""
        path = path or self.state_file
        if path is None:
            return
        self.advance()
        with self._lock:
            data = {
                "t": self._t_last,
                "t0": self._t0,
                "registers": {cid: reg.tolist() for cid, reg in self._registers.items()},
            }
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)

    def _load(self, path: Path) -> None:
        """Continue from a saved state: its registers, integrated from its time to now (the meters
        kept counting). An unreadable file is logged and the registers start at 0."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            saved_t = float(data.get("t", self._t0))
            saved_t0 = float(data.get("t0", self._t0))
            registers = {cid: np.asarray(rows, dtype=np.float64) for cid, rows in data["registers"].items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.error("%s: cannot read the simulated site's state (%s); its meters start at 0", path, exc)
            return
        for cid, arr in registers.items():
            if cid in self._registers and arr.shape == self._registers[cid].shape and np.isfinite(arr).all():
                self._registers[cid] = arr
        now = self._t0
        if not (math.isfinite(saved_t) and saved_t < now):
            return  # saved "in the future" (a clock step back): nothing to catch up
        started = self._t0
        self._t0 = saved_t0 if math.isfinite(saved_t0) else started  # the killed process's clock
        self._integrate(saved_t, now)
        if now - saved_t > CATCHUP_FINE:
            self._t0 = started  # a long break: the simulated day starts again at start_hour
            self._cell = None
        self._t_last = now
        log.info("simulated meters caught up %.1f s since their saved state", now - saved_t)


_SUPPLY_QUANTITIES = {
    Q.VOLTAGE_LINE,
    Q.FREQUENCY,
    Q.THD_VOLTAGE,
    Q.ANGLE_VOLTAGE,
    Q.VOLTAGE_UNBALANCE_NEGATIVE,
    Q.VOLTAGE_UNBALANCE_ZERO,
    Q.VOLTAGE_ZERO_SEQUENCE,
}


def _sequence(u: np.ndarray, ang: np.ndarray) -> tuple[float, float, float]:
    a = np.exp(2j * math.pi / 3)
    ph = u * np.exp(1j * np.radians(ang))
    zero = abs(ph.sum()) / 3
    pos = abs(ph[0] + a * ph[1] + a * a * ph[2]) / 3
    neg = abs(ph[0] + a * a * ph[1] + a * ph[2]) / 3
    return float(pos), float(neg), float(zero)


def _supply_value(s: SupplyState, quantity: str, phase: Phase | None) -> float | None:
    idx = _PHASES.index(phase) if phase in _PHASES else None
    if quantity == Q.FREQUENCY:
        return s.frequency
    if quantity in (Q.VOLTAGE_UNBALANCE_NEGATIVE, Q.VOLTAGE_UNBALANCE_ZERO, Q.VOLTAGE_ZERO_SEQUENCE):
        pos, neg, zero = _sequence(s.voltage, s.angle_voltage)
        sequence: dict[str, float] = {
            Q.VOLTAGE_UNBALANCE_NEGATIVE: 100 * neg / pos,
            Q.VOLTAGE_UNBALANCE_ZERO: 100 * zero / pos,
            Q.VOLTAGE_ZERO_SEQUENCE: zero,
        }
        return sequence[quantity]
    arrays: dict[str, np.ndarray] = {
        Q.VOLTAGE_LINE: s.voltage_line,
        Q.THD_VOLTAGE: s.thd_voltage,
        Q.ANGLE_VOLTAGE: s.angle_voltage,
    }
    arr = arrays[quantity]
    if idx is not None:
        return float(arr[idx])
    return float(np.mean(arr)) if quantity == Q.VOLTAGE_LINE else None


def _channel_value(ch: ChannelState, quantity: str) -> float | None:
    if quantity == Q.NONACTIVE_POWER:
        return math.sqrt(max(ch.apparent_power**2 - ch.active_power**2, 0.0))
    if quantity == Q.THD_CURRENT:
        return ch.thd_current
    if quantity == Q.ANGLE_VOLTAGE_CURRENT:
        return math.degrees(math.atan2(ch.reactive_power, ch.active_power))
    v = getattr(ch, quantity, None)
    return float(v) if isinstance(v, int | float) else None


def _neutral_current(chans: list[ChannelState]) -> float:
    """Neutral current: vector sum of the fundamentals plus the in-phase sum of triplen harmonics [A]."""
    if len(chans) == 1:
        return chans[0].current
    fund = sum(
        (c.current / math.sqrt(1 + (c.thd_current / 100) ** 2)) * np.exp(1j * math.radians(c.angle_current))
        for c in chans
    )
    i1 = [c.current / math.sqrt(1 + (c.thd_current / 100) ** 2) for c in chans]
    triplen = sum(
        sum(i * c.harmonics_current[h] for i, c in zip(i1, chans, strict=True)) ** 2 for h in range(3, 51, 3)
    )
    return float(math.sqrt(abs(fund) ** 2 + triplen))


def _total_value(chans: list[ChannelState], quantity: str, energy: dict[str, float]) -> float | None:
    if quantity in energy:
        return energy[quantity]
    p = sum(c.active_power for c in chans)
    q = sum(c.reactive_power for c in chans)
    s = sum(c.apparent_power for c in chans)
    totals: dict[str, float] = {
        Q.ACTIVE_POWER: p,
        Q.REACTIVE_POWER: q,
        Q.APPARENT_POWER: s,
        Q.NONACTIVE_POWER: math.sqrt(max(s * s - p * p, 0.0)),
        Q.POWER_FACTOR: p / s if s > 0 else 1.0,
        Q.DISPLACEMENT_POWER_FACTOR: p / math.hypot(p, q) if (p or q) else 1.0,
        Q.VOLTAGE: sum(c.voltage for c in chans) / len(chans),
        Q.CURRENT: sum(c.current for c in chans) / len(chans),
    }
    return totals.get(quantity)


class _Wiring:
    """The simulated installation's faults (:mod:`meterhub.config.faults`) and what each channel measures.

    Per circuit channel k: the conductor its CT clamps (index into the circuit's load points), whether
    the CT is the other way round, the ratio factor, and the voltage phase the measuring device uses for
    it (the configured phase; :meth:`SiteModel.reconfigure` follows changes). Voltage phases dropped at a
    device read 0 V there, and a channel measured against one shows no power (its current stays)."""

    def __init__(self, config: SiteConfig, faults: Sequence[Fault]) -> None:
        self.active = bool(faults)
        self.source: dict[str, str] = {c.id: c.voltage_reference or c.device for c in config.circuits}
        self.conductor: dict[str, list[int]] = {c.id: list(range(len(c.channels))) for c in config.circuits}
        self.flipped: dict[str, list[bool]] = {c.id: [False] * len(c.channels) for c in config.circuits}
        self.scale: dict[str, float] = {c.id: 1.0 for c in config.circuits}
        self.dropped: dict[str, set[Phase]] = {}
        circuits = {c.id: c for c in config.circuits}
        for f in faults:
            if f.kind == "offline":  # a scenario in time (SiteModel.device_offline), not wiring
                continue
            if f.kind == "drop":
                self.dropped.setdefault(f.target, set()).update(f.phases)
                continue
            c = circuits[f.target]
            idx = [c.supply_phases.index(p) for p in f.phases]
            if f.kind == "reverse":
                self.flipped[c.id][idx[0]] = not self.flipped[c.id][idx[0]]
            elif f.kind == "swap":
                a, b = idx
                cond = self.conductor[c.id]
                cond[a], cond[b] = cond[b], cond[a]
            elif f.kind == "ratio":
                self.scale[c.id] *= f.factor
        self._original = {
            c.id: (c.device, tuple(c.channels), tuple(c.supply_phases)) for c in config.circuits
        }
        self.phases: dict[str, list[Phase]] = {c.id: list(c.supply_phases) for c in config.circuits}

    def reconfigure(self, config: SiteConfig) -> None:
        where = {
            (c.device, ch): ph
            for c in config.circuits
            for ch, ph in zip(c.channels, c.supply_phases, strict=True)
        }
        for cid, (device, channels, phases) in self._original.items():
            self.phases[cid] = [where.get((device, ch), ph) for ch, ph in zip(channels, phases, strict=True)]
        self.active = True

    def supply_seen(self, device_id: str, supply: SupplyState) -> SupplyState:
        dropped = self.dropped.get(device_id)
        if not dropped:
            return supply
        u = supply.voltage.copy()
        ang = supply.angle_voltage.copy()
        for ph in dropped:
            u[_PHASES.index(ph)] = 0.0
            ang[_PHASES.index(ph)] = 0.0
        ph_ = np.exp(1j * np.radians(ang)) * u
        ul = np.abs(np.array([ph_[0] - ph_[1], ph_[1] - ph_[2], ph_[2] - ph_[0]]))
        return SupplyState(u, ul, ang, supply.frequency, supply.thd_voltage, supply.harmonics_voltage)

    def measured(self, c: Circuit, true: list[ChannelState], supply: SupplyState) -> list[ChannelState]:
        """What the channels of ``c`` measure given the true states of its conductors (``true``)."""
        seen = self.supply_seen(self.source[c.id], supply)
        out = []
        for k, ph in enumerate(self.phases[c.id]):
            src = true[self.conductor[c.id][k]]
            sign = -1.0 if self.flipped[c.id][k] else 1.0
            scale = self.scale[c.id]
            i1 = src.current / math.sqrt(1.0 + (src.thd_current / 100.0) ** 2)
            i_ang = src.angle_current + (180.0 if sign < 0 else 0.0)
            current = complex(
                scale * i1 * math.cos(math.radians(i_ang)), scale * i1 * math.sin(math.radians(i_ang))
            )
            j = _PHASES.index(ph)
            u = float(seen.voltage[j])
            v = u * complex(
                math.cos(math.radians(float(seen.angle_voltage[j]))),
                math.sin(math.radians(float(seen.angle_voltage[j]))),
            )
            s1 = v * current.conjugate()
            i_rms = scale * src.current
            s = u * i_rms
            p, q = s1.real, s1.imag
            out.append(
                ChannelState(
                    ph,
                    u,
                    i_rms,
                    p,
                    q,
                    s,
                    p / s if s > 0 else 1.0,
                    p / abs(s1) if abs(s1) > 0 else 1.0,
                    src.thd_current,
                    (i_ang + 180.0) % 360.0 - 180.0,
                    src.harmonics_current,
                )
            )
        return out
