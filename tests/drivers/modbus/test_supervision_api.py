"""Bus supervision on the API (``GET /api/v1/bus-supervision``, shown on the devices page) and as the
gateway's system alarms."""

from __future__ import annotations

import warnings
from pathlib import Path

from meterhub.config.loader import parse_config
from meterhub.drivers.base import SourceContext
from meterhub.drivers.modbus.source import ModbusSource, link_for_bus
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.web.app import create_app

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

SITE = """
site: {name: Test site, timezone: UTC}
web: {public_live: true}
buses:
  - {id: panel, kind: modbus-rtu-over-tcp, port: 15999, scan: {enabled: true, share: 0.05, range: 1-10}}
devices:
  - {id: meter, bus: panel, unit: 1, profile: eastron-sdm630}
circuits:
  - {id: grid, device: meter, channels: [1, 2, 3], wiring: 3P4W}
"""

T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z


def test_the_devices_page_api_lists_new_vanished_and_conflicting_addresses(tmp_path: Path) -> None:
    cfg = parse_config(SITE, "site.yaml")
    data = tmp_path / "data"
    gw = Gateway(
        cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"), clock=lambda: T0
    )
    src = ModbusSource(
        SourceContext(cfg, cfg.buses[0], cfg.devices, gw.status, data),
        link=link_for_bus(cfg.buses[0]),
        wall=lambda: T0 + 5,
    )
    gw.sources.append(src)  # as Gateway.start() would (nothing is started here)
    w = src.watch
    w.answered(1, T0)
    w.answered(7, T0 + 1, what="likely eastron-sdm630 (plausible values, no model code to be sure)")
    w.silent(1, T0 + 2, "no response from unit 1 within 1 s")
    w.conflict(1, "serial number read as 11, then as 22", ts=T0 + 3)
    try:
        with TestClient(create_app(gw)) as client:
            body = client.get("/api/v1/bus-supervision").json()
        gw.alarms.tick()
        raised = {a["id"]: a["value"] for a in gw.alarms.engine.alarms()}
    finally:
        gw.storage.close()
    (panel,) = body
    assert panel["bus"] == "panel"
    assert panel["scan"] == {"share": 0.05, "addresses": 10.0}  # no probe yet: nothing started
    assert panel["new"] == [
        {
            "unit": 7,
            "device": None,
            "since": "2026-09-21T14:13:21.000Z",
            "message": "a device that is not configured answers at address 7: likely eastron-sdm630 "
            "(plausible values, no model code to be sure)",
        }
    ]
    assert [(r["unit"], r["device"]) for r in panel["vanished"]] == [(1, "meter")]
    assert panel["conflicts"][0]["message"] == (
        "two devices at address 1 (meter)? serial number read as 11, then as 22"
    )
    assert [e["kind"] for e in panel["events"]] == ["conflict", "vanished", "new_device"]  # newest first
    # the gateway's alarm sink reads the same watch: each alarm's value is the address
    assert {k: v for k, v in raised.items() if k.startswith("system:bus_")} == {
        "system:bus_new_device/panel": 7,
        "system:bus_vanished/panel": 1,
        "system:bus_conflict/panel": 1,
    }
