"""Harmonic spectra a device reports, as circuit spectra (pure).

Some devices read harmonics to the 50th every poll (seed 000 §3.4.4: the E31 current harmonics per
channel, the V10 voltage harmonics per phase). They are decoded into :attr:`DeviceValues.spectra
<meterhub.drivers.modbus.mapping.DeviceValues.spectra>`; this module keys them by circuit and supply
phase, as :func:`~meterhub.drivers.modbus.mapping.circuit_readings` keys readings:

* a current spectrum of device channel k belongs to the circuit whose ``channels`` hold k, on the
  supply phase the circuit gives that channel (a meter's phase Lk is its channel k);
* a voltage spectrum belongs to every circuit supplied by that phase, from the meter's own voltage
  inputs or, for a current-only module, from its voltage unit (``voltage_reference``, seed 000 §3.1.1).

Whether a spectrum is in % of the fundamental or RMS [V or A] is the catalogue unit of its quantity.
A device that reports % only (the Enertrek modules) gets an RMS spectrum too, derived from the same
poll's RMS value X of that phase: by Parseval X² = Σₕ Xₕ², so X₁ = X / √Σₕ (pₕ/100)² and
Xₕ = pₕ/100 · X₁ (IEC 61000-4-7 §3.2; orders above 50 and interharmonics the device does not report
are taken as zero).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from meterhub.config.schema import Circuit, SiteConfig
from meterhub.drivers.modbus.mapping import DeviceValues
from meterhub.model.quantities import CATALOGUE, Q
from meterhub.model.readings import Quality, Reading, Spectrum
from meterhub.model.topology import Phase
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Profile, ProfileError, ProfileKind

__all__ = ["MAX_ORDER", "circuit_spectra", "declared_spectra"]

#: the highest harmonic order a :class:`Spectrum` carries (values 0…50)
MAX_ORDER = 50
_PHASES = (Phase.L1, Phase.L2, Phase.L3)

#: spectrum id → (its RMS spectrum id, its % spectrum id, the quantity whose RMS it splits into orders)
_FAMILY: dict[str, tuple[str, str, str]] = {
    Q.HARMONICS_CURRENT: (Q.HARMONICS_CURRENT, Q.HARMONICS_CURRENT_PERCENT, Q.CURRENT),
    Q.HARMONICS_CURRENT_PERCENT: (Q.HARMONICS_CURRENT, Q.HARMONICS_CURRENT_PERCENT, Q.CURRENT),
    Q.HARMONICS_VOLTAGE: (Q.HARMONICS_VOLTAGE, Q.HARMONICS_VOLTAGE_PERCENT, Q.VOLTAGE),
    Q.HARMONICS_VOLTAGE_PERCENT: (Q.HARMONICS_VOLTAGE, Q.HARMONICS_VOLTAGE_PERCENT, Q.VOLTAGE),
}


def _is_percent(quantity: str) -> bool:
    return CATALOGUE[quantity].unit == "%"


def circuit_spectra(
    ts: float,
    circuit: Circuit,
    dv: DeviceValues,
    vref: DeviceValues | None,
    readings: Iterable[Reading],
    *,
    ratios: tuple[float, float] = (1.0, 1.0),
) -> list[Spectrum]:
    """The spectra of one circuit from its device's values and (current modules) its voltage unit's.

    ts : poll time [s]; circuit : the circuit; dv : its device's values; vref : the voltage unit's
    values or None; readings : the circuit's readings of the same poll (their ``current`` and ``voltage``
    per phase [A, V], after any CT/VT ratio, give the RMS spectrum of a device that reports % only);
    ratios : (CT, VT) ratio [-] for a device that reports secondary values (RMS spectra scale by them).
    """
    meter = dv.kind is ProfileKind.METER
    phase_of = dict(zip(circuit.channels, circuit.supply_phases, strict=True))
    found: dict[tuple[str, Phase], dict[int, float]] = {}
    scale: dict[tuple[str, Phase], float] = {}  # RMS spectra of secondary values: × the ratio
    for (q, ph, ch), orders in dv.spectra.items():
        family = _FAMILY.get(q)
        if family is None or family[2] != Q.CURRENT:
            continue
        channel = ch if ch is not None else (_PHASES.index(ph) + 1 if meter and ph in _PHASES else None)
        target = phase_of.get(channel) if channel is not None else None
        if target is not None:
            found[(q, target)] = orders
            scale[(q, target)] = ratios[0]
    supply = dv if meter and dv.has_voltage() else vref
    if supply is not None:
        for (q, ph, _), orders in supply.spectra.items():
            family = _FAMILY.get(q)
            if family is not None and family[2] == Q.VOLTAGE and ph is not None and ph in phase_of.values():
                found[(q, ph)] = orders
                scale[(q, ph)] = ratios[1] if supply is dv else 1.0
    if not found:
        return []
    rms_of = {
        (r.quantity, r.phase): r.value
        for r in readings
        if r.quantity in (Q.CURRENT, Q.VOLTAGE) and r.quality is Quality.GOOD
    }
    out: list[Spectrum] = []
    for (q, ph), orders in found.items():
        values = _vector(orders)
        f = scale[(q, ph)]
        if f != 1.0 and not _is_percent(q):
            values = tuple(v * f for v in values)
        out.append(Spectrum(ts, circuit.id, q, ph, values))
        rms_id, _, base = _FAMILY[q]
        if _is_percent(q) and (rms_id, ph) not in found:
            rms = _rms_from_percent(values, rms_of.get((base, ph)))
            if rms is not None:
                out.append(Spectrum(ts, circuit.id, rms_id, ph, rms))
    return out


def _vector(orders: dict[int, float]) -> tuple[float, ...]:
    """Orders 0…50 as a tuple, NaN where the device reports none."""
    v = [math.nan] * (MAX_ORDER + 1)
    for h, x in orders.items():
        if 0 <= h <= MAX_ORDER:
            v[h] = x
    return tuple(v)


def _rms_from_percent(percent: tuple[float, ...], total: float | None) -> tuple[float, ...] | None:
    """The RMS of each order [V or A] from the orders in % of the fundamental and the RMS ``total`` of
    all of them [V or A] (Parseval); None when there is no usable total or fundamental."""
    if total is None or not math.isfinite(total) or total < 0:
        return None
    square = math.fsum((p / 100.0) ** 2 for p in percent if math.isfinite(p))
    if not square > 0:
        return None
    x1 = total / math.sqrt(square)
    return tuple(p / 100.0 * x1 for p in percent)


def _profile_of(config: SiteConfig, device_id: str | None) -> Profile | None:
    device = next((d for d in config.devices if d.id == device_id), None)
    if device is None or not device.enabled:
        return None
    try:
        return get_profile(device.profile)
    except ProfileError:
        return None


def _declared(profile: Profile | None, base: str) -> bool:
    """Whether ``profile`` maps harmonics of ``base`` (current or voltage)."""
    return profile is not None and any(
        e.quantity in _FAMILY and _FAMILY[e.quantity][2] == base for e in profile.registers
    )


def declared_spectra(config: SiteConfig, circuit_id: str) -> frozenset[str]:
    """What the profiles of a Modbus circuit's devices declare harmonics of: ``"current"`` when its
    device maps current harmonics, ``"voltage"`` when its voltage source does (a meter's own voltage
    inputs, or for a current module the voltage unit :class:`~meterhub.drivers.modbus.source.ModbusSource`
    takes its voltage from: ``voltage_reference``, else the only voltage unit on the bus)."""
    circuit = config.circuit(circuit_id)
    profile = _profile_of(config, circuit.device)
    if profile is None:
        return frozenset()
    out = set()
    if _declared(profile, Q.CURRENT):
        out.add(Q.CURRENT)
    if profile.kind is ProfileKind.METER:
        supply: Profile | None = profile
    else:
        ref = circuit.voltage_reference
        if ref is None:
            bus = next(d.bus for d in config.devices if d.id == circuit.device)
            units = [
                d.id
                for d in config.devices
                if d.bus == bus
                and d.enabled
                and (p := _profile_of(config, d.id)) is not None
                and p.kind is ProfileKind.VOLTAGE_UNIT
            ]
            ref = units[0] if len(units) == 1 else None
        supply = _profile_of(config, ref)
    if _declared(supply, Q.VOLTAGE):
        out.add(Q.VOLTAGE)
    return frozenset(out)
