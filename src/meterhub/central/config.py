"""``central.yaml``: the settings of ``meterhub central`` (docs/fleet.md has the reference).

A central worker reads the gateways' ``meterhub-json`` messages from an MQTT broker and writes them to
PostgreSQL; this file says where both are, how the web API listens, and what the fleet's sites are
(names and floor areas for comparisons). Every error names ``file:line``, the field and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator

from meterhub.config.notify import (
    EmailSettings,
    MqttNotifySettings,
    NotificationsConfig,
    NotifyKind,
    WebhookSettings,
)
from meterhub.config.publish import MqttVersion, parse_broker
from meterhub.config.reader import ReadError, read_yaml
from meterhub.config.types import LAX, Identifier, StrictModel
from meterhub.errors import ConfigurationError

__all__ = [
    "FLEET_ALARM_KINDS",
    "BrokerFiles",
    "CentralConfig",
    "CentralConfigError",
    "CentralMqttNotify",
    "CentralNotifications",
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


#: The fleet alarms central raises (docs/fleet.md, "Alarms"); an email route's ``rules`` name these.
FLEET_ALARM_KINDS = ("site_silent", "gateway_offline", "device_offline")
#: The notification kinds central produces: a fleet alarm is raised, and cleared.
CENTRAL_NOTIFY_KINDS = (NotifyKind.RAISED, NotifyKind.CLEARED)


def _central_kinds(kinds: list[NotifyKind] | None, where: str) -> None:
    bad = [k.value for k in kinds or () if k not in CENTRAL_NOTIFY_KINDS]
    if bad:
        raise ValueError(
            f"{where}: central notifies only 'raised' and 'cleared' fleet alarms, not {', '.join(bad)}"
        )


class CentralMqttNotify(MqttNotifySettings):
    """``notifications.mqtt`` of central: every notification as JSON on central's own broker connection
    (``mqtt:``) to ``topic`` (default ``<topic_root>/central/alarms``). A gateway names a ``publish:``
    instance here; central has none, so ``publish`` is refused."""

    publish: Identifier = "central"

    @model_validator(mode="before")
    @classmethod
    def _no_publish(cls, data: Any) -> Any:
        if isinstance(data, dict) and "publish" in data:
            raise ValueError(
                "central publishes notifications on its own broker connection (mqtt:); remove 'publish'"
            )
        return data


class CentralNotifications(NotificationsConfig):
    """``notifications:`` of central.yaml: the gateway's ``alarms.notifications`` schema
    (docs/alarms-notifications.md) for fleet alarms. ``kinds`` are ``raised`` and ``cleared``;
    ``group_window`` [s] gathers the fleet alarms of one kind raised (or cleared) within it into one
    notification ("37 sites silent" and the list); an email route's ``rules`` are fleet alarm kinds;
    ``quiet_hours`` are in central's ``timezone``; ``mqtt`` goes over central's own broker connection."""

    kinds: list[Annotated[NotifyKind, LAX]] = Field(
        default_factory=lambda: list(CENTRAL_NOTIFY_KINDS), min_length=1, max_length=len(NotifyKind)
    )
    mqtt: CentralMqttNotify | None = None  # central's own connection

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, v: list[NotifyKind]) -> list[NotifyKind]:
        _central_kinds(v, "kinds")
        return v

    @field_validator("email")
    @classmethod
    def _email(cls, v: EmailSettings | None) -> EmailSettings | None:
        if v is not None:
            _central_kinds(v.kinds, "email.kinds")
            for i, route in enumerate(v.routes):
                bad = [r for r in route.rules if r not in FLEET_ALARM_KINDS]
                if bad:
                    raise ValueError(
                        f"routes[{i}].rules: {', '.join(bad)} is not a fleet alarm; "
                        f"use {', '.join(FLEET_ALARM_KINDS)}"
                    )
        return v

    @field_validator("webhooks")
    @classmethod
    def _webhooks(cls, v: list[WebhookSettings]) -> list[WebhookSettings]:
        for hook in v:
            _central_kinds(hook.kinds, f"webhook {hook.id} kinds")
        return v

    @field_validator("mqtt")
    @classmethod
    def _mqtt(cls, v: CentralMqttNotify | None) -> CentralMqttNotify | None:
        if v is not None:
            _central_kinds(v.kinds, "mqtt.kinds")
        return v


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
    alarm_interval: float = Field(default=10, ge=1, le=600)
    """How often the fleet alarms are evaluated [s] (by one central process: docs/fleet.md, "Alarms")."""
    notifications: CentralNotifications | None = None
    """Email, webhooks and MQTT for fleet alarms (None: the alarms are logged and shown, not sent)."""

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
