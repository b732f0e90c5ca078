"""The meter's own standard event log (0.0.99.98.0.255) and alarm log (0.0.99.98.1.255) into the
gateway's device event log and ``GET /api/v1/events/device``: each entry with the meter's capture time,
its code and the code's text; a second start of the gateway reads the whole logs again and stores
nothing twice."""

from __future__ import annotations

import asyncio
import csv
import io
import time
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # starlette warns once, at import, that it prefers the httpx2 package; the client works with httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from meterhub.checks import parse_site
from meterhub.model.device_log import DeviceEvent
from meterhub.model.readings import iso_utc
from meterhub.runtime import Gateway
from meterhub.sim.dlms import DlmsMeter, serve_dlms_tcp
from meterhub.storage import open_storage
from meterhub.storage.events import EventStore
from meterhub.web.app import create_app

from .test_billing import SITE

#: The emulator's codes (meterhub.sim.dlms.EVENT_LOGS) written out as docs/logs.md lists them.
TEXTS = {
    "standard": {1: "power down", 2: "power up", 3: "clock adjusted", 4: "parameters changed"},
    "alarm": {1: "cover opened", 2: "magnetic field", 3: "clock battery low"},
}
LOGS = {"standard": "0.0.99.98.0.255", "alarm": "0.0.99.98.1.255"}


def _expected(meter: DlmsMeter) -> list[tuple[str, float, str, int, str]]:
    """(ts ISO, ts, log, code, text) of every entry of both logs, oldest first."""
    out = [
        (iso_utc(t), t, name, c, TEXTS[name][c])
        for name, ln in LOGS.items()
        for t, c in meter.events(ln, None, None)
    ]
    return sorted(out, key=lambda e: (e[1], list(LOGS).index(e[2])))  # at one time: in reading order


def test_the_meters_event_logs_are_listed_once_after_two_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meter = DlmsMeter()
    monkeypatch.setenv("METER_READER_PW", "22222222")
    data = tmp_path / "data"
    expected = _expected(meter)
    # 40 days of memory: a standard event every 5 d 1.5 h, an alarm every 9 d 2 h
    assert sum(e[2] == "standard" for e in expected) >= 7 and sum(e[2] == "alarm" for e in expected) >= 4

    def config(port: int) -> object:
        return parse_site(
            SITE.replace(
                "BUS", f"host: 127.0.0.1, port: {port}, client_sap: 17, password_env: METER_READER_PW"
            ),
            "site.yaml",
        )

    async def run(port: int) -> list[DeviceEvent]:
        cfg = config(port)
        gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"))  # type: ignore[attr-defined]
        await gw.start()
        store = gw.storage
        assert isinstance(store, EventStore)
        try:
            deadline = time.monotonic() + 10
            while gw.status["m002"].last_seen is None:
                assert time.monotonic() < deadline, gw.status["m002"]
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # more polls: the counts did not change, nothing is read again
            assert gw.event_log.wait_written(10.0)
            assert gw.status["m002"].extra_counters is not None
            assert gw.status["m002"].extra_counters()["device_events_read"] == len(expected)
            return store.device_events(0.0, time.time() + 60, newest_first=False).rows
        finally:
            await gw.stop()

    async def go() -> tuple[list[DeviceEvent], list[DeviceEvent], int]:
        srv = await serve_dlms_tcp(meter, framing="wrapper")
        try:
            return await run(srv.port), await run(srv.port), srv.port  # the second start reads all again
        finally:
            await srv.close()

    first, again, port = asyncio.run(go())
    assert [(e.ts, e.log, e.code, e.text, e.device) for e in first] == [
        (t, name, c, text, "m002") for _, t, name, c, text in expected
    ]
    assert again == first  # stored once

    # the API (reader), the meter offline now: what was read stays listed
    cfg = config(port)
    gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"))  # type: ignore[attr-defined]
    try:
        with TestClient(create_app(gw)) as client:
            client.app.state.auth.store.add("rita", "correct horse", "reader")  # type: ignore[attr-defined]
            r = client.post("/api/v1/auth/login", json={"username": "rita", "password": "correct horse"})
            assert r.status_code == 200, r.text
            span = {"from": str(meter.t_start - 86400), "to": str(time.time() + 60)}
            r = client.get("/api/v1/events/device", params={**span, "device": "m002", "order": "asc"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert not body["truncated"]
            assert [(e["ts"], e["log"], e["code"], e["text"]) for e in body["events"]] == [
                (ts, name, c, text) for ts, _, name, c, text in expected
            ]
            r = client.get("/api/v1/events/device", params={**span, "log": "alarm", "format": "csv"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(r.text)))
            assert [(x["ts"], x["code"], x["text"]) for x in rows] == [
                (ts, str(c), text) for ts, _, name, c, text in reversed(expected) if name == "alarm"
            ]  # newest first
            assert client.get("/api/v1/events/device", params={**span, "log": "nope"}).json()["events"] == []
    finally:
        gw.storage.close()
