"""The quantity catalogue: the one place that names quantities.

Every value in meterhub — a driver's reading, a stored series, an API or MQTT payload, a UI label —
is named by an id from :data:`CATALOGUE`. Drivers map vendor names to these ids in their profile.

OBIS codes (IEC 62056-61 value group C.D.E) are given where the standard defines one. The C field
encodes the phase: for the "sum over phases" code ``c``, L1 is ``c + 20``, L2 is ``c + 40`` and L3 is
``c + 60`` (IEC 62056-61 Table 5, the convention DLMS meters such as seed 002 follow). The E field is
the tariff (0 = total, 1…5 = tariff rate registers), see :func:`obis_code`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from meterhub.model.topology import Phase

__all__ = [
    "CATALOGUE",
    "DEMAND_OF",
    "SPECTRUM_QUANTITIES",
    "SUPPLY_QUANTITIES",
    "Q",
    "REACTIVE_QUADRANTS",
    "Reversal",
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


class Q(StrEnum):
    """Quantity ids as symbols: write ``Q.ACTIVE_POWER``, never the bare string ``"active_power"``.

    A test checks that the members and :data:`CATALOGUE` name the same ids, in the same order.
    """

    VOLTAGE = "voltage"
    VOLTAGE_LINE = "voltage_line"
    VOLTAGE_MAX = "voltage_max"
    VOLTAGE_MIN = "voltage_min"
    VOLTAGE_LINE_MAX = "voltage_line_max"
    VOLTAGE_LINE_MIN = "voltage_line_min"
    VOLTAGE_ZERO_SEQUENCE = "voltage_zero_sequence"
    VOLTAGE_UNBALANCE_NEGATIVE = "voltage_unbalance_negative"
    VOLTAGE_UNBALANCE_ZERO = "voltage_unbalance_zero"
    CURRENT = "current"
    CURRENT_NEUTRAL_CALCULATED = "current_neutral_calculated"
    CURRENT_MAX = "current_max"
    CURRENT_UNBALANCE_NEGATIVE = "current_unbalance_negative"
    CURRENT_UNBALANCE_ZERO = "current_unbalance_zero"
    ACTIVE_POWER = "active_power"
    ACTIVE_POWER_IMPORT = "active_power_import"
    ACTIVE_POWER_EXPORT = "active_power_export"
    REACTIVE_POWER = "reactive_power"
    NONACTIVE_POWER = "nonactive_power"
    APPARENT_POWER = "apparent_power"
    APPARENT_POWER_ARITHMETIC = "apparent_power_arithmetic"
    APPARENT_POWER_VECTOR = "apparent_power_vector"
    POWER_FACTOR = "power_factor"
    DISPLACEMENT_POWER_FACTOR = "displacement_power_factor"
    POWER_PREDICTED = "power_predicted"
    FREQUENCY = "frequency"
    ANGLE_VOLTAGE = "angle_voltage"
    ANGLE_CURRENT = "angle_current"
    ANGLE_VOLTAGE_CURRENT = "angle_voltage_current"
    THD_VOLTAGE = "thd_voltage"
    THD_CURRENT = "thd_current"
    TOHD_VOLTAGE = "tohd_voltage"
    TEHD_VOLTAGE = "tehd_voltage"
    TOHD_CURRENT = "tohd_current"
    TEHD_CURRENT = "tehd_current"
    HARMONICS_VOLTAGE = "harmonics_voltage"
    HARMONICS_CURRENT = "harmonics_current"
    HARMONICS_VOLTAGE_PERCENT = "harmonics_voltage_percent"
    HARMONICS_CURRENT_PERCENT = "harmonics_current_percent"
    CREST_FACTOR_VOLTAGE = "crest_factor_voltage"
    CREST_FACTOR_CURRENT = "crest_factor_current"
    K_FACTOR = "k_factor"
    FACTOR_K = "factor_k"
    ENERGY_ACTIVE_IMPORT = "energy_active_import"
    ENERGY_ACTIVE_EXPORT = "energy_active_export"
    ENERGY_ACTIVE_NET = "energy_active_net"
    ENERGY_ACTIVE_ABSOLUTE = "energy_active_absolute"
    ENERGY_REACTIVE_IMPORT = "energy_reactive_import"
    ENERGY_REACTIVE_EXPORT = "energy_reactive_export"
    ENERGY_REACTIVE_NET = "energy_reactive_net"
    ENERGY_REACTIVE_ABSOLUTE = "energy_reactive_absolute"
    ENERGY_REACTIVE_Q1 = "energy_reactive_q1"
    ENERGY_REACTIVE_Q2 = "energy_reactive_q2"
    ENERGY_REACTIVE_Q3 = "energy_reactive_q3"
    ENERGY_REACTIVE_Q4 = "energy_reactive_q4"
    ENERGY_APPARENT = "energy_apparent"
    ENERGY_APPARENT_EXPORT = "energy_apparent_export"
    DEMAND_ACTIVE_IMPORT = "demand_active_import"
    DEMAND_ACTIVE_EXPORT = "demand_active_export"
    DEMAND_REACTIVE_IMPORT = "demand_reactive_import"
    DEMAND_REACTIVE_EXPORT = "demand_reactive_export"
    DEMAND_APPARENT = "demand_apparent"
    DEMAND_CURRENT = "demand_current"
    MAX_DEMAND_ACTIVE_IMPORT = "max_demand_active_import"
    MAX_DEMAND_ACTIVE_EXPORT = "max_demand_active_export"
    MAX_DEMAND_REACTIVE_IMPORT = "max_demand_reactive_import"
    MAX_DEMAND_REACTIVE_EXPORT = "max_demand_reactive_export"
    MAX_DEMAND_APPARENT = "max_demand_apparent"
    MAX_DEMAND_CURRENT = "max_demand_current"
    DEMAND_ACTIVE_IMPORT_PREDICTED = "demand_active_import_predicted"
    DEMAND_REACTIVE_IMPORT_PREDICTED = "demand_reactive_import_predicted"
    DEMAND_APPARENT_PREDICTED = "demand_apparent_predicted"
    COST = "cost"
    CO2 = "co2"
    PULSE_COUNT = "pulse_count"
    VOLUME_GAS = "volume_gas"
    VOLUME_WATER = "volume_water"
    VOLUME_OIL = "volume_oil"
    VOLUME_FLOW = "volume_flow"
    OPERATING_HOURS = "operating_hours"
    TEMPERATURE = "temperature"
    DIGITAL_INPUT = "digital_input"
    RELAY_OUTPUT = "relay_output"
    ANALOG_INPUT = "analog_input"
    ANALOG_OUTPUT = "analog_output"


class Reversal(StrEnum):
    """What a current transformer mounted the wrong way round (it measures −i) does to a quantity."""

    NONE = "none"  # unaffected: voltages, magnitudes, THD
    NEGATE = "negate"  # the sign flips: P, Q, PF
    SWAP = "swap"  # trades places with its counterpart: import ↔ export, Q1 ↔ Q3, Q2 ↔ Q4
    ROTATE = "rotate"  # an angle turns by 180°


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
    supply : True when the quantity describes the supply (the voltage system), not a current channel.
    reversal : what a reversed CT does to it; ``counterpart`` names the quantity it swaps with.
    demand, max_demand : for a register, the demand quantity computed from it and the maximum-demand
        quantity that keeps its peak (``None``: none).
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
    supply: bool = False
    reversal: Reversal = Reversal.NONE
    counterpart: str | None = None
    demand: str | None = None
    max_demand: str | None = None

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
        Q.VOLTAGE,
        "V",
        _INST,
        "Phase-to-neutral RMS voltage; total is the average of the phases",
        total=Total.MEAN,
        obis_c=12,
        obis_d=7,
        extra_obis={Phase.L1: "1.0.32.7.0", Phase.L2: "1.0.52.7.0", Phase.L3: "1.0.72.7.0"},
    ),
    Quantity(
        Q.VOLTAGE_LINE,
        "V",
        _INST,
        "Line-to-line RMS voltage (L1 = L1–L2, L2 = L2–L3, L3 = L3–L1); total is the average",
        total=Total.MEAN,
    ),
    Quantity(
        Q.VOLTAGE_MAX,
        "V",
        _INST,
        "Maximum phase-to-neutral RMS voltage since reset",
        total=Total.NONE,
        phases=PER_PHASE,
    ),
    Quantity(
        Q.VOLTAGE_MIN,
        "V",
        _INST,
        "Minimum phase-to-neutral RMS voltage since reset",
        total=Total.NONE,
        phases=PER_PHASE,
    ),
    Quantity(
        Q.VOLTAGE_LINE_MAX,
        "V",
        _INST,
        "Maximum line-to-line RMS voltage since reset",
        total=Total.NONE,
        phases=PER_PHASE,
    ),
    Quantity(
        Q.VOLTAGE_LINE_MIN,
        "V",
        _INST,
        "Minimum line-to-line RMS voltage since reset",
        total=Total.NONE,
        phases=PER_PHASE,
    ),
    Quantity(
        Q.VOLTAGE_ZERO_SEQUENCE,
        "V",
        _INST,
        "Zero-sequence voltage U0 = |U1+U2+U3|/3 (fundamental)",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        Q.VOLTAGE_UNBALANCE_NEGATIVE,
        "%",
        _INST,
        "Negative-sequence voltage unbalance u2 = |U-|/|U+| (IEC 61000-4-30 §5.7)",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        Q.VOLTAGE_UNBALANCE_ZERO,
        "%",
        _INST,
        "Zero-sequence voltage unbalance u0 = |U0|/|U+|",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    # --- current -----------------------------------------------------------------------------
    Quantity(
        Q.CURRENT,
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
        Q.CURRENT_NEUTRAL_CALCULATED,
        "A",
        _INST,
        "Neutral current calculated as the vector sum of the phase currents",
        phases=(Phase.N,),
        total=Total.NONE,
    ),
    Quantity(Q.CURRENT_MAX, "A", _INST, "Maximum RMS current since reset", phases=WITH_N, total=Total.NONE),
    Quantity(
        Q.CURRENT_UNBALANCE_NEGATIVE,
        "%",
        _INST,
        "Negative-sequence current unbalance i2 = |I-|/|I+|",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        Q.CURRENT_UNBALANCE_ZERO,
        "%",
        _INST,
        "Zero-sequence current unbalance i0 = |I0|/|I+|",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    # --- power -------------------------------------------------------------------------------
    Quantity(
        Q.ACTIVE_POWER,
        "W",
        _INST,
        "Active power P; positive = import (consumption), negative = export",
        obis_c=16,
        obis_d=7,
        signed=True,
    ),
    Quantity(Q.ACTIVE_POWER_IMPORT, "W", _INST, "Active power import P+ (QI + QIV)", obis_c=1, obis_d=7),
    Quantity(Q.ACTIVE_POWER_EXPORT, "W", _INST, "Active power export P− (QII + QIII)", obis_c=2, obis_d=7),
    Quantity(
        Q.REACTIVE_POWER,
        "var",
        _INST,
        "Fundamental reactive power Q1 (IEEE 1459 §3.1.2.4); positive = inductive (QI, QII)",
        signed=True,
    ),
    Quantity(Q.NONACTIVE_POWER, "var", _INST, "Nonactive power N = √(S² − P²) (IEEE 1459 §3.1.2.9)"),
    Quantity(
        Q.APPARENT_POWER,
        "VA",
        _INST,
        "Apparent power S = U·I per phase; total is the effective apparent power Se (IEEE 1459 §3.2.2.7)",
        total=Total.SYSTEM,
        obis_c=9,
        obis_d=7,
    ),
    Quantity(
        Q.APPARENT_POWER_ARITHMETIC,
        "VA",
        _INST,
        "Arithmetic apparent power ΣS of the phases",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        Q.APPARENT_POWER_VECTOR,
        "VA",
        _INST,
        "Vector apparent power |ΣP + jΣQ|",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        Q.POWER_FACTOR,
        "",
        _INST,
        "Power factor λ = P/S per phase; total = P/Se (effective, IEEE 1459); signed as P",
        total=Total.SYSTEM,
        obis_c=13,
        obis_d=7,
        signed=True,
    ),
    Quantity(
        Q.DISPLACEMENT_POWER_FACTOR,
        "",
        _INST,
        "Displacement power factor cos φ1 = P1/S1 of the fundamental",
        total=Total.SYSTEM,
        signed=True,
    ),
    Quantity(
        Q.POWER_PREDICTED,
        "W",
        _INST,
        "Predicted average active power at the end of the current demand interval (seed 003)",
        phases=SYSTEM_ONLY,
    ),
    # --- frequency and angles ----------------------------------------------------------------
    Quantity(
        Q.FREQUENCY,
        "Hz",
        _INST,
        "Supply frequency",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
        obis_c=14,
        obis_d=7,
    ),
    Quantity(
        Q.ANGLE_VOLTAGE,
        "°",
        _INST,
        "Phase angle of the fundamental voltage of each phase, referenced to U L1 (0°)",
        phases=PER_PHASE,
        total=Total.NONE,
        extra_obis={Phase.L2: "1.0.81.7.1", Phase.L3: "1.0.81.7.2"},
    ),
    Quantity(
        Q.ANGLE_CURRENT,
        "°",
        _INST,
        "Phase angle of the fundamental current of each phase, referenced to U L1 (0°)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        Q.ANGLE_VOLTAGE_CURRENT,
        "°",
        _INST,
        "Angle from the phase's fundamental voltage to its current (φ1; positive = current lags)",
        phases=PER_PHASE,
        total=Total.NONE,
        extra_obis={Phase.L1: "1.0.81.7.4", Phase.L2: "1.0.81.7.15", Phase.L3: "1.0.81.7.26"},
    ),
    # --- distortion --------------------------------------------------------------------------
    Quantity(
        Q.THD_VOLTAGE,
        "%",
        _INST,
        "Voltage THD to the 50th order, of the fundamental (IEC 61000-4-7)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        Q.THD_CURRENT,
        "%",
        _INST,
        "Current THD to the 50th order, of the fundamental (IEC 61000-4-7)",
        phases=WITH_N[:3] + (Phase.N,),
        total=Total.NONE,
    ),
    Quantity(
        Q.TOHD_VOLTAGE,
        "%",
        _INST,
        "Voltage total odd harmonic distortion (orders 3, 5 … 49)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        Q.TEHD_VOLTAGE,
        "%",
        _INST,
        "Voltage total even harmonic distortion (orders 2, 4 … 50)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        Q.TOHD_CURRENT,
        "%",
        _INST,
        "Current total odd harmonic distortion",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        Q.TEHD_CURRENT,
        "%",
        _INST,
        "Current total even harmonic distortion",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        Q.HARMONICS_VOLTAGE,
        "V",
        _SPEC,
        "RMS voltage of harmonic subgroups 0…50 (IEC 61000-4-7 §5.6, as IEC 61000-4-30 class A uses)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        Q.HARMONICS_CURRENT,
        "A",
        _SPEC,
        "RMS current of harmonic subgroups 0…50 (IEC 61000-4-7 §5.6, as IEC 61000-4-30 class A uses)",
        phases=WITH_N[:3] + (Phase.N,),
        total=Total.NONE,
    ),
    Quantity(
        Q.HARMONICS_VOLTAGE_PERCENT,
        "%",
        _SPEC,
        "Voltage harmonic subgroups 0…50 in % of the fundamental",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        Q.HARMONICS_CURRENT_PERCENT,
        "%",
        _SPEC,
        "Current harmonic subgroups 0…50 in % of the fundamental",
        phases=WITH_N[:3] + (Phase.N,),
        total=Total.NONE,
    ),
    Quantity(
        Q.CREST_FACTOR_VOLTAGE, "", _INST, "Voltage crest factor peak/RMS", phases=PER_PHASE, total=Total.NONE
    ),
    Quantity(
        Q.CREST_FACTOR_CURRENT, "", _INST, "Current crest factor peak/RMS", phases=PER_PHASE, total=Total.NONE
    ),
    Quantity(
        Q.K_FACTOR,
        "",
        _INST,
        "Transformer K-factor Σ(Ih/I)²·h² (UL 1561)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    Quantity(
        Q.FACTOR_K,
        "",
        _INST,
        "Transformer derating factor K (BS 7821 / IEC 61378-1 Annex)",
        phases=PER_PHASE,
        total=Total.NONE,
    ),
    # --- energy registers (cumulative, float64, never decrease) -------------------------------
    Quantity(Q.ENERGY_ACTIVE_IMPORT, "Wh", _CUM, "Active energy import A+ (QI + QIV)", obis_c=1, obis_d=8),
    Quantity(Q.ENERGY_ACTIVE_EXPORT, "Wh", _CUM, "Active energy export A− (QII + QIII)", obis_c=2, obis_d=8),
    Quantity(
        Q.ENERGY_ACTIVE_NET,
        "Wh",
        _INST,
        "Net active energy A+ − A− (may decrease)",
        obis_c=16,
        obis_d=8,
        signed=True,
    ),
    Quantity(Q.ENERGY_ACTIVE_ABSOLUTE, "Wh", _CUM, "Absolute active energy |A+| + |A−|", obis_c=15, obis_d=8),
    Quantity(
        Q.ENERGY_REACTIVE_IMPORT, "varh", _CUM, "Reactive energy import R+ (QI + QII)", obis_c=3, obis_d=8
    ),
    Quantity(
        Q.ENERGY_REACTIVE_EXPORT, "varh", _CUM, "Reactive energy export R− (QIII + QIV)", obis_c=4, obis_d=8
    ),
    Quantity(
        Q.ENERGY_REACTIVE_NET,
        "varh",
        _INST,
        "Net reactive energy R+ − R− (may decrease; seed 002 Appendix 3)",
        signed=True,
    ),
    Quantity(
        Q.ENERGY_REACTIVE_ABSOLUTE,
        "varh",
        _CUM,
        "Absolute reactive energy |R+| + |R−| (seed 002 Appendix 3)",
    ),
    Quantity(
        Q.ENERGY_REACTIVE_Q1,
        "varh",
        _CUM,
        "Reactive energy in quadrant I (import, inductive)",
        obis_c=5,
        obis_d=8,
    ),
    Quantity(
        Q.ENERGY_REACTIVE_Q2,
        "varh",
        _CUM,
        "Reactive energy in quadrant II (export, capacitive)",
        obis_c=6,
        obis_d=8,
    ),
    Quantity(
        Q.ENERGY_REACTIVE_Q3,
        "varh",
        _CUM,
        "Reactive energy in quadrant III (export, inductive)",
        obis_c=7,
        obis_d=8,
    ),
    Quantity(
        Q.ENERGY_REACTIVE_Q4,
        "varh",
        _CUM,
        "Reactive energy in quadrant IV (import, capacitive)",
        obis_c=8,
        obis_d=8,
    ),
    Quantity(Q.ENERGY_APPARENT, "VAh", _CUM, "Apparent energy (import)", obis_c=9, obis_d=8),
    Quantity(Q.ENERGY_APPARENT_EXPORT, "VAh", _CUM, "Apparent energy (export)", obis_c=10, obis_d=8),
    # --- demand (interval) -------------------------------------------------------------------
    Quantity(
        Q.DEMAND_ACTIVE_IMPORT,
        "W",
        _INT,
        "Active import demand: mean P+ over the demand interval",
        phases=SYSTEM_ONLY,
        obis_c=1,
        obis_d=4,
    ),
    Quantity(
        Q.DEMAND_ACTIVE_EXPORT,
        "W",
        _INT,
        "Active export demand: mean P− over the demand interval",
        phases=SYSTEM_ONLY,
        obis_c=2,
        obis_d=4,
    ),
    Quantity(
        Q.DEMAND_REACTIVE_IMPORT,
        "var",
        _INT,
        "Reactive import demand: mean R+ (QI + QII) power over the demand interval",
        phases=SYSTEM_ONLY,
        obis_c=3,
        obis_d=4,
    ),
    Quantity(
        Q.DEMAND_REACTIVE_EXPORT,
        "var",
        _INT,
        "Reactive export demand: mean R− (QIII + QIV) power over the demand interval",
        phases=SYSTEM_ONLY,
        obis_c=4,
        obis_d=4,
    ),
    Quantity(Q.DEMAND_APPARENT, "VA", _INT, "Apparent demand", phases=SYSTEM_ONLY, obis_c=9, obis_d=4),
    Quantity(
        Q.DEMAND_CURRENT,
        "A",
        _INT,
        "Average current over the demand interval (max average current)",
        phases=PER_PHASE + (Phase.N,),
        total=Total.MEAN,
    ),
    Quantity(
        Q.MAX_DEMAND_ACTIVE_IMPORT,
        "W",
        _INT,
        "Maximum active import demand since reset",
        phases=SYSTEM_ONLY,
        obis_c=1,
        obis_d=6,
    ),
    Quantity(
        Q.MAX_DEMAND_ACTIVE_EXPORT,
        "W",
        _INT,
        "Maximum active export demand since reset",
        phases=SYSTEM_ONLY,
        obis_c=2,
        obis_d=6,
    ),
    Quantity(
        Q.MAX_DEMAND_REACTIVE_IMPORT,
        "var",
        _INT,
        "Maximum reactive import demand since reset",
        phases=SYSTEM_ONLY,
        obis_c=3,
        obis_d=6,
    ),
    Quantity(
        Q.MAX_DEMAND_REACTIVE_EXPORT,
        "var",
        _INT,
        "Maximum reactive export demand since reset",
        phases=SYSTEM_ONLY,
        obis_c=4,
        obis_d=6,
    ),
    Quantity(
        Q.MAX_DEMAND_APPARENT,
        "VA",
        _INT,
        "Maximum apparent demand since reset",
        phases=SYSTEM_ONLY,
        obis_c=9,
        obis_d=6,
    ),
    Quantity(
        Q.MAX_DEMAND_CURRENT,
        "A",
        _INT,
        "Maximum average current since reset",
        phases=PER_PHASE + (Phase.N,),
        total=Total.NONE,
    ),
    Quantity(
        Q.DEMAND_ACTIVE_IMPORT_PREDICTED,
        "W",
        _INT,
        "Predicted active import demand at the end of the running interval",
        phases=SYSTEM_ONLY,
    ),
    Quantity(
        Q.DEMAND_REACTIVE_IMPORT_PREDICTED,
        "var",
        _INT,
        "Predicted reactive import demand at the end of the running interval",
        phases=SYSTEM_ONLY,
    ),
    Quantity(
        Q.DEMAND_APPARENT_PREDICTED,
        "VA",
        _INT,
        "Predicted apparent demand at the end of the running interval",
        phases=SYSTEM_ONLY,
    ),
    # --- cost and emissions (interval) -------------------------------------------------------
    Quantity(
        Q.COST, "currency", _INT, "Energy cost in the site currency over an interval", phases=SYSTEM_ONLY
    ),
    Quantity(Q.CO2, "kg", _INT, "CO2-equivalent emissions over an interval", phases=SYSTEM_ONLY),
    # --- other inputs ------------------------------------------------------------------------
    Quantity(Q.PULSE_COUNT, "", _CUM, "Raw S0 pulse count", phases=SYSTEM_ONLY),
    Quantity(Q.VOLUME_GAS, "m³", _CUM, "Gas volume from a pulse meter", phases=SYSTEM_ONLY),
    Quantity(Q.VOLUME_WATER, "m³", _CUM, "Water volume from a pulse meter", phases=SYSTEM_ONLY),
    Quantity(Q.VOLUME_OIL, "m³", _CUM, "Oil volume from a pulse meter", phases=SYSTEM_ONLY),
    Quantity(Q.VOLUME_FLOW, "m³/h", _INST, "Volume flow rate from a pulse meter", phases=SYSTEM_ONLY),
    Quantity(
        Q.OPERATING_HOURS,
        "h",
        _CUM,
        "Hour counter: time with load above threshold (seed 003)",
        phases=SYSTEM_ONLY,
    ),
    Quantity(
        Q.TEMPERATURE,
        "°C",
        _INST,
        "Temperature (e.g. DS18B20 probe, device internal)",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        Q.DIGITAL_INPUT,
        "",
        _INST,
        "Digital input state 0/1 (breaker OF/SD, door, run/fault)",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(Q.RELAY_OUTPUT, "", _INST, "Relay output state 0/1", phases=SYSTEM_ONLY, total=Total.SYSTEM),
    Quantity(
        Q.ANALOG_INPUT,
        "",
        _INST,
        "Analog input scaled to its configured engineering unit",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
    Quantity(
        Q.ANALOG_OUTPUT,
        "",
        _INST,
        "Analog output value in its configured engineering unit",
        phases=SYSTEM_ONLY,
        total=Total.SYSTEM,
    ),
)


# --- attributes that other layers read from the catalogue instead of keeping their own tables -----

#: Quantities that describe the supply (the voltage system), not a current channel.
_SUPPLY = (
    Q.VOLTAGE,
    Q.VOLTAGE_LINE,
    Q.VOLTAGE_MAX,
    Q.VOLTAGE_MIN,
    Q.VOLTAGE_LINE_MAX,
    Q.VOLTAGE_LINE_MIN,
    Q.VOLTAGE_ZERO_SEQUENCE,
    Q.VOLTAGE_UNBALANCE_NEGATIVE,
    Q.VOLTAGE_UNBALANCE_ZERO,
    Q.FREQUENCY,
    Q.ANGLE_VOLTAGE,
    Q.THD_VOLTAGE,
    Q.TOHD_VOLTAGE,
    Q.TEHD_VOLTAGE,
    Q.CREST_FACTOR_VOLTAGE,
)
#: A CT mounted the wrong way round measures −i: P, Q and the power factors change sign ...
_NEGATED = (
    Q.ACTIVE_POWER,
    Q.REACTIVE_POWER,
    Q.POWER_FACTOR,
    Q.DISPLACEMENT_POWER_FACTOR,
    Q.ENERGY_ACTIVE_NET,  # import − export, whose terms trade places
    Q.ENERGY_REACTIVE_NET,
)
#: ... the current angle turns by 180° ...
_ROTATED = (Q.ANGLE_CURRENT,)
#: ... and import and export registers (and quadrants I↔III, II↔IV) trade places.
_SWAPPED = (
    (Q.ENERGY_ACTIVE_IMPORT, Q.ENERGY_ACTIVE_EXPORT),
    (Q.ENERGY_REACTIVE_IMPORT, Q.ENERGY_REACTIVE_EXPORT),
    (Q.ENERGY_REACTIVE_Q1, Q.ENERGY_REACTIVE_Q3),
    (Q.ENERGY_REACTIVE_Q2, Q.ENERGY_REACTIVE_Q4),
    (Q.ACTIVE_POWER_IMPORT, Q.ACTIVE_POWER_EXPORT),
)
#: register → (demand quantity, maximum-demand quantity or None) (seed 002 demand registers).
_DEMAND: dict[Q, tuple[Q, Q | None]] = {
    Q.ENERGY_ACTIVE_IMPORT: (Q.DEMAND_ACTIVE_IMPORT, Q.MAX_DEMAND_ACTIVE_IMPORT),
    Q.ENERGY_ACTIVE_EXPORT: (Q.DEMAND_ACTIVE_EXPORT, Q.MAX_DEMAND_ACTIVE_EXPORT),
    Q.ENERGY_REACTIVE_IMPORT: (Q.DEMAND_REACTIVE_IMPORT, Q.MAX_DEMAND_REACTIVE_IMPORT),
    Q.ENERGY_REACTIVE_EXPORT: (Q.DEMAND_REACTIVE_EXPORT, Q.MAX_DEMAND_REACTIVE_EXPORT),
    Q.ENERGY_APPARENT: (Q.DEMAND_APPARENT, Q.MAX_DEMAND_APPARENT),
}


def _attributes(q: Quantity) -> Quantity:
    changes: dict[str, object] = {}
    if q.id in _SUPPLY:
        changes["supply"] = True
    if q.id in _NEGATED:
        changes["reversal"] = Reversal.NEGATE
    elif q.id in _ROTATED:
        changes["reversal"] = Reversal.ROTATE
    for a, b in _SWAPPED:
        if q.id in (a, b):
            changes["reversal"], changes["counterpart"] = Reversal.SWAP, b if q.id == a else a
    if q.id in _DEMAND:
        changes["demand"], changes["max_demand"] = _DEMAND[Q(q.id)]
    return replace(q, **changes) if changes else q  # type: ignore[arg-type]


_ENTRIES = tuple(_attributes(q) for q in _ENTRIES)

#: The seven four-quadrant energy registers a meter accumulates (seed 002 §energy; IEC 62053-23 quadrants),
#: in the order the metering engine and the simulators store them.
FOUR_QUADRANT_ENERGY = (
    Q.ENERGY_ACTIVE_IMPORT,
    Q.ENERGY_ACTIVE_EXPORT,
    Q.ENERGY_REACTIVE_Q1,
    Q.ENERGY_REACTIVE_Q2,
    Q.ENERGY_REACTIVE_Q3,
    Q.ENERGY_REACTIVE_Q4,
    Q.ENERGY_APPARENT,
)

#: Reactive import and export registers as sums of quadrant registers (IEC 62053-23 §3, OBIS C = 3
#: and 4): R+ = QI + QII (Q ≥ 0, inductive while importing), R− = QIII + QIV (Q < 0). Seed 002 names
#: "import/export reactive energy" without defining them; its active definitions (import QI + QIV,
#: export QII + QIII) split by the sign of P, these by the sign of Q.
REACTIVE_QUADRANTS: dict[str, tuple[str, str]] = {
    Q.ENERGY_REACTIVE_IMPORT: (Q.ENERGY_REACTIVE_Q1, Q.ENERGY_REACTIVE_Q2),
    Q.ENERGY_REACTIVE_EXPORT: (Q.ENERGY_REACTIVE_Q3, Q.ENERGY_REACTIVE_Q4),
}

#: id → Quantity. The only table of quantity names in meterhub.
CATALOGUE: dict[str, Quantity] = {q.id: q for q in _ENTRIES}
if len(CATALOGUE) != len(_ENTRIES):  # pragma: no cover - guards edits to the table above
    raise RuntimeError("duplicate quantity id in the catalogue")


if [q.value for q in Q] != list(CATALOGUE):  # pragma: no cover - guards edits to the table above
    raise RuntimeError("the Q symbols and the catalogue name different ids")

#: Quantities that describe the supply (voltage system) rather than a current channel.
SUPPLY_QUANTITIES: frozenset[str] = frozenset(q.id for q in _ENTRIES if q.supply)
#: Spectrum quantities (vectors over harmonic order 0…50), in catalogue order.
SPECTRUM_QUANTITIES: tuple[str, ...] = tuple(q.id for q in _ENTRIES if q.kind is Kind.SPECTRUM)
#: register → (demand quantity, maximum-demand quantity or None), for every register that has a demand.
DEMAND_OF: dict[str, tuple[str, str | None]] = {
    q.id: (q.demand, q.max_demand) for q in _ENTRIES if q.demand is not None
}


def get(name: str) -> Quantity:
    """Return the catalogue entry for ``name`` or raise :class:`UnknownQuantityError`."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownQuantityError(name) from None
