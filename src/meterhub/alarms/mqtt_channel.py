"""Alarm notifications by MQTT: every notifying event as one JSON message, through a publish instance.

The channel has no broker connection of its own: the ``publish:`` instance named by
``notifications.mqtt.publish`` owns the connection and its durable outbox (``DATA/outbox-<id>.sqlite``,
drained by :class:`meterhub.publish.mqtt.MqttLink`). The alarms layer cannot import the publish layer
(siblings), so the runtime hands the channel a function that puts messages into that outbox
(:meth:`MqttChannel.attach`, ``runtime/gateway.py``) once the instance runs, and takes it back
(:meth:`MqttChannel.detach`) before the instance stops.

Events are committed first to the channel's own outbox (``DATA/outbox-notify-mqtt.sqlite``), then moved to
the instance's outbox (put there, then removed here): an event raised while the publish instance is not
running — before the gateway's sinks start, after they stop, while its outbox cannot be opened — waits
and goes later; a broker outage is the instance's outbox's business. Nothing is lost; a crash between the
two commits may send an event twice (MQTT QoS 1 is at least once anyway; ``seq`` tells them apart).

Message: topic ``notifications.mqtt.topic`` (default ``<topic_prefix>/alarms``), QoS ``qos`` (1), retain
``retain`` (false); payload ``AlarmEvent.as_dict()`` plus ``site`` (the site's name), UTF-8 JSON.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from meterhub.alarms.model import AlarmEvent
from meterhub.config.notify import MqttNotifySettings, NotificationsConfig
from meterhub.model.health import Health, HealthState
from meterhub.storage.outbox import Message, Outbox

__all__ = ["MOVE_BATCH", "MqttChannel", "outbox_path"]

log = logging.getLogger("meterhub.notify")

#: Events moved to the publish instance's outbox in one transaction.
MOVE_BATCH = 500

#: Puts messages into the publish instance's outbox (committed when it returns; raises on failure).
Forward = Callable[[Sequence[Message]], object]


def outbox_path(data_dir: Path) -> Path:
    """``DATA/outbox-notify-mqtt.sqlite``."""
    return Path(data_dir) / "outbox-notify-mqtt.sqlite"


class MqttChannel:
    """See the module docstring. ``settings``: ``notifications.mqtt``; ``cfg``: the section (default
    kinds); ``outbox``: the channel's own outbox; ``site``: the site's name."""

    def __init__(
        self,
        cfg: NotificationsConfig,
        settings: MqttNotifySettings,
        outbox: Outbox,
        *,
        site: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.site = site
        self._clock = clock
        self._kinds = {k.value for k in (settings.kinds or cfg.kinds)}
        self._severities = {s.value for s in settings.severities}
        self._forward: Forward | None = None
        self.topic: str | None = settings.topic
        #: why the instance cannot take events (set by the runtime: not running, outbox broken …)
        self.error: str | None = None
        self.events = 0
        self.forwarded = 0
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        return "notify mqtt"

    def wants(self, event: AlarmEvent) -> bool:
        return event.kind.value in self._kinds and (
            not self._severities or event.severity.value in self._severities
        )

    def put(self, event: AlarmEvent) -> int:
        """Commit ``event`` (if it notifies) and move what waits on when the instance runs; 1 if queued."""
        if not self.wants(event):
            return 0
        doc = event.as_dict()
        doc["site"] = self.site
        payload = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        # the topic is resolved when the message moves (the default needs the instance's prefix)
        self.outbox.put(
            [Message(topic="", payload=payload, qos=self.settings.qos, retain=self.settings.retain)]
        )
        self.events += 1
        self.move()
        return 1

    # -- the publish instance ------------------------------------------------------------------------
    def attach(self, forward: Forward, topic_prefix: str) -> None:
        """The publish instance runs: messages go to ``forward`` (its outbox), at ``topic`` or
        ``<topic_prefix>/alarms``; what waited goes now."""
        self._forward = forward
        self.topic = self.settings.topic or f"{topic_prefix}/alarms"
        self.error = None
        self.move()

    def detach(self, reason: str | None = None) -> None:
        """The publish instance stops (or cannot run: ``reason``): events wait in the channel's outbox."""
        self._forward = None
        self.error = reason

    def move(self) -> int:
        """Move waiting events to the instance's outbox, oldest first; return how many moved."""
        if self._forward is None or self.topic is None:
            return 0
        moved = 0
        while True:
            try:
                rows = self.outbox.peek(0, MOVE_BATCH)
                if not rows:
                    return moved
                self._forward([Message(self.topic, r.payload, r.qos, r.retain) for r in rows])
                self.outbox.ack(r.id for r in rows)
            except Exception as exc:  # an outbox that fails: the events stay here, retried on the next
                reason = f"cannot hand alarm events to publish {self.settings.publish}: {exc}"
                if reason != self.last_error:
                    log.error("%s: %s (they wait in %s)", self.name, reason, self.outbox.path)
                self.last_error = reason
                return moved
            moved += len(rows)
            self.forwarded += len(rows)
            self.last_error = None

    def health(self) -> Health:
        st = self.outbox.stats()
        counters = {"events": self.events, "forwarded": self.forwarded, "backlog": st.backlog}
        target = f"publish {self.settings.publish} ({self.topic or 'topic when it runs'})"
        if self.error is not None or self.last_error is not None:
            why = self.last_error or self.error
            return Health(HealthState.DEGRADED, f"{self.name}: {st.backlog} event(s) wait: {why}", counters)
        if self._forward is None:
            return Health(
                HealthState.DEGRADED if st.backlog else HealthState.OK,
                f"{self.name}: {target} not running yet; {st.backlog} event(s) wait",
                counters,
            )
        return Health(HealthState.OK, f"{self.name}: {self.forwarded} event(s) handed to {target}", counters)
