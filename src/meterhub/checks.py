"""The full set of site-file checks, and loading a site with all of them.

:mod:`meterhub.config` checks what a site file says on its own (schema, ids, references). Some rules need
a subsystem: the power budget of a module bus needs the device profiles (seed 000 §7.2), IO points need
their device's channels, the energy section needs the circuits' ids. Each subsystem owns its check as a
typed callable; this module lists them in :data:`SITE_CHECKS` and is what every entry point uses to load
a site file (``meterhub check-config``, ``run``, ``demo``, configuration edits through the API).

It sits above drivers and energy in the layer contract (next to ``bus``), so the config package stays a
leaf and no check is found by module name.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from meterhub.config.alarms import alarm_reference_issues
from meterhub.config.control_checks import check_control
from meterhub.config.io import RelayMode, RelayPoint
from meterhub.config.loader import CrossCheck, Loc, load_config, parse_config
from meterhub.config.modbus_gateway import modbus_gateway_issues
from meterhub.config.modbus_server import modbus_server_issues
from meterhub.config.mqtt_checks import mqtt_reference_issues
from meterhub.config.publish import publish_reference_issues
from meterhub.config.schema import BusKind, SiteConfig
from meterhub.drivers.dlms.checks import check_meter_buses
from meterhub.drivers.io.config import check_io
from meterhub.drivers.modbus.budget import check_module_buses
from meterhub.drivers.modbus.profile import Profile, ProfileError
from meterhub.energy.config import check_energy_references
from meterhub.profiles import get_profile

__all__ = [
    "SITE_CHECKS",
    "check_io_points",
    "check_modbus_server",
    "check_publish",
    "load_site",
    "parse_site",
]


def _known_profile(profile_id: str) -> Profile | None:
    try:
        return get_profile(profile_id)
    except ProfileError:  # reported by check_module_buses for Modbus devices
        return None


def check_io_points(config: SiteConfig) -> Iterable[tuple[Loc, str]]:
    """:func:`meterhub.drivers.io.config.check_io` against the installed device profiles."""
    return check_io(config, _known_profile)


def check_publish(config: SiteConfig) -> Iterable[tuple[Loc, str]]:
    """``publish:`` instances: unique ids, known circuits and zones in their selection."""
    zones = {c.zone for c in config.circuits if c.zone}
    return publish_reference_issues(config.publish or [], (c.id for c in config.circuits), zones)


def check_modbus_server(config: SiteConfig) -> Iterable[tuple[Loc, str]]:
    """``modbus_server:``: known AC circuits, each served once, unit ids used once."""
    points = {
        p.id: f"{p.kind} (pulse)" if isinstance(p, RelayPoint) and p.mode is RelayMode.PULSE else p.kind
        for p in (config.io.points if config.io is not None else [])
    }
    return modbus_server_issues(config.modbus_server, [(c.id, c.wiring) for c in config.circuits], points)


_MODBUS_BUSES = (BusKind.MODBUS_TCP, BusKind.MODBUS_RTU, BusKind.MODBUS_RTU_OVER_TCP)


def check_modbus_gateway(config: SiteConfig) -> Iterable[tuple[Loc, str]]:
    """``modbus_gateway:``: routes to Modbus buses of the site, each unit routed once."""
    modbus = [b.id for b in config.buses if b.kind in _MODBUS_BUSES]
    other = [b.id for b in config.buses if b.kind not in _MODBUS_BUSES]
    return modbus_gateway_issues(config.modbus_gateway, modbus, other)


#: Every cross-check of a site, in the order their messages are reported.
SITE_CHECKS: tuple[CrossCheck, ...] = (
    check_module_buses,
    check_io_points,
    check_energy_references,
    check_publish,
    mqtt_reference_issues,
    alarm_reference_issues,
    check_modbus_server,
    check_modbus_gateway,
    check_control,
    check_meter_buses,
)


def parse_site(text: str | bytes, filename: str = "<string>") -> SiteConfig:
    """Validate a site file's text with every check; raise :class:`meterhub.config.ConfigError`."""
    return parse_config(text, filename, checks=SITE_CHECKS)


def load_site(path: str | Path) -> SiteConfig:
    """Read a site file and validate it with every check; raise :class:`meterhub.config.ConfigError`."""
    return load_config(path, checks=SITE_CHECKS)
