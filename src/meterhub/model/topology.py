"""Enumerations of the domain model: phases, wiring systems, circuit purposes.

Site → Panel → Device → Circuit → Quantity series (see DESIGN.md "Domain model").
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Phase", "Purpose", "Wiring", "PHASES_OF_WIRING"]


class Phase(StrEnum):
    """Phase dimension of a series.

    For line-to-line quantities (``voltage_line``) ``L1`` means L1–L2, ``L2`` means L2–L3 and
    ``L3`` means L3–L1. ``TOTAL`` is the system value; whether that is a sum or an average is
    stated per quantity by :attr:`meterhub.model.quantities.Quantity.total`.
    """

    L1 = "L1"
    L2 = "L2"
    L3 = "L3"
    N = "N"
    TOTAL = "total"


class Wiring(StrEnum):
    """Wiring system of a metering point (seed 000 §6.3)."""

    P1W2 = "1P2W"  # single phase, phase + neutral
    P1W3 = "1P3W"  # split phase, two hot legs + neutral
    P3W4 = "3P4W"  # three phase with neutral (three-phase load or three single-phase loads)
    P3W3 = "3P3W"  # three phase without neutral (Aron / two-wattmeter)
    DC = "DC"


class Purpose(StrEnum):
    """What a circuit is for in the site balance (seed 001 meter setup, 003 web server)."""

    GRID = "grid"
    CONSUMABLE = "consumable"
    RENEWABLE = "renewable"


#: Phases a wiring system carries (current channels, in order).
PHASES_OF_WIRING: dict[Wiring, tuple[Phase, ...]] = {
    Wiring.P1W2: (Phase.L1,),
    Wiring.P1W3: (Phase.L1, Phase.L2),
    Wiring.P3W4: (Phase.L1, Phase.L2, Phase.L3),
    Wiring.P3W3: (Phase.L1, Phase.L2, Phase.L3),
    Wiring.DC: (Phase.L1,),
}
