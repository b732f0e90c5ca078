"""Home Assistant MQTT discovery: retained sensor configs, one state topic per circuit, availability.

For every selected circuit and every series of a quantity in :data:`HA_SENSORS`, a retained config is
published to ``<discovery_prefix>/sensor/<node>/<object>/config`` (node = ``<site_id>_<circuit>``,
object = ``<quantity>_<phase>``) naming the circuit's state topic ``<prefix>/ha/<circuit>/state``, whose
JSON payload holds each object's value (``value_template: {{ value_json.<object> }}``). Each circuit is
one Home Assistant device linked to the gateway (``via_device``); every entity shares the instance's
availability topic ``<prefix>/status``: ``online`` once connected, ``offline`` as the client's last will
and on a clean stop. A circuit that is no longer published gets an empty retained config, which removes
its entities from Home Assistant.

The gateway itself is a device too (:func:`gateway_device`, identifiers ``meterhub_<site_id>``), so the
circuits' ``via_device`` names a device that exists. It carries diagnostic entities of the publishing
instance (:data:`GATEWAY_SENSORS`: broker connectivity, outbox backlog, age of the oldest pending message,
messages dropped; and the list of offline devices, which central reads), under node ``<site_id>__gateway`` (a circuit id never starts with ``_``, so no circuit's
node can be the same) with the state topic ``<prefix>/ha/_gateway/state``. Home Assistant's MQTT sensor
documentation (``source/_integrations/sensor.mqtt.markdown``) says a sensor's ``entity_category`` "must be
``diagnostic``", ``via_device`` is the "identifier of a device that routes messages between this device and
Home Assistant", and a device needs ``identifiers`` or ``connections``.

:data:`HA_SENSORS` follows Home Assistant's sensor documentation (device classes and their units; state
class ``measurement`` for values at a moment, ``total_increasing`` for registers that only grow, ``total``
for a net register that may go down). Apparent energy has no device class in Home Assistant, so it goes
without one; quantities not in the table are not offered to Home Assistant (they stay in meterhub-json).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum, auto

import meterhub
from meterhub.model.quantities import CATALOGUE, Q
from meterhub.model.topology import Phase
from meterhub.publish.interval import CircuitInfo, CircuitInterval

__all__ = [
    "GATEWAY",
    "GATEWAY_SENSORS",
    "HA_SENSORS",
    "DeviceClass",
    "HaSensor",
    "discovery_config",
    "gateway_configs",
    "gateway_device",
    "gateway_state",
    "node_id",
    "object_id",
    "removal",
    "state_payload",
]

MANUFACTURER = "meterhub"


class DeviceClass(StrEnum):
    """Home Assistant sensor device classes used here (values: Home Assistant's names, lower case)."""

    POWER = auto()
    REACTIVE_POWER = auto()
    APPARENT_POWER = auto()
    VOLTAGE = auto()
    CURRENT = auto()
    FREQUENCY = auto()
    POWER_FACTOR = auto()
    ENERGY = auto()
    REACTIVE_ENERGY = auto()
    TEMPERATURE = auto()


@dataclass(frozen=True, slots=True)
class HaSensor:
    """How one quantity appears in Home Assistant: device_class (None: none), state_class, unit (None:
    dimensionless; otherwise the catalogue unit, which every entry below shares with Home Assistant)."""

    device_class: DeviceClass | None
    state_class: str
    unit: str | None


_M = "measurement"
_TI = "total_increasing"

#: Catalogue quantity → its Home Assistant sensor description.
HA_SENSORS: dict[str, HaSensor] = {
    Q.ACTIVE_POWER: HaSensor(DeviceClass.POWER, _M, "W"),
    Q.ACTIVE_POWER_IMPORT: HaSensor(DeviceClass.POWER, _M, "W"),
    Q.ACTIVE_POWER_EXPORT: HaSensor(DeviceClass.POWER, _M, "W"),
    Q.REACTIVE_POWER: HaSensor(DeviceClass.REACTIVE_POWER, _M, "var"),
    Q.APPARENT_POWER: HaSensor(DeviceClass.APPARENT_POWER, _M, "VA"),
    Q.VOLTAGE: HaSensor(DeviceClass.VOLTAGE, _M, "V"),
    Q.VOLTAGE_LINE: HaSensor(DeviceClass.VOLTAGE, _M, "V"),
    Q.CURRENT: HaSensor(DeviceClass.CURRENT, _M, "A"),
    Q.FREQUENCY: HaSensor(DeviceClass.FREQUENCY, _M, "Hz"),
    Q.POWER_FACTOR: HaSensor(DeviceClass.POWER_FACTOR, _M, None),
    Q.DISPLACEMENT_POWER_FACTOR: HaSensor(DeviceClass.POWER_FACTOR, _M, None),
    Q.THD_VOLTAGE: HaSensor(None, _M, "%"),
    Q.THD_CURRENT: HaSensor(None, _M, "%"),
    Q.DEMAND_ACTIVE_IMPORT: HaSensor(DeviceClass.POWER, _M, "W"),
    Q.ENERGY_ACTIVE_IMPORT: HaSensor(DeviceClass.ENERGY, _TI, "Wh"),
    Q.ENERGY_ACTIVE_EXPORT: HaSensor(DeviceClass.ENERGY, _TI, "Wh"),
    Q.ENERGY_ACTIVE_ABSOLUTE: HaSensor(DeviceClass.ENERGY, _TI, "Wh"),
    Q.ENERGY_ACTIVE_NET: HaSensor(DeviceClass.ENERGY, "total", "Wh"),
    Q.ENERGY_REACTIVE_IMPORT: HaSensor(DeviceClass.REACTIVE_ENERGY, _TI, "varh"),
    Q.ENERGY_REACTIVE_EXPORT: HaSensor(DeviceClass.REACTIVE_ENERGY, _TI, "varh"),
    Q.ENERGY_APPARENT: HaSensor(None, _TI, "VAh"),
    Q.TEMPERATURE: HaSensor(DeviceClass.TEMPERATURE, _M, "°C"),
}
for _q, _s in HA_SENSORS.items():  # the table must speak the catalogue's units
    if _s.unit is not None and CATALOGUE[_q].unit != _s.unit:  # pragma: no cover - guards edits
        raise RuntimeError(f"HA_SENSORS[{_q}]: unit {_s.unit} is not the catalogue's {CATALOGUE[_q].unit}")

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def node_id(site_id: str, circuit: str) -> str:
    """Home Assistant's node_id allows ``[a-zA-Z0-9_-]``: other characters become ``_``."""
    return _UNSAFE.sub("_", f"{site_id}_{circuit}")


def object_id(quantity: str, phase: Phase | None) -> str:
    return f"{quantity}_{phase.value.lower() if phase is not None else 'value'}"


def _label(quantity: str, phase: Phase | None) -> str:
    words = quantity.replace("_", " ").capitalize()
    return f"{words} {phase.value}" if phase is not None and phase is not Phase.TOTAL else words


def state_topic(prefix: str, circuit: str) -> str:
    return f"{prefix}/ha/{circuit}/state"


def config_topic(discovery_prefix: str, site_id: str, circuit: str, obj: str) -> str:
    return f"{discovery_prefix}/sensor/{node_id(site_id, circuit)}/{obj}/config"


def discovery_config(
    circuit: CircuitInfo,
    quantity: str,
    phase: Phase | None,
    *,
    site_id: str,
    prefix: str,
    availability_topic: str,
) -> dict[str, object]:
    """The discovery config of one series (see the module docstring)."""
    spec = HA_SENSORS[quantity]
    obj = object_id(quantity, phase)
    node = node_id(site_id, circuit.id)
    cfg: dict[str, object] = {
        "name": _label(quantity, phase),
        "unique_id": f"meterhub_{node}_{obj}",
        "state_topic": state_topic(prefix, circuit.id),
        "value_template": f"{{{{ value_json.{obj} }}}}",
        "state_class": spec.state_class,
        "availability_topic": availability_topic,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [f"meterhub_{node}"],
            "name": circuit.name,
            "manufacturer": MANUFACTURER,
            "model": f"circuit {circuit.wiring}",
            "via_device": f"meterhub_{_UNSAFE.sub('_', site_id)}",
        },
    }
    if spec.device_class is not None:
        cfg["device_class"] = spec.device_class.value
    if spec.unit is not None:
        cfg["unit_of_measurement"] = spec.unit
    return cfg


#: The gateway's place where a circuit id would be in topics and node ids (circuit ids start with [a-z0-9]).
GATEWAY = "_gateway"


@dataclass(frozen=True, slots=True)
class GatewaySensor:
    """One diagnostic entity of the gateway device: Home Assistant component (``sensor`` or
    ``binary_sensor``), object id suffix, name, device_class, state_class and unit (None: none)."""

    component: str
    key: str
    name: str
    device_class: str | None
    state_class: str | None
    unit: str | None


#: The gateway's diagnostic entities, per publish instance (their values: :func:`gateway_state`).
#: connectivity: ON while the instance is connected to its broker (binary_sensor device class
#: ``connectivity``); duration in s (sensor device class ``duration``); counts have no device class.
GATEWAY_SENSORS: tuple[GatewaySensor, ...] = (
    GatewaySensor("binary_sensor", "connected", "connected", "connectivity", None, None),
    GatewaySensor("sensor", "backlog", "backlog", None, "measurement", "messages"),
    GatewaySensor("sensor", "oldest_pending", "oldest pending message", "duration", "measurement", "s"),
    GatewaySensor("sensor", "dropped", "messages dropped", None, "total_increasing", "messages"),
)


def _gateway_object(instance: str, sensor: GatewaySensor) -> str:
    return _UNSAFE.sub("_", f"publish_{instance}_{sensor.key}")


def gateway_device(site_id: str, site_name: str) -> dict[str, object]:
    """The Home Assistant device of the gateway: what every circuit's ``via_device`` names."""
    return {
        "identifiers": [f"meterhub_{_UNSAFE.sub('_', site_id)}"],
        "name": site_name or f"meterhub {site_id}",
        "manufacturer": MANUFACTURER,
        "model": "meterhub gateway",
        "sw_version": meterhub.__version__,
    }


def gateway_configs(
    discovery_prefix: str,
    *,
    site_id: str,
    site_name: str,
    instance: str,
    prefix: str,
    availability_topic: str,
) -> list[tuple[str, dict[str, object]]]:
    """(config topic, config) of each of :data:`GATEWAY_SENSORS` for publish instance ``instance``."""
    node = node_id(site_id, GATEWAY)
    out: list[tuple[str, dict[str, object]]] = []
    for sensor in GATEWAY_SENSORS:
        obj = _gateway_object(instance, sensor)
        cfg: dict[str, object] = {
            "name": f"Publish {instance} {sensor.name}",
            "unique_id": f"meterhub_{node}_{obj}",
            "state_topic": state_topic(prefix, GATEWAY),
            "value_template": f"{{{{ value_json.{obj} }}}}",
            "entity_category": "diagnostic",
            "availability_topic": availability_topic,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": gateway_device(site_id, site_name),
        }
        if sensor.device_class is not None:
            cfg["device_class"] = sensor.device_class
        if sensor.state_class is not None:
            cfg["state_class"] = sensor.state_class
        if sensor.unit is not None:
            cfg["unit_of_measurement"] = sensor.unit
        out.append((f"{discovery_prefix}/{sensor.component}/{node}/{obj}/config", cfg))
    return out


def gateway_state(
    instance: str,
    *,
    connected: bool,
    backlog: int,
    oldest_age: float,
    dropped: int,
    devices_offline: Iterable[str] | None = None,
) -> bytes:
    """The gateway's state message for instance ``instance``: connectivity ``ON``/``OFF``, backlog
    [messages], age of the oldest pending message [s], messages dropped [count], and — when given —
    ``devices_offline``: the ids of the gateway's devices that stopped answering, sorted (``[]`` when all
    answer). Home Assistant has no entity for the list (no discovery config names it); ``meterhub
    central`` raises its fleet alarm ``device_offline`` from it (docs/fleet.md, "Alarms")."""
    values: dict[str, object] = {}
    for sensor, value in zip(
        GATEWAY_SENSORS, ("ON" if connected else "OFF", backlog, round(oldest_age), dropped), strict=True
    ):
        values[_gateway_object(instance, sensor)] = value
    if devices_offline is not None:
        values["devices_offline"] = sorted(set(devices_offline))
    return json.dumps(values, separators=(",", ":")).encode()


def series_of(ci: CircuitInterval) -> list[tuple[str, Phase | None]]:
    """The series of an interval that Home Assistant is offered, in a stable order."""
    keys = [k for k in ci.values if k[0] in HA_SENSORS]
    return sorted(keys, key=lambda k: (k[0], k[1] or ""))


def state_payload(ci: CircuitInterval) -> bytes:
    """The circuit's state message: ``{object_id: value, …}`` in catalogue units."""
    out = {object_id(q, ph): float(f"{ci.values[(q, ph)].value:.7g}") for q, ph in series_of(ci)}
    return json.dumps(out, separators=(",", ":")).encode()


def removal(topics: Iterable[str]) -> list[tuple[str, bytes]]:
    """Empty retained payloads that delete discovery configs."""
    return [(t, b"") for t in topics]
