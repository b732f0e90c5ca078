"""Pure data of the wire formats meterhub speaks over MQTT (docs/publish.md has the mappings).

Both directions need these tables: ``publish`` encodes readings into the formats and the MQTT ingest
driver (``drivers/mqtt``) decodes them back, so they live in the model layer, below both.

:data:`RTDATA_FIELDS`
    the seed 001 ``rtdata`` field list ↔ catalogue quantity and phase, in the seed's units (W, var, VA, V,
    A, Hz, Wh, varh, VAh, degrees — the catalogue's own units).
:data:`METERHUB_JSON_SCHEMA`
    the ``schema`` field of every ``meterhub-json`` message.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from meterhub.model.quantities import Q
from meterhub.model.readings import Quality
from meterhub.model.topology import Phase

__all__ = [
    "METERHUB_JSON_QUALITY",
    "METERHUB_JSON_SCHEMA",
    "RTDATA_FIELDS",
    "RTDATA_PHASES",
    "Combine",
    "RtField",
]

#: The ``schema`` field of every meterhub-json message (bumped on an incompatible change).
METERHUB_JSON_SCHEMA = "meterhub-json/1"
#: A value's quality as meterhub-json spells it (``good``, ``estimated``, ``flagged``, ``invalid``).
METERHUB_JSON_QUALITY: dict[Quality, str] = {q: q.name.lower() for q in Quality}

#: The phases of the numbered rtdata fields (``V1``, ``V2``, ``V3`` …).
RTDATA_PHASES = (Phase.L1, Phase.L2, Phase.L3)


class Combine(StrEnum):
    """How a system field is made when the circuit reports no total of its own."""

    NONE = "none"  # only the circuit's own value
    MEAN = "mean"  # mean of the phases (voltages)
    SUM = "sum"  # sum of the phases (powers, energies, and Eniscope's system current)


@dataclass(frozen=True, slots=True)
class RtField:
    """One rtdata field: its catalogue quantity and phase; for a system field how to combine phases."""

    name: str
    quantity: str
    phase: Phase | None
    combine: Combine = Combine.NONE
    prefer_phases: bool = False  # use the combination of the phases even when a total exists


def _three(prefix: str, quantity: str) -> list[RtField]:
    return [RtField(f"{prefix}{n}", quantity, ph) for n, ph in zip((1, 2, 3), RTDATA_PHASES, strict=True)]


#: The seed 001 rtdata fields in the seed's order of listing (uid, did, ts are added per circuit).
RTDATA_FIELDS: tuple[RtField, ...] = (
    *_three("V", Q.VOLTAGE),
    RtField("V", Q.VOLTAGE, Phase.TOTAL, Combine.MEAN),
    *_three("U", Q.VOLTAGE_LINE),
    RtField("U", Q.VOLTAGE_LINE, Phase.TOTAL, Combine.MEAN),
    *_three("I", Q.CURRENT),
    # Seed 001's example has I = I1 + I2 + I3 (7.2894 = 2.436 + 2.423 + 2.4304), where the catalogue's
    # total current is the mean of the phases: the phases are summed whenever they are there.
    RtField("I", Q.CURRENT, Phase.TOTAL, Combine.SUM, prefer_phases=True),
    RtField("In", Q.CURRENT, Phase.N),
    *_three("P", Q.ACTIVE_POWER),
    RtField("P", Q.ACTIVE_POWER, Phase.TOTAL, Combine.SUM),
    *_three("Q", Q.REACTIVE_POWER),
    RtField("Q", Q.REACTIVE_POWER, Phase.TOTAL, Combine.SUM),
    *_three("S", Q.APPARENT_POWER),
    RtField("S", Q.APPARENT_POWER, Phase.TOTAL, Combine.SUM),
    *_three("PF", Q.POWER_FACTOR),
    RtField("PF", Q.POWER_FACTOR, Phase.TOTAL),
    *_three("A", Q.ANGLE_VOLTAGE_CURRENT),
    RtField("F", Q.FREQUENCY, Phase.TOTAL),
    RtField("E", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL, Combine.SUM),
    *_three("E", Q.ENERGY_ACTIVE_IMPORT),
    RtField("Ex", Q.ENERGY_ACTIVE_EXPORT, Phase.TOTAL, Combine.SUM),
    *_three("Ex", Q.ENERGY_ACTIVE_EXPORT),
    RtField("RE", Q.ENERGY_REACTIVE_IMPORT, Phase.TOTAL, Combine.SUM),
    *_three("RE", Q.ENERGY_REACTIVE_IMPORT),
    RtField("REx", Q.ENERGY_REACTIVE_EXPORT, Phase.TOTAL, Combine.SUM),
    *_three("REx", Q.ENERGY_REACTIVE_EXPORT),
    RtField("AE", Q.ENERGY_APPARENT, Phase.TOTAL, Combine.SUM),
    *_three("AE", Q.ENERGY_APPARENT),
)
