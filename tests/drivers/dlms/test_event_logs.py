"""The meter's power-quality log (0.0.99.98.4.255) into the gateway's power-quality log: each begin
and end pair of the emulator's log becomes one event from the device, with the voltage the meter
captured at its end as the extreme; a re-read (the next start of the gateway) stores nothing twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterhub.checks import parse_site
from meterhub.drivers.base import SourceContext
from meterhub.drivers.dlms.axdr import Enum
from meterhub.drivers.dlms.client import CaptureObject
from meterhub.drivers.dlms.source import DlmsSource
from meterhub.model.pq import PqEvent, PqKind, PqSource
from meterhub.runtime import Gateway
from meterhub.sim.dlms import PQ_LOG, DlmsMeter, serve_dlms_tcp
from meterhub.storage import open_storage
from meterhub.storage.events import EventStore

from .test_billing import SITE


def _expected(meter: DlmsMeter) -> list[PqEvent]:
    """The emulator's events (a 0.5-s sag to 138.0 V, then a 0.5-s swell to 264.5 V, in turn), oldest
    first: what its log holds, written out as the gateway should log them."""
    events = meter.events(PQ_LOG, None, None)
    begins = [(t, c) for t, c in events if c in (1, 3)]
    return [
        PqEvent(
            kind=PqKind.DIP if c == 1 else PqKind.SWELL,
            start=t,
            duration=0.5,
            extreme=138.0 if c == 1 else 264.5,
            unit="V",
            device="m002",
            source=PqSource.DEVICE,
            phase="L1",
            circuit="home",
            flagged=True,
            threshold=90.0 if c == 1 else 110.0,
        )
        for t, c in begins
        if (t + 0.5, c + 1) in events
    ]


def test_the_meters_power_quality_log_reaches_the_gateways_log_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meter = DlmsMeter()
    monkeypatch.setenv("METER_READER_PW", "22222222")
    data = tmp_path / "data"
    expected = _expected(meter)
    assert len(expected) >= 18  # 40 days, an event every 49 h

    async def run(port: int) -> list[PqEvent]:
        cfg = parse_site(
            SITE.replace(
                "BUS", f"host: 127.0.0.1, port: {port}, client_sap: 17, password_env: METER_READER_PW"
            ),
            "site.yaml",
        )
        gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"))
        await gw.start()
        store = gw.storage
        assert isinstance(store, EventStore)
        try:
            deadline = time.monotonic() + 10
            while gw.status["m002"].last_seen is None:
                assert time.monotonic() < deadline, gw.status["m002"]
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # more polls
            assert gw.event_log.wait_written(10.0)
            rows = store.pq_log(0.0, time.time() + 60, newest_first=False).rows
            return [s.event for s in rows]
        finally:
            await gw.stop()

    async def go() -> tuple[list[PqEvent], list[PqEvent]]:
        srv = await serve_dlms_tcp(meter, framing="wrapper")
        try:
            return await run(srv.port), await run(srv.port)  # the second start reads the whole log again
        finally:
            await srv.close()

    first, again = asyncio.run(go())
    assert [(e.kind, e.start) for e in first] == [(e.kind, e.start) for e in expected]
    for got, want in zip(first, expected, strict=True):
        assert got.duration == pytest.approx(0.5, abs=0.011)  # the meter's clock has hundredths
        assert (got.extreme, got.device, got.source, got.phase, got.circuit) == (
            want.extreme, "m002", PqSource.DEVICE, "L1", "home",
        )  # fmt: skip
        assert got.flagged and got.threshold == want.threshold
    assert again == first  # kept once


class _OddMeter:
    """A client stub whose logs answer rows of any shape: what a faulty or hostile meter might send."""

    def __init__(self, rows: object) -> None:
        self.rows = rows

    async def capture_objects(self, obis: str) -> list[CaptureObject]:
        return [
            CaptureObject(8, "0.0.1.0.0.255", 2, 0),
            CaptureObject(1, "0.0.96.11.4.255", 2, 0),
            CaptureObject(3, "1.0.32.7.0.255", 2, 0),
            CaptureObject(3, "1.0.1.8.0.255", 2, 0),
            CaptureObject(4, "1.0.1.6.0.255", 5, 0),
        ]

    async def read_profile(self, obis: str, start: object = None, end: object = None) -> object:
        return self.rows


class _Book:
    def __init__(self) -> None:
        self.kept: list[tuple[object, ...]] = []

    def meter_billing(self, device: str, ts: float, registers: object, max_demand: object) -> bool:
        self.kept.append((device, ts, registers, max_demand))
        return True

    def last_meter_billing(self, device: str) -> float | None:
        return None


_ATOMS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.binary(max_size=14),
    st.text(max_size=4),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.one_of(
        _ATOMS,
        st.lists(st.one_of(_ATOMS, st.lists(_ATOMS, max_size=6)), max_size=6),
    )
)
def test_odd_log_rows_never_stop_the_source(rows: object) -> None:
    cfg = parse_site(SITE.replace("BUS", "host: 127.0.0.1, port: 1"), "site.yaml")
    book, heard = _Book(), []
    ctx = SourceContext(
        cfg, cfg.buses[0], cfg.devices, {}, Path("."), meter_billing=book, publish_pq_events=heard.extend
    )
    src = DlmsSource(ctx)
    src._scalers = {"1.0.32.7.0.255": (-1, Enum(35)), "1.0.1.8.0.255": (0, Enum(30))}
    stub = _OddMeter(rows)

    async def go() -> None:
        await src._guard("power-quality log", src._pq_log(stub, 3))  # type: ignore[arg-type]
        await src._guard("billing profile", src._billing(stub, 3))  # type: ignore[arg-type]

    asyncio.run(go())
    assert all(isinstance(e, PqEvent) for e in heard)
