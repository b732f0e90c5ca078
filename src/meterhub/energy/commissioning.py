"""Commissioning checks: reversed CTs, CTs on the wrong phase, implausible ratios, missing voltages (pure).

What an electrician checks by hand with a clamp meter and a phase-angle meter, computed from what the
gateway already measures. No I/O: :class:`Observer` accumulates snapshots of live values
(:func:`site_sample` builds one from readings) and :meth:`Observer.report` answers, per circuit, a verdict
(``ok``, ``suspect``, ``insufficient-load``) with findings, each with its evidence and the exact
configuration change that fixes it (a patch for :func:`meterhub.config.edit.patch_circuit`).

**Angles.** The U–I angle of a channel is θ = arg(P + jQ) [°] (IEEE 1459 fundamental Q, positive when the
current lags), measured against the voltage the channel is configured to use: the phase voltage of its
supply phase (1P2W, 1P3W, 3P4W), or the line voltage to the common phase for a two-element Aron circuit
(3P3W with two CTs, as a two-wattmeter meter measures). If the CT of channel k actually sits on conductor c
with polarity s (±1 relative to the configuration), the load angle of that conductor is

    φ = θ − arg(U_ref,k) + arg(U_c) + 180°·[s = −1]                                   (1)

A hypothesis is an assignment of conductors (a permutation over the supply's phases) and polarities to
the circuit's channels; :func:`analyse_angles` scores every one (at most 6 × 8 = 48) by how plausible the
implied load angles are for the circuit's purpose (consumable: |φ| ≤ 62°, i.e. PF ≥ 0.47 lagging or
leading; renewable: generation, |φ − 180°| ≤ 62°; grid: either) and how alike they are across the phases
of one load, plus one unit per change. The configured wiring wins unless it is implausible; the best
hypothesis then names the fix: ``reversed`` toggled on a channel ("invert the CT on L2"), ``phases``
re-assigned ("swap channels 1 and 3"). A CT on another phase's conductor shifts θ by ±120° (seed 000
§6.3.2: P1 towards the supply, P2 towards the load; a reversed CT adds 180°).

**Ratios.** A current above twice the CT's rated primary (a CT is specified to 120 %), a 5 A adapter whose ratio names 5 A as the
primary (seed 003: 50/5 … 4000/5), and a grid circuit whose sub-circuits add up to more than it measures
(the unmetered rest negative beyond its tolerance: a sub-circuit reads a power of ten too high, found as the
circuit whose correction leaves the steadiest ordinary rest; or the incomer itself reversed).

**Voltage.** A phase below 20 % of nominal (a missing voltage tap or fuse), a phase voltage near √3 ×
nominal (a line-to-line voltage on a line-to-neutral input), the phase sequence L1→L2→L3 from the voltage
angles, and the frequency within ±2 % of nominal (EN 50160 §4.2.1: 50 Hz ± 1 % for 99.5 % of a year).

**Neutral.** The measured neutral current against the vector sum of the phase currents (their
fundamentals, rebuilt from U, P and Q): the measured one carries triplen harmonics too, so it may be
larger, never much smaller.

**Evidence first.** A channel counts only while its current is at least 5 % of the CT's rating; a circuit
needs :data:`MIN_SAMPLES` such snapshots over :data:`MIN_OBSERVATION` seconds before anything about its CTs
is said; until then its verdict is ``insufficient-load``. Angles are averaged as complex powers over
the snapshots (a power-weighted circular mean), so one noisy reading does not decide.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meterhub.config.ct import CTKind
from meterhub.config.schema import Circuit, SiteConfig
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase, Purpose, Wiring

__all__ = [
    "MIN_LOAD_FRACTION",
    "MIN_OBSERVATION",
    "MIN_SAMPLES",
    "NOMINAL_ANGLES",
    "CircuitReport",
    "CircuitSample",
    "CircuitSetup",
    "Finding",
    "Hypothesis",
    "Observer",
    "SiteSample",
    "analyse_angles",
    "setup_of",
    "site_sample",
]

MIN_LOAD_FRACTION = 0.05  # [-] of the CT's rated primary current: below it a channel's angle is not used
MIN_SAMPLES = 5  # snapshots with enough load before CT findings are reported
MIN_OBSERVATION = 10.0  # [s] between the first and the last of them
PLAUSIBLE_ANGLE = 62.0  # [°] |φ| of a load (PF ≥ 0.47), or |φ − 180°| of a generator
HISTORY = 600  # snapshots kept for the main-against-sub-circuits balance
OVER_RATING = 2.0  # [-] a current above this × the CT's rated primary: the ratio is wrong (CTs run to 120 %)
#: Rated current of a CT kind that has no ratio to read it from [A]: the M10…M40 modules' built-in CTs
#: measure up to 63 A (seed 000 §3.4.3); a direct-connected meter typically 100 A (Eastron SDM630).
RATED_BY_KIND: dict[CTKind, float] = {CTKind.BUILT_IN: 63.0, CTKind.DIRECT: 100.0}
_PHASES = (Phase.L1, Phase.L2, Phase.L3)
_ANGLE_KINDS = frozenset({"reversed-ct", "phase-mapping", "voltage-missing"})
#: Fundamental voltage angles of a positive-sequence supply, referenced to U L1 [°].
NOMINAL_ANGLES: dict[Phase, float] = {Phase.L1: 0.0, Phase.L2: -120.0, Phase.L3: 120.0}


def _wrap(a: float) -> float:
    """An angle in (−180, 180] [°]."""
    a = math.fmod(a + 180.0, 360.0)
    if a <= 0:
        a += 360.0
    return a - 180.0


# -- what is checked ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CircuitSetup:
    """The configuration of one circuit as the checks need it.

    channels : device current inputs, in the circuit's order; phases : the supply phase each is
    configured on; reversed : the configured polarity flags (per channel); rating : rated primary
    current of its CTs [A] (None: unknown, every current counts); ct_primary, ct_secondary : the CT
    ratio [A/A or A/V]; ratio_fixable : whether meterhub applies the ratio (a fix may change it);
    ct_kind : the sensor kind; grid_of : for a grid circuit, the circuits it feeds (its balance).
    """

    id: str
    wiring: Wiring
    purpose: Purpose
    channels: tuple[int, ...]
    phases: tuple[Phase, ...]
    reversed: tuple[bool, ...]
    rating: float | None = None
    ct_primary: float = 1.0
    ct_secondary: float = 1.0
    ct_kind: CTKind = CTKind.BUILT_IN
    ratio_fixable: bool = True
    voltage_source: str = ""
    grid_of: tuple[str, ...] = ()

    @property
    def ac(self) -> bool:
        return self.wiring is not Wiring.DC

    @property
    def aron(self) -> bool:
        """A two-element (Aron) 3P3W circuit: channel k measured against U(Lk − common phase)."""
        return self.wiring is Wiring.P3W3 and len(self.channels) == 2


def setup_of(circuit: Circuit, config: SiteConfig, *, ratio_fixable: bool = True) -> CircuitSetup:
    """The :class:`CircuitSetup` of a configured circuit (``ratio_fixable`` from the device's profile:
    :func:`meterhub.profiles.transformers.fixed_ratio_reason` is None)."""
    flags = circuit.reversed
    rev = tuple(flags) if isinstance(flags, list) else (bool(flags),) * len(circuit.channels)
    rev = tuple(rev[k] if k < len(rev) else False for k in range(len(circuit.channels)))
    ct = circuit.ct
    rating = ct.rated_current
    if rating is None:
        rating = RATED_BY_KIND.get(ct.kind)
    if rating is None and ct.ratio.primary > 1.0:
        rating = ct.ratio.primary
    grid_of: tuple[str, ...] = ()
    if circuit.purpose is Purpose.GRID:
        grid_of = tuple(c.id for c in config.circuits if c.purpose is not Purpose.GRID)
    device = next((d for d in config.devices if d.id == circuit.device), None)
    source = circuit.voltage_reference or (device.id if device is not None else circuit.device)
    return CircuitSetup(
        id=circuit.id,
        wiring=circuit.wiring,
        purpose=circuit.purpose,
        channels=tuple(circuit.channels),
        phases=tuple(circuit.supply_phases),
        reversed=rev,
        rating=rating,
        ct_primary=ct.ratio.primary,
        ct_secondary=ct.ratio.secondary,
        ct_kind=ct.kind,
        ratio_fixable=ratio_fixable,
        voltage_source=source,
        grid_of=grid_of,
    )


# -- what was seen ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CircuitSample:
    """One snapshot of a circuit, per channel in the circuit's order: P [W], Q [var], I [A], U [V]
    (None: not measured), with the neutral current [A] and the frequency [Hz] where measured."""

    ts: float
    p: tuple[float | None, ...]
    q: tuple[float | None, ...]
    i: tuple[float | None, ...]
    u: tuple[float | None, ...]
    neutral: float | None = None
    frequency: float | None = None


@dataclass(frozen=True)
class SiteSample:
    """One snapshot of the site: every circuit's sample and the supply's voltage angles [°] (from a
    voltage unit or meter that measures all three; None when none does)."""

    ts: float
    circuits: Mapping[str, CircuitSample]
    voltage_angles: Mapping[Phase, float] | None = None


def site_sample(readings: Iterable[Reading], setups: Sequence[CircuitSetup], ts: float) -> SiteSample:
    """A :class:`SiteSample` from live readings (the latest valid value per series)."""
    by: dict[tuple[str, str, Phase | None], float] = {}
    stamp: dict[str, float] = {}
    for r in readings:
        if r.quality is Quality.INVALID or not math.isfinite(r.value):
            continue
        by[(r.circuit, r.quantity, r.phase)] = r.value
        if r.quantity == Q.ACTIVE_POWER:
            stamp[r.circuit] = max(stamp.get(r.circuit, 0.0), r.ts)
    circuits: dict[str, CircuitSample] = {}
    angles: dict[Phase, float] | None = None
    for s in setups:
        if s.id not in stamp:
            continue
        labels: Sequence[Phase | None]
        labels = s.phases if len(s.phases) > 1 or s.wiring is not Wiring.DC else (None,)
        single = len(s.channels) == 1

        def get(quantity: str, ph: Phase | None, cid: str = s.id, single: bool = single) -> float | None:
            v = by.get((cid, quantity, ph))
            if v is None and single:
                v = by.get((cid, quantity, Phase.TOTAL), by.get((cid, quantity, None)))
            return v

        circuits[s.id] = CircuitSample(
            ts=stamp[s.id],
            p=tuple(get(Q.ACTIVE_POWER, ph) for ph in labels),
            q=tuple(get(Q.REACTIVE_POWER, ph) for ph in labels),
            i=tuple(get(Q.CURRENT, ph) for ph in labels),
            u=tuple(get(Q.VOLTAGE, ph) for ph in labels),
            neutral=by.get((s.id, Q.CURRENT, Phase.N)),
            frequency=by.get((s.id, Q.FREQUENCY, Phase.TOTAL), by.get((s.id, Q.FREQUENCY, None))),
        )
        if angles is None:
            got = [by.get((s.id, Q.ANGLE_VOLTAGE, ph)) for ph in _PHASES]
            if all(a is not None for a in got) and any(abs(a or 0.0) > 1 for a in got):
                angles = {ph: float(a) for ph, a in zip(_PHASES, got, strict=True) if a is not None}
    return SiteSample(ts=ts, circuits=circuits, voltage_angles=angles)


# -- what is reported ---------------------------------------------------------------------------------
@dataclass
class Finding:
    """One thing found: ``kind`` (reversed-ct, phase-mapping, ratio, voltage-missing, voltage-level,
    phase-sequence, frequency-deviation, neutral), the phase(s) it concerns, a confidence in [0, 1], the evidence
    (angles [°], expected range, currents [A], powers [W]) and the fix: ``text`` for a person and
    ``patch`` for :func:`meterhub.config.edit.patch_circuit` (None: a change on site, not in the
    configuration)."""

    kind: str
    phase: str | None
    confidence: float
    evidence: dict[str, Any]
    fix: dict[str, Any]
    circuit: str = ""

    @property
    def id(self) -> str:
        """Stable name of the finding: ``CIRCUIT:KIND:PHASE`` (what ``POST …/fix`` takes)."""
        return f"{self.circuit}:{self.kind}:{self.phase or '-'}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "phase": self.phase,
            "confidence": round(self.confidence, 3),
            "evidence": self.evidence,
            "fix": self.fix,
        }


@dataclass
class CircuitReport:
    """The verdict on one circuit: ``ok``, ``suspect`` (findings) or ``insufficient-load``; ``checked``
    names what was checked, ``observed`` how long [s] and how many snapshots had enough load."""

    id: str
    verdict: str
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    observed: float = 0.0
    samples: int = 0
    note: str = ""

    @property
    def patch(self) -> dict[str, Any] | None:
        """Every configuration change of the findings together (``reversed`` flags combined), or None."""
        out: dict[str, Any] = {}
        flips: list[bool] | None = None
        for f in self.findings:
            patch = f.fix.get("patch")
            if not patch:
                continue
            for key, value in patch.items():
                if key == "reversed":
                    base = f.evidence.get("configured_reversed", value)
                    if flips is None:
                        flips = list(base)
                    flips = [a != (b != c) for a, b, c in zip(flips, value, base, strict=True)]
                else:
                    out[key] = value
        if flips is not None:
            out["reversed"] = flips
        return out or None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "verdict": self.verdict,
            "patch": self.patch,
            "findings": [f.as_dict() for f in self.findings],
            "checked": self.checked,
            "observed": round(self.observed, 1),
            "samples": self.samples,
            "note": self.note,
        }


# -- angle analysis -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hypothesis:
    """Conductor and polarity of each channel (polarity −1: the CT is the other way round than
    configured), its score (lower is better) and the load angles it implies [°]."""

    conductors: tuple[Phase, ...]
    polarity: tuple[int, ...]
    score: float
    angles: tuple[float, ...]

    def changes(self, phases: Sequence[Phase]) -> int:
        return sum(c != p for c, p in zip(self.conductors, phases, strict=True)) + sum(
            s < 0 for s in self.polarity
        )


def _unit(angle: float) -> complex:
    return complex(math.cos(math.radians(angle)), math.sin(math.radians(angle)))


def _reference_angles(setup: CircuitSetup, angles: Mapping[Phase, float]) -> list[float]:
    """The angle of the voltage each channel is measured against [°]."""
    if setup.aron:
        common = next(p for p in _PHASES if p not in setup.phases)
        return [
            math.degrees(math.atan2(*(lambda z: (z.imag, z.real))(_unit(angles[p]) - _unit(angles[common]))))
            for p in setup.phases
        ]
    return [angles[p] for p in setup.phases]


def _implausibility(phi: float, purpose: Purpose) -> float:
    """How far [°] a load angle φ is outside what the purpose allows (0 inside)."""
    load = max(0.0, abs(_wrap(phi)) - PLAUSIBLE_ANGLE)
    gen = max(0.0, abs(_wrap(phi - 180.0)) - PLAUSIBLE_ANGLE)
    if purpose is Purpose.CONSUMABLE:
        return load
    if purpose is Purpose.RENEWABLE:
        return gen
    return min(load, gen)


def _spread(phis: Sequence[float], purpose: Purpose) -> float:
    """Deviation of the implied load angles from their circular mean, squared and summed [°²]; for a
    grid circuit, after folding exports onto imports (phases may import and export at once)."""
    if len(phis) < 2:
        return 0.0
    if purpose is Purpose.GRID:
        phis = [p if abs(_wrap(p)) <= 90 else _wrap(p - 180.0) for p in phis]
    z = sum(_unit(p) for p in phis)
    mean = math.degrees(math.atan2(z.imag, z.real))
    return sum(_wrap(p - mean) ** 2 for p in phis)


def analyse_angles(
    setup: CircuitSetup, theta: Sequence[float | None], angles: Mapping[Phase, float] | None = None
) -> list[Hypothesis]:
    """Every hypothesis of conductors × polarities for the measured U–I angles ``theta`` [°] (None: a
    channel without enough load), best first. ``angles``: the supply's voltage angles [°] (default
    :data:`NOMINAL_ANGLES`). See the module docstring, equation (1)."""
    angles = dict(angles or NOMINAL_ANGLES)
    n = len(setup.channels)
    ref = _reference_angles(setup, angles)
    if not setup.ac:
        conductor_sets: Iterable[tuple[Phase, ...]] = [setup.phases]
    elif n == 1:  # a single CT may sit on any phase's conductor
        conductor_sets = [(p,) for p in _PHASES if p in angles]
    else:  # the CTs of a multi-phase circuit sit on its own phases, perhaps in another order
        conductor_sets = itertools.permutations(setup.phases, n)
    loaded = [k for k in range(n) if theta[k] is not None]
    out: list[Hypothesis] = []
    for conductors in conductor_sets:
        if setup.aron and any(c not in setup.phases for c in conductors):
            continue  # an Aron circuit's CTs sit on the two outer phases
        for polarity in itertools.product((1, -1), repeat=n):
            phis = []
            cost = 0.0
            for k in loaded:
                th = theta[k]
                if th is None:  # pragma: no cover - filtered by ``loaded``
                    continue
                phi = th - ref[k] + angles[conductors[k]] + (180.0 if polarity[k] < 0 else 0.0)
                if not setup.ac:
                    phi = th + (180.0 if polarity[k] < 0 else 0.0)
                phi = _wrap(phi)
                phis.append(phi)
                cost += (_implausibility(phi, setup.purpose) / 10.0) ** 2
                # a slight preference for the smaller displacement: most loads run near PF 1
                cost += (
                    0.3
                    * (_wrap(phi if setup.purpose is not Purpose.RENEWABLE else phi - 180.0) / 60.0) ** 2
                    / n
                )
            cost += _spread(phis, setup.purpose) / 30.0**2
            moved = sum(c != p for c, p in zip(conductors, setup.phases, strict=True))
            # a single CT on another phase's conductor is a rarer mistake than one clipped on backwards
            changes = moved * (1.5 if n == 1 else 1.0) + sum(s < 0 for s in polarity)
            # an unloaded channel cannot be judged: changing it is never proposed
            if any(
                theta[k] is None and (conductors[k] != setup.phases[k] or polarity[k] < 0) for k in range(n)
            ):
                continue
            cost += 1.0 * changes
            out.append(Hypothesis(tuple(conductors), tuple(polarity), cost, tuple(phis)))
    out.sort(key=lambda h: (h.score, h.changes(setup.phases)))
    return out


def _plausible(h: Hypothesis, purpose: Purpose) -> bool:
    return all(_implausibility(p, purpose) <= 0.0 for p in h.angles)


def _channel_name(setup: CircuitSetup, k: int) -> str:
    return f"channel {setup.channels[k]} ({setup.phases[k].value})"


def _angle_findings(
    setup: CircuitSetup,
    theta: Sequence[float | None],
    angles: Mapping[Phase, float] | None,
    evidence: dict[str, Any],
) -> list[Finding]:
    hyps = analyse_angles(setup, theta, angles)
    if not hyps:
        return []
    identity = next(h for h in hyps if h.changes(setup.phases) == 0)
    best = hyps[0]
    if best is identity or (_plausible(identity, setup.purpose) and identity.score - best.score < 2.0):
        return []
    # the runner-up that proposes something else: how sure the choice is
    other = next(
        (h for h in hyps[1:] if h.conductors != best.conductors or h.polarity != best.polarity), None
    )
    margin = (other.score - best.score) if other is not None else 10.0
    confidence = max(0.05, min(0.99, 1.0 - math.exp(-1.2 * margin)))
    expected = {
        Purpose.CONSUMABLE: f"load: |φ| ≤ {PLAUSIBLE_ANGLE:g}°",
        Purpose.RENEWABLE: f"generation: |φ − 180°| ≤ {PLAUSIBLE_ANGLE:g}°",
        Purpose.GRID: f"import |φ| ≤ {PLAUSIBLE_ANGLE:g}° or export |φ − 180°| ≤ {PLAUSIBLE_ANGLE:g}°",
    }[setup.purpose]
    base = {
        **evidence,
        "expected": expected,
        "load_angle_if_fixed": [round(a, 1) for a in best.angles],
        "load_angle_as_configured": [round(a, 1) for a in identity.angles],
    }
    if other is not None and margin < 1.0:
        base["alternative"] = {
            "phases": [c.value for c in other.conductors],
            "reversed": [s < 0 for s in other.polarity],
        }
    findings: list[Finding] = []
    if best.conductors != setup.phases:
        moved = [k for k in range(len(setup.phases)) if best.conductors[k] != setup.phases[k]]
        names = ", ".join(str(setup.channels[k]) for k in moved)
        if len(moved) == 2 and best.conductors[moved[0]] == setup.phases[moved[1]]:
            a, b = moved
            text = (
                f"the CTs of channels {setup.channels[a]} and {setup.channels[b]} sit on each other's "
                f"conductors ({setup.phases[a].value} ↔ {setup.phases[b].value}): swap channels "
                f"{setup.channels[a]} and {setup.channels[b]}, or set phases "
                f"[{', '.join(c.value for c in best.conductors)}]"
            )
        else:
            text = (
                f"channels {names} carry the current of other phases: set phases "
                f"[{', '.join(c.value for c in best.conductors)}] (or move the CTs)"
            )
        phase = ",".join(setup.phases[k].value for k in moved)
        findings.append(
            Finding(
                "phase-mapping",
                phase,
                confidence,
                {
                    **base,
                    "offset": [
                        round(
                            _wrap(angles_of(angles)[setup.phases[k]] - angles_of(angles)[best.conductors[k]]),
                            1,
                        )
                        for k in moved
                    ],
                },
                {"text": text, "patch": {"phases": [c.value for c in best.conductors]}},
                setup.id,
            )
        )
    for k, s in enumerate(best.polarity):
        if s > 0:
            continue
        flags = list(setup.reversed)
        flags[k] = not flags[k]
        th = theta[k]
        findings.append(
            Finding(
                "reversed-ct",
                setup.phases[k].value if setup.ac else None,
                confidence,
                {
                    **base,
                    "angle": None if th is None else round(th, 1),
                    "configured_reversed": list(setup.reversed),
                },
                {
                    "text": f"invert the CT on {setup.phases[k].value if setup.ac else 'the circuit'} "
                    f"({_channel_name(setup, k)}): turn it round (P1 towards the supply) or set "
                    f"reversed {flags}".replace("True", "true").replace("False", "false"),
                    "patch": {"reversed": flags},
                },
                setup.id,
            )
        )
    return findings


def angles_of(angles: Mapping[Phase, float] | None) -> Mapping[Phase, float]:
    return angles or NOMINAL_ANGLES


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
                self._angles[ph] = self._angles.get(ph, 0j) + _unit(a)
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
            total += i * _unit(angles[ph] - math.degrees(math.atan2(s.imag, s.real)))
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
        doubtful = {r.id for r in reports.values() if any(f.kind in _ANGLE_KINDS for f in r.findings)}
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
            if setup.ac and len(setup.channels) == 3:
                checked.append("neutral")
            evidence = {
                "angle": [None if t is None else round(t, 1) for t in theta],
                "amps": [round(ch.i_sum / ch.n, 2) if ch.n else None for ch in acc.channels],
                "watts": [round(ch.s.real / ch.n, 1) if ch.n else None for ch in acc.channels],
                "samples": acc.loaded,
            }
            angle_findings = _angle_findings(setup, theta, self.voltage_angles(), evidence)
            findings += angle_findings
            findings += ratio + extra
            if not angle_findings:
                findings += self._neutral_findings(setup, acc)
        else:
            findings += ratio + extra
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
            a2 = _wrap(angles[Phase.L2] - angles[Phase.L1])
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
