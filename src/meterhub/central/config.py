"""``central.yaml``: the settings of ``meterhub central`` (docs/fleet.md has the reference).

A central worker reads the gateways' ``meterhub-json`` messages from an MQTT broker and writes them to
PostgreSQL; this file says where both are, how the web API listens, and what the fleet's sites are
(names and floor areas for comparisons). Every error names ``file:line``, the field and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator

from meterhub.config.publish import MqttVersion, parse_broker
from meterhub.config.reader import ReadError, read_yaml
from meterhub.config.types import LAX, Identifier, StrictModel
from meterhub.errors import ConfigurationError

__all__ = [
    "BrokerFiles",
    "CentralConfig",
    "CentralConfigError",
    "FleetSite",
    "load_central_config",
    "parse_central_config",
    "protocol_problem",
]

#: Circuit ids taken as a site's main incomer when ``main_circuit`` is not set, first match wins.
DEFAULT_MAIN_CIRCUITS = ("main", "grid", "incomer")


class CentralConfigError(ConfigurationError):
    """A central.yaml that cannot be used; the message lists every problem as ``file:line: field: what``."""


class FleetSite(StrictModel):
    """One site of the fleet as the central service knows it (optional: an unknown site that publishes is
    listed with its id as name)."""

    id: Identifier
    name: str = Field(default="", max_length=200)
    floor_area_m2: Annotated[float, Field(gt=0)] | None = None
    """Conditioned floor area [m²], for kWh/m² comparisons."""
    main_circuit: str | None = None
    """The circuit whose ``energy_active_import`` and ``active_power`` stand for the whole site
    (default: the first of main, grid, incomer that the site publishes)."""


class BrokerFiles(StrictModel):
    """Mosquitto files that ``meterhub central provision`` maintains (mosquitto.conf ``password_file`` and
    ``acl_file`` point at them)."""

    password_file: Annotated[Path, LAX]
    acl_file: Annotated[Path, LAX]


class CentralConfig(StrictModel):
    """The whole ``central.yaml``."""

    mqtt: str = "mqtt://127.0.0.1:1883"
    """Broker URL, mqtt://HOST[:PORT]."""
    mqtt_version: MqttVersion = "5"
    """MQTT protocol version of the worker's connection: 5, or 3.1.1 for a broker without MQTT 5 (no
    shared subscriptions there: ``share_group`` must be null; a persistent session, Clean Session 0)."""
    username: str | None = None
    password_env: str | None = None
    """Environment variable holding the broker password of the central user."""
    dsn: str = "host=127.0.0.1 dbname=meterhub_central"
    """libpq connection string of the central database."""
    port: int = Field(default=8090, ge=0, le=65535)
    """Web API port [TCP] (0: no web server in this worker)."""
    host: str = "127.0.0.1"
    data: Annotated[Path, LAX] = Path("central-data")
    """Folder for logs and the worker's state."""
    worker_id: Identifier = "central-1"
    """MQTT client id of this worker; its session (and the messages queued for it) survives a restart."""
    share_group: Identifier | None = "central"
    """MQTT v5 shared-subscription group of the workers (``$share/<group>/…``); null: a plain subscription,
    for a single worker on a broker that does not keep shared subscriptions over its own restart
    (Mosquitto 2.0.11 does not: docs/fleet.md)."""
    topic_root: Identifier = "meterhub"
    batch_messages: int = Field(default=500, ge=1, le=100_000)
    """Messages written in one transaction at most."""
    batch_delay: float = Field(default=0.2, gt=0, le=10)
    """Longest wait for a batch to fill [s] (the lag it adds)."""
    receive_maximum: int = Field(default=1000, ge=1, le=65535)
    """MQTT v5 Receive Maximum: unacknowledged messages the broker may send this worker."""
    silent_after: float = Field(default=120, gt=0)
    """A site with no message for this long is ``silent`` [s]."""
    timezone: str = "UTC"
    """IANA zone of 'today' in the fleet views."""
    sites: list[FleetSite] = Field(default_factory=list)
    broker_files: BrokerFiles | None = None

    @field_validator("mqtt")
    @classmethod
    def _broker(cls, v: str) -> str:
        addr = parse_broker(v)
        if addr.scheme != "mqtt":
            raise ValueError("central speaks plain mqtt:// on the broker's local listener for now")
        return v

    def site(self, site_id: str) -> FleetSite | None:
        for s in self.sites:
            if s.id == site_id:
                return s
        return None


def protocol_problem(cfg: CentralConfig) -> str | None:
    """Why ``cfg``'s MQTT version cannot work with its other settings (None: it can)."""
    if cfg.mqtt_version == "3.1.1" and cfg.share_group is not None:
        return (
            f"MQTT 3.1.1 has no shared subscriptions ($share/{cfg.share_group}/…, MQTT 5 §4.8.2): set "
            "share_group: null (one worker, a plain subscription), or use an MQTT 5 broker"
        )
    return None


def _line(lines: dict[Any, int], loc: tuple[Any, ...]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def parse_central_config(text: str | bytes, filename: str = "<string>") -> CentralConfig:
    """Validate central.yaml's text; :class:`CentralConfigError` names each problem's file:line."""
    try:
        data, lines = read_yaml(text)
    except ReadError as exc:
        raise CentralConfigError(f"{filename}:{exc.line or 1}: {exc.message}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CentralConfigError(f"{filename}:1: central.yaml is a YAML mapping")
    try:
        cfg = CentralConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            field = ".".join(str(p) for p in loc) or "(file)"
            problems.append(f"{filename}:{_line(lines, loc) or 1}: {field}: {err['msg']}")
        raise CentralConfigError("; ".join(problems)) from None
    problem = protocol_problem(cfg)
    if problem:
        # share_group's default is "central": point at the key the file does set
        key = "share_group" if ("share_group",) in lines else "mqtt_version"
        raise CentralConfigError(f"{filename}:{lines.get((key,), 1)}: {key}: {problem}")
    return cfg


def load_central_config(path: Path | None) -> CentralConfig:
    """Read central.yaml (None: every default)."""
    if path is None:
        return CentralConfig()
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CentralConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_central_config(text, str(path))
