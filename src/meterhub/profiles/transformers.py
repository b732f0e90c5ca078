"""CT/VT ratios per profile: which values of a device a circuit's ratio multiplies, and by how much.

A profile's ``transformers:`` says whether the device reports PRIMARY values (it applies its own CT/VT
ratio, its CT is built in, or it is connected directly) or SECONDARY values (what its inputs see;
meterhub applies the circuit's ``ct.ratio`` and ``vt_ratio``). Secondary currents scale by the CT ratio,
voltages by the VT ratio, powers, energies and demands by both (P = U·I); power factors, angles,
frequency and percentages do not change. The reader (:mod:`meterhub.drivers.modbus.mapping`) multiplies,
the simulator divides, both by :func:`ratio_factor`.
"""

from __future__ import annotations

from meterhub.config.schema import Circuit
from meterhub.model.quantities import CATALOGUE
from meterhub.profiles.schema import Profile

__all__ = ["circuit_ratios", "fixed_ratio_reason", "ratio_factor"]

#: catalogue unit → (power of the CT ratio, power of the VT ratio) in the primary value
_EXPONENTS: dict[str, tuple[int, int]] = {
    "A": (1, 0),
    "V": (0, 1),
    "W": (1, 1),
    "var": (1, 1),
    "VA": (1, 1),
    "Wh": (1, 1),
    "varh": (1, 1),
    "VAh": (1, 1),
}
_FACTORS: dict[tuple[str, float, float], float] = {}


def ratio_factor(quantity: str, ct: float, vt: float) -> float:
    """primary value / secondary value of ``quantity`` behind a CT of ratio ``ct`` and a VT of ratio
    ``vt`` [-] (e.g. current: ct; voltage: vt; active energy: ct · vt; power factor: 1)."""
    key = (quantity, ct, vt)
    f = _FACTORS.get(key)
    if f is None:
        a, b = _EXPONENTS.get(CATALOGUE[quantity].unit, (0, 0))
        f = _FACTORS[key] = ct**a * vt**b
    return f


def circuit_ratios(profile: Profile, circuit: Circuit) -> tuple[float, float]:
    """(CT ratio, VT ratio) [-] meterhub applies to the values of ``circuit`` read from a ``profile``
    device: the circuit's own where the profile reports secondary values, else 1."""
    ct, vt = profile.applies_ratios(circuit.ct.kind)
    return (circuit.ct.ratio.value if ct else 1.0, circuit.vt_ratio.value if vt else 1.0)


def fixed_ratio_reason(profile: Profile, circuit: Circuit, *, vt: bool) -> str | None:
    """Why the CT (``vt`` False) or VT ratio of ``circuit`` cannot be changed in meterhub, or None when
    meterhub applies it. The reason names where the ratio is set instead."""
    ct_applies, vt_applies = profile.applies_ratios(circuit.ct.kind)
    if vt_applies if vt else ct_applies:
        return None
    what = "VT" if vt else "CT"
    t = profile.transformers
    register = None if t is None else (t.vt_register if vt else t.ct_register)
    if register is not None:
        where = (
            f"set the {what} ratio in the device ({register.function.value} register "
            f"0x{register.address:04X}, {register.source})"
        )
    elif vt:
        where = "set the VT ratio in the device, if it has one"
    elif circuit.ct.kind.value in ("built-in", "direct"):
        where = "its current input is its own"
    else:
        where = "set the CT ratio in the device (its set-up menu or vendor software)"
    note = f" ({t.note})" if t is not None and t.note else ""
    return f"{profile.id} reports primary values{note}; {where}"
