"""The site file's ``publish:`` section: where data leaves the gateway (issue 12).

``publish`` is a list of instances, each one broker (or, later, one HTTP endpoint) with its own topics,
selection, interval, formats and durable outbox. Example::

    publish:
      - id: cloud
        broker: mqtts://broker.example.net:8883
        tls: {ca_file: /etc/meterhub/ca.pem}
        username: site-17
        password_env: METERHUB_MQTT_PASSWORD     # or password_file: /etc/meterhub/mqtt.secret
        qos: 1
        interval: 60                             # [s]
        formats: [eniscope-rtdata, meterhub-json, homeassistant]
        selection: {zones: [office], quantities: [active_power, energy_active_import]}
        outbox: {max_days: 90}

HTTP upload (``transport: http``) POSTs gzip-compressed batches of meterhub-json messages to a URL with a
bearer token (for another meterhub: its ``POST /api/v1/ingest``)::

    publish:
      - id: upstream
        transport: http
        url: https://hub.example.net/api/v1/ingest
        token_env: METERHUB_UPLOAD_TOKEN         # or token_file: /etc/meterhub/upload.token
        tls: {ca_file: /etc/meterhub/ca.pem}     # https only; default: the system's CAs
        batch: 500                               # messages per POST at most
        timeout: 30                              # [s] per POST

A password or token is never written in the site file: it is read from the environment or from a file when
the instance connects, so neither the file nor an API that shows the configuration can reveal it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, field_validator, model_validator

from meterhub.config.types import LAX, Identifier, NoBool, StrictModel
from meterhub.model.quantities import CATALOGUE, UnknownQuantityError

__all__ = [
    "DEFAULT_TOPIC_PREFIX",
    "BrokerAddress",
    "MqttVersion",
    "OutboxSettings",
    "PublishFormat",
    "PublishInstance",
    "PublishSelection",
    "PublishTLS",
    "PublishTransport",
    "demo_instance",
    "parse_broker",
    "parse_upload_url",
    "publish_reference_issues",
]

#: Topic prefix of an instance that names none; ``{site_id}`` is replaced by the instance's site id.
DEFAULT_TOPIC_PREFIX = "meterhub/{site_id}"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# MQTT topic levels may hold almost anything; wildcards and empty levels make no sense in a publish topic.
_TOPIC = re.compile(r"^[^#+\x00]{1,200}$")


class PublishTransport(StrEnum):
    """How an instance sends."""

    MQTT = "mqtt"
    HTTP = "http"  # HTTP upload: POST batches of meterhub-json (publish/http.py)


class PublishFormat(StrEnum):
    """What an instance sends (docs/publish.md describes each)."""

    ENISCOPE_RTDATA = "eniscope-rtdata"  # seed 001's MQTT JSON: {"rtdata": [{uid, did, ts, V1 …}]}
    METERHUB_JSON = "meterhub-json"  # catalogue ids, units, OBIS codes; one message per circuit
    HOMEASSISTANT = "homeassistant"  # MQTT discovery configs and a state topic per circuit


class BrokerAddress(StrictModel):
    """A parsed broker URL."""

    scheme: Literal["mqtt", "mqtts"]
    host: str
    port: int


def parse_broker(url: str) -> BrokerAddress:
    """``mqtt://host[:port]`` (default port 1883) or ``mqtts://host[:port]`` (TLS, default 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"broker {url!r}: use mqtt://HOST:PORT or mqtts://HOST:PORT (TLS)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"broker {url!r}: the port must be a number 1…65535") from None
    if not parts.hostname:
        raise ValueError(f"broker {url!r} names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(
            f"broker {url!r}: only scheme, host and port belong in the URL "
            "(credentials go in username / password_env / password_file)"
        )
    scheme: Literal["mqtt", "mqtts"] = "mqtts" if parts.scheme == "mqtts" else "mqtt"
    default = 8883 if scheme == "mqtts" else 1883
    return BrokerAddress(scheme=scheme, host=parts.hostname, port=port or default)


def parse_upload_url(url: str) -> str:
    """An HTTP upload URL: ``http://`` or ``https://``, a host, no credentials or fragment."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"url {url[:100]!r}: use http://HOST[:PORT]/PATH or https://HOST[:PORT]/PATH")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"url {url[:100]!r}: the port must be a number 1…65535") from None
    if not parts.hostname:
        raise ValueError(f"url {url[:100]!r} names no host")
    if parts.username or parts.password or parts.fragment:
        raise ValueError(
            f"url {url[:100]!r}: no credentials or fragment in the URL (the token goes in token_env / token_file)"
        )
    return url


class PublishTLS(StrictModel):
    """TLS for an ``mqtts://`` broker or an ``https://`` upload URL: the CA that signed the broker's certificate and, for brokers that
    ask for one, the client's certificate and key (PEM files)."""

    ca_file: str | None = Field(default=None, min_length=1, max_length=4096)
    cert_file: str | None = Field(default=None, min_length=1, max_length=4096)
    key_file: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _cert_and_key(self) -> PublishTLS:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both cert_file and key_file")
        return self


class PublishSelection(StrictModel):
    """What an instance sends: circuits (by id), zones and quantities (catalogue ids). An empty or missing
    list means all; circuits and zones together select the union."""

    circuits: list[Identifier] = Field(default_factory=list, max_length=10_000)
    zones: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=1000
    )
    quantities: list[str] = Field(default_factory=list, max_length=len(CATALOGUE))

    @field_validator("quantities")
    @classmethod
    def _known_quantities(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in CATALOGUE:
                raise ValueError(str(UnknownQuantityError(name)))
        return v


class OutboxSettings(StrictModel):
    """Bounds of an instance's durable outbox. When it is full the oldest messages go first (counted and
    logged as a WARNING naming the instance)."""

    max_days: float = Field(
        default=90, gt=0, le=3650, description="messages older than this are dropped [d] (seed 001: 90 days)"
    )
    max_mb: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="bound on disk [MiB]; unset: max_days at the instance's measured rate",
    )


def _version_text(value: object) -> object:
    # YAML reads `mqtt_version: 5` as an integer and `3.1.1` as text; both name a protocol version.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


#: An MQTT protocol version: "5" or "3.1.1" (written 5 or 3.1.1 in YAML).
MqttVersion = Annotated[Literal["5", "3.1.1"], BeforeValidator(_version_text)]


class PublishInstance(StrictModel):
    """One ``publish:`` entry."""

    id: Identifier
    name: str = Field(default="", max_length=200)
    enabled: bool = True
    transport: Annotated[PublishTransport, LAX] = PublishTransport.MQTT
    broker: str | None = Field(
        default=None, min_length=1, max_length=300, description="mqtt://HOST:PORT or mqtts://HOST:PORT (mqtt)"
    )
    url: str | None = Field(
        default=None, min_length=1, max_length=2000, description="http(s):// URL to POST batches to (http)"
    )
    token_env: str | None = Field(
        default=None, description="environment variable holding the bearer token (http)"
    )
    token_file: str | None = Field(
        default=None, min_length=1, max_length=4096, description="file holding the bearer token (http)"
    )
    batch: int = Field(default=500, ge=1, le=10_000, description="messages per POST at most (http)")
    timeout: float = Field(default=30, gt=0, le=600, description="time allowed for one POST [s] (http)")
    tls: PublishTLS | None = None
    username: str | None = Field(default=None, min_length=1, max_length=200)
    password_env: str | None = Field(default=None, description="environment variable holding the password")
    password_file: str | None = Field(
        default=None, min_length=1, max_length=4096, description="file holding the password"
    )
    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    mqtt_version: MqttVersion | None = Field(
        default=None,
        description="MQTT protocol (mqtt): 5 (unset) or 3.1.1 for a broker without MQTT 5, such as "
        "RabbitMQ's MQTT plugin before 3.13 (no message-id property then)",
    )
    qos: Annotated[Literal[0, 1], NoBool] = 1
    retain: bool = Field(default=False, description="retain state topics (discovery configs always are)")
    site_id: Identifier | None = Field(default=None, description="default: the instance id")
    uid: str | None = Field(
        default=None, min_length=1, max_length=64, description="Eniscope 'uid' prefix; default: site_id"
    )
    topic_prefix: str = Field(default=DEFAULT_TOPIC_PREFIX, description="'{site_id}' is replaced")
    discovery_prefix: str = Field(default="homeassistant", min_length=1, max_length=100)
    selection: PublishSelection = Field(default_factory=PublishSelection)
    interval: float = Field(default=60, ge=1, le=86400, description="one message set per interval [s]")
    formats: list[Annotated[PublishFormat, LAX]] = Field(
        default_factory=lambda: [PublishFormat.METERHUB_JSON], min_length=1, max_length=3
    )
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)

    @field_validator("broker")
    @classmethod
    def _broker(cls, v: str | None) -> str | None:
        if v is not None:
            parse_broker(v)
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return parse_upload_url(v) if v is not None else None

    @field_validator("password_env", "token_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v):
            raise ValueError(f"{v[:40]!r} is not an environment variable name (letters, digits, '_')")
        return v

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not _TOPIC.match(v) or v.startswith("/") or v.endswith("/") or "//" in v:
            raise ValueError(f"{v[:60]!r} is not a topic prefix (no '#', '+', empty or leading/trailing '/')")
        return v

    @field_validator("formats")
    @classmethod
    def _unique_formats(cls, v: list[PublishFormat]) -> list[PublishFormat]:
        if len(set(v)) != len(v):
            raise ValueError("a format is listed twice")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> PublishInstance:
        if self.transport is PublishTransport.HTTP:
            return self._consistent_http()
        if self.broker is None:
            raise ValueError("transport 'mqtt' needs a broker (mqtt://HOST:PORT or mqtts://HOST:PORT)")
        for name in ("url", "token_env", "token_file"):
            if getattr(self, name) is not None:
                raise ValueError(
                    f"'{name}' belongs to transport 'http'; an MQTT broker takes username/password"
                )
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give the password by password_env or password_file, not both")
        if (self.password_env or self.password_file) and self.username is None:
            raise ValueError("a password needs a username")
        if self.tls is not None and parse_broker(self.broker).scheme != "mqtts":
            raise ValueError("'tls' needs an mqtts:// broker")
        return self

    def _consistent_http(self) -> PublishInstance:
        if self.url is None:
            raise ValueError("transport 'http' needs a url (http://… or https://…)")
        for name in ("broker", "username", "password_env", "password_file", "client_id", "mqtt_version"):
            if getattr(self, name) is not None:
                raise ValueError(
                    f"'{name}' belongs to transport 'mqtt'; HTTP upload takes url and token_env/token_file"
                )
        if self.token_env is not None and self.token_file is not None:
            raise ValueError("give the token by token_env or token_file, not both")
        if self.formats != [PublishFormat.METERHUB_JSON]:
            raise ValueError(
                "transport 'http' sends the format meterhub-json only (formats: [meterhub-json])"
            )
        if self.tls is not None and urlsplit(self.url).scheme != "https":
            raise ValueError("'tls' needs an https:// url")
        return self

    @property
    def address(self) -> BrokerAddress:
        """The parsed broker (MQTT instances; an HTTP instance has none and raises ValueError)."""
        if self.broker is None:
            raise ValueError(f"publish {self.id}: transport {self.transport.value} has no broker")
        return parse_broker(self.broker)

    @property
    def effective_site_id(self) -> str:
        return self.site_id or self.id

    @property
    def prefix(self) -> str:
        """The topic prefix with ``{site_id}`` filled in."""
        return self.topic_prefix.replace("{site_id}", self.effective_site_id)


def demo_instance(broker: str, site_id: str = "demo", *, interval: float = 10) -> PublishInstance:
    """The publish instance of ``meterhub demo --mqtt URL``: every format, every circuit, every
    ``interval`` [s], QoS 1. Raises pydantic's ``ValidationError`` for a wrong URL or site id."""
    return PublishInstance.model_validate(
        {
            "id": "demo",
            "name": "meterhub demo --mqtt",
            "broker": broker,
            "site_id": site_id,
            "interval": interval,
            "formats": [f.value for f in PublishFormat],
        }
    )


def publish_reference_issues(
    instances: Sequence[PublishInstance], circuits: Iterable[str], zones: Iterable[str]
) -> Iterable[tuple[tuple[str | int, ...], str]]:
    """Cross-checks of ``publish:`` against the site: unique instance ids, known circuits and zones.
    Yields ``(location, message)`` like every site check."""
    known_circuits = set(circuits)
    known_zones = set(zones)
    seen: dict[str, int] = {}
    for i, inst in enumerate(instances):
        if inst.id in seen:
            yield ("publish", i, "id"), f"duplicate id {inst.id!r} (also publish[{seen[inst.id]}])"
        seen.setdefault(inst.id, i)
        for j, c in enumerate(inst.selection.circuits):
            if c not in known_circuits:
                names = ", ".join(sorted(known_circuits)[:20]) or "none"
                yield ("publish", i, "selection", "circuits", j), f"unknown circuit {c!r}; known: {names}"
        for j, z in enumerate(inst.selection.zones):
            if z not in known_zones:
                names = ", ".join(sorted(known_zones)) or "none"
                yield ("publish", i, "selection", "zones", j), f"unknown zone {z!r}; known: {names}"
