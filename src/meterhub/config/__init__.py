"""Site configuration: the typed schema of every section and YAML 1.2 loading with file:line errors.

``meterhub.config`` is a leaf of the layer contract: it imports only :mod:`meterhub.model` and
:mod:`meterhub.errors`. Checks that need a subsystem are passed to :func:`parse_config` /
:func:`load_config` by the caller; :mod:`meterhub.checks` holds the full set for a site.
"""

from meterhub.config.alarms import AlarmsConfig
from meterhub.config.ct import CTCalibrationPoint, CTKind, CTSpec, CTTable
from meterhub.config.energy import EnergyConfig
from meterhub.config.io import IOSection
from meterhub.config.loader import ConfigError, ConfigIssue, CrossCheck, Loc, load_config, parse_config
from meterhub.config.modbus_server import ModbusServerConfig
from meterhub.config.pending import FleetConfig
from meterhub.config.publish import PublishInstance
from meterhub.config.schema import (
    Bus,
    BusKind,
    Circuit,
    Device,
    LoadSpec,
    Panel,
    Simulation,
    SiteConfig,
    SiteInfo,
    StorageConfig,
    WebConfig,
)
from meterhub.config.types import Ratio

__all__ = [
    "AlarmsConfig",
    "Bus",
    "BusKind",
    "CTCalibrationPoint",
    "CTKind",
    "CTSpec",
    "CTTable",
    "Circuit",
    "ConfigError",
    "ConfigIssue",
    "CrossCheck",
    "Device",
    "EnergyConfig",
    "FleetConfig",
    "IOSection",
    "LoadSpec",
    "Loc",
    "ModbusServerConfig",
    "Panel",
    "PublishInstance",
    "Ratio",
    "Simulation",
    "SiteConfig",
    "SiteInfo",
    "StorageConfig",
    "WebConfig",
    "load_config",
    "parse_config",
]
