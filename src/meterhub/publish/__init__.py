"""Publishers: what leaves the gateway (issue 12): MQTT publish and HTTP upload. Prometheus metrics are
served by :mod:`meterhub.web.metrics`; the Modbus server for a BMS/SCADA (issue 13) is its own sink,
:mod:`meterhub.publish.modbus_server` (SunSpec models :mod:`~meterhub.publish.sunspec`, the flat map
:mod:`~meterhub.publish.modbus_map`).

The site file's ``publish:`` instances run as one bus sink (:mod:`meterhub.publish.sink`, ``SinkKind.PUBLISH``)
with a SPILL subscription; each instance renders its formats (:mod:`~meterhub.publish.formats`,
:mod:`~meterhub.publish.homeassistant`) into a durable outbox (:mod:`~meterhub.storage.outbox`) that an MQTT
client (:mod:`~meterhub.publish.mqtt`) or an HTTP uploader (:mod:`~meterhub.publish.http`) drains, so an outage delays delivery and never loses it. See
docs/publish.md.
"""

from meterhub.publish.sink import PublishSink, publish_sink
from meterhub.storage.outbox import Message, Outbox, OutboxError, OutboxStats, StoredMessage

__all__ = ["Message", "Outbox", "OutboxError", "OutboxStats", "PublishSink", "StoredMessage", "publish_sink"]
