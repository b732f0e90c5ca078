"""Four-quadrant energy from window powers (IEC 62053-23 quadrant convention, seed 002).

Quadrants of the (P, Q) plane, P positive for import, Q positive inductive:

* QI: P ≥ 0, Q ≥ 0 · QII: P < 0, Q ≥ 0 · QIII: P < 0, Q < 0 · QIV: P ≥ 0, Q < 0.

Per window of duration T: ``A+ = max(P, 0)·T``, ``A− = max(−P, 0)·T``, reactive ``|Q|·T`` into the
register of the window's quadrant, apparent ``S·T`` (for the total: Se). Values in Wh, varh, VAh.

Seed 002 defines the active registers by quadrant (import A+ = |QI| + |QIV|, export A− = |QII| + |QIII|)
and names reactive import and export without a formula; meterhub follows IEC 62053-23 and OBIS
(C = 3, 4): reactive import ``R+ = QI + QII = max(Q, 0)·T`` (Q ≥ 0, the current lags the voltage),
reactive export ``R− = QIII + QIV = max(−Q, 0)·T``. The seven registers above are accumulated; R+
and R− are published beside them as the sums of their quadrant registers
(:data:`~meterhub.model.quantities.REACTIVE_QUADRANTS`), so ``R+ = Q1 + Q2`` holds exactly at every
instant and they never decrease either. Example: 230 V, 10 A, φ = +30° (lagging) for one hour is
Q = 230·10·sin 30° = 1150 var in QI: 1150 varh in Q1 and in R+, nothing in R−.

Whether the phases are netted before the sign split is configurable: netted (the default, as a
three-phase meter's total registers) splits ΣP and ΣQ; not netted sums each phase's split registers,
so import on L1 and export on L2 in the same window both count.

Registers are float64 accumulated with Neumaier compensation, so adding a 1 mWh window to a
1 GWh register is not lost, and they never decrease (every increment is ≥ 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from meterhub.model.quantities import FOUR_QUADRANT_ENERGY, REACTIVE_QUADRANTS, Q

__all__ = [
    "ENERGY_IDS",
    "REGISTER_IDS",
    "CompensatedSum",
    "EnergyRegisters",
    "add_compensated",
    "named_registers",
    "window_energy",
]

F64 = NDArray[np.float64]

ENERGY_IDS = FOUR_QUADRANT_ENERGY
"""The seven accumulated registers in catalogue order (:data:`meterhub.model.quantities.FOUR_QUADRANT_ENERGY`)."""

REGISTER_IDS = (*ENERGY_IDS, *REACTIVE_QUADRANTS)
"""What a circuit's registers publish: the seven, then reactive import R+ and export R−."""

_REACTIVE_SUMS = tuple(
    (name, ENERGY_IDS.index(a), ENERGY_IDS.index(b)) for name, (a, b) in REACTIVE_QUADRANTS.items()
)


def named_registers(values: list[float]) -> dict[str, float]:
    """The seven register values (in :data:`ENERGY_IDS` order) by name, with R+ = Q1 + Q2 and
    R− = Q3 + Q4 added (:data:`REGISTER_IDS`) [Wh, varh, VAh]."""
    out: dict[str, float] = dict(zip(ENERGY_IDS, values, strict=True))
    for name, a, b in _REACTIVE_SUMS:
        out[name] = values[a] + values[b]
    return out


def window_energy(p: F64, q: F64, s: F64, duration: F64) -> dict[str, F64]:
    """Energy increments of each window [Wh, varh, VAh]: the seven :data:`ENERGY_IDS` and reactive
    import R+ = max(Q, 0)·T and export R− = max(−Q, 0)·T (IEC 62053-23; :data:`REGISTER_IDS`).

    p : active power [W]; q : fundamental reactive power Q1 [var], positive when the current lags;
    s : apparent power [VA]; duration : [s]. Arrays broadcast; the result has their common shape.
    """
    h = duration / 3600.0
    imp = p >= 0
    qpos = q >= 0
    return {
        Q.ENERGY_ACTIVE_IMPORT: np.where(imp, p, 0.0) * h,
        Q.ENERGY_ACTIVE_EXPORT: np.where(imp, 0.0, -p) * h,
        Q.ENERGY_REACTIVE_Q1: np.where(imp & qpos, q, 0.0) * h,
        Q.ENERGY_REACTIVE_Q2: np.where(~imp & qpos, q, 0.0) * h,
        Q.ENERGY_REACTIVE_Q3: np.where(~imp & ~qpos, -q, 0.0) * h,
        Q.ENERGY_REACTIVE_Q4: np.where(imp & ~qpos, -q, 0.0) * h,
        Q.ENERGY_APPARENT: np.abs(s) * h,
        Q.ENERGY_REACTIVE_IMPORT: np.where(qpos, q, 0.0) * h,
        Q.ENERGY_REACTIVE_EXPORT: np.where(qpos, 0.0, -q) * h,
    }


def add_compensated(sums: F64, comps: F64, x: F64) -> None:
    """Add ``x`` to the float64 running sums ``sums`` with Neumaier compensation in ``comps`` (in place;
    arrays of any equal shape, e.g. the (circuits, groups, 7) registers of a group of circuits)."""
    t = sums + x
    comps += np.where(np.abs(sums) >= np.abs(x), (sums - t) + x, (x - t) + sums)
    sums[...] = t


@dataclass
class CompensatedSum:
    """A float64 running sum with Neumaier compensation."""

    total: float = 0.0
    comp: float = 0.0

    def add(self, x: float) -> None:
        t = self.total + x
        if abs(self.total) >= abs(x):
            self.comp += (self.total - t) + x
        else:
            self.comp += (x - t) + self.total
        self.total = t

    @property
    def value(self) -> float:
        return self.total + self.comp


@dataclass
class EnergyRegisters:
    """Energy registers of one circuit: group ("L1" … "total") → the seven :data:`ENERGY_IDS`.

    Each group holds a float64 sum and its Neumaier compensation as arrays of seven, updated together.
    """

    sums: dict[str, F64] = field(default_factory=dict)
    comps: dict[str, F64] = field(default_factory=dict)

    def _group(self, group: str) -> tuple[F64, F64]:
        if group not in self.sums:
            self.sums[group] = np.zeros(len(ENERGY_IDS))
            self.comps[group] = np.zeros(len(ENERGY_IDS))
        return self.sums[group], self.comps[group]

    def add_totals(self, group: str, x: F64) -> None:
        """Add one increment per register (seven values, in :data:`ENERGY_IDS` order) [Wh …]."""
        add_compensated(*self._group(group), x)

    def add(self, increments: dict[str, dict[str, F64]]) -> None:
        """Add per-window increments (group → energy id → array of window energies) [Wh …].

        Pairwise summation inside the block, compensated across blocks.
        """
        for group, vals in increments.items():
            self.add_totals(
                group, np.array([float(np.sum(vals[k])) if k in vals else 0.0 for k in ENERGY_IDS])
            )

    def preset(self, group: str, energy_id: str, value: float) -> None:
        """Start a register at ``value`` (e.g. restored from storage) [Wh …]."""
        s, c = self._group(group)
        k = ENERGY_IDS.index(energy_id)
        s[k], c[k] = float(value), 0.0

    def values(self) -> dict[str, dict[str, float]]:
        """Current register values, reactive import and export included (:func:`named_registers`)
        [Wh, varh, VAh]."""
        return {g: named_registers((s + self.comps[g]).tolist()) for g, s in self.sums.items()}
