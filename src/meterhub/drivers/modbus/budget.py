"""Module-bus checks for the seed-000 family, one of :data:`meterhub.checks.SITE_CHECKS`.

* **Power budget** (seed 000 §7.2.1): the sum of the consumption of every module on an Enertrek bus
  must not exceed the power the voltage unit supplies (V10: 15 W). Figures per module come from the
  profiles' ``bus_power`` (seed 000 §7.1).
* **Circuit count** (seed 000 §3.1.2): at most 20 current circuits per voltage unit.

Modules without ``bus_power`` in their profile (ordinary meters) are not on a module bus and are
ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

from meterhub.config.loader import Loc
from meterhub.config.schema import SiteConfig
from meterhub.drivers.modbus.profile import Profile, ProfileError, ProfileKind
from meterhub.profiles import get_profile

__all__ = ["MAX_CIRCUITS_PER_VOLTAGE_UNIT", "bus_power", "check_module_buses"]

MAX_CIRCUITS_PER_VOLTAGE_UNIT = 20


def bus_power(profiles: Iterable[Profile]) -> tuple[float, float]:
    """(provided, consumed) by a set of modules on one bus. [W]"""
    provided = consumed = 0.0
    for p in profiles:
        if p.bus_power is not None:
            provided += p.bus_power.provided
            consumed += p.bus_power.consumption
    return provided, consumed


def check_module_buses(cfg: SiteConfig) -> Iterable[tuple[Loc, str]]:
    """Every module bus within its supply's power budget, every voltage unit within its circuit count,
    every device on a Modbus bus with a known profile."""
    for bi, bus in enumerate(cfg.buses):
        devices = [(i, d) for i, d in enumerate(cfg.devices) if d.bus == bus.id]
        profiles: dict[str, Profile] = {}
        for i, d in devices:
            try:
                profiles[d.id] = get_profile(d.profile)
            except ProfileError:
                if not bus.kind.value.startswith("modbus"):
                    continue
                yield ("devices", i, "profile"), f"unknown profile {d.profile!r} (meterhub profiles list)"
        on_bus = [p for p in profiles.values() if p.bus_power is not None]
        if not on_bus:
            continue
        provided, consumed = bus_power(on_bus)
        suppliers = [
            d.id
            for _, d in devices
            if (pp := profiles.get(d.id)) is not None
            and pp.bus_power is not None
            and pp.bus_power.provided > 0
        ]
        if provided <= 0:
            yield (
                ("buses", bi),
                (
                    f"module bus {bus.id!r}: {consumed:.2f} W of modules but no voltage unit to supply them "
                    "(seed 000 §7.2)"
                ),
            )
        elif consumed > provided + 1e-9:
            yield (
                ("buses", bi),
                (
                    f"module bus {bus.id!r}: modules draw {consumed:.2f} W but the supply "
                    f"({', '.join(suppliers)}) is only {provided:.2f} W (seed 000 §7.2: the sum must not "
                    "exceed the supply); "
                    "add an auxiliary supply or move modules to another bus"
                ),
            )
        for vu in (
            d for _, d in devices if d.id in profiles and profiles[d.id].kind is ProfileKind.VOLTAGE_UNIT
        ):
            circuits = [c.id for c in cfg.circuits if c.voltage_reference == vu.id]
            if len(circuits) > MAX_CIRCUITS_PER_VOLTAGE_UNIT:
                idx = next(i for i, d in devices if d.id == vu.id)
                yield (
                    ("devices", idx),
                    (
                        f"voltage unit {vu.id!r} serves {len(circuits)} circuits; at most "
                        f"{MAX_CIRCUITS_PER_VOLTAGE_UNIT} current circuits per voltage unit (seed 000 §3.1.2)"
                    ),
                )
