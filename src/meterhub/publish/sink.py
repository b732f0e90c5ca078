"""The publish sink: the site file's ``publish:`` instances as one bus sink (``SinkKind.PUBLISH``).

For each enabled instance it aggregates the valid readings of every interval
(:mod:`meterhub.publish.interval`), renders the instance's formats (:mod:`meterhub.publish.formats`,
:mod:`meterhub.publish.homeassistant`) into the instance's durable outbox
(``DATA/outbox-<id>.sqlite``, :mod:`meterhub.storage.outbox`) and lets the instance's
:class:`~meterhub.publish.mqtt.MqttLink` drain it to the broker in its own threads (for ``transport: http``
the :class:`~meterhub.publish.http.HttpLink` POSTs it in batches). The sink's subscription
spills to ``DATA/publish-spool.jsonl``, so a slow sink loses no batch either. A site without enabled
instances subscribes to nothing until a configuration change enables one (:meth:`PublishSink.reconfigure`
starts, stops and restarts instances while the gateway runs).

Topics (``<prefix>`` = the instance's ``topic_prefix``, default ``meterhub/<site_id>``):

* ``<prefix>/rtdata`` — eniscope-rtdata, one message per interval with every selected circuit;
* ``<prefix>/circuits/<circuit>`` — meterhub-json, one message per circuit per interval;
* ``<prefix>/ha/<circuit>/state`` and ``<discovery_prefix>/sensor/<node>/<object>/config`` — Home Assistant;
* ``<prefix>/status`` — ``online`` / ``offline`` (retained; the client's last will).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from itertools import groupby
from pathlib import Path
from typing import Any

from meterhub.bus import Batch, Overflow, ReadingBus, SinkContext, Subscription
from meterhub.config.publish import PublishFormat, PublishInstance, PublishTransport
from meterhub.config.schema import SiteConfig
from meterhub.model.health import Health, HealthState, worst
from meterhub.publish import formats, homeassistant
from meterhub.publish.http import HttpLink, read_token
from meterhub.publish.interval import CircuitInterval, IntervalAggregator, Selection
from meterhub.publish.mqtt import MqttLink, PublishCredentialsError, read_password
from meterhub.storage.outbox import Message, Outbox, OutboxError

__all__ = ["PUBLISH_QUEUE", "InstanceRunner", "PublishSink", "publish_sink"]

log = logging.getLogger("meterhub.publish")

#: Batches the publish sink holds in memory before spilling to its spool file.
PUBLISH_QUEUE = 2000
#: Headroom on the measured rate when the outbox bound is derived from ``max_days`` [-].
SIZE_HEADROOM = 1.25


class InstanceRunner:
    """One publish instance: aggregation, rendering, outbox and MQTT link."""

    def __init__(
        self,
        config: SiteConfig,
        inst: PublishInstance,
        data_dir: Path,
        clock: Callable[[], float],
        device_status: Callable[[], Mapping[str, Any]] = dict,
    ):
        self.inst = inst
        #: the devices' statuses now (id → DeviceStatus): the gateway state's ``devices_offline``
        self._device_status = device_status
        self.site_id = inst.effective_site_id
        self.site_name = config.site.name
        self.prefix = inst.prefix
        self.availability_topic = f"{self.prefix}/status"
        self.selection = Selection(config, inst)
        self.aggregator = IntervalAggregator(self.selection, inst.interval)
        self.data_dir = data_dir
        self._clock = clock
        self.outbox: Outbox | None = None
        self.link: MqttLink | HttpLink | None = None
        self.error: str | None = None
        self.published_intervals = 0
        self._ha_file = data_dir / f"publish-{inst.id}-ha.json"
        self._ha_topics: set[str] = set()
        max_mb = inst.outbox.max_mb
        self._sized = max_mb is not None
        self._max_bytes = int(max_mb * 1024 * 1024) if max_mb is not None else None

    def runs_as(self, config: SiteConfig, inst: PublishInstance) -> bool:
        """True if this runner already publishes ``inst`` of ``config`` as configured: the same instance
        settings, the same circuits and quantities selected (a changed circuit list changes the selection
        of an instance that selects all of them) and the same site name."""
        sel = Selection(config, inst)
        return (
            inst == self.inst
            and config.site.name == self.site_name
            and sel.circuits == self.selection.circuits
            and sel.quantities == self.selection.quantities
        )

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        inst = self.inst
        try:
            self.outbox = Outbox(
                self.data_dir / f"outbox-{inst.id}.sqlite",
                name=f"publish {inst.id}",
                max_bytes=self._max_bytes,
                max_age=inst.outbox.max_days * 86400,
                clock=self._clock,
            )
            self._retire_discovery()
            if inst.transport is PublishTransport.HTTP:
                self.link = HttpLink(inst, self.outbox, token=read_token(inst), clock=self._clock)
            else:
                self.link = MqttLink(
                    inst,
                    self.outbox,
                    availability_topic=self.availability_topic,
                    client_id=inst.client_id or f"meterhub-{self.site_id}-{inst.id}",
                    password=read_password(inst),
                )
        except (OutboxError, PublishCredentialsError) as exc:
            self.error = str(exc)
            log.error("%s", exc)
            return
        self.link.start()
        log.info(
            "publish %s: %s to %s every %g s (%d circuits)",
            inst.id,
            ", ".join(f.value for f in inst.formats),
            self.link.endpoint,
            inst.interval,
            len(self.selection.circuits),
        )

    def stop(self) -> None:
        if self.link is not None:
            self.link.stop()
        if self.outbox is not None:
            self.outbox.close()

    # -- rendering -------------------------------------------------------------------------------
    def publish_due(self, now: float) -> int:
        """Render the intervals that are over into the outbox; return how many messages were added."""
        return self.write(self.aggregator.close(now))

    def write(self, done: list[CircuitInterval]) -> int:
        """Render closed intervals and stage them in the outbox (usually one interval; several when the
        sink catches up, e.g. after its spool was replayed). The outbox's writer thread commits them
        (fsync) — with whatever else waits, in one transaction — before the link can send them."""
        if not done or self.outbox is None:
            return 0
        messages: list[Message] = []
        intervals = 0
        for _end, group in groupby(done, key=lambda ci: ci.end):
            rendered = self.render(list(group))
            messages.extend(rendered)
            intervals += 1
            if not self._sized:
                self._size_outbox(sum(len(m.topic) + len(m.payload) for m in rendered))
        self.outbox.stage(messages)
        self.published_intervals += intervals
        if self.link is not None:
            self.link.wake()
        return len(messages)

    def render(self, intervals: list[CircuitInterval]) -> list[Message]:
        """Every message of one interval, in the order they are to arrive."""
        inst = self.inst
        out: list[Message] = []
        for fmt in inst.formats:
            if fmt is PublishFormat.ENISCOPE_RTDATA:
                payload = formats.rtdata(intervals, inst.uid or self.site_id)
                out.append(Message(f"{self.prefix}/rtdata", payload, inst.qos, False))
            elif fmt is PublishFormat.METERHUB_JSON:
                for ci in intervals:
                    payload = formats.meterhub_json(ci, site_id=self.site_id)
                    out.append(Message(f"{self.prefix}/circuits/{ci.circuit.id}", payload, inst.qos, False))
            elif fmt is PublishFormat.HOMEASSISTANT:
                out.extend(self._homeassistant(intervals))
        return out

    def _homeassistant(self, intervals: list[CircuitInterval]) -> list[Message]:
        inst = self.inst
        out: list[Message] = []
        new = False
        for ci in intervals:
            series = homeassistant.series_of(ci)
            if not series:
                continue
            for q, ph in series:
                topic = homeassistant.config_topic(
                    inst.discovery_prefix, self.site_id, ci.circuit.id, homeassistant.object_id(q, ph)
                )
                if topic in self._ha_topics:
                    continue
                cfg = homeassistant.discovery_config(
                    ci.circuit,
                    q,
                    ph,
                    site_id=self.site_id,
                    prefix=self.prefix,
                    availability_topic=self.availability_topic,
                )
                out.append(Message(topic, json.dumps(cfg, separators=(",", ":")).encode(), 1, True))
                self._ha_topics.add(topic)
                new = True
            state = homeassistant.state_payload(ci)
            out.append(
                Message(homeassistant.state_topic(self.prefix, ci.circuit.id), state, inst.qos, inst.retain)
            )
        if intervals:
            new |= self._gateway_entities(out)
        if new:
            self._save_ha_topics()
        return out

    def _gateway_entities(self, out: list[Message]) -> bool:
        """Append the gateway device's discovery configs (once) and its diagnostic state (each interval,
        as the outbox and the link are now); True if a config was new."""
        inst = self.inst
        new = False
        for topic, cfg in homeassistant.gateway_configs(
            inst.discovery_prefix,
            site_id=self.site_id,
            site_name=self.site_name,
            instance=inst.id,
            prefix=self.prefix,
            availability_topic=self.availability_topic,
        ):
            if topic not in self._ha_topics:
                out.append(Message(topic, json.dumps(cfg, separators=(",", ":")).encode(), 1, True))
                self._ha_topics.add(topic)
                new = True
        st = self.outbox.stats() if self.outbox is not None else None
        link = self.link.state() if self.link is not None else None
        oldest = st.oldest if st is not None else None
        state = homeassistant.gateway_state(
            inst.id,
            connected=bool(link and link.connected),
            backlog=st.backlog if st is not None else 0,
            oldest_age=max(0.0, self._clock() - oldest) if oldest is not None else 0.0,
            dropped=st.dropped if st is not None else 0,
            devices_offline=self._devices_offline(),
        )
        out.append(
            Message(
                homeassistant.state_topic(self.prefix, homeassistant.GATEWAY), state, inst.qos, inst.retain
            )
        )
        return new

    def _devices_offline(self) -> list[str]:
        """Ids of the devices that were asked and do not answer (a device not polled yet is not listed;
        the same test as the alarm sink's ``device_offline``, without its start grace)."""
        try:
            statuses = self._device_status()
        except Exception as exc:  # a status source that fails must not stop publishing
            log.warning("publish %s: cannot read the devices' status: %s", self.inst.id, exc)
            return []
        return sorted(
            dev
            for dev, st in statuses.items()
            if getattr(st, "online", True) is False
            and (int(getattr(st, "errors", 0)) > 0 or getattr(st, "last_seen", None) is not None)
        )

    def _retire_discovery(self) -> None:
        """Remove the discovery configs of circuits this instance no longer publishes (an empty retained
        config deletes the entity in Home Assistant)."""
        previous: set[str] = set()
        if self._ha_file.exists():
            try:
                previous = set(json.loads(self._ha_file.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as exc:
                log.warning(
                    "publish %s: cannot read %s (%s); no configs retired", self.inst.id, self._ha_file, exc
                )
        publishing_ha = PublishFormat.HOMEASSISTANT in self.inst.formats
        keep_nodes = (
            {homeassistant.node_id(self.site_id, c) for c in self.selection.circuits}
            if publishing_ha
            else set()
        )
        keep_quantities = self.selection.quantities
        gateway_topics = (
            {
                t
                for t, _ in homeassistant.gateway_configs(
                    self.inst.discovery_prefix,
                    site_id=self.site_id,
                    site_name=self.site_name,
                    instance=self.inst.id,
                    prefix=self.prefix,
                    availability_topic=self.availability_topic,
                )
            }
            if publishing_ha
            else set()
        )
        stale = []
        for topic in sorted(previous):
            parts = topic.split("/")
            node, obj = (parts[-3], parts[-2]) if len(parts) >= 4 else ("", "")
            if topic in gateway_topics or (node in keep_nodes and obj.rsplit("_", 1)[0] in keep_quantities):
                self._ha_topics.add(topic)
            else:
                stale.append(topic)
        if stale and self.outbox is not None:
            self.outbox.put([Message(t, p, 1, True) for t, p in homeassistant.removal(stale)])
            log.info(
                "publish %s: removing %d Home Assistant config(s) no longer published",
                self.inst.id,
                len(stale),
            )
            self._save_ha_topics()

    def _save_ha_topics(self) -> None:
        try:
            tmp = self._ha_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(sorted(self._ha_topics)), encoding="utf-8")
            tmp.replace(self._ha_file)
        except OSError as exc:
            log.error("publish %s: cannot write %s: %s", self.inst.id, self._ha_file, exc)

    def _size_outbox(self, interval_bytes: int) -> None:
        """Bound the outbox at ``max_days`` of the measured rate (+25 %) once one interval was rendered."""
        if self.outbox is None or interval_bytes <= 0:
            return
        per_day = interval_bytes * 86400 / self.inst.interval
        self.outbox.max_bytes = int(per_day * self.inst.outbox.max_days * SIZE_HEADROOM)
        self._sized = True
        log.info(
            "publish %s: outbox bound %.1f MiB (%g days at %.1f MiB/day)",
            self.inst.id,
            self.outbox.max_bytes / 2**20,
            self.inst.outbox.max_days,
            per_day / 2**20,
        )

    # -- health ----------------------------------------------------------------------------------
    def health(self, now: float) -> Health:
        inst = self.inst
        if self.error is not None:
            return Health(HealthState.DOWN, self.error)
        if self.outbox is None or self.link is None:
            return Health(HealthState.OK, f"publish {inst.id}: not started")
        st = self.outbox.stats()
        link = self.link.state()
        oldest_age = int(now - st.oldest) if st.oldest is not None else 0
        counters = {
            "connected": int(link.connected),
            "backlog": st.backlog,
            "backlog_bytes": st.size,
            "oldest_pending_age_s": oldest_age,
            "dropped": st.dropped,
            "sent": link.sent,
            "acknowledged": link.acked,
            "last_message_ts": int(link.last_publish) if link.last_publish is not None else 0,
            "intervals": self.published_intervals,
            "invalid_skipped": self.aggregator.invalid,
        }
        if self.link.failed is not None:
            return Health(HealthState.DOWN, f"publish {inst.id}: {self.link.failed}", counters)
        if self.outbox.failed is not None:
            return Health(
                HealthState.DOWN,
                f"publish {inst.id}: {self.outbox.failed}; {st.backlog} message(s) wait, "
                f"those not yet written in memory only",
                counters,
            )
        if link.connecting and st.backlog == 0 and isinstance(self.link, HttpLink):
            return Health(
                HealthState.OK,
                f"publish {inst.id}: no POST answered by {self.link.endpoint} yet (nothing to send so far)",
                counters,
            )
        if not link.connected:
            return Health(
                HealthState.DEGRADED,
                f"publish {inst.id}: not connected to {self.link.endpoint} ({link.last_error}); "
                f"{st.backlog} message(s) wait, oldest {oldest_age} s",
                counters,
            )
        if st.dropped:
            return Health(
                HealthState.DEGRADED,
                f"publish {inst.id}: connected to {self.link.endpoint}; outbox dropped {st.dropped} message(s)",
                counters,
            )
        return Health(
            HealthState.OK,
            f"publish {inst.id}: connected to {self.link.endpoint}; {st.backlog} message(s) pending",
            counters,
        )


class PublishSink:
    """Every enabled ``publish:`` instance of the site (see the module docstring)."""

    name = "publish"

    def __init__(
        self,
        subscription: Subscription,
        runners: list[InstanceRunner],
        clock: Callable[[], float],
        *,
        bus: ReadingBus | None = None,
        data_dir: Path | None = None,
        device_status: Callable[[], Mapping[str, Any]] = dict,
    ):
        self._sub = subscription
        self.runners = runners
        self._clock = clock
        self._bus = bus
        self._data_dir = data_dir
        self._device_status = device_status  # for the runners of instances started by reconfigure()
        self._ticker: asyncio.Task[None] | None = None
        self._halt = asyncio.Event()  # stops the ticker between two rounds
        self._running = False

    @property
    def subscription(self) -> Subscription:
        return self._sub

    async def start(self) -> None:
        self._running = True
        for r in self.runners:
            await asyncio.to_thread(r.start)
        self._start_ticker()

    def _start_ticker(self) -> None:
        if self.runners and self._running and self._ticker is None:
            self._halt = asyncio.Event()
            self._ticker = asyncio.create_task(self._tick(self._halt), name="publish-ticker")

    async def _stop_ticker(self) -> None:
        if self._ticker is not None:
            self._halt.set()
            try:
                await self._ticker
            except asyncio.CancelledError:
                if not self._ticker.cancelled():  # we are being cancelled ourselves
                    raise
            except Exception:  # pragma: no cover - _tick handles the outbox's errors
                log.exception("publish: the ticker failed")
            self._ticker = None

    async def reconfigure(self, config: SiteConfig) -> bool:
        """Apply a changed site file while running: start instances added or enabled, stop those removed
        or disabled, restart those whose settings or selection changed (each runner keeps its outbox
        file, so what waits in it is sent by the new link); unchanged ones run on undisturbed. A stopped
        instance first renders the intervals that are over; a partial one is not published, as at a
        stop. Return True if the sink's subscription was replaced (its pump must follow it: the
        runtime's job) — a sink built without enabled instances subscribed to nothing."""
        if self._data_dir is None or self._bus is None:
            raise RuntimeError("publish sink: reconfigure needs the bus and the data folder (publish_sink())")
        current = {r.inst.id: r for r in self.runners}
        runners: list[InstanceRunner] = []
        added: list[InstanceRunner] = []
        for inst in (i for i in (config.publish or []) if i.enabled):
            r = current.get(inst.id)
            if r is None or not r.runs_as(config, inst):
                r = InstanceRunner(config, inst, self._data_dir, self._clock, self._device_status)
                added.append(r)
            runners.append(r)
        gone = [r for r in self.runners if r not in runners]
        if not gone and not added:
            return False
        await self._stop_ticker()
        now = self._clock()
        for r in gone:
            if self._running:
                try:
                    r.publish_due(now)
                except OutboxError as exc:
                    log.error("%s", exc)
                await asyncio.to_thread(r.stop)
            why = "changed" if any(n.inst.id == r.inst.id for n in added) else "removed or disabled"
            log.info("publish %s: stopped (%s in the site file)", r.inst.id, why)
        self.runners = runners
        replaced = False
        if runners and self._sub not in self._bus.subscriptions:
            self._sub = self._subscribe(self._bus, self._data_dir)
            replaced = True
        if self._running:
            for r in added:
                await asyncio.to_thread(r.start)
            self._start_ticker()
        return replaced

    @staticmethod
    def _subscribe(bus: ReadingBus, data_dir: Path) -> Subscription:
        return bus.subscribe(
            "publish", maxsize=PUBLISH_QUEUE, overflow=Overflow.SPILL, spool=data_dir / "publish-spool.jsonl"
        )

    async def deliver(self, batch: Batch) -> None:
        for r in self.runners:
            r.aggregator.add(batch)

    async def stop(self) -> None:
        await self._stop_ticker()
        self._running = False
        now = self._clock()
        for r in self.runners:
            try:
                r.publish_due(now)  # the intervals that are over; a partial one is not published
            except OutboxError as exc:
                log.error("%s", exc)
            await asyncio.to_thread(r.stop)

    async def _tick(self, halt: asyncio.Event) -> None:
        period = min(1.0, min(r.inst.interval for r in self.runners) / 4)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(halt.wait(), period)
            if halt.is_set():  # stopped between two rounds, never inside one: no write is cut off
                return
            now = self._clock()
            for r in self.runners:
                # Closing the intervals stays on the loop (deliver() feeds the same aggregator); the
                # rendering runs in a worker thread; the outbox's writer thread commits (fsync).
                done = r.aggregator.close(now)
                try:
                    await asyncio.to_thread(r.write, done)
                except OutboxError as exc:
                    r.error = str(exc)
                    log.error("%s", exc)

    def health(self) -> Health:
        if not self.runners:
            return Health(HealthState.OK, "no publish instance enabled")
        now = self._clock()
        parts = [r.health(now) for r in self.runners]
        counters: dict[str, int] = {}
        for h in parts:
            for k, v in h.counters.items():
                counters[k] = (
                    max(counters.get(k, 0), v)
                    if k in ("oldest_pending_age_s", "last_message_ts")
                    else (counters.get(k, 0) + v)
                )
        st = self._sub.stats
        counters.update({"delivered": st.delivered, "spilled": st.spilled, "pending": self._sub.pending})
        return Health(worst(h.state for h in parts), "; ".join(h.message for h in parts), counters)


def publish_sink(ctx: SinkContext) -> PublishSink:
    """The sink of the site's enabled ``publish:`` instances, MQTT and HTTP (subscribed only if there is one)."""
    instances = [i for i in (ctx.config.publish or []) if i.enabled]
    sub = PublishSink._subscribe(ctx.bus, ctx.data_dir)
    if not instances:
        ctx.bus.unsubscribe(sub)
    runners = [InstanceRunner(ctx.config, i, ctx.data_dir, ctx.clock, ctx.device_status) for i in instances]
    return PublishSink(
        sub, runners, ctx.clock, bus=ctx.bus, data_dir=ctx.data_dir, device_status=ctx.device_status
    )
