"""The quantity catalogue: the one place that names quantities.

Every value in meterhub — a driver's reading, a stored series, an API or MQTT payload, a UI label —
is named by an id from :data:`CATALOGUE`. Drivers map vendor names to these ids in their profile.

OBIS codes (IEC 62056-61 value group C.D.E) are given where the standard defines one. The C field
encodes the phase: for the "sum over phases" code ``c``, L1 is ``c + 20``, L2 is ``c + 40`` and L3 is
``c + 60`` (IEC 62056-61 Table 5, the convention DLMS meters such as seed 002 follow). The E field is
the tariff (0 = total, 1…5 = tariff rate registers), see :func:`obis_code`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from meterhub.model.topology import Phase

__all__ = [
    "CATALOGUE",
    "FOUR_QUADRANT_ENERGY",
    "Kind",
    "Quantity",
    "Total",
    "UnknownQuantityError",
    "get",
    "obis_code",
]


class Kind(StrEnum):
    """How a quantity behaves in time."""

    INSTANTANEOUS = "instantaneous"  # a value at (or averaged over a short window around) a moment
    CUMULATIVE = "cumulative"  # a register that only grows (Home Assistant's total_increasing)
    INTERVAL = "interval"  # a value that belongs to an interval (demand, cost, consumption)
    SPECTRUM = "spectrum"  # a vector indexed by harmonic order 0…50 (IEC 61000-4-7)


class Total(StrEnum):
    """What the ``total`` phase of a quantity means."""

    SUM = "sum"  # sum over phases (powers, energies)
    MEAN = "mean"  # average over phases (voltages, currents)
    SYSTEM = "system"  # a system quantity in its own right (frequency, total PF = P/Se, unbalance)
    NONE = "none"  # the quantity has no total


PER_PHASE = (Phase.L1, Phase.L2, Phase.L3)
ALL = (Phase.L1, Phase.L2, Phase.L3, Phase.TOTAL)
WITH_N = (Phase.L1, Phase.L2, Phase.L3, Phase.N, Phase.TOTAL)
SYSTEM_ONLY = (Phase.TOTAL,)


@dataclass(frozen=True, slots=True)
class Quantity:
    """One catalogue entry.

    Attributes
    ----------
    id : snake_case identifier used in every payload.
    unit : SI (or customary electrical) unit symbol, "" for dimensionless.
    kind : :class:`Kind`.
    phases : the phase values a series of this quantity may carry.
    total : what the ``total`` phase means.
    obis_c, obis_d : OBIS value groups C and D of the *total* code, if the standard has one.
    description : one line for people (UI tooltips, docs).
    signed : True when the value carries a sign convention (stated in the description).
    """

    id: str
    unit: str
    kind: Kind
    description: str
    phases: tuple[Phase, ...] = ALL
    total: Total = Total.SUM
    obis_c: int | None = None
    obis_d: int | None = None
    signed: bool = False
    per_phase_obis: bool = True
    extra_obis: dict[Phase, str] = field(default_factory=dict)

    @property
    def obis(self) -> str | None:
        """OBIS code of the total (tariff 0), e.g. ``1.0.1.8.0``."""
        return obis_code(self, Phase.TOTAL)


class UnknownQuantityError(KeyError):
    """A name that is not in the catalogue."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        close = [q for q in CATALOGUE if name_similarity(q, self.name)]
        hint = f" (did you mean {', '.join(close[:3])}?)" if close else ""
        return f"unknown quantity {self.name!r}{hint}"


def name_similarity(a: str, b: str) -> bool:
    """True when two ids share a leading word, for 'did you mean' hints."""
    return a.split("_")[0] == b.split("_")[0]


def obis_code(q: Quantity, phase: Phase | None, tariff: int = 0) -> str | None:
    """OBIS code ``A.B.C.D.E`` (A=1 electricity, B=0 channel) for a series, or None.

    Parameters
    ----------
    q : the quantity.
    phase : the phase of the series; ``None`` or ``total`` gives the sum code.
    tariff : tariff rate register 0…5 (value group E). [-]
    """
    if phase is not None and phase in q.extra_obis:
        return q.extra_obis[phase]
    if q.obis_c is None or q.obis_d is None:
        return None
    if phase is None or phase is Phase.TOTAL:
        c = q.obis_c
    elif phase is Phase.N or not q.per_phase_obis:
        return None
    else:
        c = q.obis_c + {Phase.L1: 20, Phase.L2: 40, Phase.L3: 60}[phase]
    return f"1.0.{c}.{q.obis_d}.{tariff}"


_INST = Kind.INSTANTANEOUS
_CUM = Kind.CUMULATIVE
_INT = Kind.INTERVAL
_SPEC = Kind.SPECTRUM

_ENTRIES: tuple[Quantity, ...] = (
    # --- voltage -----------------------------------------------------------------------------
    Quantity(
        "voltage",
        "V",
        _INST,
        "Phase-to-neutral RMS voltage; total is the average of the phases",
        total=Total.MEAN,
        obis_c=12,
        obis_d=7,
        extra_obis={Phase.L1: "1.0.32.7.0", Phase.L2: "1.0.52.7.0", Phase.L3: "1.0.72.7.0"},
    ),
    Quantity(
        "voltage_line",
        "V",
        _INST,
        "Line-to-line RMS voltage (L1 = L1–L2, L2 = L2–L3, L3 = L3–L1); total is the average",
        total=Total.MEAN,
    ),
    Quantity(
        "voltage_max",
        "V",
        _INST,
        "Maximum phase-to-neutral RMS voltage since reset",
        total=Total.NONE,
        phases=PER_PHASE,
    ),
    Quantity(
        "voltage_min",
        "V",
        _INST,
        "Minimum phase-to-neutral RMS voltage since reset",
        total=Total.NONE,
        phases=PER_PHASE,
    ),
    Quantity(
        "voltage_line_max",
        "V",
        _INST,
        "Maximum line-to-line RMS voltage since reset",
        total=Total.NONE,
        phases=PER_PHASE,
    ),
    Quantity(
        "voltage_line_min",
        "V",
        _INST,
        "Minimum line-to-line RMS voltage since reset",
        total=Total.NONE,
        phases=PER_PHASE,
    ),
    Quantity(
        "voltage_zero_sequence",
        "V",
        _INST,
        "Zero-sequence voltage U0 = |U1+U2+U3|/3 (fundamental)",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        "voltage_unbalance_negative",
        "%",
        _INST,
        "Negative-sequence voltage unbalance u2 = |U-|/|U+| (IEC 61000-4-30 §5.7)",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        "voltage_unbalance_zero",
        "%",
        _INST,
        "Zero-sequence voltage unbalance u0 = |U0|/|U+|",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    # --- current -----------------------------------------------------------------------------
    Quantity(
        "current",
        "A",
        _INST,
        "RMS current; N is the neutral (measured, or the vector sum of the phases); total is the average",
        phases=WITH_N,
        total=Total.MEAN,
        obis_c=11,
        obis_d=7,
        extra_obis={
            Phase.L1: "1.0.31.7.0",
            Phase.L2: "1.0.51.7.0",
            Phase.L3: "1.0.71.7.0",
            Phase.N: "1.0.91.7.0",
        },
    ),
    Quantity(
        "current_neutral_calculated",
        "A",
        _INST,
        "Neutral current calculated as the vector sum of the phase currents",
        phases=(Phase.N,),
        total=Total.NONE,
    ),
    Quantity("current_max", "A", _INST, "Maximum RMS current since reset", phases=WITH_N, total=Total.NONE),
    Quantity(
        "current_unbalance_negative",
        "%",
        _INST,
        "Negative-sequence current unbalance i2 = |I-|/|I+|",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        "current_unbalance_zero",
        "%",
        _INST,
        "Zero-sequence current unbalance i0 = |I0|/|I+|",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    # --- power -------------------------------------------------------------------------------
    Quantity(
        "active_power",
        "W",
        _INST,
        "Active power P; positive = import (consumption), negative = export",
        obis_c=16,
        obis_d=7,
        signed=True,
    ),
    Quantity("active_power_import", "W", _INST, "Active power import P+ (QI + QIV)", obis_c=1, obis_d=7),
    Quantity("active_power_export", "W", _INST, "Active power export P− (QII + QIII)", obis_c=2, obis_d=7),
    Quantity(
        "reactive_power",
        "var",
        _INST,
        "Fundamental reactive power Q1 (IEEE 1459 §3.1.2.4); positive = inductive (QI, QII)",
        signed=True,
    ),
    Quantity("nonactive_power", "var", _INST, "Nonactive power N = √(S² − P²) (IEEE 1459 §3.1.2.9)"),
    Quantity(
        "apparent_power",
        "VA",
        _INST,
        "Apparent power S = U·I per phase; total is the effective apparent power Se (IEEE 1459 §3.2.2.7)",
        total=Total.SYSTEM,
        obis_c=9,
        obis_d=7,
    ),
    Quantity(
        "apparent_power_arithmetic",
        "VA",
        _INST,
        "Arithmetic apparent power ΣS of the phases",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        "apparent_power_vector",
        "VA",
        _INST,
        "Vector apparent power |ΣP + jΣQ|",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        "power_factor",
        "",
        _INST,
        "Power factor λ = P/S per phase; total = P/Se (effective, IEEE 1459); signed as P",
        total=Total.SYSTEM,
        obis_c=13,
        obis_d=7,
        signed=True,
    ),
    Quantity(
        "displacement_power_factor",
        "",
        _INST,
        "Displacement power factor cos φ1 = P1/S1 of the fundamental",
        total=Total.SYSTEM,
        signed=True,
    ),
    Quantity(
        "power_predicted",
        "W",
        _INST,
        "Predicted average active power at the end of the current demand interval (seed 003)",
        phases=SYSTEM_ONLY,
    ),
    # --- frequency and angles ----------------------------------------------------------------
    Quantity(
        "frequency",
        "Hz",
        _INST,
        "Supply frequency",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
        obis_c=14,
        obis_d=7,
    ),
    Quantity(
        "angle_voltage",
        "°",
        _INST,
        "Phase angle of the fundamental voltage of each phase, referenced to U L1 (0°)",
        phases=PER_PHASE,
        total=Total.NONE,
        extra_obis={Phase.L2: "1.0.81.7.1", Phase.L3: "1.0.81.7.2"},
    ),
    Quantity(
        "angle_current",
        "°",
        _INST,
        "Phase angle of the fundamental current of each phase, referenced to U L1 (0°)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        "angle_voltage_current",
        "°",
        _INST,
        "Angle from the phase's fundamental voltage to its current (φ1; positive = current lags)",
        phases=PER_PHASE,
        total=Total.NONE,
        extra_obis={Phase.L1: "1.0.81.7.4", Phase.L2: "1.0.81.7.15", Phase.L3: "1.0.81.7.26"},
    ),
    # --- distortion --------------------------------------------------------------------------
    Quantity(
        "thd_voltage",
        "%",
        _INST,
        "Voltage THD to the 50th order, of the fundamental (IEC 61000-4-7)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        "thd_current",
        "%",
        _INST,
        "Current THD to the 50th order, of the fundamental (IEC 61000-4-7)",
        phases=WITH_N[:3] + (Phase.N,),
        total=Total.NONE,
    ),
    Quantity(
        "tohd_voltage",
        "%",
        _INST,
        "Voltage total odd harmonic distortion (orders 3, 5 … 49)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        "tehd_voltage",
        "%",
        _INST,
        "Voltage total even harmonic distortion (orders 2, 4 … 50)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        "tohd_current",
        "%",
        _INST,
        "Current total odd harmonic distortion",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        "tehd_current",
        "%",
        _INST,
        "Current total even harmonic distortion",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        "harmonics_voltage",
        "V",
        _SPEC,
        "RMS voltage of harmonic subgroups 0…50 (IEC 61000-4-7 §5.6, as IEC 61000-4-30 class A uses)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        "harmonics_current",
        "A",
        _SPEC,
        "RMS current of harmonic subgroups 0…50 (IEC 61000-4-7 §5.6, as IEC 61000-4-30 class A uses)",
        phases=WITH_N[:3] + (Phase.N,),
        total=Total.NONE,
    ),
    Quantity(
        "harmonics_voltage_percent",
        "%",
        _SPEC,
        "Voltage harmonic subgroups 0…50 in % of the fundamental",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        "harmonics_current_percent",
        "%",
        _SPEC,
        "Current harmonic subgroups 0…50 in % of the fundamental",
        phases=WITH_N[:3] + (Phase.N,),
        total=Total.NONE,
    ),
    Quantity(
        "crest_factor_voltage", "", _INST, "Voltage crest factor peak/RMS", phases=PER_PHASE, total=Total.NONE
    ),
    Quantity(
        "crest_factor_current", "", _INST, "Current crest factor peak/RMS", phases=PER_PHASE, total=Total.NONE
    ),
    Quantity(
        "k_factor",
        "",
        _INST,
        "Transformer K-factor Σ(Ih/I)²·h² (UL 1561)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        "factor_k",
        "",
        _INST,
        "Transformer derating factor K (BS 7821 / IEC 61378-1 Annex)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    # --- energy registers (cumulative, float64, never decrease) -------------------------------
    Quantity("energy_active_import", "Wh", _CUM, "Active energy import A+ (QI + QIV)", obis_c=1, obis_d=8),
    Quantity("energy_active_export", "Wh", _CUM, "Active energy export A− (QII + QIII)", obis_c=2, obis_d=8),
    Quantity(
        "energy_active_net",
        "Wh",
        _INST,
        "Net active energy A+ − A− (may decrease)",
        obis_c=16,
        obis_d=8,
        signed=True,
    ),
    Quantity("energy_active_absolute", "Wh", _CUM, "Absolute active energy |A+| + |A−|", obis_c=15, obis_d=8),
    Quantity(
        "energy_reactive_import", "varh", _CUM, "Reactive energy import R+ (QI + QII)", obis_c=3, obis_d=8
    ),
    Quantity(
        "energy_reactive_export", "varh", _CUM, "Reactive energy export R− (QIII + QIV)", obis_c=4, obis_d=8
    ),
    Quantity(
        "energy_reactive_q1",
        "varh",
        _CUM,
        "Reactive energy in quadrant I (import, inductive)",
        obis_c=5,
        obis_d=8,
    ),
    Quantity(
        "energy_reactive_q2",
        "varh",
        _CUM,
        "Reactive energy in quadrant II (export, capacitive)",
        obis_c=6,
        obis_d=8,
    ),
    Quantity(
        "energy_reactive_q3",
        "varh",
        _CUM,
        "Reactive energy in quadrant III (export, inductive)",
        obis_c=7,
        obis_d=8,
    ),
    Quantity(
        "energy_reactive_q4",
        "varh",
        _CUM,
        "Reactive energy in quadrant IV (import, capacitive)",
        obis_c=8,
        obis_d=8,
    ),
    Quantity("energy_apparent", "VAh", _CUM, "Apparent energy (import)", obis_c=9, obis_d=8),
    Quantity("energy_apparent_export", "VAh", _CUM, "Apparent energy (export)", obis_c=10, obis_d=8),
    # --- demand (interval) -------------------------------------------------------------------
    Quantity(
        "demand_active_import",
        "W",
        _INT,
        "Active import demand: mean P+ over the demand interval",
        phases=SYSTEM_ONLY,
        obis_c=1,
        obis_d=4,
    ),
    Quantity(
        "demand_active_export",
        "W",
        _INT,
        "Active export demand: mean P− over the demand interval",
        phases=SYSTEM_ONLY,
        obis_c=2,
        obis_d=4,
    ),
    Quantity(
        "demand_reactive_import",
        "var",
        _INT,
        "Reactive import demand",
        phases=SYSTEM_ONLY,
        obis_c=3,
        obis_d=4,
    ),
    Quantity("demand_apparent", "VA", _INT, "Apparent demand", phases=SYSTEM_ONLY, obis_c=9, obis_d=4),
    Quantity(
        "demand_current",
        "A",
        _INT,
        "Average current over the demand interval (max average current)",
        phases=PER_PHASE + (Phase.N,),
        total=Total.MEAN,
    ),
    Quantity(
        "max_demand_active_import",
        "W",
        _INT,
        "Maximum active import demand since reset",
        phases=SYSTEM_ONLY,
        obis_c=1,
        obis_d=6,
    ),
    Quantity(
        "max_demand_active_export",
        "W",
        _INT,
        "Maximum active export demand since reset",
        phases=SYSTEM_ONLY,
        obis_c=2,
        obis_d=6,
    ),
    Quantity(
        "max_demand_apparent",
        "VA",
        _INT,
        "Maximum apparent demand since reset",
        phases=SYSTEM_ONLY,
        obis_c=9,
        obis_d=6,
    ),
    Quantity(
        "max_demand_current",
        "A",
        _INT,
        "Maximum average current since reset",
        phases=PER_PHASE + (Phase.N,),
        total=Total.NONE,
    ),
    Quantity(
        "demand_active_import_predicted",
        "W",
        _INT,
        "Predicted active import demand at the end of the running interval",
        phases=SYSTEM_ONLY,
    ),
    # --- cost and emissions (interval) -------------------------------------------------------
    Quantity(
        "cost", "currency", _INT, "Energy cost in the site currency over an interval", phases=SYSTEM_ONLY
    ),
    Quantity("co2", "kg", _INT, "CO2-equivalent emissions over an interval", phases=SYSTEM_ONLY),
    # --- other inputs ------------------------------------------------------------------------
    Quantity("pulse_count", "", _CUM, "Raw S0 pulse count", phases=SYSTEM_ONLY),
    Quantity("volume_gas", "m³", _CUM, "Gas volume from a pulse meter", phases=SYSTEM_ONLY),
    Quantity("volume_water", "m³", _CUM, "Water volume from a pulse meter", phases=SYSTEM_ONLY),
    Quantity("volume_oil", "m³", _CUM, "Oil volume from a pulse meter", phases=SYSTEM_ONLY),
    Quantity("volume_flow", "m³/h", _INST, "Volume flow rate from a pulse meter", phases=SYSTEM_ONLY),
    Quantity(
        "operating_hours",
        "h",
        _CUM,
        "Hour counter: time with load above threshold (seed 003)",
        phases=SYSTEM_ONLY,
    ),
    Quantity(
        "temperature",
        "°C",
        _INST,
        "Temperature (e.g. DS18B20 probe, device internal)",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        "digital_input",
        "",
        _INST,
        "Digital input state 0/1 (breaker OF/SD, door, run/fault)",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity("relay_output", "", _INST, "Relay output state 0/1", phases=SYSTEM_ONLY, total=Total.SYSTEM),
    Quantity(
        "analog_input",
        "",
        _INST,
        "Analog input scaled to its configured engineering unit",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        "analog_output",
        "",
        _INST,
        "Analog output value in its configured engineering unit",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
)

#: The seven four-quadrant energy registers a meter accumulates (seed 002 §energy; IEC 62053-23 quadrants),
#: in the order the metering engine and the simulators store them.
FOUR_QUADRANT_ENERGY = (
    "energy_active_import",
    "energy_active_export",
    "energy_reactive_q1",
    "energy_reactive_q2",
    "energy_reactive_q3",
    "energy_reactive_q4",
    "energy_apparent",
)

#: id → Quantity. The only table of quantity names in meterhub.
CATALOGUE: dict[str, Quantity] = {q.id: q for q in _ENTRIES}
if len(CATALOGUE) != len(_ENTRIES):  # pragma: no cover - guards edits to the table above
    raise RuntimeError("duplicate quantity id in the catalogue")


def get(name: str) -> Quantity:
    """Return the catalogue entry for ``name`` or raise :class:`UnknownQuantityError`."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownQuantityError(name) from None
