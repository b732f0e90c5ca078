"""The site file's ``energy:`` section as the energy package sees it.

The models live in :mod:`meterhub.config.energy` (the schema is a leaf and imports no subsystem); they are
re-exported here for the energy modules. :func:`check_energy_references` is the section's cross-check
against the site's circuits; :data:`meterhub.checks.SITE_CHECKS` runs it with every site file loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meterhub.config.energy import (
    Band,
    BillingSettings,
    Co2Period,
    Co2Settings,
    DemandSettings,
    EnergyConfig,
    HistoryError,
    MeterChangeSpec,
    ProfileSpec,
    Rate,
    RegisterSpec,
    Season,
    TariffPeriod,
    TariffSettings,
    TariffSwitch,
    VirtualCircuit,
    co2_periods,
    effective_time,
    parse_formula,
    tariff_periods,
)
from meterhub.config.loader import Loc
from meterhub.config.schema import SiteConfig

__all__ = [
    "Band",
    "BillingSettings",
    "Co2Period",
    "Co2Settings",
    "DemandSettings",
    "EnergyConfig",
    "HistoryError",
    "MeterChangeSpec",
    "ProfileSpec",
    "Rate",
    "RegisterSpec",
    "Season",
    "TariffPeriod",
    "TariffSettings",
    "TariffSwitch",
    "VirtualCircuit",
    "check_energy_references",
    "co2_periods",
    "effective_time",
    "energy_of",
    "tariff_periods",
]


#: The name of the CO2 settings in the energy section (the site file's key), for error locations.
_CO2_FIELD = next(name for name, f in EnergyConfig.model_fields.items() if f.annotation is Co2Settings)


def energy_of(config: Any) -> EnergyConfig:
    """The energy section of a SiteConfig (defaults when absent; accepts a plain dict too)."""
    section = getattr(config, "energy", None)
    if section is None:
        return EnergyConfig()
    if isinstance(section, EnergyConfig):
        return section
    return EnergyConfig.model_validate(section)


def check_energy_references(cfg: SiteConfig) -> Iterable[tuple[Loc, str]]:
    """Cross-reference check of the energy section against the site's circuits: virtual-circuit formulas,
    load profiles, meter changes and register rollovers must name circuits that exist; tariff periods
    and CO2 factors must start one after the other in the site's time zone."""
    energy = cfg.energy
    if energy is None:
        return
    circuits = {c.id for c in cfg.circuits}
    virtual = [v.id for v in energy.virtual]
    every = circuits | set(virtual)
    hint = f"; known circuits: {', '.join(sorted(every))}" if every else "; no circuits are defined"
    for i, v in enumerate(energy.virtual):
        if v.id in circuits:
            yield ("energy", "virtual", i, "id"), f"{v.id!r} is already a metered circuit"
        for _, name in parse_formula(v.formula):
            if name not in every or name == v.id:
                yield ("energy", "virtual", i, "formula"), f"unknown circuit {name!r} in the formula" + hint
    for i, p in enumerate(energy.profiles):
        if p.circuit not in every:
            yield ("energy", "profiles", i, "circuit"), f"unknown circuit {p.circuit!r}" + hint
    changes: list[tuple[str, int, str]] = [
        ("meter_changes", i, c.circuit) for i, c in enumerate(energy.meter_changes)
    ]
    changes += [("registers", i, r.circuit) for i, r in enumerate(energy.registers)]
    for section, i, circuit in changes:
        if circuit not in circuits:
            yield ("energy", section, i, "circuit"), f"unknown circuit {circuit!r}" + hint
    try:
        tariff_periods(energy.tariff_history, energy.tariffs, cfg.site.timezone)
    except HistoryError as exc:
        yield ("energy", *exc.loc), str(exc)
    try:
        co2_periods(energy.co2, cfg.site.co2_factor, cfg.site.timezone)
    except HistoryError as exc:
        yield ("energy", _CO2_FIELD, *exc.loc), str(exc)
