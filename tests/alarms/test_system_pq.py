"""The built-in power-quality rule (``alarms.system.pq``): a dip, swell or interruption a device reports
raises one alarm per device and phase, which clears ``recovery`` s after the last event on that phase.
Events are synthetic :class:`PqEvent` records handed in as the waveform source hands its own
(``Gateway.emit_pq_events``); a real gateway, bus and alarm sink, the clock a number the test moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterhub.alarms.model import AlarmEvent
from meterhub.checks import parse_site
from meterhub.config.loader import ConfigError, parse_config
from meterhub.model.pq import PqEvent, PqKind, PqSource
from meterhub.runtime import Gateway
from meterhub.storage import open_storage

T0 = 1_763_784_000.0

SITE = """\
site: {name: PQ rule}
buses:
  - {id: b1, kind: modbus-tcp, port: 5020}
devices:
  - {id: d1, bus: b1, unit: 1, profile: eastron-sdm630}
  - {id: d2, bus: b1, unit: 2, profile: eastron-sdm630}
circuits:
  - {id: grid, device: d1, channels: [1, 2, 3], wiring: 3P4W, purpose: grid}
alarms:
  system:
    device_offline: {enabled: false}
    site_outage: {enabled: false}
    no_valid_data: {enabled: false}
    pq: {recovery: 60, severity: high}
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

    def seen(self) -> list[tuple[str, str]]:
        return [(e.kind.value, e.alarm_id) for e in self.events]


def dip(
    t: float, phase: str | None, residual: float, kind: PqKind = PqKind.DIP, device: str = "d1"
) -> PqEvent:
    return PqEvent(kind, t, 0.08, residual, "V", device, PqSource.WAVEFORM, phase=phase, threshold=90.0)


def gateway(tmp_path: Path, site: str = SITE) -> tuple[Gateway, Clock, Events]:
    cfg = parse_config(site, "site.yaml")
    clock = Clock()
    gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path), clock=clock)
    ev = Events()
    gw.alarms.add_listener(ev)
    return gw, clock, ev


def close(gw: Gateway) -> None:
    gw.event_log.close()
    gw.storage.close()


def run(gw: Gateway, clock: Clock, seconds: int) -> None:
    for _ in range(seconds):
        clock.t += 1
        gw.alarms.tick()


def test_a_dip_raises_the_alarm_of_its_device_and_phase_and_it_clears_after_the_recovery_time(tmp_path: Path):
    gw, clock, ev = gateway(tmp_path)
    try:
        run(gw, clock, 3)
        assert ev.events == []
        gw.emit_pq_events([dip(clock.t - 0.5, "L2", 161.0)])  # a dip to 70 % of 230 V on L2
        run(gw, clock, 1)
        assert ev.seen() == [("raised", "system:pq/d1/L2")]
        (a,) = gw.alarms.engine.alarms()
        assert (a["target"], a["phase"], a["value"], a["severity"]) == ("d1", "L2", 161.0, "high")
        assert "161" in ev.events[0].message and "d1 L2" in ev.events[0].title
        # present in the second the event arrived; back to normal from the next, for 60 s (the recovery)
        run(gw, clock, 60)
        assert len(ev.events) == 1
        run(gw, clock, 1)
        assert ev.seen()[-1] == ("cleared", "system:pq/d1/L2")
    finally:
        close(gw)


def test_events_within_the_recovery_time_keep_one_alarm_and_each_phase_has_its_own(tmp_path: Path):
    gw, clock, ev = gateway(tmp_path)
    try:
        gw.emit_pq_events([dip(clock.t, "L1", 180.0), dip(clock.t, "L1", 150.0)])
        run(gw, clock, 1)
        assert gw.alarms.engine.alarms()[0]["value"] == 150.0  # the deeper of the two
        run(gw, clock, 40)
        # another dip on L1 (held on), a swell on the line-to-line L3-L1 (counts on L3), an
        # interruption of d2 without a phase, and a frequency deviation (not this rule's)
        gw.emit_pq_events(
            [
                dip(clock.t, "L1", 170.0),
                dip(clock.t, "L3-L1", 440.0, PqKind.SWELL),
                dip(clock.t, None, 3.0, PqKind.INTERRUPTION, device="d2"),
                PqEvent(PqKind.FREQUENCY, clock.t, 12.0, 50.3, "Hz", "d1", PqSource.WAVEFORM),
            ]
        )
        run(gw, clock, 61)
        assert ev.seen() == [
            ("raised", "system:pq/d1/L1"),
            ("raised", "system:pq/d1/L3"),
            ("raised", "system:pq/d2"),
        ]
        run(gw, clock, 1)  # 60 s after the second dip, not after the first: one clear each
        assert sorted(ev.seen()[3:]) == [
            ("cleared", "system:pq/d1/L1"),
            ("cleared", "system:pq/d1/L3"),
            ("cleared", "system:pq/d2"),
        ]
    finally:
        close(gw)


def test_the_pq_rule_can_be_switched_off_and_limited_to_kinds(tmp_path: Path):
    site = SITE.replace("pq: {recovery: 60, severity: high}", "pq: {kinds: [interruption]}")
    gw, clock, ev = gateway(tmp_path, site)
    try:
        gw.emit_pq_events([dip(clock.t, "L1", 150.0), dip(clock.t, "L2", 1.0, PqKind.INTERRUPTION)])
        run(gw, clock, 1)
        assert ev.seen() == [("raised", "system:pq/d1/L2")]
    finally:
        close(gw)
    off = SITE.replace("pq: {recovery: 60, severity: high}", "pq: {enabled: false}")
    gw, clock, ev = gateway(tmp_path / "off", off)
    try:
        gw.emit_pq_events([dip(clock.t, "L1", 150.0)])
        run(gw, clock, 1)
        assert ev.events == []
    finally:
        close(gw)


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("pq: {kinds: [frequency-deviation]}", "watch the frequency with a band rule"),
        ("pq: {kinds: [sag]}", "kinds"),
        ("pq: {recovery: -1}", "recovery"),
    ],
)
def test_bad_pq_settings_are_refused_with_the_field(setting: str, words: str):
    with pytest.raises(ConfigError) as err:
        parse_site(SITE.replace("pq: {recovery: 60, severity: high}", setting), "site.yaml")
    text = str(err.value)
    assert words in text and "site.yaml:" in text
