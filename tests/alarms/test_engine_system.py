"""The built-in system rules through the alarm sink: startup grace, no valid data, quarantined register step,
unmetered load, storage spool, clock drift. A real bus and sink; the clock is a number the test moves."""

from __future__ import annotations

import asyncio
from pathlib import Path

from meterhub.alarms.model import AlarmEvent
from meterhub.alarms.sink import AlarmSink
from meterhub.bus import ReadingBus
from meterhub.checks import parse_site
from meterhub.drivers.base import DeviceStatus
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase

T0 = 1_763_784_000.0

SITE = """\
site: {name: System rules}
buses:
  - {id: b1, kind: modbus-tcp, port: 5020}
devices:
  - {id: d1, bus: b1, unit: 1, profile: eastron-sdm630}
  - {id: d2, bus: b1, unit: 2, profile: eastron-sdm630}
  - {id: d3, bus: b1, unit: 3, profile: eastron-sdm630}
circuits:
  - {id: grid, device: d1, channels: [1, 2, 3], wiring: 3P4W, purpose: grid}
  - {id: pv, device: d2, channels: [1, 2, 3], wiring: 3P4W, purpose: renewable}
  - {id: load, device: d3, channels: [1, 2, 3], wiring: 3P4W}
alarms:
  system:
    unmetered: {percent: 10, min_power: 1000, on_delay: 60}
    storage_spool: {max_mb: 0.001}
    clock_drift: {max_s: 10, on_delay: 5}
    no_valid_data: {after: 30}
"""


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


class Events:
    def __init__(self) -> None:
        self.events: list[AlarmEvent] = []

    def on_event(self, event: AlarmEvent) -> None:
        self.events.append(event)

    def raised(self) -> list[str]:
        return [e.alarm_id for e in self.events if e.kind.value == "raised"]


def make(tmp_path: Path) -> tuple[AlarmSink, Clock, Events, dict[str, DeviceStatus]]:
    cfg = parse_site(SITE, "site.yaml")
    clock = Clock()
    status = {d.id: DeviceStatus(id=d.id, name=d.id, profile=d.profile, bus=d.bus) for d in cfg.devices}
    sink = AlarmSink(cfg, ReadingBus(), tmp_path, device_status=lambda: status, clock=clock)
    ev = Events()
    sink.add_listener(ev)
    return sink, clock, ev, status


def power(ts: float, grid: float, pv: float, load: float, quality: Quality = Quality.GOOD) -> list[Reading]:
    return [
        Reading(ts, c, Q.ACTIVE_POWER, Phase.TOTAL, v, quality)
        for c, v in (("grid", grid), ("pv", pv), ("load", load))
    ]


def run(
    sink: AlarmSink, clock: Clock, seconds: int, batch: list[Reading] | None = None, *, ts_offset: float = 0.0
) -> None:
    for _ in range(seconds):
        clock.t += 1
        if batch is not None:
            b = [
                Reading(clock.t + ts_offset, r.circuit, r.quantity, r.phase, r.value, r.quality)
                for r in batch
            ]
            asyncio.run(sink.deliver(b))
        sink.tick()


def test_devices_not_heard_of_yet_are_not_an_outage_in_the_first_seconds(tmp_path: Path) -> None:
    sink, clock, ev, status = make(tmp_path)
    run(sink, clock, 9)
    assert ev.events == []  # nothing answered yet, nothing failed: no site outage at start
    run(sink, clock, 2)
    assert ev.raised() == ["system:site_outage/site"]  # 10 s without an answer: the site is out
    for st in status.values():
        st.ok(clock.t)
    run(sink, clock, 5)
    assert [(e.kind.value, e.alarm_id) for e in ev.events] == [
        ("raised", "system:site_outage/site"),
        ("cleared", "system:site_outage/site"),
    ]


def test_no_valid_data_while_online_and_a_quarantined_register_step(tmp_path: Path) -> None:
    sink, clock, ev, status = make(tmp_path)
    for st in status.values():
        st.ok(clock.t)
    bad = [Reading(0, "load", Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL, 1e12, Quality.INVALID)]
    run(sink, clock, 1, bad)
    assert ev.raised() == ["system:register_quarantine/load"]
    assert "quarantined by the register guard" in ev.events[0].message
    good = power(0, 5000, -1000, 6000)
    run(sink, clock, 40, good[:2])  # d3 (load) answers but sends nothing valid for 30 s
    assert ev.raised() == ["system:register_quarantine/load", "system:no_valid_data/d3"]
    run(sink, clock, 900, good)  # the register alarm clears 900 s (its recovery) after the last step
    cleared = [e.alarm_id for e in ev.events if e.kind.value == "cleared"]
    assert cleared == ["system:no_valid_data/d3", "system:register_quarantine/load"]


def test_unmetered_load_above_ten_percent_of_consumption(tmp_path: Path) -> None:
    sink, clock, ev, status = make(tmp_path)
    for st in status.values():
        st.ok(clock.t)
    # consumption = grid − pv = 5 kW − (−1 kW) = 6 kW; metered 5.5 kW: 8.3 % unmetered
    run(sink, clock, 120, power(0, 5000, -1000, 5500))
    assert ev.raised() == []
    # metered 5 kW: 1 kW of 6 kW = 16.7 % unmetered, for the 60 s on-delay
    run(sink, clock, 61, power(0, 5000, -1000, 5000))
    assert ev.raised() == ["system:unmetered/site"]
    e = ev.events[-1]
    assert (e.value, e.limit, e.unit) == (16.67, 10.0, "%")


def test_storage_spool_and_clock_drift(tmp_path: Path) -> None:
    sink, clock, ev, status = make(tmp_path)
    for st in status.values():
        st.ok(clock.t)
    (tmp_path / "storage-spool.jsonl").write_bytes(b"x" * 2048)  # 2 KiB over a 1.05 kB limit
    run(sink, clock, 1)
    assert ev.raised() == ["system:storage_spool/site"]
    run(sink, clock, 6, power(0, 5000, -1000, 5800), ts_offset=-30)  # readings stamped 30 s in the past
    assert ev.raised()[1:] == ["system:clock_drift/d1", "system:clock_drift/d2", "system:clock_drift/d3"]
    assert ev.events[-1].value == -30.0 and ev.events[-1].message.startswith("readings of d3 are -30 s away")
