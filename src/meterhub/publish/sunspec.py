"""SunSpec register images of one circuit: the common model 1 and the meter models 201-204 / 211-214.

A served circuit is a SunSpec device (SunSpec Information Model Specification 1.0 §4): the marker
"SunS" at register 40000, the common model 1 (manufacturer, model, version, serial), the meter model of
its wiring, and the end marker (ID 0xFFFF, L 0). The point tables below are our own, written from the
SunSpec Alliance's model definitions (``model_1.json``, ``model_201.json`` … ``model_214.json``, as
shipped with pysunspec2); ``tests/modbus_server/test_sunspec_tables.py`` checks every name, type, size,
offset and scale-factor reference against those files.

Values are in SunSpec's units, which are the catalogue's (A, V, Hz, W, VA, var, Wh, VAh, varh), but for
the power factor of the integer models, in percent ("Pct"). The sign conventions are the catalogue's
(``active_power`` positive = import), which are SunSpec's meter conventions (power into the load
positive). A value that is missing, invalid or stale is served as SunSpec's "not implemented" value of
its type (pysunspec2 ``mb.py``: int16 and sunssf 0x8000, uint16 0xFFFF, acc32 0, float32 NaN
0x7FC00000, bitfield32 0xFFFFFFFF, string NUL): a reader sees missing data, never an old number.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from meterhub.model.quantities import Q
from meterhub.model.topology import Phase, Wiring

__all__ = [
    "BASE",
    "COMMON",
    "END",
    "METER_MODELS",
    "Point",
    "PointType",
    "Role",
    "SUNS",
    "meter_model_id",
    "meter_points",
    "render_device",
]

#: Where the SunSpec map starts (SunSpec Information Model Specification §4.1: 40000, 0 or 50000).
BASE = 40000
#: The marker "SunS" in two registers (0x5375 0x6E53).
SUNS = (0x5375, 0x6E53)
#: The end model: ID 0xFFFF, length 0.
END = (0xFFFF, 0x0000)
#: Largest magnitude an int16 value carries (-32768 is "not implemented").
_INT16_MAX = 32767


class PointType(StrEnum):
    """SunSpec point types used by models 1 and 201-214, with their size in registers."""

    UINT16 = "uint16"
    INT16 = "int16"
    SUNSSF = "sunssf"
    ACC32 = "acc32"
    FLOAT32 = "float32"
    BITFIELD32 = "bitfield32"
    STRING = "string"
    PAD = "pad"


class Role(StrEnum):
    """Which series of a circuit feeds a point: the total, the circuit's 1st/2nd/3rd supply phase
    (SunSpec phases A, B, C), a line-to-line pair, or the sum of the phase currents (SunSpec "A")."""

    TOTAL = "total"
    A = "A"
    B = "B"
    C = "C"
    AB = "AB"
    BC = "BC"
    CA = "CA"
    SUM = "sum"


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a model.

    name, type, size : as in the SunSpec model definition (size in registers).
    sf : name of the scale-factor point of this point (integer models), or None.
    quantity, role : the catalogue series it serves (None: computed, e.g. ID, L, Evt, strings).
    scale : catalogue value × scale = the point's unit (100 for a power factor in percent).
    """

    name: str
    type: PointType
    size: int
    sf: str | None = None
    quantity: str | None = None
    role: Role | None = None
    scale: float = 1.0


#: Common model 1 (68 registers with ID and L).
COMMON: tuple[Point, ...] = (
    Point("ID", PointType.UINT16, 1),
    Point("L", PointType.UINT16, 1),
    Point("Mn", PointType.STRING, 16),
    Point("Md", PointType.STRING, 16),
    Point("Opt", PointType.STRING, 8),
    Point("Vr", PointType.STRING, 8),
    Point("SN", PointType.STRING, 16),
    Point("DA", PointType.UINT16, 1),
    Point("Pad", PointType.PAD, 1),
)

#: Meter model of each wiring: (integer model, float model).
METER_MODELS: dict[Wiring, tuple[int, int]] = {
    Wiring.P1W2: (201, 211),  # single phase (AN or AB)
    Wiring.P1W3: (202, 212),  # split single phase (ABN)
    Wiring.P3W4: (203, 213),  # wye-connected three phase (ABCN)
    Wiring.P3W3: (204, 214),  # delta-connected three phase (ABC)
}

_PHASES = (Role.A, Role.B, Role.C)


def meter_model_id(wiring: Wiring, *, floating: bool) -> int:
    """The SunSpec meter model of a circuit's wiring (201-204, or 211-214 when ``floating``)."""
    try:
        return METER_MODELS[wiring][1 if floating else 0]
    except KeyError:
        raise ValueError(f"wiring {wiring.value}: SunSpec has no meter model for it") from None


def _group(
    names: Sequence[str],
    quantity: str,
    roles: Sequence[Role],
    sf: str | None,
    kind: PointType,
    scale: float = 1.0,
) -> list[Point]:
    size = 2 if kind in (PointType.ACC32, PointType.FLOAT32) else 1
    return [Point(n, kind, size, sf, quantity, role, scale) for n, role in zip(names, roles, strict=True)]


def meter_points(model: int) -> tuple[Point, ...]:
    """The points of meter model ``model`` (201-204 or 211-214), ID and L included, in register order."""
    if model not in (201, 202, 203, 204, 211, 212, 213, 214):
        raise ValueError(f"not a SunSpec meter model: {model}")
    floating = model > 210
    inst = PointType.FLOAT32 if floating else PointType.INT16
    acc = PointType.FLOAT32 if floating else PointType.ACC32
    ll = "PPVph" if model in (201, 211, 212, 213, 214) else "PhVph"  # as model_20x.json spells them
    var_ph = "ph" if floating else "Ph"
    pts: list[Point] = [Point("ID", PointType.UINT16, 1), Point("L", PointType.UINT16, 1)]

    def sf(name: str) -> None:
        if not floating:
            pts.append(Point(name, PointType.SUNSSF, 1))

    def ref(name: str) -> str | None:
        return None if floating else name

    four = (Role.TOTAL, *_PHASES)
    pts += _group(("A", "AphA", "AphB", "AphC"), Q.CURRENT, (Role.SUM, *_PHASES), ref("A_SF"), inst)
    sf("A_SF")
    pts += _group(("PhV", "PhVphA", "PhVphB", "PhVphC"), Q.VOLTAGE, four, ref("V_SF"), inst)
    pts += _group(
        ("PPV", f"{ll}AB", f"{ll}BC", f"{ll}CA"),
        Q.VOLTAGE_LINE,
        (Role.TOTAL, Role.AB, Role.BC, Role.CA),
        ref("V_SF"),
        inst,
    )
    sf("V_SF")
    pts += _group(("Hz",), Q.FREQUENCY, (Role.TOTAL,), ref("Hz_SF"), inst)
    sf("Hz_SF")
    for base, quantity in (("W", Q.ACTIVE_POWER), ("VA", Q.APPARENT_POWER), ("VAR", Q.REACTIVE_POWER)):
        names = (base, f"{base}phA", f"{base}phB", f"{base}phC")
        pts += _group(names, quantity, four, ref(f"{base}_SF"), inst)
        sf(f"{base}_SF")
    pf_scale = 1.0 if floating else 100.0  # integer models: percent (units "Pct"); float: units "PF"
    pts += _group(("PF", "PFphA", "PFphB", "PFphC"), Q.POWER_FACTOR, four, ref("PF_SF"), inst, pf_scale)
    sf("PF_SF")
    energy = (
        ("TotWhExp", Q.ENERGY_ACTIVE_EXPORT, "Ph", "TotWh_SF"),
        ("TotWhImp", Q.ENERGY_ACTIVE_IMPORT, "Ph", "TotWh_SF"),
        ("TotVAhExp", Q.ENERGY_APPARENT_EXPORT, "Ph", "TotVAh_SF"),
        ("TotVAhImp", Q.ENERGY_APPARENT, "Ph", "TotVAh_SF"),
        ("TotVArhImpQ1", Q.ENERGY_REACTIVE_Q1, var_ph, "TotVArh_SF"),
        ("TotVArhImpQ2", Q.ENERGY_REACTIVE_Q2, var_ph, "TotVArh_SF"),
        ("TotVArhExpQ3", Q.ENERGY_REACTIVE_Q3, var_ph, "TotVArh_SF"),
        ("TotVArhExpQ4", Q.ENERGY_REACTIVE_Q4, var_ph, "TotVArh_SF"),
    )
    for i, (base, quantity, ph, sf_name) in enumerate(energy):
        names = (base, f"{base}{ph}A", f"{base}{ph}B", f"{base}{ph}C")
        pts += _group(names, quantity, four, ref(sf_name), acc)
        last_of_group = i == len(energy) - 1 or energy[i + 1][3] != sf_name
        if last_of_group:
            sf(sf_name)
    pts.append(Point("Evt", PointType.BITFIELD32, 2))
    return tuple(pts)


# -- rendering ------------------------------------------------------------------------------------
#: Smallest scale factor of each integer group (the finest resolution served) [power of ten].
FINEST_SF: dict[str, int] = {
    "A_SF": -2,  # 0.01 A
    "V_SF": -1,  # 0.1 V
    "Hz_SF": -2,  # 0.01 Hz
    "W_SF": 0,  # 1 W
    "VA_SF": 0,
    "VAR_SF": 0,
    "PF_SF": -2,  # 0.01 % (a power factor to 4 decimals)
}
#: Fixed scale factors of the accumulators: whole Wh, VAh and varh. Fixed, so that a reader that
#: takes differences of an acc32 (which rolls over at 2³², SunSpec's accumulator rule) is never
#: surprised by a change of scale.
ACC_SF: dict[str, int] = {"TotWh_SF": 0, "TotVAh_SF": 0, "TotVArh_SF": 0}
#: Evt bit 7, M_EVENT_Missing_Sensor (model_20x.json): set while the circuit has no current value at all.
EVT_MISSING_SENSOR = 1 << 7

#: Looks up the current value of a catalogue series: (quantity, phase) → value or None (missing,
#: invalid or stale).
Lookup = Callable[[str, Phase], float | None]


def _string(text: str, size: int) -> list[int]:
    raw = text.encode("ascii", "replace")[: 2 * size].ljust(2 * size, b"\0")
    return list(struct.unpack(f">{size}H", raw))


def _f32(value: float | None) -> list[int]:
    if value is None or not math.isfinite(value):
        return [0x7FC0, 0x0000]
    try:
        return list(struct.unpack(">2H", struct.pack(">f", value)))
    except OverflowError:  # beyond float32: not representable
        return [0x7FC0, 0x0000]


def _sf_for(values: Sequence[float], finest: int) -> int:
    """The smallest scale factor ≥ ``finest`` at which every value fits an int16 (−10…10)."""
    peak = max((abs(v) for v in values), default=0.0)
    sf = finest
    while sf < 10 and round(peak / 10.0**sf) > _INT16_MAX:
        sf += 1
    return sf


def _phase_of(role: Role, supply: Sequence[Phase]) -> Phase | None:
    if role is Role.TOTAL:
        return Phase.TOTAL
    if role in (Role.AB, Role.BC, Role.CA):
        return {Role.AB: Phase.L1, Role.BC: Phase.L2, Role.CA: Phase.L3}[role]
    i = _PHASES.index(role)
    return supply[i] if i < len(supply) else None


def _value(point: Point, lookup: Lookup, supply: Sequence[Phase]) -> float | None:
    if point.quantity is None or point.role is None:
        return None
    if point.role is Role.SUM:  # SunSpec "A": total AC current, the sum of the phase currents
        parts = [lookup(point.quantity, p) for p in supply]
        if not parts or any(v is None for v in parts):
            return None
        return float(sum(v for v in parts if v is not None))
    phase = _phase_of(point.role, supply)
    if phase is None:
        return None
    v = lookup(point.quantity, phase)
    if v is None or not math.isfinite(v):
        return None
    return v * point.scale


@dataclass(frozen=True, slots=True)
class Identity:
    """What the common model says of a served circuit (strings are cut to their point's size)."""

    manufacturer: str  # Mn, 32 characters
    model: str  # Md, 32
    options: str  # Opt, 16
    version: str  # Vr, 16
    serial: str  # SN, 32
    unit: int  # DA


def render_common(identity: Identity) -> list[int]:
    """The registers of common model 1 (68)."""
    regs = [1, 66]
    regs += _string(identity.manufacturer, 16)
    regs += _string(identity.model, 16)
    regs += _string(identity.options, 8)
    regs += _string(identity.version, 8)
    regs += _string(identity.serial, 16)
    regs += [identity.unit, 0]
    return regs


def render_meter(model: int, points: Sequence[Point], lookup: Lookup, supply: Sequence[Phase]) -> list[int]:
    """The registers of a meter model (ID and L first) with the values ``lookup`` gives now."""
    values: dict[str, float | None] = {p.name: _value(p, lookup, supply) for p in points}
    sfs: dict[str, int] = dict(ACC_SF)
    groups: dict[str, list[float]] = {}
    for p in points:
        if p.sf is not None and p.sf not in ACC_SF:
            v = values[p.name]
            groups.setdefault(p.sf, [])
            if v is not None:
                groups[p.sf].append(v)
    for name, vals in groups.items():
        sfs[name] = _sf_for(vals, FINEST_SF[name])
    length = sum(p.size for p in points) - 2
    any_value = any(v is not None for v in values.values())
    regs: list[int] = []
    for p in points:
        v = values[p.name]
        t = p.type
        if p.name == "ID":
            regs.append(model)
        elif p.name == "L":
            regs.append(length)
        elif t is PointType.SUNSSF:
            regs.append(sfs[p.name] & 0xFFFF)
        elif t is PointType.INT16:
            if v is None or p.sf is None:
                regs.append(0x8000)
            else:
                n = round(v / 10.0 ** sfs[p.sf])
                regs.append(max(-_INT16_MAX, min(_INT16_MAX, n)) & 0xFFFF)
        elif t is PointType.ACC32:
            if v is None or p.sf is None or v < 0:
                regs += [0, 0]
            else:
                n = round(v / 10.0 ** sfs[p.sf]) % (1 << 32)
                regs += [n >> 16, n & 0xFFFF]
        elif t is PointType.FLOAT32:
            regs += _f32(v)
        elif t is PointType.BITFIELD32:  # Evt
            evt = 0 if any_value else EVT_MISSING_SENSOR
            regs += [evt >> 16, evt & 0xFFFF]
        else:  # pragma: no cover - meter models have no other types
            regs += [0] * p.size
    return regs


def render_device(
    identity: Identity, model: int, points: Sequence[Point], lookup: Lookup, supply: Sequence[Phase]
) -> list[int]:
    """The whole map of one served circuit from register :data:`BASE`: "SunS", model 1, the meter
    model, the end marker."""
    return [*SUNS, *render_common(identity), *render_meter(model, points, lookup, supply), *END]


def decode_value(point: Point, regs: Sequence[int], sfs: Mapping[str, int]) -> float | None:
    """A point's value from its registers (the inverse of rendering; for tests and tools)."""
    if point.type is PointType.FLOAT32:
        (v,) = struct.unpack(">f", struct.pack(">2H", *regs))
        return None if math.isnan(v) else float(v)
    if point.type is PointType.INT16:
        if regs[0] == 0x8000:
            return None
        n = regs[0] - 0x10000 if regs[0] & 0x8000 else regs[0]
        return n * 10.0 ** sfs[point.sf or ""] / point.scale
    if point.type is PointType.ACC32:
        n = (regs[0] << 16) | regs[1]
        return None if n == 0 else n * 10.0 ** sfs[point.sf or ""]
    raise ValueError(f"{point.name}: no value to decode for type {point.type.value}")
