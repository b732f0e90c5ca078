"""``GET /metrics``: the gateway's health in the Prometheus text exposition format (issue 12).

One :class:`GatewayCollector` per app, in a :class:`~prometheus_client.CollectorRegistry` of its own (the
library's global registry is never touched), reads the gateway through :class:`~meterhub.web.deps.Monitor`
when Prometheus scrapes: nothing runs between scrapes. The metrics (docs/metrics.md lists them):

* the gateway: ``meterhub_build_info{version}``, ``meterhub_start_time_seconds``, ``meterhub_uptime_seconds``;
* each device (labels ``device``, ``bus``, ``profile``): online, requests, errors, timeouts, last seen, the
  source's own counters (lost samples, duplicate frames …) and, with the energy stage running, what it
  refused and the data state (0 ok, 1 warning, 2 error);
* each component of ``Gateway.health()`` (labels ``kind`` = source | sink, ``component`` = its name): the
  health state (0 ok, 1 degraded, 2 down) and every counter of its Health as
  ``meterhub_component_<counter>`` — new sinks (publishers' outboxes) appear without a change here;
* storage: last flush time and duration, flush count and total time, rows buffered, spooled, dropped;
* with ``web.metrics.live_values``: ``meterhub_value{circuit,quantity,phase,unit}``, the latest valid
  reading of every live series (INVALID ones never reach the live cache).

Access: any signed-in user or API token (reader or admin); anyone with ``web.metrics.public``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import choose_encoder

import meterhub
from meterhub.drivers.base import DeviceStatus
from meterhub.energy.data_status import DataState, DataStatus
from meterhub.model import quantities
from meterhub.model.health import Health, HealthState
from meterhub.model.readings import Reading
from meterhub.storage.base import StorageState
from meterhub.web.auth import Principal, principal_of
from meterhub.web.deps import Config, Monitor, get_monitor

__all__ = ["HEALTH_VALUE", "GatewayCollector", "metric_name", "router"]

router = APIRouter(tags=["metrics"])

#: Health state → gauge value (higher is worse, as :func:`meterhub.model.health.worst` orders them).
HEALTH_VALUE: Mapping[HealthState, int] = {HealthState.OK: 0, HealthState.DEGRADED: 1, HealthState.DOWN: 2}
#: Data state of a device → gauge value.
DATA_VALUE: Mapping[DataState, int] = {DataState.OK: 0, DataState.WARNING: 1, DataState.ERROR: 2}
#: Storage state → gauge value.
STORAGE_VALUE: Mapping[StorageState, int] = {
    StorageState.CONNECTED: 0,
    StorageState.SPOOLING: 1,
    StorageState.DOWN: 2,
}

_DEVICE_LABELS = ["device", "bus", "profile"]
#: Per-device families this module names itself; a source counter of the same name is not repeated.
_DEVICE_OWN = frozenset(
    {
        "online",
        "requests",
        "errors",
        "timeouts",
        "last_seen_timestamp_seconds",
        "data_state",
        "refused_values",
        "quarantined_steps",
        "pending_readings",
    }
)
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_]+")


def metric_name(text: str) -> str:
    """``text`` as part of a metric name: lower case, runs of other characters → ``_`` ("Lost samples" →
    ``lost_samples``)."""
    name = _INVALID_CHARS.sub("_", text).strip("_").lower()
    if not name:
        return "unnamed"
    return f"_{name}" if name[0].isdigit() else name


class GatewayCollector:
    """A Prometheus collector of one gateway's state, read at each scrape (see the module docstring)."""

    def __init__(self, monitor: Monitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[Metric]:
        m = self._monitor
        # Any read applies what the live cache has queued; do it first, so that its health counters
        # and the values below describe the same state.
        len(m.live)
        families = [*self._gateway(m), *self._devices(m), *self._components(m.health()), *self._storage(m)]
        if m.config.web.metrics.live_values:
            families += self._values(m.live.readings())
        # a family without samples (no device seen yet, no live values) is left out, not sent empty
        yield from (f for f in families if f.samples)

    # -- the gateway ------------------------------------------------------------------------------
    @staticmethod
    def _gateway(m: Monitor) -> Iterator[Metric]:
        yield InfoMetricFamily("meterhub_build", "meterhub version", value={"version": meterhub.__version__})
        yield GaugeMetricFamily(
            "meterhub_start_time_seconds", "When the gateway started, Unix time [s]", value=m.started_at
        )
        yield GaugeMetricFamily(
            "meterhub_uptime_seconds",
            "Time since the gateway started [s]",
            value=max(0.0, m.now() - m.started_at),
        )

    # -- devices ----------------------------------------------------------------------------------
    @staticmethod
    def _devices(m: Monitor) -> Iterator[Metric]:
        statuses = list(m.status.values())
        energy = m.energy
        online = GaugeMetricFamily(
            "meterhub_device_online", "1 when the device answers, else 0", labels=_DEVICE_LABELS
        )
        requests = CounterMetricFamily(
            "meterhub_device_requests", "Requests sent to the device", labels=_DEVICE_LABELS
        )
        errors = CounterMetricFamily(
            "meterhub_device_errors", "Failed requests (timeouts included)", labels=_DEVICE_LABELS
        )
        timeouts = CounterMetricFamily(
            "meterhub_device_timeouts", "Requests that timed out", labels=_DEVICE_LABELS
        )
        seen = GaugeMetricFamily(
            "meterhub_device_last_seen_timestamp_seconds",
            "Time of the device's last good answer, Unix time [s] (absent before the first)",
            labels=_DEVICE_LABELS,
        )
        extra: dict[str, CounterMetricFamily] = {}
        for st in statuses:
            labels = [st.id, st.bus, st.profile]
            online.add_metric(labels, float(st.online))
            requests.add_metric(labels, st.requests)
            errors.add_metric(labels, st.errors)
            timeouts.add_metric(labels, st.timeouts)
            if st.last_seen is not None:
                seen.add_metric(labels, st.last_seen)
            for name, value in _extra_counters(st).items():
                family = extra.get(name)
                if family is None:
                    family = extra[name] = CounterMetricFamily(
                        f"meterhub_device_{name}",
                        f"The source's own count of {name.replace('_', ' ')}",
                        labels=_DEVICE_LABELS,
                    )
                family.add_metric(labels, value)
        yield from (online, requests, errors, timeouts, seen)
        yield from extra.values()
        if energy is None:
            return
        data = energy.data_status()
        state = GaugeMetricFamily(
            "meterhub_device_data_state",
            "Whether the device's data is used: 0 ok, 1 warning (values refused recently), 2 error",
            labels=_DEVICE_LABELS,
        )
        refused = CounterMetricFamily(
            "meterhub_device_refused_values",
            "Readings the energy stage refused (not a number, out of range, marked invalid)",
            labels=_DEVICE_LABELS,
        )
        quarantined = CounterMetricFamily(
            "meterhub_device_quarantined_steps",
            "Register readings quarantined as outliers, never counted",
            labels=_DEVICE_LABELS,
        )
        pending = GaugeMetricFamily(
            "meterhub_device_pending_readings",
            "Register readings awaiting confirmation of a reset or a new meter",
            labels=_DEVICE_LABELS,
        )
        for st in statuses:
            labels = [st.id, st.bus, st.profile]
            ds = data.get(st.id) or DataStatus()
            state.add_metric(labels, DATA_VALUE[ds.state])
            refused.add_metric(labels, ds.refused)
            quarantined.add_metric(labels, ds.quarantined)
            pending.add_metric(labels, ds.pending)
        yield from (state, refused, quarantined, pending)

    # -- components -------------------------------------------------------------------------------
    @staticmethod
    def _components(health: Mapping[str, Health]) -> Iterator[Metric]:
        labels = ["kind", "component"]
        state = GaugeMetricFamily(
            "meterhub_component_health_state",
            "Health of a source or sink: 0 ok, 1 degraded, 2 down",
            labels=labels,
        )
        counters: dict[str, GaugeMetricFamily] = {}
        for key, h in sorted(health.items()):
            kind, _, name = key.partition(":")
            values = [kind, name]
            state.add_metric(values, HEALTH_VALUE[h.state])
            for counter, value in sorted(h.counters.items()):
                cname = metric_name(counter)
                if cname == "health_state":  # would collide with the family above
                    continue
                family = counters.get(cname)
                if family is None:
                    family = counters[cname] = GaugeMetricFamily(
                        f"meterhub_component_{cname}",
                        f"The component's {counter!r} counter of its health",
                        labels=labels,
                    )
                family.add_metric(values, value)
        yield state
        yield from counters.values()

    # -- storage ----------------------------------------------------------------------------------
    @staticmethod
    def _storage(m: Monitor) -> Iterator[Metric]:
        sh = m.storage.health()
        yield GaugeMetricFamily(
            "meterhub_storage_state",
            "Where flushed readings go: 0 the database, 1 the on-disk spool, 2 nowhere (held in memory)",
            value=STORAGE_VALUE[sh.state],
        )
        yield GaugeMetricFamily(
            "meterhub_storage_buffered_rows", "Readings in memory, not yet flushed", value=sh.buffered
        )
        yield GaugeMetricFamily(
            "meterhub_storage_spooled_rows",
            "Readings in the on-disk spool waiting for the database",
            value=sh.spooled_rows,
        )
        yield GaugeMetricFamily(
            "meterhub_storage_spool_bytes", "Size of the spooled readings [B]", value=sh.spool_bytes
        )
        if sh.oldest_spooled is not None:
            yield GaugeMetricFamily(
                "meterhub_storage_oldest_spooled_timestamp_seconds",
                "Time of the oldest spooled reading, Unix time [s]",
                value=sh.oldest_spooled,
            )
        yield CounterMetricFamily(
            "meterhub_storage_dropped_rows",
            "Readings lost because an outage outlasted the spool",
            value=sh.dropped_rows,
        )
        flushes = m.flushes()
        if flushes is None:
            return
        yield SummaryMetricFamily(
            "meterhub_storage_flush_duration_seconds",
            "Commits of buffered readings and energy registers to the database [s]",
            count_value=flushes.count,
            sum_value=flushes.seconds,
        )
        if flushes.last is not None:
            yield GaugeMetricFamily(
                "meterhub_storage_last_flush_timestamp_seconds",
                "Time of the last successful commit, Unix time [s]",
                value=flushes.last,
            )
        if flushes.last_duration is not None:
            yield GaugeMetricFamily(
                "meterhub_storage_last_flush_duration_seconds",
                "Duration of the last successful commit [s]",
                value=flushes.last_duration,
            )

    # -- live values ------------------------------------------------------------------------------
    @staticmethod
    def _values(readings: Iterable[Reading]) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "meterhub_value",
            "Latest valid live value of a series, in its catalogue unit (label unit)",
            labels=["circuit", "quantity", "phase", "unit"],
        )
        for r in sorted(readings, key=lambda r: (r.circuit, r.quantity, r.phase.value if r.phase else "")):
            if not math.isfinite(r.value):
                continue
            q = quantities.CATALOGUE.get(r.quantity)
            phase = r.phase.value if r.phase is not None else ""
            family.add_metric([r.circuit, r.quantity, phase, q.unit if q is not None else ""], r.value)
        yield family


def _extra_counters(st: DeviceStatus) -> dict[str, int]:
    """The source's own counters of device ``st``, named ``<name>_total`` safe (own names skipped)."""
    if st.extra_counters is None:
        return {}
    out: dict[str, int] = {}
    for name, value in st.extra_counters().items():
        clean = metric_name(name).removesuffix("_total")
        if clean not in _DEVICE_OWN:
            out[clean] = value
    return out


# -- the route ------------------------------------------------------------------------------------
def metrics_reader(request: Request, cfg: Config) -> Principal:
    """A signed-in user or API token (any role); anyone when ``web.metrics.public`` is on."""
    p = principal_of(request, check_csrf=False)
    if p is not None:
        return p
    if cfg.config.web.metrics.public:
        return Principal(None, None, "public")
    raise HTTPException(
        401,
        "sign in or send an API token (`meterhub user token create`), or set web.metrics.public",
        headers={"WWW-Authenticate": "Bearer"},
    )


def registry_of(request: Request, monitor: Annotated[Monitor, Depends(get_monitor)]) -> CollectorRegistry:
    """The app's own registry with its :class:`GatewayCollector`, made on the first scrape."""
    state = request.app.state
    registry: CollectorRegistry | None = getattr(state, "metrics_registry", None)
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(GatewayCollector(monitor))
        state.metrics_registry = registry
    return registry


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format"}},
)
async def metrics(
    request: Request,
    _: Annotated[Principal, Depends(metrics_reader)],
    registry: Annotated[CollectorRegistry, Depends(registry_of)],
) -> Response:
    # async: the collector reads the live cache and sink state on the event loop that updates them
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(registry), media_type=content_type)
