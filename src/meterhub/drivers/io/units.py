"""A pulse meter's values in its own unit, as its nameplate and the site file write it.

Readings of a pulse point carry catalogue units (the index in Wh for electricity, m³ for volumes; see
:mod:`meterhub.drivers.io.pulse`). People read a meter in the unit of its pulse weight — a gas meter in
m³, an electricity sub-meter in kWh, a water meter in litres — so these convert back.
"""

from __future__ import annotations

from meterhub.drivers.io.config import PulseUnit
from meterhub.drivers.io.pulse import UNIT_FACTOR

__all__ = ["PULSE_UNIT_TEXT", "index_in_pulse_unit", "pulse_unit_text"]

#: How a pulse weight's unit is written for people (the site file writes ``m3``; the catalogue writes m³).
PULSE_UNIT_TEXT: dict[PulseUnit, str] = {
    PulseUnit.KWH: "kWh",
    PulseUnit.WH: "Wh",
    PulseUnit.M3: "m³",
    PulseUnit.L: "l",
}


def pulse_unit_text(unit: PulseUnit) -> str:
    """The symbol of a pulse weight's unit for display (``m3`` → ``m³``)."""
    return PULSE_UNIT_TEXT[unit]


def index_in_pulse_unit(index: float, unit: PulseUnit) -> float:
    """A meter index in the unit of the pulse weight.

    Parameters
    ----------
    index : the index as its reading carries it, in the catalogue unit [Wh for electricity, m³ for volumes].
    unit : the unit of the point's pulse weight.

    Returns
    -------
    The same index in ``unit`` [kWh, Wh, m³ or l]: 12 345 Wh → 12.345 kWh, 0.5 m³ → 500 l.
    """
    return index / UNIT_FACTOR[unit]
