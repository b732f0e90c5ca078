"""The ``offline`` simulated fault (``DEVICE:offline:START-END``, config/faults.py) over real Modbus TCP:
the simulated meter stops answering for its window, the gateway marks it offline, the ``device_offline``
system alarm is raised and cleared, and the alarms of the device's circuits are suppressed meanwhile."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from meterhub.alarms.model import AlarmEvent
from meterhub.checks import parse_site
from meterhub.config.faults import parse_fault
from meterhub.config.loader import ConfigError
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.profiles.schema import Function
from meterhub.runtime import Gateway
from meterhub.runtime.demo import demo_site, start_simulators
from meterhub.storage import open_storage

SITE = """\
site: {name: Offline scenario}
buses:
  - {id: b1, kind: modbus-tcp, port: PORT, timeout: 0.3}
devices:
  - {id: d1, bus: b1, unit: 1, profile: eastron-sdm630, poll_interval: 0.5}
  - {id: d2, bus: b1, unit: 2, profile: eastron-sdm630, poll_interval: 0.5}
circuits:
  - {id: grid, device: d1, channels: [1, 2, 3], wiring: 3P4W, purpose: grid}
  - {id: load, device: d2, channels: [1, 2, 3], wiring: 3P4W}
alarms:
  rules:
    - {id: load-on, target: load, quantity: active_power, condition: high, high: 100}
  system:
    device_offline: {on_delay: 1}
    no_valid_data: {enabled: false}
    unmetered: {enabled: false}
simulation:
  faults: ["d2:offline:4-9"]
  loads:
    grid: {model: supply, rated_power: 1}
    load: {model: constant, rated_power: 3000}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_an_offline_window_raises_and_clears_the_device_alarm_and_suppresses_its_circuits(tmp_path: Path):
    cfg = parse_site(SITE.replace("PORT", str(free_port())), "site.yaml")
    events: list[tuple[float, str, str]] = []

    class Listener:
        def on_event(self, event: AlarmEvent) -> None:
            events.append((time.time(), event.kind.value, event.alarm_id))

    async def go() -> tuple[float, list[bool]]:
        sims, model = await start_simulators(cfg, tmp_path)
        gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path))
        gw.alarms.add_listener(Listener())
        online: list[bool] = []
        await gw.start()
        try:
            for _ in range(36):  # 18 s: the window is 4 … 9 s after the simulator started
                await asyncio.sleep(0.5)
                online.append(gw.status["d2"].online)
        finally:
            await gw.stop()
            for s in sims:
                await s.close()
        return model.started, online

    started, online = asyncio.run(go())
    seen = [(kind, aid) for _, kind, aid in events]
    vanished = [(k, a) for k, a in seen if a == "system:bus_vanished/b1"]
    assert vanished == [("raised", "system:bus_vanished/b1"), ("cleared", "system:bus_vanished/b1")]
    assert [(k, a) for k, a in seen if a != "system:bus_vanished/b1"] == [
        ("raised", "load-on/load"),  # 3 kW > 100 W: raised at the first reading
        ("suppressed", "load-on/load"),  # d2 offline: its circuit's alarm is inhibited at once
        ("raised", "system:device_offline/d2"),  # ... and the device's alarm follows its on-delay
        ("unsuppressed", "load-on/load"),
        ("cleared", "system:device_offline/d2"),
    ], events
    at = {(kind, aid): t - started for t, kind, aid in events}
    # offline from 4 s; the gateway sees it at its next poll, the alarm 1 s on-delay later (ticks of 1 s)
    assert 4.0 < at[("raised", "system:device_offline/d2")] < 7.5
    # back at 9 s; an offline device is polled again after an exponential backoff (0.5 s · 2^k,
    # drivers/modbus/scheduler.py), so the gateway notices a few seconds later
    assert 9.0 < at[("cleared", "system:device_offline/d2")] < 16.0
    assert online[0] and not all(online) and online[-1]  # answered, stopped, answered again
    assert "system:device_offline/d1" not in {aid for _, aid in seen}


def test_offline_fault_syntax_and_its_checks():
    f = parse_fault("m-ev:offline:60-180")
    assert (f.target, f.kind, f.start, f.end, str(f)) == (
        "m-ev",
        "offline",
        60.0,
        180.0,
        "m-ev:offline:60-180",
    )
    assert not f.down(59.9) and f.down(60.0) and f.down(179.9) and not f.down(180.0)
    for bad in ("d:offline:60", "d:offline:180-60", "d:offline:a-b", "d:offline:-5-10"):
        with pytest.raises(ValueError, match="offline takes START-END"):
            parse_fault(bad)
    site = SITE.replace("PORT", "5020")
    with pytest.raises(ConfigError, match="no device 'd9'"):
        parse_site(site.replace("d2:offline:4-9", "d9:offline:4-9"), "site.yaml")


def test_the_demo_site_module_stops_answering_in_its_window_on_the_module_bus(tmp_path: Path):
    """``meterhub demo --fault m-heater:offline:…`` as docs/alarms.md shows it: the demo site's water-heater
    module (unit 11 on the module bus) answers exception 0B in the window, its neighbours go on."""
    text = (Path(__file__).parents[2] / "examples" / "demo-site.yaml").read_text()
    cfg = demo_site(parse_site(text, "demo-site.yaml"))
    panel = next(b for b in cfg.buses if b.id == "panel")

    async def read(link: ModbusLink, unit: int) -> str:
        try:
            await link.read(Function.HOLDING, unit, 0, 2)
        except Exception as exc:  # an exception answer: 02 is still the module answering
            return "silent" if "exception 0B" in str(exc) else "answered"
        return "answered"

    async def go() -> list[tuple[str, str]]:
        sims, _ = await start_simulators(cfg, tmp_path, ["m-heater:offline:0-2"])
        link = ModbusLink(TransportKind.TCP, port=panel.port, timeout=2.0)
        try:
            inside = (await read(link, 11), await read(link, 10))
            await asyncio.sleep(2.2)
            after = (await read(link, 11), await read(link, 10))
        finally:
            await link.close()
            for s in sims:
                await s.close()
        return [inside, after]

    (heater, lift), (heater_after, lift_after) = asyncio.run(go())
    assert (heater, lift, heater_after, lift_after) == ("silent", "answered", "answered", "answered")
