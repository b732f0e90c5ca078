"""Load-profile gap fills are marked: after a gateway restart with a gap, the dlms source fills it from
the meter's load profile and records the filled range of each series (``filled_ranges``), which the
history API shows as ``filled`` for the requested range."""

from __future__ import annotations

import asyncio
import math
import time
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # starlette warns once, at import, that it prefers the httpx2 package; the client works with httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from meterhub.checks import parse_site
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading, SeriesKey, iso_utc
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.sim.dlms import DlmsMeter, serve_dlms_tcp
from meterhub.storage import open_storage
from meterhub.storage.events import EventStore
from meterhub.web.app import create_app

from .test_billing import SITE


def test_a_restart_gap_filled_from_the_meter_is_listed_in_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage holds the import register up to two hours ago: the first poll fills the 15-min entries
    since then from the meter, and the history of the import register lists that range as filled
    from the meter's profile (first to last filled interval end)."""
    meter = DlmsMeter()
    monkeypatch.setenv("METER_READER_PW", "22222222")
    key = SeriesKey("home", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL)
    t_prev = math.floor((time.time() - 7200.0) / 900.0) * 900.0 + 60.0  # 60 s after a quarter hour
    data = tmp_path / "data"
    holder: dict[str, int] = {}

    def config(port: int) -> object:
        return parse_site(
            SITE.replace(
                "BUS", f"host: 127.0.0.1, port: {port}, client_sap: 17, password_env: METER_READER_PW"
            ),
            "site.yaml",
        )

    async def go() -> float:
        srv = await serve_dlms_tcp(meter, framing="wrapper")
        holder["port"] = srv.port
        cfg = config(srv.port)
        before = open_storage(cfg.storage, data, timezone="UTC")  # type: ignore[attr-defined]
        before.write(
            [Reading(t_prev, "home", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL, round(meter.energy_at(t_prev)))]
        )
        before.flush()
        before.close()
        gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"))  # type: ignore[arg-type, attr-defined]
        started = time.time()
        await gw.start()
        try:
            deadline = time.monotonic() + 10
            while gw.live.get(key) is None:
                assert time.monotonic() < deadline, gw.status["m002"]
                await asyncio.sleep(0.05)
            assert gw.event_log.wait_written(10.0)
        finally:
            await gw.stop()
            await srv.close()
        return started

    started = asyncio.run(go())
    ends = [t_prev - 60.0 + 900.0 * k for k in range(1, 10) if t_prev - 60.0 + 900.0 * k < started]
    assert len(ends) >= 8

    cfg = config(holder["port"])  # the meter is offline now: what was stored stays
    gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"))  # type: ignore[arg-type, attr-defined]
    try:
        store = gw.storage
        assert isinstance(store, EventStore)
        ranges = store.filled_ranges(str(key), t_prev, started + 60.0)
        assert [(r.start, r.end, r.device, r.source) for r in ranges] == [
            (ends[0], ends[-1], "m002", "meter-profile")
        ]
        assert store.filled_ranges(str(key), ends[-1] + 1.0, ends[-1] + 3600.0) == []  # after it: none
        with TestClient(create_app(gw)) as client:
            client.app.state.auth.store.add("rita", "correct horse", "reader")  # type: ignore[attr-defined]
            r = client.post("/api/v1/auth/login", json={"username": "rita", "password": "correct horse"})
            assert r.status_code == 200, r.text
            params = {"quantity": Q.ENERGY_ACTIVE_IMPORT, "start": str(t_prev), "end": str(started + 60.0)}
            r = client.get("/api/v1/circuits/home/history", params={**params, "resolution": "raw"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["filled"] == [
                {
                    "from": iso_utc(ends[0]),
                    "to": iso_utc(ends[-1]),
                    "source": "meter-profile",
                    "device": "m002",
                }
            ]
            filled_points = [p for p in body["points"] if p["ts"] in {iso_utc(t) for t in ends}]
            assert len(filled_points) == len(ends)  # the values the range marks are there
            # a range that ends before the fill began lists none
            r = client.get(
                "/api/v1/circuits/home/history",
                params={**params, "start": str(t_prev - 3600.0), "end": str(t_prev), "resolution": "raw"},
            )
            assert r.status_code == 200 and r.json()["filled"] == []
    finally:
        gw.storage.close()
