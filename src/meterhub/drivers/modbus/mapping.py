"""From device registers to circuit readings (pure).

The runtime never sees device channels (drivers/base.py): this module turns the decoded values of
one device into readings keyed by *circuit*:

* a circuit's ``channels`` select the device's current channels (for a complete meter, channel k is
  its phase Lk) and ``supply_phases`` names the phase each one is on;
* a current-only module (seed 000 M/E series) has no voltage input: its circuits take voltage,
  frequency and voltage quality from the voltage unit named by ``voltage_reference`` (seed 000 §3.1.1);
* totals the device does not give are computed from the circuit's phases: sums for powers and
  energies, means for voltage and current (catalogue ``Total``), the total apparent power as the
  arithmetic sum ΣS and the total power factor as ΣP/ΣS — the arithmetic definitions the seed 000
  modules use (IEEE 1459 §3.2.2 lists them among the non-preferred but common ones);
* a device total (e.g. an SDM630's "total system power") is used only when the circuit uses every
  channel of the device.

Energy registers per phase and total are emitted for every circuit that has them; a meter that counts
reactive energy by quadrant only also gets reactive import (QI + QII) and export (QIII + QIV).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from meterhub.config.schema import Circuit
from meterhub.model import quantities
from meterhub.model.quantities import CATALOGUE, REACTIVE_QUADRANTS, SUPPLY_QUANTITIES, Q, Reversal, Total
from meterhub.model.readings import Reading, good_readings
from meterhub.model.topology import Phase
from meterhub.profiles.schema import Point, ProfileKind
from meterhub.profiles.transformers import ratio_factor

__all__ = ["DeviceValues", "circuit_readings", "device_readings", "reversed_channels", "unreverse"]

_PHASES = (Phase.L1, Phase.L2, Phase.L3)

#: The phase voltage as a plain string: compared on every value of every poll (an enum member's
#: attribute lookup costs more than the comparison).
_VOLTAGE: str = Q.VOLTAGE.value
#: Supply quantities a circuit shows per supply phase (the others are system values or line-to-line).
_PER_SUPPLY_PHASE = frozenset(
    {Q.VOLTAGE, Q.VOLTAGE_MAX, Q.VOLTAGE_MIN, Q.ANGLE_VOLTAGE, Q.THD_VOLTAGE, Q.TOHD_VOLTAGE, Q.TEHD_VOLTAGE}
)


@dataclass
class DeviceValues:
    """Decoded values of one device, arranged for mapping.

    channels : channel → quantity → value (a meter's phase Lk is channel k).
    system : (quantity, phase) → value for totals, neutral and supply quantities.
    spectra : (quantity, phase or None, channel or None) → {order: value}.
    """

    kind: ProfileKind
    ts: float
    channels: dict[int, dict[str, float]] = field(default_factory=dict)
    system: dict[tuple[str, Phase | None], float] = field(default_factory=dict)
    spectra: dict[tuple[str, Phase | None, int | None], dict[int, float]] = field(default_factory=dict)
    all_channels: frozenset[int] = frozenset()

    @classmethod
    def from_points(
        cls, kind: ProfileKind, ts: float, values: dict[Point, float], all_channels: Iterable[int] = ()
    ) -> DeviceValues:
        places = _PLACE.get(kind)
        if places is None:
            places = _PLACE[kind] = {}
        placed = []
        for p, v in values.items():
            place = places.get(p)
            if place is None:
                place = places[p] = _placement(kind, p)
            placed.append((place, p, v))
        return cls.from_placed(kind, ts, placed, all_channels)

    @classmethod
    def from_placed(
        cls,
        kind: ProfileKind,
        ts: float,
        placed: Iterable[tuple[_Place, Point, float]],
        all_channels: Iterable[int] = (),
    ) -> DeviceValues:
        """Like :meth:`from_points`, from (placement, point, value) triples whose placement was
        computed by :func:`placer` ``(kind)`` (e.g. once per point by the reader's plan)."""
        dv = cls(kind, ts, all_channels=frozenset(all_channels))
        channels, system = dv.channels, dv.system
        for (where, a, b), p, v in placed:
            if where == 0:  # a: channel, b: quantity
                vals = channels.get(a)
                if vals is None:
                    vals = channels[a] = {}
                vals[b] = v
                if b == _VOLTAGE and a <= 3:  # a meter's own phase voltage is also the supply's
                    system[(_VOLTAGE, _PHASES[a - 1])] = v
            elif where == 1:  # a: quantity, b: phase
                system[(a, b)] = v
            else:
                dv.spectra.setdefault((p.quantity, p.phase, p.channel), {})[p.order or 0] = v
        if not dv.all_channels:
            dv.all_channels = frozenset(dv.channels)
        return dv

    def has_voltage(self) -> bool:
        for q, _ in self.system:
            if q == Q.VOLTAGE:
                return True
        return any(Q.VOLTAGE in c for c in self.channels.values())


def reversed_channels(circuit: Circuit) -> set[int]:
    """The device channels of ``circuit`` whose CT is marked reversed."""
    flags = circuit.reversed
    if isinstance(flags, bool):
        return set(circuit.channels) if flags else set()
    return {ch for ch, f in zip(circuit.channels, flags, strict=False) if f}


def unreverse(values: dict[str, float]) -> dict[str, float]:
    """Channel values as a correctly mounted CT would show them.

    A CT mounted the wrong way round measures −i; what that does to each quantity is the catalogue's
    :attr:`~meterhub.model.quantities.Quantity.reversal`: P, Q and the power factors change sign
    (NEGATE), import and export registers and quadrants I↔III, II↔IV trade places with their
    ``counterpart`` (SWAP), the current angle turns by 180° (ROTATE). [same units as ``values``]
    """
    out: dict[str, float] = {}
    for q, v in values.items():
        spec = CATALOGUE[q]
        how = spec.reversal
        if how is Reversal.NEGATE:
            out[q] = -v
        elif how is Reversal.SWAP and spec.counterpart is not None:
            out[spec.counterpart] = v
        elif how is Reversal.ROTATE:
            out[q] = (v + 360.0) % 360.0 - 180.0
        else:
            out[q] = v
    return out


#: Where a point's value goes: (0, channel, quantity), (1, quantity, phase) or (2, None, None) for a
#: spectrum line; per profile kind, keyed by point (profiles share their point objects, so the lookup
#: on every poll is by identity).
_Place = tuple[int, Any, Any]
_PLACE: dict[ProfileKind, dict[Point, _Place]] = {}


def placer(kind: ProfileKind) -> Callable[[Point], _Place]:
    """Where the values of ``kind`` go (the same function object for a kind, so callers can cache by it)."""
    f = _PLACERS.get(kind)
    if f is None:
        f = _PLACERS[kind] = functools.partial(_placement, kind)
    return f


_PLACERS: dict[ProfileKind, Callable[[Point], _Place]] = {}


def _placement(kind: ProfileKind, p: Point) -> _Place:
    if p.order is not None:
        return 2, None, None
    if p.channel is not None:
        return 0, p.channel, p.quantity
    if (
        kind is ProfileKind.METER
        and p.phase in _PHASES
        and (p.quantity not in SUPPLY_QUANTITIES or p.quantity == Q.VOLTAGE)
    ):
        return 0, _PHASES.index(p.phase) + 1, p.quantity
    return 1, p.quantity, p.phase


_NO_VALUES: dict[str, float] = {}

#: (quantity, phase) → whether a series of the quantity may carry the phase (the catalogue, cached).
_PHASE_OK: dict[tuple[str, Phase | None], bool] = {}


def _phase_ok(q: str, ph: Phase | None) -> bool:
    ok = _PHASE_OK[(q, ph)] = ph in quantities.CATALOGUE[q].phases
    return ok


def _total(q: str, vals: list[float]) -> float | None:
    how = _TOTAL_OF.get(q)
    if how is None:
        spec = quantities.CATALOGUE[q]
        how = _TOTAL_OF[q] = (
            1 if spec.total is Total.SUM or q == Q.APPARENT_POWER else 2 if spec.total is Total.MEAN else 0
        )
    if how == 1:
        return math.fsum(vals)
    if how == 2:
        return math.fsum(vals) / len(vals)
    return None


#: quantity → how its total is formed from the phases: 1 sum, 2 mean, 0 not at all (cached).
_TOTAL_OF: dict[str, int] = {}
_TOTAL = Phase.TOTAL
_METER = ProfileKind.METER
_Q1: str = Q.ENERGY_REACTIVE_Q1.value


def circuit_readings(
    ts: float,
    circuit: Circuit,
    dv: DeviceValues,
    vref: DeviceValues | None = None,
    *,
    ratios: tuple[float, float] = (1.0, 1.0),
) -> list[Reading]:
    """Readings of one circuit from its device's values and (for current modules) the voltage unit's.

    ``ratios`` : (CT ratio, VT ratio) [-] applied to the device's own values, for a device that reports
    secondary values (:func:`meterhub.profiles.transformers.circuit_ratios`); a voltage unit's values
    are its own business.
    """
    out: dict[tuple[str, Phase | None], float] = {}
    supply_phases = circuit.supply_phases
    pairs = list(zip(circuit.channels, supply_phases, strict=True))
    rev = reversed_channels(circuit) if circuit.reversed else set()
    chan = dv.channels
    if rev:
        chan = {ch: (unreverse(v) if ch in rev else v) for ch, v in dv.channels.items()}
    # the device's own totals include the reversed channels the wrong way round: not used then
    covers_all = bool(dv.all_channels) and set(circuit.channels) >= set(dv.all_channels) and not rev
    names: dict[str, None] = {}  # quantities of the circuit's channels, in order (an ordered set)
    per_channel = [chan.get(ch) or _NO_VALUES for ch in circuit.channels]
    phase_ok = _PHASE_OK
    for vals, (_, ph) in zip(per_channel, pairs, strict=True):
        for q, v in vals.items():
            key = (q, ph)
            ok = phase_ok.get(key)
            if ok is None:
                ok = _phase_ok(q, ph)
            if ok:
                out[key] = v
            names[q] = None
    # totals: the device's own when the circuit is the whole device, else computed from the phases
    system = dv.system
    meter = dv.kind is _METER
    for q in names:
        if q == _VOLTAGE and not meter:
            continue
        tk = (q, _TOTAL)
        if covers_all and tk in system:
            out[tk] = system[tk]
            continue
        ok = phase_ok.get(tk)
        if not (_phase_ok(q, _TOTAL) if ok is None else ok):
            continue
        phase_values = [vals.get(q) for vals in per_channel]
        if None in phase_values:
            continue
        t = _total(q, cast(list[float], phase_values))
        if t is not None:
            out[tk] = t
    p_tot = out.get((Q.ACTIVE_POWER, _TOTAL))
    q_tot = out.get((Q.REACTIVE_POWER, _TOTAL))
    s_tot = out.get((Q.APPARENT_POWER, _TOTAL))
    if ((Q.POWER_FACTOR, _TOTAL) not in out) and p_tot is not None and s_tot:
        out[(Q.POWER_FACTOR, _TOTAL)] = p_tot / s_tot
    if (
        (Q.DISPLACEMENT_POWER_FACTOR, Phase.TOTAL) not in out
        and Q.DISPLACEMENT_POWER_FACTOR in names
        and p_tot is not None
        and q_tot is not None
        and (p_tot or q_tot)
    ):
        out[(Q.DISPLACEMENT_POWER_FACTOR, Phase.TOTAL)] = p_tot / math.hypot(p_tot, q_tot)
    if covers_all or (rev and set(circuit.channels) >= set(dv.all_channels)):
        # device-level values that belong to the whole circuit (neutral, demand, unbalance)
        for (qs, sph), v in dv.system.items():
            if qs in SUPPLY_QUANTITIES:
                continue
            if rev and (CATALOGUE[qs].reversal is not Reversal.NONE or "demand" in qs):
                continue  # signed by the reversed CT: only the corrected phase values count
            out.setdefault((qs, sph), v)
    if (_Q1, _TOTAL) in out or _Q1 in names:
        _reactive_from_quadrants(out)
    ct, vt = ratios
    if ct != 1.0 or vt != 1.0:  # secondary values: primary = secondary × ratio
        out = {(q, ph): v * ratio_factor(q, ct, vt) for (q, ph), v in out.items()}
    # the supply: the meter's own voltage inputs, or the voltage unit of a current-only module
    supply = dv if meter and dv.has_voltage() else vref
    if supply is not None:
        own = supply is dv
        sup = _supply_readings(supply_phases, supply, own=own, covers_all=covers_all)
        if own and vt != 1.0:
            sup = {(q, ph): v * ratio_factor(q, 1.0, vt) for (q, ph), v in sup.items()}
        out.update(sup)
    return good_readings(ts, circuit.id, out.items())


def _reactive_from_quadrants(out: dict[tuple[str, Phase | None], float]) -> None:
    """Reactive import R+ = Q1 + Q2 and export R− = Q3 + Q4 (IEC 62053-23) of a meter that counts
    quadrant registers only (SunSpec model 213), per phase and total, where it has no R+/R− of its
    own [varh]."""
    for reg, (a, b) in REACTIVE_QUADRANTS.items():
        for ph in (*_PHASES, _TOTAL):
            if (reg, ph) not in out and (a, ph) in out and (b, ph) in out:
                out[(reg, ph)] = out[(a, ph)] + out[(b, ph)]


def _supply_readings(
    phases: tuple[Phase, ...], sv: DeviceValues, *, own: bool, covers_all: bool
) -> dict[tuple[str, Phase | None], float]:
    three = set(phases) == set(_PHASES)
    out: dict[tuple[str, Phase | None], float] = {}
    for (q, ph), v in sv.system.items():
        if q not in SUPPLY_QUANTITIES:
            continue
        if q in _PER_SUPPLY_PHASE:
            if ph in phases:
                out[(q, ph)] = v
            elif ph is Phase.TOTAL and (three or (own and covers_all)):
                out[(q, ph)] = v
        elif ph in (Phase.TOTAL, None) and q == Q.FREQUENCY:
            out[(q, ph)] = v
        elif three:  # line-to-line and sequence quantities need all three phases
            out[(q, ph)] = v
    if (Q.VOLTAGE, Phase.TOTAL) not in out:
        vs = [out[(Q.VOLTAGE, ph)] for ph in phases if (Q.VOLTAGE, ph) in out]
        if vs and len(vs) == len(phases):
            out[(Q.VOLTAGE, Phase.TOTAL)] = math.fsum(vs) / len(vs)
    return out


def device_readings(ts: float, device_id: str, dv: DeviceValues) -> list[Reading]:
    """Device-level readings keyed by the device id (voltage unit, or a meter without circuits)."""
    out = good_readings(ts, device_id, dv.system.items())
    if dv.kind is ProfileKind.METER:
        for ch, vals in dv.channels.items():
            if 1 <= ch <= 3:
                ph = _PHASES[ch - 1]
                # the voltage is already in system
                out.extend(
                    good_readings(ts, device_id, [((q, ph), v) for q, v in vals.items() if q != Q.VOLTAGE])
                )
    return out
