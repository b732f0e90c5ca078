"""What the commissioning checks look at and what they report (see :mod:`meterhub.energy.commissioning`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meterhub.config.ct import CTKind
from meterhub.config.schema import Circuit, SiteConfig
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase, Purpose, Wiring

__all__ = [
    "ANGLE_KINDS",
    "HISTORY",
    "MIN_LOAD_FRACTION",
    "MIN_OBSERVATION",
    "MIN_SAMPLES",
    "NOMINAL_ANGLES",
    "OVER_RATING",
    "PLAUSIBLE_ANGLE",
    "RATED_BY_KIND",
    "CircuitReport",
    "CircuitSample",
    "CircuitSetup",
    "Finding",
    "SiteSample",
    "setup_of",
    "site_sample",
    "unit",
    "wrap",
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
ANGLE_KINDS = frozenset({"reversed-ct", "phase-mapping", "voltage-missing"})
#: Fundamental voltage angles of a positive-sequence supply, referenced to U L1 [°].
NOMINAL_ANGLES: dict[Phase, float] = {Phase.L1: 0.0, Phase.L2: -120.0, Phase.L3: 120.0}


def wrap(a: float) -> float:
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
            # only from a source that sees all three voltages (a missing one reads angle 0)
            live = all((by.get((s.id, Q.VOLTAGE, ph)) or 0.0) > 50.0 for ph in _PHASES)
            if live and all(a is not None for a in got) and any(abs(a or 0.0) > 1 for a in got):
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


def unit(angle: float) -> complex:
    """The unit phasor at ``angle`` [°]."""
    return complex(math.cos(math.radians(angle)), math.sin(math.radians(angle)))
