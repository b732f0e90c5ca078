"""Units a third-party payload may use for a catalogue quantity, and the factor to the catalogue unit.

A declared JSON mapping (MQTT ingest, docs/publish.md "MQTT ingest") names the unit a device publishes
in; values are converted to the catalogue unit of the quantity. Accepted: the catalogue unit itself and
the same unit with an SI prefix (m, k, M, G: ``kW`` → ``W`` × 1000, ``kWh`` → ``Wh`` × 1000, ``mA`` →
``A`` × 0.001). A dimensionless quantity (unit ``""``) accepts only ``""``; ``%`` and ``°`` only
themselves.
"""

from __future__ import annotations

__all__ = ["SI_PREFIXES", "accepted_units", "unit_factor"]

#: SI prefixes accepted in front of a catalogue unit → factor [-].
SI_PREFIXES: dict[str, float] = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
# Units that take no prefix (a "k%" means nothing).
_NO_PREFIX = {"", "%", "°", "°C", "h", "s", "pulses", "currency", "kg", "m³", "m³/h"}


def unit_factor(catalogue_unit: str, unit: str) -> float | None:
    """The factor that turns a value in ``unit`` into ``catalogue_unit`` [-], or None when ``unit`` is
    not one of :func:`accepted_units`."""
    if unit == catalogue_unit:
        return 1.0
    if catalogue_unit in _NO_PREFIX or len(unit) != len(catalogue_unit) + 1:
        return None
    if unit[1:] != catalogue_unit:
        return None
    return SI_PREFIXES.get(unit[0])


def accepted_units(catalogue_unit: str) -> list[str]:
    """Every unit :func:`unit_factor` converts to ``catalogue_unit``, the catalogue unit first."""
    if catalogue_unit in _NO_PREFIX:
        return [catalogue_unit]
    return [catalogue_unit, *(p + catalogue_unit for p in SI_PREFIXES)]
