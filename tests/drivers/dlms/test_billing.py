"""The meter's own billing snapshots (billing profile 0.0.98.1.0.255) into the gateway's billing
history: read at start (from the newest kept, so after an outage or a restart too), again whenever the
meter's entries_in_use changes (a billing date, a billing command), kept once per meter and time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from meterhub.checks import parse_site
from meterhub.runtime import Gateway
from meterhub.sim.dlms import DlmsMeter, serve_dlms_tcp
from meterhub.storage import open_storage

SITE = """
site: {name: dlms, timezone: UTC}
buses:
  - {id: meter-bus, kind: dlms, BUS, timeout: 1.0, retries: 1}
devices:
  - {id: m002, bus: meter-bus, profile: seed002-1p-dlms, poll_interval: 0.2}
circuits:
  - {id: home, device: m002, channels: [1], wiring: 1P2W}
"""


def _expected(meter: DlmsMeter, times: list[float]) -> list[dict[str, Any]]:
    """What the emulator's billing profile holds, as the billing history shows it (newest first):
    A+ and A− [Wh] at each snapshot and the period's maximum 15-min demand [W] with its time."""
    out = []
    prev = meter.t_start
    for t in sorted(meter.billing_times()):
        md, at = meter.max_demand(prev, t)
        if t in times:
            out.append(
                {
                    "ts": t,
                    "device": "m002",
                    "reason": "meter",
                    "registers": {
                        "home/energy_active_import/total": round(meter.energy_at(t)),
                        "home/energy_active_export/total": 0.0,
                    },
                    "max_demand": {"home/max_demand_active_import": {"meter": [round(md), at]}},
                }
            )
        prev = t
    return out[::-1]


def _shown(gw: Gateway) -> list[dict[str, Any]]:
    assert gw.energy is not None
    keys = ("ts", "device", "reason", "registers", "max_demand")
    return [{k: s[k] for k in keys} for s in gw.energy.billing_status()["meter"]]  # type: ignore[union-attr]


def test_the_meters_billing_snapshots_reach_the_billing_history_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meter = DlmsMeter()
    monkeypatch.setenv("METER_READER_PW", "22222222")
    data = tmp_path / "data"

    async def run(port: int, until: int, bill: bool = False) -> list[dict[str, Any]]:
        cfg = parse_site(
            SITE.replace(
                "BUS", f"host: 127.0.0.1, port: {port}, client_sap: 17, password_env: METER_READER_PW"
            ),
            "site.yaml",
        )
        gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"))
        await gw.start()
        try:
            deadline = time.monotonic() + 10
            while len(_shown(gw)) < until:
                assert time.monotonic() < deadline, (gw.status["m002"], _shown(gw))
                await asyncio.sleep(0.05)
            if bill:  # a billing command at the meter (its own, as by its key): one more snapshot
                meter.billing_commands.append(round(time.time()))
                while len(_shown(gw)) < until + 1:
                    assert time.monotonic() < deadline, _shown(gw)
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # more polls: nothing read twice
            return _shown(gw)
        finally:
            await gw.stop()

    async def go() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        srv = await serve_dlms_tcp(meter, framing="wrapper")
        try:
            n = len(meter.billing_times())
            first = await run(srv.port, n, bill=True)
            again = await run(srv.port, n + 1)  # a restart: the history comes back from its file
        finally:
            await srv.close()
        return first, again

    first, again = asyncio.run(go())
    times = meter.billing_times()
    assert len(times) >= 2  # 40 days of history: at least one month start, and the command
    assert first == _expected(meter, times)
    assert again == first
