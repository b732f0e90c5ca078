"""The site file schema (pydantic v2).

A site file is YAML 1.2: ``site``, ``panels``, ``buses``, ``devices``, ``circuits`` and optional sections
for storage, web, energy, io, publish, alarms, modbus_server and simulation; ``fleet`` is a
typed placeholders that refuse content until their issue lands (:mod:`meterhub.config.pending`). Unknown
keys are errors (a typo must not be silently ignored), values are typed strictly
(:class:`~meterhub.config.types.StrictModel`). Every section's model lives in ``meterhub.config``, which
imports nothing of the subsystems that use it. See ``examples/demo-site.yaml`` for a complete, commented
example.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from meterhub.config.alarms import AlarmsConfig
from meterhub.config.control import ControlConfig
from meterhub.config.ct import CTKind, CTSpec
from meterhub.config.energy import EnergyConfig
from meterhub.config.faults import check_faults, parse_fault
from meterhub.config.io import IOSection
from meterhub.config.modbus_gateway import ModbusGatewayConfig
from meterhub.config.modbus_server import ModbusServerConfig
from meterhub.config.mqtt import DEFAULT_MQTT_PORT, ENV_NAME, MqttDeviceSpec
from meterhub.config.pending import PENDING_BUS_ISSUES, FleetConfig, not_implemented
from meterhub.config.publish import PublishInstance, PublishTLS
from meterhub.config.types import LAX, Identifier, NoBool, Ratio, StrictModel
from meterhub.model.quantities import CATALOGUE, UnknownQuantityError
from meterhub.model.topology import PHASES_OF_WIRING, Phase, Purpose, Wiring

__all__ = [
    "AlarmsConfig",
    "Bus",
    "BusKind",
    "BusScan",
    "CTKind",
    "CTSpec",
    "Circuit",
    "Device",
    "EnergyConfig",
    "FleetConfig",
    "IOSection",
    "Identifier",
    "ModbusGatewayConfig",
    "ModbusServerConfig",
    "LoadSpec",
    "MetricsConfig",
    "Panel",
    "PublishInstance",
    "Ratio",
    "SiteConfig",
    "SiteInfo",
    "Simulation",
    "StorageConfig",
    "WebConfig",
]


class Panel(StrictModel):
    id: Identifier
    name: str = ""
    parent: Identifier | None = None


class BusKind(StrEnum):
    """How devices are reached."""

    MODBUS_TCP = "modbus-tcp"
    MODBUS_RTU = "modbus-rtu"  # RS485 through a local serial port
    MODBUS_RTU_OVER_TCP = "modbus-rtu-over-tcp"  # RS485-to-Ethernet converter in transparent mode
    WAVEFORM = "waveform"  # an ADC board streaming sampled V and I (seed 001)
    MQTT = "mqtt"
    IEC62056_21 = "iec62056-21"
    DLMS = "dlms"
    IO = "io"  # local pulse / digital / analog / 1-wire inputs


def unit_ranges(text: str) -> list[int]:
    """``"1-10,20"`` → [1…10, 20]: Modbus unit ids, each 1…247 (Modbus over Serial Line V1.02 §2.2)."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo_s, _, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if hi_s else lo
        except ValueError:
            raise ValueError(f"unit range {part!r} is not N or N-M") from None
        if not 1 <= lo <= hi <= 247:
            raise ValueError(f"unit range {part!r} must lie within 1-247")
        out.update(range(lo, hi + 1))
    if not out:
        raise ValueError("an empty unit range")
    return sorted(out)


class BusScan(StrictModel):
    """``scan:`` of a Modbus bus: the background scan for devices that are not configured (issue 13,
    :mod:`meterhub.drivers.modbus.supervision`)."""

    enabled: bool = False
    share: float = Field(
        default=0.02, gt=0, le=0.5, description="fraction of the line's time the scan may use [-]"
    )
    range: str = Field(default="1-247", max_length=1000, description="unit ids to probe, e.g. 1-32,100")

    @field_validator("range")
    @classmethod
    def _range(cls, v: str) -> str:
        unit_ranges(v)
        return v

    @property
    def units(self) -> list[int]:
        return unit_ranges(self.range)


class Bus(StrictModel):
    """A line or endpoint that carries one or more devices; one master at a time per bus."""

    id: Identifier
    kind: Annotated[BusKind, LAX]
    host: str = Field(default="127.0.0.1", min_length=1, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)
    serial: str | None = Field(default=None, min_length=1, max_length=4096)
    baud: int = Field(default=9600, ge=300, le=921600, description="[bit/s]")
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Annotated[Literal[1, 2], NoBool] = 1
    framing: Literal["rtu", "ascii", "wrapper", "hdlc", "mode-e"] | None = Field(
        default=None,
        description="modbus-rtu and modbus-rtu-over-tcp: rtu (the default) or ascii (Modbus over Serial Line "
        "V1.02 §2.5.2); dlms: TCP wrapper (default on TCP, port 4059), HDLC (default on a serial port), or "
        "mode-e (IEC 62056-21 sign-on on the optical port, then HDLC)",
    )
    bytesize: Annotated[Literal[7, 8], NoBool] | None = Field(
        default=None, description="data bits of a serial line; default 8 for rtu, 7 for ascii"
    )
    timeout: float = Field(default=1.0, ge=0.01, le=60, description="response timeout [s]")
    retries: int = Field(default=2, ge=0, le=10)
    # kind mqtt (MQTT ingest, config/mqtt.py): the broker's login and TLS, as for publish instances
    username: str | None = Field(default=None, min_length=1, max_length=200)
    password_env: str | None = Field(default=None, description="environment variable holding the password")
    password_file: str | None = Field(
        default=None, min_length=1, max_length=4096, description="file holding the password"
    )
    tls: PublishTLS | None = None
    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    # kind dlms (docs/dlms.md): who the gateway is to the meter (its framing is `framing` above)
    client_sap: int | None = Field(
        default=None, ge=1, le=127, description="dlms: the client SAP (16 public client, the default)"
    )
    # Modbus buses: bus supervision's background scan (drivers/modbus/supervision.py)
    scan: BusScan | None = None

    @field_validator("kind")
    @classmethod
    def _has_driver(cls, v: BusKind) -> BusKind:
        issue = PENDING_BUS_ISSUES.get(v.value)
        if issue is not None:
            raise ValueError(f"bus kind {v.value!r}: {not_implemented(issue)}")
        return v

    @model_validator(mode="after")
    def _endpoint(self) -> Bus:
        needs_port = {BusKind.MODBUS_TCP, BusKind.MODBUS_RTU_OVER_TCP}
        if self.kind in needs_port and self.port is None:
            raise ValueError(f"a {self.kind.value} bus needs 'port'")
        if self.kind is BusKind.MODBUS_RTU and not self.serial:
            raise ValueError("a modbus-rtu bus needs 'serial' (e.g. /dev/ttyUSB0)")
        modbus_serial = (BusKind.MODBUS_RTU, BusKind.MODBUS_RTU_OVER_TCP)
        if self.framing in ("rtu", "ascii") and self.kind not in modbus_serial:
            raise ValueError(
                f"framing {self.framing} is for a serial Modbus line: a modbus-rtu or modbus-rtu-over-tcp bus, "
                f"not {self.kind.value}"
            )
        if self.framing in ("wrapper", "hdlc", "mode-e") and self.kind is not BusKind.DLMS:
            raise ValueError(f"framing {self.framing}: only a bus of kind dlms has it")
        if self.kind is BusKind.IEC62056_21:
            if not self.serial and self.port is None:
                raise ValueError(
                    "an iec62056-21 bus needs 'serial' (an optical head, e.g. /dev/ttyUSB0) or 'port' "
                    "(an optical bridge on TCP at 'host')"
                )
            # IEC 62056-21 §6.3.14: the character format is fixed; baud is the highest rate to switch to
            if "parity" in self.model_fields_set and self.parity != "E":
                raise ValueError(
                    "an iec62056-21 line is 7E1 (IEC 62056-21 §6.3.14): parity must be E or omitted"
                )
            if "stopbits" in self.model_fields_set and self.stopbits != 1:
                raise ValueError(
                    "an iec62056-21 line is 7E1 (IEC 62056-21 §6.3.14): stopbits must be 1 or omitted"
                )
        modbus = (BusKind.MODBUS_TCP, BusKind.MODBUS_RTU, BusKind.MODBUS_RTU_OVER_TCP)
        if self.scan is not None and self.kind not in modbus:
            raise ValueError(f"scan: only a Modbus bus has a background scan, not {self.kind.value}")
        if self.client_sap is not None and self.kind is not BusKind.DLMS:
            raise ValueError("client_sap: only a bus of kind dlms has it")
        if self.kind is BusKind.DLMS:
            return self._dlms()
        mqtt_only = ("username", "password_env", "password_file", "tls", "client_id")
        if self.kind is not BusKind.MQTT:
            given = [f for f in mqtt_only if getattr(self, f) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only a bus of kind mqtt has a broker login")
            return self
        if self.password_env is not None and not ENV_NAME.match(self.password_env):
            raise ValueError(f"password_env {self.password_env[:40]!r} is not an environment variable name")
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give the password by password_env or password_file, not both")
        if (self.password_env or self.password_file) and self.username is None:
            raise ValueError("a password needs a username")
        return self

    def _dlms(self) -> Bus:
        """A dlms bus: a TCP endpoint or a serial port, an LLS password by password_env or password_file
        (no username: the client SAP says who the gateway is)."""
        if not self.serial and self.port is None:
            raise ValueError(
                "a dlms bus needs 'port' (TCP at 'host', 4059 for the wrapper) or 'serial' (e.g. /dev/ttyUSB0)"
            )
        if self.serial and self.framing == "wrapper":
            raise ValueError("framing 'wrapper' is for TCP; a serial line uses hdlc or mode-e")
        given = [f for f in ("username", "tls", "client_id") if getattr(self, f) is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: a dlms bus has a client SAP and a password only")
        if self.password_env is not None and not ENV_NAME.match(self.password_env):
            raise ValueError(f"password_env {self.password_env[:40]!r} is not an environment variable name")
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give the password by password_env or password_file, not both")
        return self

    @property
    def modbus_framing(self) -> Literal["rtu", "ascii"]:
        """The frames of a serial Modbus line: ascii when configured, else rtu."""
        return "ascii" if self.framing == "ascii" else "rtu"

    @property
    def dlms_framing(self) -> str:
        """How APDUs travel on a dlms bus: the configured framing, else wrapper on TCP, hdlc on serial."""
        return self.framing or ("hdlc" if self.serial else "wrapper")

    @property
    def mqtt_port(self) -> int:
        """The broker port of a ``kind: mqtt`` bus (1883, or 8883 with TLS, when none is given)."""
        return self.port or (8883 if self.tls is not None else DEFAULT_MQTT_PORT)


class Device(StrictModel):
    """A thing with an address on a bus."""

    id: Identifier
    name: str = ""
    panel: Identifier | None = None
    bus: Identifier
    unit: int | None = Field(default=None, ge=0, le=247, description="Modbus unit id / bus address")
    profile: str = Field(default="", max_length=128, description="required except for MQTT devices")
    mqtt: MqttDeviceSpec | None = Field(default=None, description="a device on a bus of kind mqtt")
    poll_interval: float = Field(default=1.0, ge=0.001, le=86400, description="[s]")
    priority: int = Field(default=0, ge=0, le=9)
    enabled: bool = True

    @model_validator(mode="after")
    def _profile_or_mqtt(self) -> Device:
        if self.mqtt is None and not self.profile:
            raise ValueError(
                "a device needs 'profile' (e.g. eastron-sdm630); only a device on an mqtt bus, with 'mqtt:', "
                "has none"
            )
        if self.mqtt is not None and self.profile:
            raise ValueError("a device with 'mqtt:' has no 'profile' (its mqtt block says what it sends)")
        return self


class Circuit(StrictModel):
    """A metering point."""

    id: Identifier
    name: str = ""
    device: Identifier
    channels: list[Annotated[int, Field(ge=1, le=64)]] = Field(
        default_factory=lambda: [1], min_length=1, max_length=4, description="1-based current inputs"
    )
    wiring: Annotated[Wiring, LAX] = Wiring.P1W2
    phases: list[Annotated[Phase, LAX]] | None = Field(
        default=None, description="supply phase of each current channel (default L1, L2, L3 in order)"
    )
    ct: CTSpec = Field(default_factory=CTSpec)
    vt_ratio: Ratio = Field(default_factory=lambda: Ratio(primary=1, secondary=1))
    reversed: list[bool] | bool = Field(default=False, description="CT polarity reversed (per channel)")
    purpose: Annotated[Purpose, LAX] = Purpose.CONSUMABLE
    zone: str | None = None
    panel: Identifier | None = None
    voltage_reference: Identifier | None = Field(
        default=None, description="device id of the voltage unit this circuit takes its voltage from"
    )
    tariff: str | None = None

    @field_validator("phases")
    @classmethod
    def _no_neutral(cls, v: list[Phase] | None) -> list[Phase] | None:
        if v is not None and any(p in (Phase.N, Phase.TOTAL) for p in v):
            raise ValueError("phases may only be L1, L2 or L3")
        return v

    @model_validator(mode="after")
    def _channels_match_wiring(self) -> Circuit:
        need = len(PHASES_OF_WIRING[self.wiring])
        if self.wiring is Wiring.P3W3 and len(self.channels) in (2, 3):
            pass  # Aron connection uses two current channels; three is allowed too
        elif len(self.channels) != need:
            raise ValueError(f"wiring {self.wiring.value} needs {need} channel(s), got {len(self.channels)}")
        if self.phases is not None and len(self.phases) != len(self.channels):
            raise ValueError("'phases' must name one supply phase per channel")
        return self

    @property
    def supply_phases(self) -> tuple[Phase, ...]:
        """The supply phase of each current channel."""
        if self.phases is not None:
            return tuple(self.phases)
        return PHASES_OF_WIRING[self.wiring][: len(self.channels)]


class StorageConfig(StrictModel):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    dsn: str | None = Field(default=None, description="PostgreSQL connection string")
    raw_retention_days: float = Field(
        default=30, gt=0, le=36500, description="how long raw values are kept [d]"
    )
    flush_interval: float = Field(default=5.0, ge=0.1, le=3600, description="[s] at most this is lost")
    raw_retention_by_quantity: dict[str, Annotated[float, Field(gt=0, le=36500)]] = Field(
        default_factory=dict, description="raw retention per quantity id [d], overriding raw_retention_days"
    )
    minute_rollup_retention_days: float | None = Field(
        default=None, gt=0, le=36500, description="how long 1-minute rollups are kept [d]; unset keeps them"
    )
    event_retention_days: float = Field(
        default=730, gt=0, le=36500, description="how long the alarm and power-quality logs are kept [d]"
    )
    audit_retention_days: float = Field(
        default=3650, gt=0, le=36500, description="how long the audit log is kept [d]"
    )
    spool_max_mb: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="bound of the PostgreSQL outage spool [MiB]; unset: 24 h at the measured rate",
    )

    @field_validator("raw_retention_by_quantity")
    @classmethod
    def _known_quantities(cls, v: dict[str, float]) -> dict[str, float]:
        for name in v:
            if name not in CATALOGUE:
                raise ValueError(str(UnknownQuantityError(name)))
        return v

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> StorageConfig:
        if self.backend == "postgres" and not self.dsn:
            raise ValueError(
                "backend 'postgres' needs 'dsn', e.g. 'host=127.0.0.1 user=meterhub dbname=meterhub'"
            )
        return self


class MetricsConfig(StrictModel):
    """``web.metrics``: the Prometheus endpoint ``GET /metrics`` (docs/metrics.md)."""

    public: bool = Field(default=False, description="serve /metrics without a session or API token")
    live_values: bool = Field(
        default=False, description="also export the latest valid live values as meterhub_value gauges"
    )


class WebConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    public_live: bool = False
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    title: str | None = None
    session_idle: float = Field(
        default=12 * 3600, ge=60, le=30 * 86400, description="a web session ends after this long idle [s]"
    )
    session_lifetime: float = Field(
        default=7 * 86400, ge=60, le=365 * 86400, description="a web session ends this long after sign-in [s]"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="reverse proxies (IP addresses or CIDR networks) whose X-Forwarded-For / Forwarded "
        "headers name the client; from any other peer these headers are ignored",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or a CIDR network (e.g. 10.0.0.5, 10.0.0.0/24)"
                ) from None
        return value

    @model_validator(mode="after")
    def _idle_within_lifetime(self) -> WebConfig:
        if self.session_idle > self.session_lifetime:
            raise ValueError("session_idle must not exceed session_lifetime")
        return self


class LoadSpec(StrictModel):
    """A simulated load behind a circuit (used by ``meterhub demo`` / ``meterhub simulate``)."""

    model: Literal["constant", "lighting", "hvac", "ev", "pv", "it", "motor", "heater", "kitchen", "supply"]
    rated_power: float = Field(gt=0, le=1e9, description="[W] per circuit (all phases together)")
    power_factor: float = Field(default=0.95, ge=-1, le=1)
    period: float = Field(default=600, ge=1, le=86400 * 366, description="cycle period for cycling loads [s]")
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    enable: Identifier | None = Field(
        default=None,
        description="relay point (io section) whose contactor feeds this load: it runs only while energised",
    )


class Simulation(StrictModel):
    """What ``meterhub demo`` simulates: the supply and a load model per circuit."""

    voltage: float = Field(default=230.0, ge=50, le=1000, description="nominal phase-to-neutral voltage [V]")
    voltage_variation: float = Field(default=0.01, ge=0, le=0.2, description="relative, slow [-]")
    frequency: float = Field(default=50.0, ge=40, le=70, description="[Hz]")
    time_scale: float = Field(
        default=1.0, ge=0.001, le=10000, description="simulated s per real s (day curves)"
    )
    start_hour: float | None = Field(
        default=None, ge=0, lt=24, description="simulated local hour at start [h]; default: the site's clock"
    )
    loads: dict[str, LoadSpec] = Field(default_factory=dict)
    w1_probes: list[Annotated[str, Field(pattern=r"^(10|22|28|3b)-[0-9a-f]{12}$")]] = Field(
        default_factory=list,
        max_length=100,
        description="1-wire probes on the simulated bus beside the configured ones (not yet named: found by "
        "GET /api/v1/config/onewire), w1 ids such as 28-0516a1b2c3d4",
    )
    faults: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="installation faults to simulate (config/faults.py): CIRCUIT:reverse:PHASE, "
        "CIRCUIT:swap:PHASE,PHASE, CIRCUIT:ratio:FACTOR, DEVICE:drop:PHASE, DEVICE:offline:START-END",
    )

    @field_validator("faults")
    @classmethod
    def _faults_parse(cls, v: list[str]) -> list[str]:
        for text in v:
            parse_fault(text)
        return v


class SiteInfo(StrictModel):
    name: str
    timezone: str = "UTC"
    nominal_voltage: float = Field(default=230.0, ge=50, le=1000, description="phase-to-neutral [V]")
    nominal_frequency: Annotated[Literal[50, 60], NoBool] = 50
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    co2_factor: float = Field(default=0.0, ge=0, le=5, description="[kg/kWh]")
    language: Literal["en", "de"] = "en"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as "Europe"
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as 'Europe/Berlin'") from None
        return v


class SiteConfig(StrictModel):
    """A whole site file."""

    site: SiteInfo
    panels: list[Panel] = Field(default_factory=list)
    buses: list[Bus] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)
    circuits: list[Circuit] = Field(default_factory=list)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    simulation: Simulation | None = None
    energy: EnergyConfig | None = None
    io: IOSection | None = None
    alarms: AlarmsConfig | None = None
    control: ControlConfig | None = None
    publish: list[PublishInstance] | None = Field(default=None, max_length=32)
    modbus_server: ModbusServerConfig | None = None
    modbus_gateway: ModbusGatewayConfig | None = None
    fleet: FleetConfig | None = None

    @model_validator(mode="after")
    def _faults_known(self) -> SiteConfig:
        if self.simulation is not None and self.simulation.faults:
            check_faults(self, self.simulation.faults)
        return self

    def bus(self, bus_id: str) -> Bus:
        return next(b for b in self.buses if b.id == bus_id)

    def device(self, device_id: str) -> Device:
        return next(d for d in self.devices if d.id == device_id)

    def circuit(self, circuit_id: str) -> Circuit:
        return next(c for c in self.circuits if c.id == circuit_id)
