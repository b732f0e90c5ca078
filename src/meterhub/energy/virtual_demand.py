"""Demand of a virtual circuit (a sum or difference of circuits) from its members' window demands."""

from __future__ import annotations

from meterhub.model.quantities import Q
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase

__all__ = ["virtual_window"]


def virtual_window(
    vid: str, end: float, coef: dict[str, int], members: dict[str, dict[str, float]]
) -> list[Reading]:
    """Demand of a virtual circuit for one window [W]. A sum adds import and export demands
    separately; a difference works on net demand (import − export) and splits it again, so a
    PV sub-circuit's export lowers the unmetered rest. A member without an export register
    counts 0 export."""
    imp = {m: members[m][Q.DEMAND_ACTIVE_IMPORT] for m in coef}
    exp = {m: members[m].get(Q.DEMAND_ACTIVE_EXPORT, 0.0) for m in coef}
    if all(c > 0 for c in coef.values()):
        d_imp = sum(c * imp[m] for m, c in coef.items())
        d_exp = sum(c * exp[m] for m, c in coef.items())
    else:
        net = sum(c * (imp[m] - exp[m]) for m, c in coef.items())
        d_imp, d_exp = max(net, 0.0), max(-net, 0.0)
    return [
        Reading(end, vid, Q.DEMAND_ACTIVE_IMPORT, Phase.TOTAL, d_imp),
        Reading(end, vid, Q.DEMAND_ACTIVE_EXPORT, Phase.TOTAL, d_exp),
    ]
