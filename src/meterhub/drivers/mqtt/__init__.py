"""MQTT ingest: subscribe to a broker and turn ``eniscope-rtdata``, ``meterhub-json`` and declared JSON
payloads into readings (docs/publish.md "MQTT ingest").

:mod:`.decode` (payload → readings, pure) → :mod:`.source` (the paho-mqtt client and the
:class:`~meterhub.drivers.base.Source`). Importing this package registers the source for
:data:`~meterhub.config.BusKind.MQTT`.
"""

from __future__ import annotations

from meterhub.config.schema import BusKind
from meterhub.drivers.base import register_source
from meterhub.drivers.mqtt.decode import Decoded, PayloadDecoder, Problem
from meterhub.drivers.mqtt.source import MqttSource, mqtt_sources

__all__ = ["Decoded", "MqttSource", "PayloadDecoder", "Problem", "mqtt_sources"]

register_source(BusKind.MQTT, mqtt_sources)
