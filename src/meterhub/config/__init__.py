"""Site configuration: pydantic schema and YAML loading with file:line errors."""

from meterhub.config.loader import ConfigError, ConfigIssue, load_config, parse_config, register_check
from meterhub.config.schema import (
    Bus,
    BusKind,
    Circuit,
    CTKind,
    CTSpec,
    Device,
    LoadSpec,
    Panel,
    Ratio,
    Simulation,
    SiteConfig,
    SiteInfo,
    StorageConfig,
    WebConfig,
)

__all__ = [
    "Bus",
    "BusKind",
    "CTKind",
    "CTSpec",
    "Circuit",
    "ConfigError",
    "ConfigIssue",
    "Device",
    "LoadSpec",
    "Panel",
    "Ratio",
    "Simulation",
    "SiteConfig",
    "SiteInfo",
    "StorageConfig",
    "WebConfig",
    "load_config",
    "parse_config",
    "register_check",
]
