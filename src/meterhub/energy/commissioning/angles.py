"""CT polarity and phase mapping from U–I angles: every conductor × polarity hypothesis, scored (see
:mod:`meterhub.energy.commissioning`, equation (1))."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meterhub.energy.commissioning.model import (
    NOMINAL_ANGLES,
    PLAUSIBLE_ANGLE,
    CircuitSetup,
    Finding,
    unit,
    wrap,
)
from meterhub.model.topology import Phase, Purpose

__all__ = ["Hypothesis", "analyse_angles", "angle_findings"]

_PHASES = (Phase.L1, Phase.L2, Phase.L3)


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


def _reference_angles(setup: CircuitSetup, angles: Mapping[Phase, float]) -> list[float]:
    """The angle of the voltage each channel is measured against [°]."""
    if setup.aron:  # element k: U(Lk) − U(common), e.g. U12 at +30° and U32 at +90° (positive sequence)
        common = next(p for p in _PHASES if p not in setup.phases)
        line = [unit(angles[p]) - unit(angles[common]) for p in setup.phases]
        return [math.degrees(math.atan2(z.imag, z.real)) for z in line]
    return [angles[p] for p in setup.phases]


def _implausibility(phi: float, purpose: Purpose) -> float:
    """How far [°] a load angle φ is outside what the purpose allows (0 inside)."""
    load = max(0.0, abs(wrap(phi)) - PLAUSIBLE_ANGLE)
    gen = max(0.0, abs(wrap(phi - 180.0)) - PLAUSIBLE_ANGLE)
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
        phis = [p if abs(wrap(p)) <= 90 else wrap(p - 180.0) for p in phis]
    z = sum(unit(p) for p in phis)
    mean = math.degrees(math.atan2(z.imag, z.real))
    return sum(wrap(p - mean) ** 2 for p in phis)


def analyse_angles(
    setup: CircuitSetup, theta: Sequence[float | None], angles: Mapping[Phase, float] | None = None
) -> list[Hypothesis]:
    """Every hypothesis of conductors × polarities for the measured U–I angles ``theta`` [°] (None: a
    channel without enough load), best first. ``angles``: the supply's voltage angles [°] (default
    :data:`NOMINAL_ANGLES`). Equation (1) of :mod:`meterhub.energy.commissioning`."""
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
                phi = wrap(phi)
                phis.append(phi)
                cost += (_implausibility(phi, setup.purpose) / 10.0) ** 2
                # a slight preference for the smaller displacement: most loads run near PF 1
                cost += (
                    0.3
                    * (wrap(phi if setup.purpose is not Purpose.RENEWABLE else phi - 180.0) / 60.0) ** 2
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


def angle_findings(
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
                            wrap(
                                _angles_of(angles)[setup.phases[k]] - _angles_of(angles)[best.conductors[k]]
                            ),
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


def _angles_of(angles: Mapping[Phase, float] | None) -> Mapping[Phase, float]:
    return angles or NOMINAL_ANGLES
