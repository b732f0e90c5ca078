"""Evidence over time and the verdict per circuit: :class:`Observer` (see :mod:`meterhub.energy.commissioning`)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from meterhub.config.ct import CTKind
from meterhub.energy.commissioning.angles import angle_findings
from meterhub.energy.commissioning.model import (
    ANGLE_KINDS,
    HISTORY,
    MIN_LOAD_FRACTION,
    MIN_OBSERVATION,
    MIN_SAMPLES,
    NOMINAL_ANGLES,
    OVER_RATING,
    CircuitReport,
    CircuitSample,
    CircuitSetup,
    Finding,
    SiteSample,
    unit,
    wrap,
)
from meterhub.model.topology import Phase, Purpose, Wiring

__all__ = ["Observer"]


# -- accumulation -------------------------------------------------------------------------------------
@dataclass
class _Channel:
    n: int = 0
    s: complex = 0j  # Σ (P + jQ) of snapshots with enough load [VA]
    i_sum: float = 0.0
    i_max: float = 0.0
    u_sum: float = 0.0
    u_n: int = 0


@dataclass
class _Circuit:
    channels: list[_Channel]
    first: float | None = None
    last: float | None = None
    loaded: int = 0  # snapshots where at least one channel had enough load
    freq_sum: float = 0.0
    freq_n: int = 0
    neutral_sum: float = 0.0
    neutral_calc_sum: float = 0.0
    neutral_n: int = 0
    last_ts: float | None = None


class Observer:
    """Accumulates :class:`SiteSample` snapshots for a set of circuits and reports on them.

    Parameters
    ----------
    setups : the circuits to check.
    nominal_voltage : phase-to-neutral nominal [V]; nominal_frequency : [Hz].
    min_samples, min_observation : evidence needed before CT findings [-], [s].
    """

    def __init__(
        self,
        setups: Sequence[CircuitSetup],
        *,
        nominal_voltage: float = 230.0,
        nominal_frequency: float = 50.0,
        min_samples: int = MIN_SAMPLES,
        min_observation: float = MIN_OBSERVATION,
    ) -> None:
        self.setups = {s.id: s for s in setups}
        self.nominal_voltage = nominal_voltage
        self.nominal_frequency = nominal_frequency
        self.min_samples = min_samples
        self.min_observation = min_observation
        self._acc = {s.id: _Circuit([_Channel() for _ in s.channels]) for s in setups}
        self._angles: dict[Phase, complex] = {}
        self._history: deque[dict[str, float]] = deque(maxlen=HISTORY)
        self.samples = 0

    def reconfigure(self, setups: Sequence[CircuitSetup]) -> list[str]:
        """Check ``setups`` from now on: a circuit whose setup changed starts collecting evidence anew
        (what it showed before the change says nothing about the new configuration). Returns their ids."""
        changed = []
        acc = {}
        for s in setups:
            old = self.setups.get(s.id)
            if old == s and s.id in self._acc:
                acc[s.id] = self._acc[s.id]
            else:
                acc[s.id] = _Circuit([_Channel() for _ in s.channels])
                changed.append(s.id)
        self.setups = {s.id: s for s in setups}
        self._acc = acc
        if changed:
            self._history.clear()
        return changed

    def add(self, sample: SiteSample) -> None:
        """Take one snapshot into account (a circuit whose values did not change since the last one,
        same timestamp, is skipped)."""
        self.samples += 1
        if sample.voltage_angles:
            for ph, a in sample.voltage_angles.items():
                self._angles[ph] = self._angles.get(ph, 0j) + unit(a)
        totals: dict[str, float] = {}
        for cid, cs in sample.circuits.items():
            setup = self.setups.get(cid)
            acc = self._acc.get(cid)
            if setup is None or acc is None or cs.ts == acc.last_ts:
                continue
            acc.last_ts = cs.ts
            if all(p is not None for p in cs.p):
                totals[cid] = math.fsum(p for p in cs.p if p is not None)
            self._add_circuit(setup, acc, cs)
        if totals:
            self._history.append(totals)

    def _add_circuit(self, setup: CircuitSetup, acc: _Circuit, cs: CircuitSample) -> None:
        threshold = MIN_LOAD_FRACTION * setup.rating if setup.rating else 0.0
        any_loaded = False
        for k, ch in enumerate(acc.channels):
            p, q, i, u = (cs.p[k], cs.q[k], cs.i[k], cs.u[k]) if k < len(cs.p) else (None,) * 4
            if u is not None:
                ch.u_sum += u
                ch.u_n += 1
            if i is None and p is not None and u:
                i = math.hypot(p, q or 0.0) / u
            if i is None or p is None:
                continue
            ch.i_max = max(ch.i_max, i)
            if i < max(threshold, 1e-3):
                continue
            ch.n += 1
            ch.s += complex(p, q or 0.0)
            ch.i_sum += i
            any_loaded = True
        if cs.frequency is not None:
            acc.freq_sum += cs.frequency
            acc.freq_n += 1
        if any_loaded:
            acc.loaded += 1
            acc.first = cs.ts if acc.first is None else acc.first
            acc.last = cs.ts
            if cs.neutral is not None and setup.ac and len(setup.channels) == 3:
                calc = self._vector_sum(setup, cs)
                if calc is not None:
                    acc.neutral_sum += cs.neutral
                    acc.neutral_calc_sum += calc
                    acc.neutral_n += 1

    def _vector_sum(self, setup: CircuitSetup, cs: CircuitSample) -> float | None:
        """|Σ I| of the phase currents' fundamentals rebuilt from U, P, Q as configured [A]."""
        total = 0j
        angles = self.voltage_angles()
        for k, ph in enumerate(setup.phases):
            p, q, u = cs.p[k], cs.q[k], cs.u[k]
            if p is None or q is None or not u:
                return None
            s = complex(p, q)
            i = abs(s) / u
            total += i * unit(angles[ph] - math.degrees(math.atan2(s.imag, s.real)))
        return abs(total)

    def voltage_angles(self) -> dict[Phase, float]:
        """The supply's voltage angles as measured so far (circular mean) [°], else nominal."""
        if len(self._angles) == 3:
            return {ph: math.degrees(math.atan2(z.imag, z.real)) for ph, z in self._angles.items()}
        return dict(NOMINAL_ANGLES)

    # -- report -------------------------------------------------------------------------------------
    def report(self) -> list[CircuitReport]:
        """The verdict on every circuit, in the order given."""
        reports = {s.id: self._report(s, []) for s in self.setups.values()}
        # the balance counts on the sub-circuits' signs and phases: not while one of them is in doubt
        doubtful = {r.id for r in reports.values() if any(f.kind in ANGLE_KINDS for f in r.findings)}
        for cid, findings in self._balance_findings(doubtful).items():
            report = reports[cid]
            report.findings += findings
            report.verdict = "suspect"
            report.note = ""
        return list(reports.values())

    def _report(self, setup: CircuitSetup, extra: list[Finding]) -> CircuitReport:
        acc = self._acc[setup.id]
        findings = self._voltage_findings(setup, acc)
        checked = ["voltage presence and level", "supply frequency"]
        observed = (acc.last - acc.first) if acc.first is not None and acc.last is not None else 0.0
        enough = acc.loaded >= self.min_samples and observed >= self.min_observation
        dead = {f.phase for f in findings if f.kind == "voltage-missing"}
        theta: list[float | None] = []
        for k, ch in enumerate(acc.channels):
            if ch.n >= self.min_samples and enough and setup.phases[k].value not in dead:
                theta.append(math.degrees(math.atan2(ch.s.imag, ch.s.real)))
            else:
                theta.append(None)
        ratio = self._ratio_findings(setup, acc)
        if setup.purpose is Purpose.GRID:
            # an incomer may import on one phase and export on another, at any angle when P nets out:
            # its CTs are judged against the sum of the circuits it feeds (:meth:`_balance_findings`)
            theta = [None] * len(theta)
            enough = enough and acc.loaded > 0
            checked.append("balance against the sub-circuits")
        if enough and any(t is not None for t in theta):
            checked += ["polarity", "phase mapping", "ratio"]
            evidence = {
                "angle": [None if t is None else round(t, 1) for t in theta],
                "amps": [round(ch.i_sum / ch.n, 2) if ch.n else None for ch in acc.channels],
                "watts": [round(ch.s.real / ch.n, 1) if ch.n else None for ch in acc.channels],
                "samples": acc.loaded,
            }
            findings += angle_findings(setup, theta, self.voltage_angles(), evidence)
        findings += ratio + extra
        if enough and setup.ac and len(setup.channels) == 3:
            checked.append("neutral")
            if not any(f.kind in ANGLE_KINDS for f in findings):  # else the neutral says the same again
                findings += self._neutral_findings(setup, acc)
        rating = f"{MIN_LOAD_FRACTION * setup.rating:.2f} A" if setup.rating else "any current"
        if findings:
            verdict = "suspect"
        elif not enough:
            verdict = "insufficient-load"
        else:
            verdict = "ok"
        note = ""
        if not enough:
            note = (
                f"{acc.loaded} of {self.min_samples} snapshots over {observed:.0f} of "
                f"{self.min_observation:.0f} s with at least {rating} on a channel"
            )
        return CircuitReport(setup.id, verdict, findings, checked, observed, acc.loaded, note)

    def _voltage_findings(self, setup: CircuitSetup, acc: _Circuit) -> list[Finding]:
        out: list[Finding] = []
        if not setup.ac:
            return out
        un = self.nominal_voltage
        means = [ch.u_sum / ch.u_n if ch.u_n else None for ch in acc.channels]
        for k, u in enumerate(means):
            if u is None:
                continue
            ph = setup.phases[k].value
            ref = un * math.sqrt(3) if setup.wiring is Wiring.P3W3 else un
            if u < 0.2 * un:
                out.append(
                    Finding(
                        "voltage-missing",
                        ph,
                        0.95,
                        {"volts": round(u, 1), "expected": round(ref, 1), "source": setup.voltage_source},
                        {
                            "text": f"no voltage on {ph} at {setup.voltage_source!r} ({u:.0f} V, {ref:.0f} V "
                            f"expected): check its voltage tap and fuse on {ph}",
                            "patch": None,
                        },
                        setup.id,
                    )
                )
            elif setup.wiring is not Wiring.P3W3 and abs(u / (un * math.sqrt(3)) - 1) < 0.1:
                out.append(
                    Finding(
                        "voltage-level",
                        ph,
                        0.8,
                        {"volts": round(u, 1), "expected": round(un, 1), "source": setup.voltage_source},
                        {
                            "text": f"{ph} reads {u:.0f} V, a line-to-line voltage where {un:.0f} V line-to-"
                            f"neutral is expected: the input is wired between two phases (3P3W?) or the "
                            f"neutral is missing",
                            "patch": None,
                        },
                        setup.id,
                    )
                )
        if acc.freq_n:
            f = acc.freq_sum / acc.freq_n
            if abs(f / self.nominal_frequency - 1) > 0.02:
                out.append(
                    Finding(
                        "frequency-deviation",
                        None,
                        0.9,
                        {"hz": round(f, 3), "expected": self.nominal_frequency},
                        {
                            "text": f"frequency {f:.2f} Hz, {self.nominal_frequency:g} Hz expected: check "
                            f"site.nominal_frequency or the supply (a generator?)",
                            "patch": None,
                        },
                        setup.id,
                    )
                )
        angles = self.voltage_angles()
        if len(self._angles) == 3 and len(setup.phases) == 3 and setup.id == self._sequence_owner():
            a2 = wrap(angles[Phase.L2] - angles[Phase.L1])
            if a2 > 60:  # L2 leads L1: negative sequence L1→L3→L2
                out.append(
                    Finding(
                        "phase-sequence",
                        "L2,L3",
                        0.9,
                        {"angle_l2": round(a2, 1), "expected": -120.0},
                        {
                            "text": "the voltage sequence is L1→L3→L2: swap the voltage connections of L2 "
                            "and L3 at the voltage unit or meter",
                            "patch": None,
                        },
                        setup.id,
                    )
                )
        return out

    def _sequence_owner(self) -> str | None:
        """The circuit that reports the phase sequence (the first three-phase one; once per site)."""
        return next((s.id for s in self.setups.values() if len(s.phases) == 3 and s.ac), None)

    def _ratio_findings(self, setup: CircuitSetup, acc: _Circuit) -> list[Finding]:
        out: list[Finding] = []
        if setup.ct_kind is CTKind.ADAPTER_5A and setup.ct_primary <= 5.0:
            out.append(
                Finding(
                    "ratio",
                    None,
                    0.9,
                    {"ratio": f"{setup.ct_primary:g}/{setup.ct_secondary:g}"},
                    {
                        "text": f"ratio {setup.ct_primary:g}/{setup.ct_secondary:g}: the 5 A is the CT's "
                        f"secondary; write its rated primary current first (e.g. 400/5, seed 003: 50/5 … "
                        f"4000/5)",
                        "patch": None,
                    },
                    setup.id,
                )
            )
        if setup.rating and setup.ratio_fixable:
            i_max = max(ch.i_max for ch in acc.channels)
            if i_max > OVER_RATING * setup.rating:
                factor = 10 ** max(
                    1, round(math.log10(i_max / setup.rating))
                )  # ratios go wrong by powers of ten
                out.append(
                    self._ratio_fix(setup, factor, {"peak_amps": round(i_max, 1), "rated": setup.rating})
                )
        return out

    @staticmethod
    def _ratio_fix(
        setup: CircuitSetup, factor: float, evidence: dict[str, Any], confidence: float = 0.8
    ) -> Finding:
        new = setup.ct_primary / factor
        old_text = f"{setup.ct_primary:g}/{setup.ct_secondary:g}"
        new_text = f"{new:g}/{setup.ct_secondary:g}"
        return Finding(
            "ratio",
            None,
            confidence,
            {**evidence, "ratio": old_text, "factor": factor},
            {
                "text": f"ratio {old_text} looks {factor:g}× too high: {new_text}?",
                "patch": {"ct": {"ratio": new_text}} if setup.ratio_fixable else None,
            },
            setup.id,
        )

    def _neutral_findings(self, setup: CircuitSetup, acc: _Circuit) -> list[Finding]:
        if acc.neutral_n < self.min_samples:
            return []
        measured = acc.neutral_sum / acc.neutral_n
        calc = acc.neutral_calc_sum / acc.neutral_n
        imax = max((ch.i_sum / ch.n for ch in acc.channels if ch.n), default=0.0)
        if calc - measured > max(0.25 * imax, 1.0):
            return [
                Finding(
                    "neutral",
                    "N",
                    0.6,
                    {"neutral_measured": round(measured, 2), "neutral_vector_sum": round(calc, 2)},
                    {
                        "text": f"the neutral carries {measured:.1f} A but the phase currents as configured "
                        f"add up to {calc:.1f} A: a phase CT is reversed or on another phase",
                        "patch": None,
                    },
                    setup.id,
                )
            ]
        return []

    def _balance_findings(self, doubtful: set[str]) -> dict[str, list[Finding]]:
        """Grid circuits against the sum of the circuits they feed: a sub-circuit that reads a power of
        ten too high makes the unmetered rest negative (:data:`HISTORY` snapshots). Skipped for a grid
        whose sub-circuits include a ``doubtful`` one (a reversed CT changes the sum as much)."""
        out: dict[str, list[Finding]] = {}
        for grid in self.setups.values():
            if not grid.grid_of or len(self._history) < self.min_samples:
                continue
            if doubtful & ({grid.id, *grid.grid_of}):
                continue
            rows = [h for h in self._history if grid.id in h and all(c in h for c in grid.grid_of)]
            if len(rows) < self.min_samples:
                continue
            main = [h[grid.id] for h in rows]
            subs = {c: [h[c] for h in rows] for c in grid.grid_of}
            rest = [m - math.fsum(s[j] for s in subs.values()) for j, m in enumerate(main)]
            mean_main = math.fsum(abs(m) for m in main) / len(main)
            tolerance = 0.05 * mean_main + 100.0
            mean_rest = math.fsum(rest) / len(rest)
            if mean_rest >= -tolerance:
                continue
            best: tuple[float, str, float] | None = None
            for cid, series in subs.items():
                for factor in (10.0, 100.0, 1000.0):
                    fixed = [r + x * (1 - 1 / factor) for r, x in zip(rest, series, strict=True)]
                    m = math.fsum(fixed) / len(fixed)
                    if not -tolerance <= m <= 2 * tolerance:
                        continue  # the correction must explain the deficit, leaving an ordinary rest
                    # the unmetered rest is what no circuit explains: about steady and not negative, so
                    # the culprit is the circuit whose correction leaves the steadiest rest
                    spread = math.sqrt(math.fsum((x - m) ** 2 for x in fixed) / len(fixed))
                    cost = spread + 0.1 * abs(m)
                    if best is None or cost < best[0]:
                        best = (cost, cid, factor)
            # or the incomer's own CTs are the other way round: −main − Σ sub is the steady rest
            flipped = [-m - (m - r) for m, r in zip(main, rest, strict=True)]
            mf = math.fsum(flipped) / len(flipped)
            if -tolerance <= mf <= 2 * tolerance:
                spread = math.sqrt(math.fsum((x - mf) ** 2 for x in flipped) / len(flipped))
                cost = spread + 0.1 * abs(mf)
                if best is None or cost < best[0]:
                    best = (cost, grid.id, -1.0)
            if best is None:
                continue
            _, cid, factor = best
            setup = self.setups[cid]
            evidence = {
                "main": grid.id,
                "main_power": round(math.fsum(main) / len(main), 1),
                "sub_circuits_power": round(
                    math.fsum(m - r for m, r in zip(main, rest, strict=True)) / len(main), 1
                ),
                "unmetered": round(mean_rest, 1),
                "tolerance": round(tolerance, 1),
            }
            if factor < 0:
                flags = [not f for f in setup.reversed]
                text = (
                    (
                        f"the CTs of {setup.id} are the other way round: it measures {evidence['main_power']:.0f} W "
                        f"where its circuits draw {evidence['sub_circuits_power']:.0f} W; turn them round (P1 "
                        f"towards the supply) or set reversed {flags}"
                    )
                    .replace("True", "true")
                    .replace("False", "false")
                )
                finding = Finding(
                    "reversed-ct",
                    "all",
                    0.7,
                    {**evidence, "configured_reversed": list(setup.reversed)},
                    {"text": text, "patch": {"reversed": flags}},
                    setup.id,
                )
                out.setdefault(cid, []).append(finding)
                continue
            out.setdefault(cid, []).append(self._ratio_fix(setup, factor, evidence, confidence=0.7))
        return out
