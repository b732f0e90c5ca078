"""Simulated installation faults (``simulation.faults`` and ``meterhub demo --fault``).

The commissioning assistant (docs/commissioning.md) is tested end to end against a simulated site wired
wrongly on purpose. A fault is one text, as on the command line:

``CIRCUIT:reverse:PHASE``      the CT on PHASE is clipped on backwards (P1 towards the load)
``CIRCUIT:swap:PHASE,PHASE``   the CTs of two phases sit on each other's conductors
``CIRCUIT:ratio:FACTOR``       the configured CT ratio is FACTOR × the true one (readings FACTOR × too high)
``DEVICE:drop:PHASE``          the voltage input PHASE of a voltage unit, meter or ADC board is missing

Faults are physical: they stay what they are when the configuration changes, so a fix applied to the
configuration makes the readings right while the simulated wiring stays wrong (as on a real site).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from meterhub.model.topology import Phase

__all__ = ["FAULT_KINDS", "Fault", "check_faults", "parse_fault"]

FAULT_KINDS = ("reverse", "swap", "ratio", "drop")
_LINES = (Phase.L1, Phase.L2, Phase.L3)


@dataclass(frozen=True)
class Fault:
    """One fault: ``target`` (a circuit id; a device id for ``drop``), ``kind``, ``phases`` it concerns and
    ``factor`` (``ratio`` only) [-]."""

    target: str
    kind: str
    phases: tuple[Phase, ...] = ()
    factor: float = 1.0

    def __str__(self) -> str:
        arg = f"{self.factor:g}" if self.kind == "ratio" else ",".join(p.value for p in self.phases)
        return f"{self.target}:{self.kind}:{arg}"


def _phase(text: str, fault: str) -> Phase:
    try:
        phase = Phase(text.strip().upper())
    except ValueError:
        phase = None
    if phase not in _LINES:
        raise ValueError(f"fault {fault!r}: {text!r} is not a phase (L1, L2 or L3)")
    return phase


def parse_fault(text: str) -> Fault:
    """A :class:`Fault` from ``TARGET:KIND:ARG``; ValueError naming what is wrong and what would be valid."""
    parts = text.strip().split(":")
    if len(parts) != 3 or not parts[0]:
        raise ValueError(
            f"fault {text!r} is not TARGET:KIND:ARG, e.g. hvac:reverse:L2, kitchen:swap:L1,L3, "
            f"pv:ratio:10, vu:drop:L2"
        )
    target, kind, arg = parts
    if kind == "reverse" or kind == "drop":
        return Fault(target, kind, (_phase(arg, text),))
    if kind == "swap":
        names = arg.split(",")
        if len(names) != 2:
            raise ValueError(f"fault {text!r}: swap names two phases, e.g. swap:L1,L3")
        a, b = _phase(names[0], text), _phase(names[1], text)
        if a == b:
            raise ValueError(f"fault {text!r}: swap needs two different phases")
        return Fault(target, kind, (a, b))
    if kind == "ratio":
        try:
            factor = float(arg)
        except ValueError:
            factor = math.nan
        if not (math.isfinite(factor) and 1e-3 <= factor <= 1e3) or factor == 1.0:
            raise ValueError(
                f"fault {text!r}: ratio takes a factor between 0.001 and 1000 other than 1, e.g. 10"
            )
        return Fault(target, kind, factor=factor)
    raise ValueError(f"fault {text!r}: unknown kind {kind!r}; one of {', '.join(FAULT_KINDS)}")


def check_faults(config: Any, faults: list[str]) -> list[Fault]:
    """The faults, each checked against the site ``config`` (a :class:`~meterhub.config.schema.SiteConfig`,
    which imports this module): its circuit (or device) exists and has the phases named. ValueError for
    the first that does not."""
    out = []
    circuits = {c.id: c for c in config.circuits}
    devices = {d.id for d in config.devices}
    for text in faults:
        fault = parse_fault(text)
        if fault.kind == "drop":
            if fault.target not in devices:
                raise ValueError(
                    f"fault {text!r}: no device {fault.target!r} (drop names a voltage unit or meter)"
                )
        else:
            circuit = circuits.get(fault.target)
            if circuit is None:
                raise ValueError(f"fault {text!r}: no circuit {fault.target!r}")
            missing = [p.value for p in fault.phases if p not in circuit.supply_phases]
            if missing:
                have = ", ".join(p.value for p in circuit.supply_phases)
                raise ValueError(
                    f"fault {text!r}: circuit {circuit.id!r} has no {', '.join(missing)} (it has {have})"
                )
        out.append(fault)
    return out
