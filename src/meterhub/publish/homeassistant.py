"""Home Assistant MQTT discovery: retained sensor configs, one state topic per circuit, availability.

For every selected circuit and every series of a quantity in :data:`HA_SENSORS`, a retained config is
published to ``<discovery_prefix>/sensor/<node>/<object>/config`` (node = ``<site_id>_<circuit>``,
object = ``<quantity>_<phase>``) naming the circuit's state topic ``<prefix>/ha/<circuit>/state``, whose
JSON payload holds each object's value (``value_template: {{ value_json.<object> }}``). Each circuit is
one Home Assistant device linked to the gateway (``via_device``); every entity shares the instance's
availability topic ``<prefix>/status``: ``online`` once connected, ``offline`` as the client's last will
and on a clean stop. A circuit that is no longer published gets an empty retained config, which removes
its entities from Home Assistant.

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

from meterhub.model.quantities import CATALOGUE, Q
from meterhub.model.topology import Phase
from meterhub.publish.interval import CircuitInfo, CircuitInterval

__all__ = [
    "HA_SENSORS",
    "DeviceClass",
    "HaSensor",
    "discovery_config",
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
