"""MQTT ingest in the site file: a bus of kind ``mqtt`` (one broker) and its devices (topics).

A bus of kind ``mqtt`` is one broker connection; each device on it subscribes to one topic filter
(wildcards allowed) and decodes its payloads in one format. Such a device has no profile: its ``mqtt:``
block says what the payloads hold. Example (``examples/mqtt-ingest.yaml``)::

    buses:
      - {id: broker, kind: mqtt, host: 10.0.0.5, port: 1883, username: gw, password_env: MQTT_PASSWORD}
    devices:
      - id: eniscope
        bus: broker
        mqtt: {topic: "eniscope/+/rtdata", format: eniscope-rtdata, interval: 60}
      - id: shelly
        bus: broker
        mqtt:
          topic: shellies/plug-1/status
          format: json
          timestamp: ts                           # optional: Unix seconds; else the time of receipt
          mapping:
            - {path: "meters[0].power", quantity: active_power, phase: total, unit: W}
            - {path: "meters[0].total", quantity: energy_active_import, phase: total, unit: kWh}
    circuits:
      - {id: office, device: eniscope, channels: [3]}     # the rtdata entry with did 3
      - {id: plug, device: shelly}

Which circuit a value goes to:

``eniscope-rtdata``
    the entry whose ``did`` is the circuit's first channel.
``meterhub-json``
    the message whose ``circuit`` is the id of a circuit on the device (one meterhub forwarding to
    another keeps its circuit ids).
``json``
    the mapping entry's ``circuit``; it may be left out when the device has exactly one circuit.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from meterhub.config.types import LAX, Identifier, StrictModel
from meterhub.model.quantities import CATALOGUE, UnknownQuantityError
from meterhub.model.topology import Phase
from meterhub.model.units import accepted_units, unit_factor

__all__ = [
    "DEFAULT_MQTT_PORT",
    "ENV_NAME",
    "MappingEntry",
    "MqttDeviceSpec",
    "MqttFormat",
    "check_topic_filter",
    "parse_path",
]

#: Port of a ``kind: mqtt`` bus that names none (1883; 8883 with ``tls``).
DEFAULT_MQTT_PORT = 1883
#: An environment variable name (``password_env``), as for publish instances.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class MqttFormat(StrEnum):
    """How a device's payloads are decoded (docs/publish.md "MQTT ingest")."""

    ENISCOPE_RTDATA = "eniscope-rtdata"  # seed 001's {"rtdata": [{uid, did, ts, V1 …}]}
    METERHUB_JSON = "meterhub-json"  # another meterhub's native JSON (schema meterhub-json/1)
    JSON = "json"  # any JSON, decoded by a declared mapping


def parse_path(path: str) -> tuple[str | int, ...]:
    """``"a.b[0].c"`` → ``("a", "b", 0, "c")``: object keys by dot, list indexes in brackets.

    Raises ValueError for an empty path or one that is not of that form."""
    parts: list[str | int] = []
    for segment in path.split("."):
        if not segment:
            raise ValueError(f"path {path!r}: empty part (write a.b[0].c)")
        i = 0
        for m in _PATH_PART.finditer(segment):
            if m.start() != i or (m.group(1) is not None and i != 0):
                break
            parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
            i = m.end()
        if i != len(segment):
            raise ValueError(f"path {path!r}: {segment!r} is not KEY, KEY[N] or [N] (write a.b[0].c)")
    return tuple(parts)


def check_topic_filter(topic: str) -> str:
    """An MQTT topic filter (MQTT 3.1.1 §4.7): ``+`` fills a whole level, ``#`` only as the last level."""
    if not topic or len(topic) > 500 or "\x00" in topic:
        raise ValueError("a topic filter has 1…500 characters")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"topic {topic!r}: '#' must be a whole level and the last one (a/b/#)")
        if "+" in level and level != "+":
            raise ValueError(f"topic {topic!r}: '+' must be a whole level (a/+/c)")
    return topic


class MappingEntry(StrictModel):
    """One value of a ``json`` payload: where it is, what it is, in which unit."""

    path: str = Field(min_length=1, max_length=500, description="dot/index path, e.g. meters[0].power")
    quantity: str
    phase: Annotated[Phase, LAX] | None = None
    unit: str = Field(max_length=16, description="the unit the device publishes in (converted)")
    circuit: Identifier | None = Field(default=None, description="default: the device's only circuit")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        parse_path(v)
        return v

    @field_validator("quantity")
    @classmethod
    def _quantity(cls, v: str) -> str:
        if v not in CATALOGUE:
            raise ValueError(str(UnknownQuantityError(v)))
        return v

    @model_validator(mode="after")
    def _unit_and_phase(self) -> MappingEntry:
        spec = CATALOGUE[self.quantity]
        if unit_factor(spec.unit, self.unit) is None:
            units = ", ".join(repr(u) for u in accepted_units(spec.unit))
            raise ValueError(f"unit {self.unit!r} is not a unit of {self.quantity}; use one of {units}")
        if self.phase is None:
            if Phase.TOTAL in spec.phases and len(spec.phases) > 1:
                raise ValueError(
                    f"{self.quantity} needs 'phase' (one of {', '.join(p.value for p in spec.phases)})"
                )
            if spec.phases:
                self.phase = spec.phases[0]
        elif self.phase not in spec.phases:
            allowed = ", ".join(p.value for p in spec.phases) or "none"
            raise ValueError(f"{self.quantity} has no phase {self.phase.value!r}; allowed: {allowed}")
        return self

    @property
    def factor(self) -> float:
        """From the published unit to the catalogue unit [-]."""
        return unit_factor(CATALOGUE[self.quantity].unit, self.unit) or 1.0


class MqttDeviceSpec(StrictModel):
    """The ``mqtt:`` block of a device on a ``kind: mqtt`` bus."""

    topic: str = Field(description="topic filter to subscribe to (QoS 1); + and # allowed")
    format: Annotated[MqttFormat, LAX]
    mapping: list[MappingEntry] = Field(default_factory=list, max_length=500)
    timestamp: str | None = Field(
        default=None, min_length=1, max_length=500, description="path of the Unix time [s] (json)"
    )
    interval: float = Field(default=60, ge=0.1, le=86400, description="expected time between messages [s]")
    timeout: float | None = Field(
        default=None, ge=0.1, le=3 * 86400, description="offline after this long silent [s]; 3 × interval"
    )

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        return check_topic_filter(v)

    @field_validator("timestamp")
    @classmethod
    def _timestamp(cls, v: str | None) -> str | None:
        if v is not None:
            parse_path(v)
        return v

    @model_validator(mode="after")
    def _mapping_for_json(self) -> MqttDeviceSpec:
        if self.format is MqttFormat.JSON and not self.mapping:
            raise ValueError("format 'json' needs a 'mapping' (a list of {path, quantity, phase, unit})")
        if self.format is not MqttFormat.JSON and (self.mapping or self.timestamp):
            raise ValueError(f"'mapping' and 'timestamp' belong to format 'json', not {self.format.value!r}")
        return self

    @property
    def silence_limit(self) -> float:
        """The device is offline when no message arrived for this long [s]."""
        return self.timeout if self.timeout is not None else 3 * self.interval
