"""The alarm engine: on-delay, recovery, reminder, deadband, ISA-18.2 states, shelve, persistence, listeners.

The clock is a number the tests move; readings are built by hand, so each value and time can be checked
against the rule by reading the test.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from meterhub.alarms.engine import AlarmEngine
from meterhub.alarms.model import AlarmEvent, AlarmState, EventKind, Severity
from meterhub.alarms.rules import expand_rules, system_alarms
from meterhub.alarms.state import AlarmStateStore
from meterhub.alarms.system import SystemMonitor
from meterhub.checks import parse_site
from meterhub.config.schema import SiteConfig
from meterhub.errors import ConflictError, InputError, NotFoundError
from meterhub.model.audit import AuditEntry
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase

T0 = 1_700_000_000.0

SITE = """\
site: {name: Test, timezone: UTC}
buses:
  - {id: b1, kind: modbus-tcp, port: 5020}
devices:
  - {id: d1, bus: b1, unit: 1, profile: eastron-sdm630}
  - {id: d2, bus: b1, unit: 2, profile: eastron-sdm630}
circuits:
  - {id: main, device: d1, channels: [1, 2, 3], wiring: 3P4W, purpose: grid}
  - {id: pump, device: d2, channels: [1, 2, 3], wiring: 3P4W, zone: plant}
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

    def kinds(self) -> list[str]:
        return [e.kind.value for e in self.events]


class Audit:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


def site(rules: str) -> SiteConfig:
    return parse_site(SITE + "alarms:\n  rules:\n" + rules, "site.yaml")


def engine(
    cfg: SiteConfig, clock: Clock, *, store: AlarmStateStore | None = None, system: bool = False
) -> tuple[AlarmEngine, Events, Audit]:
    ev, audit = Events(), Audit()
    defs = expand_rules(cfg) + (system_alarms(cfg) if system else [])
    return AlarmEngine(defs, store=store, clock=clock, listeners=[ev], auditor=audit), ev, audit


def power(
    clock: Clock, value: float, circuit: str = "pump", quality: Quality = Quality.GOOD
) -> list[Reading]:
    return [Reading(clock.t, circuit, Q.ACTIVE_POWER, Phase.TOTAL, value, quality)]


def step(eng: AlarmEngine, clock: Clock, value: float, seconds: int, circuit: str = "pump") -> None:
    """One reading per second for ``seconds`` s, with the timers run each second as the sink does."""
    for _ in range(seconds):
        clock.t += 1
        eng.update(power(clock, value, circuit))
        eng.tick()


PUMP_HIGH = """\
    - id: pump-high
      title: "Pump overload"
      message: "{target} {quantity} = {value} {unit} above {limit} {unit} since {time}"
      target: pump
      quantity: active_power
      unit: kW
      condition: high
      high: 10
      deadband: 1
      on_delay: 5
      recovery: 60
      reminder: 600
      severity: high
"""


def test_over_limit_raises_once_after_its_on_delay_with_the_documented_fields() -> None:
    clock = Clock()
    eng, ev, _ = engine(site(PUMP_HIGH), clock)
    step(eng, clock, 12_000, 4)  # 4 s over 10 kW: the on-delay (5 s) is not over
    assert ev.events == []
    step(eng, clock, 12_000, 1)  # condition since T0+1, now T0+5 … the 5th second completes it
    step(eng, clock, 12_000, 1)
    assert ev.kinds() == ["raised"]
    e = ev.events[0]
    assert (e.seq, e.alarm_id, e.rule, e.state, e.severity) == (
        1,
        "pump-high/pump",
        "pump-high",
        AlarmState.UNACK_ACTIVE,
        Severity.HIGH,
    )
    assert (e.target, e.phase, e.quantity, e.value, e.limit, e.unit) == (
        "pump",
        "total",
        "active_power",
        12.0,
        10.0,
        "kW",
    )
    assert e.title == "Pump overload"
    assert e.message == "pump active_power = 12 kW above 10 kW since 2023-11-14 22:13:26 UTC"
    assert e.ts == T0 + 6


def test_a_short_excursion_below_the_on_delay_raises_nothing() -> None:
    clock = Clock()
    eng, ev, _ = engine(site(PUMP_HIGH), clock)
    step(eng, clock, 12_000, 4)
    step(eng, clock, 5_000, 1)
    step(eng, clock, 12_000, 4)
    assert ev.events == []


def test_a_return_shorter_than_the_recovery_time_does_not_clear_then_it_clears_once() -> None:
    clock = Clock()
    eng, ev, _ = engine(site(PUMP_HIGH), clock)
    step(eng, clock, 12_000, 6)
    step(eng, clock, 5_000, 59)  # 59 s back to normal: recovery is 60 s
    step(eng, clock, 12_000, 1)  # over again: the recovery timer restarts
    step(eng, clock, 5_000, 59)
    assert ev.kinds() == ["raised"]
    step(eng, clock, 5_000, 2)
    assert ev.kinds() == ["raised", "cleared"]
    assert ev.events[-1].state is AlarmState.RTN_UNACK  # nobody acknowledged it
    step(eng, clock, 5_000, 120)
    assert ev.kinds() == ["raised", "cleared"]


def test_deadband_holds_the_condition_until_the_value_is_back_past_limit_minus_deadband() -> None:
    clock = Clock()
    eng, ev, _ = engine(site(PUMP_HIGH), clock)
    step(eng, clock, 12_000, 6)
    step(eng, clock, 9_500, 120)  # below 10 kW but not below 10 − 1 kW: still in the condition
    assert ev.kinds() == ["raised"]
    step(eng, clock, 8_900, 61)
    assert ev.kinds() == ["raised", "cleared"]


def test_one_reminder_per_reminder_time_while_it_continues() -> None:
    clock = Clock()
    eng, ev, _ = engine(site(PUMP_HIGH), clock)
    step(eng, clock, 12_000, 6)
    step(eng, clock, 12_000, 1799)  # raised at T0+6; reminders at +606, +1206, +1806 → two so far
    assert ev.kinds() == ["raised", "reminder", "reminder"]
    step(eng, clock, 12_000, 1)
    assert ev.kinds().count("reminder") == 3
    assert [e.seq for e in ev.events] == [1, 2, 3, 4]


def test_acknowledge_moves_through_the_isa_states_and_is_audited() -> None:
    clock = Clock()
    eng, ev, audit = engine(site(PUMP_HIGH), clock)
    with pytest.raises(ConflictError, match="nothing to acknowledge"):
        eng.acknowledge("pump-high/pump", "alice")
    with pytest.raises(NotFoundError, match="unknown alarm 'nope'"):
        eng.acknowledge("nope", "alice")
    step(eng, clock, 12_000, 6)
    eng.acknowledge("pump-high/pump", "alice", "checking the pump")
    assert eng.state_of(eng.find("pump-high/pump")) is AlarmState.ACK_ACTIVE
    e = ev.events[-1]
    assert (e.kind, e.state, e.user, e.comment) == (
        EventKind.ACKNOWLEDGED,
        AlarmState.ACK_ACTIVE,
        "alice",
        "checking the pump",
    )
    assert eng.alarms()[0]["acked_by"] == "alice"
    step(eng, clock, 5_000, 61)
    assert ev.events[-1].state is AlarmState.NORMAL  # acknowledged, then cleared: back to normal
    a = audit.entries[0]
    assert (a.actor, a.action, a.target, a.before, a.after, a.comment) == (
        "alice",
        "alarm.ack",
        "pump-high/pump",
        "unack-active",
        "ack-active",
        "checking the pump",
    )


def test_returned_unacknowledged_is_normal_after_acknowledge() -> None:
    clock = Clock()
    eng, ev, _ = engine(site(PUMP_HIGH), clock)
    step(eng, clock, 12_000, 6)
    step(eng, clock, 5_000, 61)
    eng.acknowledge("pump-high/pump", "bob")
    assert ev.events[-1].state is AlarmState.NORMAL
    assert eng.alarms() == []


def test_a_shelved_alarm_is_silent_and_comes_back_when_its_time_runs_out() -> None:
    clock = Clock()
    eng, ev, audit = engine(site(PUMP_HIGH), clock)
    with pytest.raises(InputError, match="duration_s"):
        eng.shelve("pump-high/pump", "alice", 0)
    eng.shelve("pump-high/pump", "alice", 100, "maintenance")
    step(eng, clock, 12_000, 60)  # over the limit while shelved: no raised event
    assert ev.kinds() == ["shelved"]
    assert eng.state_of(eng.find("pump-high/pump")) is AlarmState.SHELVED
    with pytest.raises(ConflictError, match="shelved"):
        eng.acknowledge("pump-high/pump", "alice")
    step(eng, clock, 12_000, 40)
    assert ev.kinds() == ["shelved", "unshelved"]
    assert (
        ev.events[-1].state is AlarmState.UNACK_ACTIVE
    )  # it became active meanwhile: the receiver learns it
    assert ev.events[-1].comment == "the shelve time ran out"
    assert [a.action for a in audit.entries] == ["alarm.shelve"]
    assert audit.entries[0].extra["duration_s"] == 100


def test_unshelve_by_a_user_and_out_of_service() -> None:
    clock = Clock()
    eng, ev, audit = engine(site(PUMP_HIGH), clock)
    with pytest.raises(ConflictError, match="not shelved"):
        eng.unshelve("pump-high/pump", "alice")
    eng.shelve("pump-high/pump", "alice", 3600)
    eng.unshelve("pump-high/pump", "alice", "done")
    eng.set_in_service("pump-high/pump", "alice", False, "sensor replaced")
    step(eng, clock, 12_000, 30)  # out of service: not evaluated
    assert eng.state_of(eng.find("pump-high/pump")) is AlarmState.OUT_OF_SERVICE
    eng.set_in_service("pump-high/pump", "alice", True)
    step(eng, clock, 12_000, 6)
    assert ev.kinds() == ["shelved", "unshelved", "out-of-service", "in-service", "raised"]
    assert [a.action for a in audit.entries] == [
        "alarm.shelve",
        "alarm.unshelve",
        "alarm.out-of-service",
        "alarm.in-service",
    ]


def test_only_good_readings_reach_the_rules() -> None:
    clock = Clock()
    eng, ev, _ = engine(site(PUMP_HIGH), clock)
    for _ in range(30):
        clock.t += 1
        eng.update(power(clock, 99_000, quality=Quality.INVALID))
        eng.update(power(clock, 99_000, quality=Quality.ESTIMATED))
        eng.tick()
    assert ev.events == []


def test_phase_any_and_all_and_a_band() -> None:
    cfg = site(
        """\
    - {id: v-any, target: main, quantity: voltage, phase: any, condition: band, low: 207, high: 253}
    - {id: v-all, target: main, quantity: voltage, phase: all, condition: low, low: 207}
"""
    )
    clock = Clock()
    eng, ev, _ = engine(cfg, clock)

    def volts(l1: float, l2: float, l3: float) -> None:
        clock.t += 1
        eng.update(
            [
                Reading(clock.t, "main", Q.VOLTAGE, p, v)
                for p, v in zip((Phase.L1, Phase.L2, Phase.L3), (l1, l2, l3), strict=True)
            ]
        )
        eng.tick()

    volts(230, 230, 230)
    assert ev.events == []
    volts(230, 200, 230)  # one phase low: 'any' fires, 'all' does not
    assert [(e.alarm_id, e.value, e.limit) for e in ev.events] == [("v-any/main/any", 200.0, 207.0)]
    volts(200, 200, 201)
    assert [e.alarm_id for e in ev.events] == ["v-any/main/any", "v-all/main/all"]
    volts(230, 260, 230)  # over the band's high: 'any' stays, 'all' has no condition any more (recovery 0)
    assert ev.events[-1].kind is EventKind.CLEARED and ev.events[-1].alarm_id == "v-all/main/all"


def test_rate_of_change_per_minute_and_an_input_state(tmp_path: Path) -> None:
    cfg = site(
        """\
    - {id: ramp, target: pump, quantity: active_power, unit: kW, condition: rate, rate: 60}
"""
    )
    clock = Clock()
    eng, ev, _ = engine(cfg, clock)
    step(eng, clock, 10_000, 2)
    step(eng, clock, 10_900, 1)  # +0.9 kW in 1 s = 54 kW/min: under 60
    assert ev.events == []
    step(eng, clock, 12_000, 1)  # +1.1 kW in 1 s = 66 kW/min
    assert [(e.kind.value, e.value, e.limit, e.unit) for e in ev.events] == [("raised", 66.0, 60.0, "kW")]


def test_a_listener_that_fails_is_logged_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def on_event(self, event: AlarmEvent) -> None:
            raise RuntimeError("mail server exploded")

    clock = Clock()
    eng, ev, _ = engine(site(PUMP_HIGH), clock)
    eng.listeners.insert(0, Broken())
    with caplog.at_level(logging.ERROR, logger="meterhub.alarms"):
        step(eng, clock, 12_000, 6)
    assert ev.kinds() == ["raised"]
    assert eng.listener_errors == 1
    assert "alarm listener Broken failed on event 1 (pump-high/pump)" in caplog.text


def test_a_restart_keeps_active_and_acknowledged_alarms_and_raises_nothing_twice(tmp_path: Path) -> None:
    cfg = site(
        PUMP_HIGH + "    - {id: pump-low, target: pump, quantity: active_power, condition: low, low: 20000}\n"
    )
    clock = Clock()
    eng, ev, _ = engine(cfg, clock, store=AlarmStateStore(tmp_path / "alarms-state.sqlite"))
    step(eng, clock, 12_000, 6)
    eng.acknowledge("pump-low/pump", "alice", "known")
    assert ev.kinds() == ["raised", "raised", "acknowledged"]
    eng.store.close()  # type: ignore[union-attr]

    eng2, ev2, _ = engine(cfg, clock, store=AlarmStateStore(tmp_path / "alarms-state.sqlite"))
    states = {a["id"]: (a["state"], a["acked_by"], a["value"]) for a in eng2.alarms()}
    assert states == {
        "pump-high/pump": ("unack-active", None, 12.0),
        "pump-low/pump": ("ack-active", "alice", 12_000.0),
    }
    step(eng2, clock, 12_000, 30)
    assert ev2.events == []  # no duplicate raised
    step(eng2, clock, 5_000, 61)
    assert ev2.kinds() == ["cleared"]
    assert ev2.events[0].seq == 4  # the sequence continues


def test_device_offline_suppresses_its_circuits_and_a_site_outage_is_one_alarm(tmp_path: Path) -> None:
    devices = "\n".join(
        f"  - {{id: x{k}, bus: b1, unit: {k + 10}, profile: eastron-sdm630}}" for k in range(4)
    )
    cfg = parse_site(
        SITE.replace("circuits:", devices + "\ncircuits:") + "alarms:\n  rules:\n" + PUMP_HIGH, "site.yaml"
    )
    clock = Clock()
    eng, ev, _ = engine(cfg, clock, system=True)

    class St:
        def __init__(self, online: bool) -> None:
            self.online = online
            self.errors = 0

        def failed(self) -> None:  # as DeviceStatus.failed: offline, one more error
            self.online = False
            self.errors += 1

    status = {d.id: St(True) for d in cfg.devices}
    mon = SystemMonitor(cfg, eng, lambda: status, tmp_path, clock())
    step(eng, clock, 12_000, 6)
    assert ev.kinds() == ["raised"]
    status["d2"].failed()
    for _ in range(31):
        clock.t += 1
        mon.tick(clock.t)
        eng.tick()
    kinds = [(e.kind.value, e.alarm_id) for e in ev.events]
    assert kinds == [
        ("raised", "pump-high/pump"),
        ("suppressed", "pump-high/pump"),
        ("raised", "system:device_offline/d2"),
    ]
    assert eng.state_of(eng.find("pump-high/pump")) is AlarmState.SUPPRESSED
    for d in status.values():  # the whole site goes dark: one outage alarm, device alarms suppressed
        d.failed()
    for _ in range(40):
        clock.t += 1
        mon.tick(clock.t)
        eng.tick()
    raised = [e.alarm_id for e in ev.events if e.kind is EventKind.RAISED]
    assert raised == ["pump-high/pump", "system:device_offline/d2", "system:site_outage/site"]
    outage = next(e for e in ev.events if e.alarm_id == "system:site_outage/site")
    assert outage.message.startswith("6 devices offline at once (limit 3)")


def test_removing_or_disabling_a_rule_takes_its_active_alarm_out_of_service(tmp_path: Path) -> None:
    clock = Clock()
    two = (
        PUMP_HIGH + "    - {id: pump-low, target: pump, quantity: active_power, condition: low, low: 20000}\n"
    )
    store = AlarmStateStore(tmp_path / "alarms-state.sqlite")
    eng, ev, _ = engine(site(two), clock, store=store)
    step(eng, clock, 12_000, 6)
    assert ev.kinds() == ["raised", "raised"]
    disabled = site(PUMP_HIGH.replace("severity: high", "severity: high\n      enabled: false"))
    eng.reconfigure(expand_rules(disabled))
    assert [(e.kind.value, e.alarm_id, e.state.value, e.comment) for e in ev.events[2:]] == [
        ("out-of-service", "pump-low/pump", "out-of-service", "rule removed"),
        ("out-of-service", "pump-high/pump", "out-of-service", "rule disabled"),
    ]
    step(eng, clock, 12_000, 30)
    assert len(ev.events) == 4  # not evaluated any more
    assert eng.alarms() == []
    store.close()
    assert AlarmStateStore(tmp_path / "alarms-state.sqlite").load()[1].keys() <= {"pump-high/pump"}


def test_an_input_state_rule_on_an_io_point() -> None:
    cfg = parse_site(
        """\
site: {name: IO}
buses:
  - {id: b1, kind: modbus-tcp, port: 5020}
devices:
  - {id: vu, bus: b1, unit: 3, profile: enertrek-v10}
  - {id: dio1, bus: b1, unit: 6, profile: enertrek-dio-4-2}
io:
  points:
    - {id: q1, kind: digital, device: dio1, channel: 1, function: breaker-of}
alarms:
  rules:
    - {id: q1-trip, title: "Breaker Q1 tripped", target: q1, quantity: digital_input, condition: state,
       state: true, on_delay: 2, severity: critical}
""",
        "site.yaml",
    )
    clock = Clock()
    eng, ev, _ = engine(cfg, clock)

    def contact(on: bool, seconds: int) -> None:
        for _ in range(seconds):
            clock.t += 1
            eng.update([Reading(clock.t, "q1", Q.DIGITAL_INPUT, Phase.TOTAL, 1.0 if on else 0.0)])
            eng.tick()

    contact(False, 5)
    contact(True, 1)  # a bounce shorter than the on-delay
    contact(False, 1)
    assert ev.events == []
    contact(True, 3)
    assert [(e.kind.value, e.alarm_id, e.severity.value, e.title) for e in ev.events] == [
        ("raised", "q1-trip/q1", "critical", "Breaker Q1 tripped")
    ]
    contact(False, 1)
    assert ev.kinds() == ["raised", "cleared"]
