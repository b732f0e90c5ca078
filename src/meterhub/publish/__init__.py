"""Publishers: what leaves the gateway (issue 12: MQTT publish; HTTP upload, metrics and the Modbus server
later).

The site file's ``publish:`` instances run as one bus sink (:mod:`meterhub.publish.sink`, ``SinkKind.PUBLISH``)
with a SPILL subscription; each instance renders its formats (:mod:`~meterhub.publish.formats`,
:mod:`~meterhub.publish.homeassistant`) into a durable outbox (:mod:`~meterhub.publish.outbox`) that an MQTT
client drains (:mod:`~meterhub.publish.mqtt`), so an outage delays delivery and never loses it. See
docs/publish.md.
"""

from meterhub.publish.outbox import Message, Outbox, OutboxError, OutboxStats, StoredMessage
from meterhub.publish.sink import PublishSink, publish_sink

__all__ = ["Message", "Outbox", "OutboxError", "OutboxStats", "PublishSink", "StoredMessage", "publish_sink"]
