"""Symmetrical components and unbalance (Fortescue; IEC 61000-4-30 §5.7.1).

With ``a = e^{j120°}`` and fundamental phasors ``X1, X2, X3`` of phases L1, L2, L3:

* zero sequence ``X0 = (X1 + X2 + X3)/3``
* positive sequence ``X+ = (X1 + a·X2 + a²·X3)/3``
* negative sequence ``X− = (X1 + a²·X2 + a·X3)/3``
* unbalance ``u2 = |X−|/|X+|·100 %`` and ``u0 = |X0|/|X+|·100 %``.

Example (issue 3): 100∠0°, 90∠−120°, 100∠120° → u2 = u0 = 3.4483 %.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["sequence_components", "unbalance"]

_A = np.exp(2j * np.pi / 3)


def sequence_components(
    x: NDArray[np.complex128],
) -> tuple[NDArray[np.complex128], NDArray[np.complex128], NDArray[np.complex128]]:
    """Zero, positive and negative sequence phasors of ``x`` (3, ...) [unit of x]."""
    x1, x2, x3 = x[0], x[1], x[2]
    zero = (x1 + x2 + x3) / 3.0
    pos = (x1 + _A * x2 + _A * _A * x3) / 3.0
    neg = (x1 + _A * _A * x2 + _A * x3) / 3.0
    return zero, pos, neg


def unbalance(x: NDArray[np.complex128]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Negative- and zero-sequence unbalance u2, u0 of phasors ``x`` (3, ...) [%]."""
    zero, pos, neg = sequence_components(x)
    ap = np.abs(pos)
    with np.errstate(divide="ignore", invalid="ignore"):
        u2 = np.where(ap > 0, 100.0 * np.abs(neg) / ap, 0.0)
        u0 = np.where(ap > 0, 100.0 * np.abs(zero) / ap, 0.0)
    return u2, u0
