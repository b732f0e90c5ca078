"""paho 2.2 marks every unacknowledged QoS 1 message for sending again on reconnect, whatever its
inflight limit; :meth:`meterhub.publish.mqtt._Client.queue_beyond` keeps the first Receive Maximum of them
and queues the rest in order (MQTT v5 §3.3.4). Checked on paho's own message table (paho is pinned)."""

from __future__ import annotations

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from meterhub.publish.mqtt import _Client


def test_after_a_reconnect_at_most_receive_maximum_are_sent_at_once_in_order() -> None:
    client = _Client(CallbackAPIVersion.VERSION2, client_id="t", protocol=MQTTProtocolVersion.MQTTv5)
    client.set_inflight_limit(20)
    for i in range(50):  # not connected: paho keeps them (20 "in flight", 30 queued)
        client.publish(f"t/{i}", b"x", qos=1)
    client._messages_reconnect_reset_out()  # what paho does before it reconnects
    states = [m.state for m in client._out_messages.values()]
    assert states.count(paho.mqtt_ms_publish) == 50  # paho's own reset: all 50 at once
    client.queue_beyond(20)
    messages = list(client._out_messages.values())
    assert [m.state for m in messages] == [paho.mqtt_ms_publish] * 20 + [paho.mqtt_ms_queued] * 30
    assert [m.topic for m in messages] == [f"t/{i}" for i in range(50)]
