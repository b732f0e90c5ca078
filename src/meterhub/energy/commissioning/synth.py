"""What a miswired circuit measures (pure): the test and benchmark peer of :mod:`meterhub.energy.commissioning`.

An installation is the circuit as it should be configured (:class:`~.commissioning.CircuitSetup`) plus
what is physically different: per channel, the conductor its CT clamps and whether the CT is the other
way round, a ratio factor (the configured ratio divided by the true one: the gateway reads that many times
too much) and voltage phases that are missing. :func:`measure` gives the snapshot a gateway configured as
``setup`` reads from it; :func:`fixed_correctly` says whether a configuration measures the truth.

Fault names follow ``meterhub demo --fault``: ``reverse:L2``, ``swap:L1,L3``, ``ratio:10``, ``drop:L2``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from meterhub.config.types import Ratio
from meterhub.energy.commissioning.model import NOMINAL_ANGLES, CircuitSample, CircuitSetup
from meterhub.model.topology import Phase

__all__ = ["Installation", "apply_patch", "fixed_correctly", "install", "measure"]

_PHASES = (Phase.L1, Phase.L2, Phase.L3)


@dataclass(frozen=True)
class Installation:
    """The physical truth behind a circuit: ``conductor[k]`` and ``flipped[k]`` of channel k (relative to
    ``setup``, the correct configuration), ``scale`` (configured/true CT ratio [-]) and ``dropped``
    voltage phases."""

    setup: CircuitSetup
    conductor: tuple[Phase, ...]
    flipped: tuple[bool, ...]
    scale: float = 1.0
    dropped: frozenset[Phase] = frozenset()


def install(setup: CircuitSetup, faults: Sequence[str]) -> Installation:
    """The installation of ``setup`` with ``faults`` (``reverse:L2``, ``swap:L1,L3``, ``ratio:10``,
    ``drop:L2``; for DC ``reverse:L1``)."""
    conductor = list(setup.phases)
    flipped = [False] * len(setup.phases)
    scale = 1.0
    dropped: set[Phase] = set()
    for fault in faults:
        kind, _, arg = fault.partition(":")
        if kind == "reverse":
            k = setup.phases.index(Phase(arg))
            flipped[k] = not flipped[k]
        elif kind == "swap":
            a, b = (setup.phases.index(Phase(x)) for x in arg.split(","))
            conductor[a], conductor[b] = conductor[b], conductor[a]
        elif kind == "ratio":
            scale *= float(arg)
        elif kind == "drop":
            dropped.add(Phase(arg))
        else:
            raise ValueError(f"unknown fault {fault!r}")
    return Installation(setup, tuple(conductor), tuple(flipped), scale, frozenset(dropped))


def _unit(angle: float) -> complex:
    return complex(math.cos(math.radians(angle)), math.sin(math.radians(angle)))


def measure(
    inst: Installation,
    config: CircuitSetup,
    *,
    load_angle: Mapping[Phase, float],
    current: Mapping[Phase, float],
    ts: float,
    voltage: float = 230.0,
    angles: Mapping[Phase, float] = NOMINAL_ANGLES,
    scale_config: float | None = None,
) -> CircuitSample:
    """The snapshot a gateway configured as ``config`` reads from ``inst`` [W, var, A, V].

    load_angle : true load angle φ of each conductor [°] (positive lagging; 180° ± φ for generation);
    current : its true current [A]; scale_config : the configured ratio over the correct one (default:
    from ``config.ct_primary``)."""
    if scale_config is None:
        scale_config = (config.ct_primary / config.ct_secondary) / (
            inst.setup.ct_primary / inst.setup.ct_secondary
        )
    scale = inst.scale * scale_config
    u = {ph: (0.0 if ph in inst.dropped else voltage) * _unit(angles[ph]) for ph in angles}
    p: list[float] = []
    q: list[float] = []
    i: list[float] = []
    us: list[float] = []
    common = next((ph for ph in _PHASES if ph not in config.phases), None)
    for k, ph in enumerate(config.phases):
        c = inst.conductor[k]
        sign = -1.0 if inst.flipped[k] != (config.reversed[k] != inst.setup.reversed[k]) else 1.0
        if not config.ac:
            pw = sign * scale * current[c] * voltage * math.cos(math.radians(load_angle[c]))
            p.append(pw)
            q.append(0.0)
            i.append(abs(scale * current[c]))
            us.append(voltage)
            continue
        i_c = current[c] * _unit(angles[c] - load_angle[c])
        i_meas = sign * scale * i_c
        ref = u[ph] - u[common] if config.aron and common is not None else u[ph]
        s = ref * i_meas.conjugate()
        p.append(s.real)
        q.append(s.imag)
        i.append(abs(i_meas))
        us.append(abs(u[ph]))
    return CircuitSample(ts=ts, p=tuple(p), q=tuple(q), i=tuple(i), u=tuple(us))


def apply_patch(setup: CircuitSetup, patch: Mapping[str, Any] | None) -> CircuitSetup:
    """``setup`` after a finding's configuration patch (``phases``, ``reversed``, ``ct.ratio``)."""
    if not patch:
        return setup
    new = setup
    if "phases" in patch:
        new = replace(new, phases=tuple(Phase(p) for p in patch["phases"]))
    if "reversed" in patch:
        new = replace(new, reversed=tuple(bool(x) for x in patch["reversed"]))
    ratio = (patch.get("ct") or {}).get("ratio")
    if ratio is not None:
        r = Ratio.model_validate(ratio)
        new = replace(new, ct_primary=r.primary, ct_secondary=r.secondary)
    return new


def fixed_correctly(inst: Installation, config: CircuitSetup) -> bool:
    """Whether ``config`` measures ``inst`` as it is: each channel labelled with the conductor its CT
    clamps, with the right sign, and the ratio within 1 %."""
    scale = (
        inst.scale
        * (config.ct_primary / config.ct_secondary)
        / (inst.setup.ct_primary / inst.setup.ct_secondary)
    )
    if abs(scale - 1.0) > 0.01:
        return False
    for k in range(len(config.phases)):
        if config.ac and config.phases[k] != inst.conductor[k]:
            return False
        if inst.flipped[k] != (config.reversed[k] != inst.setup.reversed[k]):
            return False
    return True
