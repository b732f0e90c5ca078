"""A pulse meter's index in the unit of its pulse weight (drivers/io/units)."""

from __future__ import annotations

import pytest

from meterhub.drivers.io.config import PulseUnit
from meterhub.drivers.io.units import index_in_pulse_unit, pulse_unit_text


@pytest.mark.parametrize(
    ("index", "unit", "expected"),
    [
        (12_345.0, PulseUnit.KWH, 12.345),  # 12 345 Wh on an electricity meter read in kWh
        (12_345.0, PulseUnit.WH, 12_345.0),
        (0.5, PulseUnit.L, 500.0),  # 0.5 m³ of water read in litres
        (0.5, PulseUnit.M3, 0.5),
    ],
)
def test_the_index_is_given_in_the_pulse_weights_unit(index: float, unit: PulseUnit, expected: float) -> None:
    assert index_in_pulse_unit(index, unit) == pytest.approx(expected)


def test_unit_symbols_are_written_for_people() -> None:
    assert [pulse_unit_text(u) for u in PulseUnit] == ["kWh", "Wh", "m³", "l"]
