"""Virtual meters and the site balance.

* A **virtual circuit** is a signed sum of circuits: ``"main - lighting - hvac"`` is the unmetered
  rest of a board (main − Σ sub-circuits), ``"pv1 + pv2"`` a total. Coefficients are ±1 (seed 003's
  "consumption per circuit or zone" needs no more); a virtual circuit may use other virtual circuits.
* A **zone** groups circuits (``Circuit.zone`` or ``VirtualCircuit.zone``) for cost allocation.
* The **site balance** follows from circuit purposes (seed 001 renewable display):
  grid circuits measure import/export at the connection point, renewable circuits measure generation,
  and  consumption = import − export + generation,  self-consumption = generation − export
  (clipped to [0, generation]).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from meterhub.config.energy import FormulaError, parse_formula
from meterhub.energy.config import energy_of

__all__ = [
    "FormulaError",
    "SiteBalance",
    "evaluate",
    "expand",
    "parse_formula",
    "site_balance",
    "zone_members",
]


def expand(name: str, formulas: Mapping[str, str], _seen: tuple[str, ...] = ()) -> dict[str, int]:
    """Coefficients of metered circuits in a (possibly nested) virtual circuit.

    ``expand("rest", {"rest": "main - sub", "sub": "a + b"})`` → ``{"main": 1, "a": -1, "b": -1}``.
    Raises :class:`FormulaError` on a cycle.
    """
    if name not in formulas:
        return {name: 1}
    if name in _seen:
        raise FormulaError(f"virtual circuit {name!r} refers to itself via {' → '.join(_seen)}")
    out: dict[str, int] = {}
    for sign, member in parse_formula(formulas[name]):
        for leaf, coef in expand(member, formulas, (*_seen, name)).items():
            out[leaf] = out.get(leaf, 0) + sign * coef
    return {k: v for k, v in out.items() if v != 0}


def evaluate(coefficients: Mapping[str, int], values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Σ coefficient × values[circuit] (element-wise) [unit of the values]."""
    arrays = [c * np.asarray(values[name], dtype=np.float64) for name, c in coefficients.items()]
    if not arrays:
        raise FormulaError("a virtual circuit needs at least one member")
    return np.sum(arrays, axis=0)


def zone_members(config: Any, zone: str) -> list[str]:
    """Circuit ids (metered and virtual) whose zone is ``zone``."""
    members = [c.id for c in config.circuits if c.zone == zone]
    members += [v.id for v in energy_of(config).virtual if v.zone == zone]
    return members


@dataclass(frozen=True)
class SiteBalance:
    """Energy flows of a site over intervals [Wh] (arrays of equal length)."""

    grid_import: np.ndarray
    grid_export: np.ndarray
    generation: np.ndarray
    consumption: np.ndarray
    self_consumption: np.ndarray

    @property
    def self_sufficiency(self) -> np.ndarray:
        """Share of consumption covered by own generation [-] (NaN when nothing was consumed)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.consumption > 0, self.self_consumption / self.consumption, np.nan)


def site_balance(
    grid_import: Sequence[np.ndarray],
    grid_export: Sequence[np.ndarray],
    renewable: Sequence[np.ndarray],
    n: int,
) -> SiteBalance:
    """Balance from the interval energies of grid circuits (import, export) and renewable circuits.

    Parameters
    ----------
    grid_import, grid_export : per grid circuit, energy per interval [Wh].
    renewable : per renewable circuit, generated energy per interval [Wh] (the circuit's export, or
        its import when the inverter is metered as a load with reversed CTs — pass what it generates).
    n : number of intervals.
    """
    zero = np.zeros(n)
    imp = np.sum(grid_import, axis=0) if len(grid_import) else zero
    exp = np.sum(grid_export, axis=0) if len(grid_export) else zero
    gen = np.sum(renewable, axis=0) if len(renewable) else zero
    consumption = imp - exp + gen
    self_cons = np.clip(gen - exp, 0.0, gen)
    return SiteBalance(imp, exp, gen, consumption, self_cons)
