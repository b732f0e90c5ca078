"""``GET /metrics`` (issue 12, "Prometheus"): parsed by prometheus_client's own parser, values checked
against a gateway (real SQLite storage, real sinks and energy stage, no sources) fed known readings and
device statuses; token or session access unless ``web.metrics.public``; live values only when enabled."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import meterhub
from meterhub.bus import SinkKind
from meterhub.config.loader import ConfigError, parse_config
from meterhub.energy.pipeline import EnergyPipeline
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.runtime.sinks import STORAGE_QUEUE, StorageSink
from meterhub.storage import open_storage
from meterhub.web.app import create_app
from meterhub.web.metrics import metric_name

from .conftest import SITE_YAML, add_user, login, readings, site_config
from .liveserver import free_port

T0 = 1_763_802_123.0  # 2025-11-22 09:02:03 UTC

#: (metric family, sample name, labels as sorted tuple) → value
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(tmp_path: Path, clock: Clock, *, site: str = SITE_YAML, **metrics: bool) -> Gateway:
    cfg = parse_config(site, "site.yaml") if site != SITE_YAML else site_config()
    cfg.web.metrics = cfg.web.metrics.model_copy(update=metrics)
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    storage = open_storage(cfg.storage, data, timezone=cfg.site.timezone)
    gw = Gateway(cfg, data_dir=data, storage=storage, clock=clock)
    gw.energy = EnergyPipeline(gw.config, gw.storage, clock=clock)  # as Gateway.start() does
    return gw


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def gw(tmp_path: Path, clock: Clock) -> Iterator[Gateway]:
    gateway = make(tmp_path, clock, public=True)
    yield gateway
    assert gateway.energy is not None
    gateway.energy.close()
    gateway.storage.close()


@pytest.fixture
def client(gw: Gateway) -> Iterator[TestClient]:
    with TestClient(create_app(gw)) as c:
        yield c


def scrape(client: TestClient, **headers: str) -> tuple[Samples, dict[str, str]]:
    """Samples of ``/metrics`` and each family's type, read by prometheus_client's parser."""
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(r.text):
        assert family.name not in types, f"family {family.name} sent twice"
        types[family.name] = family.type
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = s.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def device(d: str, profile: str) -> dict[str, str]:
    return {"device": d, "bus": "panel", "profile": profile}


def test_gateway_and_device_metrics_are_the_statuses_the_sources_keep(
    client: TestClient, gw: Gateway, clock: Clock
) -> None:
    meter = gw.status["meter"]
    meter.requests = 10
    meter.ok(T0 + 30)
    meter.failed("timeout after 1.0 s", timeout=True)
    meter.failed("CRC error")
    meter.ok(T0 + 50)  # answers again
    # what WaveformSource hands over for its board (drivers/waveform/source.py)
    gw.status["m1"].extra_counters = lambda: {"lost_samples": 640, "Duplicate frames": 2}
    clock.t = T0 + 100

    s, types = scrape(client)

    assert value(s, "meterhub_build_info", version=meterhub.__version__) == 1
    assert value(s, "meterhub_start_time_seconds") == T0
    assert value(s, "meterhub_uptime_seconds") == 100.0
    sdm = device("meter", "eastron-sdm630")
    assert value(s, "meterhub_device_online", **sdm) == 1
    assert value(s, "meterhub_device_requests_total", **sdm) == 10
    assert value(s, "meterhub_device_errors_total", **sdm) == 2
    assert value(s, "meterhub_device_timeouts_total", **sdm) == 1
    assert value(s, "meterhub_device_last_seen_timestamp_seconds", **sdm) == T0 + 50
    m10 = device("m2", "enertrek-m10")
    assert value(s, "meterhub_device_online", **m10) == 0
    assert ("meterhub_device_last_seen_timestamp_seconds", frozenset(m10.items())) not in s  # never seen
    m30 = device("m1", "enertrek-m30")
    assert value(s, "meterhub_device_lost_samples_total", **m30) == 640
    assert value(s, "meterhub_device_duplicate_frames_total", **m30) == 2
    assert types["meterhub_device_requests"] == "counter"
    assert types["meterhub_device_lost_samples"] == "counter"
    assert types["meterhub_device_online"] == "gauge"
    # all four devices of the site file
    assert sum(1 for name, _ in s if name == "meterhub_device_online") == 4


@pytest.mark.parametrize(
    ("counter", "name"),
    [
        ("lost_samples", "lost_samples"),
        ("Duplicate frames", "duplicate_frames"),
        ("5xx-answers", "_5xx_answers"),
    ],
)
def test_a_counter_name_becomes_a_valid_metric_name(counter: str, name: str) -> None:
    assert metric_name(counter) == name


def test_a_source_counter_named_like_a_device_metric_is_not_sent_twice(
    client: TestClient, gw: Gateway
) -> None:
    gw.status["m1"].extra_counters = lambda: {"requests": 99, "pending_readings": 4, "lost_samples": 1}
    s, _ = scrape(client)  # scrape() fails on a duplicate series
    m30 = device("m1", "enertrek-m30")
    assert value(s, "meterhub_device_requests_total", **m30) == 0  # the status's own count
    assert value(s, "meterhub_device_pending_readings", **m30) == 0  # the energy stage's
    assert value(s, "meterhub_device_lost_samples_total", **m30) == 1


def test_refused_values_make_the_device_data_state_a_warning(client: TestClient, gw: Gateway) -> None:
    # 1000 V (above 2 × 230 V) and 70.5 Hz are out of range on hvac, read from module m1
    gw.emit(
        [
            Reading(T0, "hvac", Q.VOLTAGE, Phase.L1, 230.0),
            Reading(T0, "hvac", Q.VOLTAGE, Phase.L2, 1000.0),
            Reading(T0, "hvac", Q.FREQUENCY, Phase.TOTAL, 70.5),
        ]
    )
    s, _ = scrape(client)
    m30 = device("m1", "enertrek-m30")
    assert value(s, "meterhub_device_data_state", **m30) == 1  # warning
    assert value(s, "meterhub_device_refused_values_total", **m30) == 2
    assert value(s, "meterhub_device_quarantined_steps_total", **m30) == 0
    assert value(s, "meterhub_device_pending_readings", **m30) == 0
    sdm = device("meter", "eastron-sdm630")
    assert value(s, "meterhub_device_data_state", **sdm) == 0
    assert value(s, "meterhub_device_refused_values_total", **sdm) == 0


def test_every_component_health_and_counter_is_exported_and_the_storage_flush_is_timed(
    gw: Gateway, clock: Clock
) -> None:
    # the gateway is not started: nothing pumps the storage sink's queue, so it fills and spills.
    # Emitted before the app starts: the bus is the event loop's, and the app's loop (another thread
    # under TestClient) pumps the web subscription once it runs.
    for k in range(STORAGE_QUEUE + 1):
        gw.emit([Reading(T0 + k, "grid", Q.VOLTAGE, Phase.L1, 230.0)])
    with TestClient(create_app(gw)) as client:
        s, types = scrape(client)
        storage = {"kind": "sink", "component": "storage"}
        live = {"kind": "sink", "component": "live"}
        assert value(s, "meterhub_component_health_state", **storage) == 1  # degraded: behind, spilling
        assert value(s, "meterhub_component_pending", **storage) == STORAGE_QUEUE + 1
        assert value(s, "meterhub_component_spilled", **storage) == 1
        assert value(s, "meterhub_component_delivered", **storage) == 0
        assert value(s, "meterhub_component_health_state", **live) == 0
        assert value(s, "meterhub_component_series", **live) == 1  # grid voltage L1
        assert value(s, "meterhub_component_delivered", **live) == STORAGE_QUEUE + 1
        assert types["meterhub_component_pending"] == "gauge"
        assert value(s, "meterhub_storage_flush_duration_seconds_count") == 0
        assert ("meterhub_storage_last_flush_timestamp_seconds", frozenset()) not in s

        sink = gw.sinks[SinkKind.STORAGE]
        assert isinstance(sink, StorageSink)
        clock.t = T0 + 3000
        sink.flush()  # what the periodic flusher does, blocking

        s, types = scrape(client)
        assert value(s, "meterhub_component_health_state", **storage) == 0
        assert value(s, "meterhub_component_pending", **storage) == 0
        assert value(s, "meterhub_storage_last_flush_timestamp_seconds") == T0 + 3000
        assert value(s, "meterhub_storage_flush_duration_seconds_count") == 1
        last = value(s, "meterhub_storage_last_flush_duration_seconds")
        assert 0 < last < 5  # 2001 rows into SQLite
        assert value(s, "meterhub_storage_flush_duration_seconds_sum") == last
        assert types["meterhub_storage_flush_duration_seconds"] == "summary"
        assert value(s, "meterhub_storage_state") == 0  # connected
        assert value(s, "meterhub_storage_buffered_rows") == 0
        assert value(s, "meterhub_storage_spooled_rows") == 0
        assert value(s, "meterhub_storage_dropped_rows_total") == 0


def test_a_running_source_that_reaches_no_device_is_a_down_component_with_its_counters(
    tmp_path: Path,
) -> None:
    # the site's Modbus TCP line points at a free port where nothing listens: every request fails
    site = SITE_YAML.replace("port: 15999", f"port: {free_port()}")
    gw = make(tmp_path, Clock(T0), site=site, public=True)
    assert gw.energy is not None
    gw.energy.close()  # start() builds the gateway's own
    gw.energy = None

    async def run() -> str:
        await gw.start()
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(gw)), base_url="http://gw"
            ) as client:
                for _ in range(100):  # each of the four devices fails once within ~0.3 s
                    if all(st.errors for st in gw.status.values()):
                        break
                    await asyncio.sleep(0.05)
                r = await client.get("/metrics")
                assert r.status_code == 200
                return r.text
        finally:
            await gw.stop()  # closes the energy stage and the storage

    text = asyncio.run(run())
    s: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            s[(sample.name, frozenset(sample.labels.items()))] = sample.value
    line = {"kind": "source", "component": "modbus:panel"}
    assert value(s, "meterhub_component_health_state", **line) == 2  # down: no device answers
    assert value(s, "meterhub_component_devices", **line) == 4
    assert value(s, "meterhub_component_online", **line) == 0
    assert value(s, "meterhub_component_errors", **line) >= 4
    assert value(s, "meterhub_component_errors", **line) == sum(
        value(s, "meterhub_device_errors_total", **device(d, st.profile)) for d, st in gw.status.items()
    )
    assert value(s, "meterhub_device_online", **device("meter", "eastron-sdm630")) == 0


#: A batch with good values, one the energy stage refuses and two the device marked invalid.
LIVE_BATCH = [
    *readings(T0, "hvac", p=3000.0),
    Reading(T0, "grid", Q.VOLTAGE, Phase.L1, 231.5),
    Reading(T0, "grid", Q.VOLTAGE, Phase.L2, 1000.0),  # out of range: the energy stage refuses it
    Reading(T0, "pv", Q.VOLTAGE, Phase.L1, math.nan, Quality.INVALID),  # the device said so
    Reading(T0, "pv", Q.ACTIVE_POWER, Phase.TOTAL, 512.0, Quality.INVALID),
]


def live_values(tmp_path: Path, clock: Clock, *, enabled: bool) -> dict[tuple[str, str, str, str], float]:
    """(circuit, quantity, phase, unit) → ``meterhub_value`` after :data:`LIVE_BATCH`."""
    gw = make(tmp_path, clock, public=True, live_values=enabled)
    try:
        gw.emit(LIVE_BATCH)
        with TestClient(create_app(gw)) as client:
            s, types = scrape(client)
    finally:
        assert gw.energy is not None
        gw.energy.close()
        gw.storage.close()
    if enabled:
        assert types["meterhub_value"] == "gauge"
    out = {}
    for (name, labels), v in s.items():
        if name == "meterhub_value":
            d = dict(labels)
            out[(d["circuit"], d["quantity"], d["phase"], d["unit"])] = v
    return out


def test_live_values_are_not_exported_by_default(tmp_path: Path, clock: Clock) -> None:
    assert live_values(tmp_path, clock, enabled=False) == {}


def test_live_values_are_exported_when_enabled_and_never_invalid_ones(tmp_path: Path, clock: Clock) -> None:
    values = live_values(tmp_path, clock, enabled=True)
    assert values[("hvac", "active_power", "total", "W")] == 3000.0
    assert values[("hvac", "active_power", "L2", "W")] == 1000.0
    assert values[("hvac", "voltage", "L3", "V")] == 230.0
    assert values[("hvac", "current", "L1", "A")] == pytest.approx(1000 / 230 / 0.9)
    assert values[("hvac", "power_factor", "total", "")] == 0.9
    assert values[("grid", "voltage", "L1", "V")] == 231.5
    # hvac: 3 × (P, U, I) + P, U, PF totals = 12 series; grid: U L1; nothing of pv, nor grid U L2
    assert len(values) == 13
    assert not [k for k in values if k[0] == "pv" or k[:3] == ("grid", "voltage", "L2")]


def test_metrics_need_a_session_or_an_api_token_unless_made_public(tmp_path: Path, clock: Clock) -> None:
    gw = make(tmp_path, clock)  # web.metrics.public defaults to false
    gw.config.web.public_live = True  # a public lobby screen does not make /metrics public
    try:
        with TestClient(create_app(gw)) as client:
            anonymous = client.get("/metrics")
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"] == "Bearer"
            assert "meterhub user token create" in anonymous.json()["detail"]
            assert client.get("/metrics", headers={"Authorization": "Bearer mh_wrong"}).status_code == 401

            store = client.app.state.auth.store  # type: ignore[attr-defined]
            add_user(client, "rita", "reader")
            _, secret = store.create_token("rita", "prometheus")
            s, _ = scrape(client, Authorization=f"Bearer {secret}")
            assert value(s, "meterhub_start_time_seconds") == T0

            login(client, "rita")  # a browser session of a reader works too
            assert client.get("/metrics").status_code == 200
            client.cookies.clear()
            assert client.get("/metrics").status_code == 401

            gw.config.web.metrics.public = True
            assert client.get("/metrics").status_code == 200
    finally:
        assert gw.energy is not None
        gw.energy.close()
        gw.storage.close()


def test_each_app_has_its_own_registry_and_the_global_one_stays_clean(tmp_path: Path, clock: Clock) -> None:
    gws = [make(tmp_path / name, clock, public=True) for name in ("a", "b")]
    gws[1].status["meter"].requests = 7
    try:
        with TestClient(create_app(gws[0])) as a, TestClient(create_app(gws[1])) as b:
            sa, _ = scrape(a)
            sb, _ = scrape(b)
    finally:
        for gw in gws:
            assert gw.energy is not None
            gw.energy.close()
            gw.storage.close()
    sdm = device("meter", "eastron-sdm630")
    assert value(sa, "meterhub_device_requests_total", **sdm) == 0
    assert value(sb, "meterhub_device_requests_total", **sdm) == 7
    assert not [m for m in REGISTRY.collect() if m.name.startswith("meterhub_")]


def test_openmetrics_is_answered_when_prometheus_asks_for_it(client: TestClient) -> None:
    r = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert r.text.endswith("# EOF\n")
    assert 'meterhub_build_info{version="' in r.text


def test_the_metrics_options_are_typed_fields_of_the_web_section() -> None:
    text = SITE_YAML + "web: {metrics: {public: true, live_values: true}}\n"
    cfg = parse_config(text, "site.yaml")
    assert cfg.web.metrics.public is True and cfg.web.metrics.live_values is True
    assert parse_config(SITE_YAML, "site.yaml").web.metrics.live_values is False
    with pytest.raises(ConfigError, match="live_value"):
        parse_config(SITE_YAML + "web: {metrics: {live_value: true}}\n", "site.yaml")
