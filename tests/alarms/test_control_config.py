"""The site file's control: section — accepted when it fits the site, refused with FILE:LINE when not."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterhub.checks import load_site, parse_site
from meterhub.config import ConfigError
from meterhub.config.control import Action, Trigger

DEMO = Path(__file__).parents[2] / "examples" / "demo-site.yaml"

BASE = """\
site: {name: control, timezone: Europe/Berlin}
buses: [{id: b, kind: modbus-tcp, port: 1502}]
devices:
  - {id: vu, bus: b, unit: 1, profile: enertrek-v10}
  - {id: meter, bus: b, unit: 4, profile: enertrek-m30}
  - {id: dio, bus: b, unit: 2, profile: enertrek-dio-4-2}
  - {id: aio, bus: b, unit: 3, profile: enertrek-aio-2-2}
circuits:
  - {id: grid, device: meter, channels: [1, 2, 3], wiring: 3P4W, purpose: grid}
io:
  points:
    - {id: fan, kind: relay, device: dio, channel: 1}
    - {id: trip, kind: relay, device: dio, channel: 2, mode: pulse}
    - {id: valve, kind: analog-out, device: aio, channel: 1, range: [0, 100]}
    - {id: door, kind: digital, device: dio, channel: 1, function: door}
"""


#: the line of the first entry of the control section
LINE = BASE.count("\n") + 2


def site(control: str) -> str:
    return BASE + "control:\n" + "\n".join("  " + line for line in control.strip("\n").splitlines()) + "\n"


def issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_site(text, "site.yaml")
    return [str(i) for i in err.value.issues]


def test_the_demo_site_limits_its_demand_with_the_ev_charger_enable_relay():
    cfg = load_site(DEMO)
    assert cfg.control is not None and cfg.control.demand_limit is not None
    dl = cfg.control.demand_limit
    assert (dl.circuit, dl.target_kw, [ld.point for ld in dl.loads]) == ("grid", 54.0, ["ev-enable"])
    assert cfg.simulation is not None and cfg.simulation.loads["ev-charger"].enable == "ev-enable"


def test_a_complete_control_section_is_read():
    cfg = parse_site(
        site("""
override: 600
outputs: [{point: fan, min_on: 60, min_off: 30}]
interlocks: [{point: fan, requires: door, state: off}]
linkage:
  - {id: hot, when: {alarm: "system:clock_drift", state: active}, then: {point: fan, action: on}}
  - {id: door-trip, when: {input: door, state: on}, then: {point: trip, action: pulse, duration: 0.5}}
  - {id: valve-open, when: {alarm: "system:clock_drift", state: cleared}, then: {point: valve, action: set, value: 40}}
programs:
  - id: office
    point: fan
    schedule: [{days: weekdays, from: "07:00", to: "19:00"}, {days: [sat], from: "22:00", to: "02:00"}]
demand_limit:
  from_capacity_tariff: true
  floor_kw: 20
  loads: [{point: fan, power_kw: 2}]
"""),
        "site.yaml",
    )
    c = cfg.control
    assert c is not None and c.demand_limit is not None
    assert c.override == 600 and c.limits_of("fan").min_on == 60 and c.limits_of("valve").min_on == 0
    assert [r.then.action for r in c.linkage] == [Action.ON, Action.PULSE, Action.SET]
    assert c.linkage[1].when.state is Trigger.ON
    assert c.programs[0].schedule[0].days == ["mon", "tue", "wed", "thu", "fri"]
    assert c.demand_limit.circuit is None  # the one circuit of purpose grid
    assert c.demand_limit.restore_kw == 1.0  # the default margin of 1 kW


@pytest.mark.parametrize(
    ("control", "expected"),
    [
        (
            "linkage: [{id: x, when: {alarm: a, state: active}, then: {point: nope, action: on}}]",
            f"site.yaml:{LINE}: control.linkage[0].then.point: unknown output point 'nope'; output points: fan, trip, valve",
        ),
        (
            "linkage: [{id: x, when: {alarm: temp-high, state: active}, then: {point: fan, action: on}}]",
            f"site.yaml:{LINE}: control.linkage[0].when.alarm: unknown alarm rule 'temp-high'; rules of the "
            "alarms section: none; built-in: system:device_offline, system:site_outage",
        ),
        (
            "linkage: [{id: x, when: {input: fan, state: on}, then: {point: fan, action: off}}]",
            f"site.yaml:{LINE}: control.linkage[0].when.input: 'fan': a relay point, not a digital input; "
            "digital inputs: door",
        ),
        (
            "linkage: [{id: x, when: {alarm: a, state: on}, then: {point: fan, action: off}}]",
            "an alarm is 'active' or 'cleared', not 'on'",
        ),
        (
            "linkage: [{id: x, when: {alarm: a, state: active}, then: {point: valve, action: on}}]",
            "control.linkage[0].then.action: 'valve' is an analog output: its action is 'set' with a value",
        ),
        (
            "linkage: [{id: x, when: {alarm: a, state: active}, then: {point: trip, action: on}}]",
            "relay 'trip' is a pulse-mode output: its action is 'pulse', not 'on'",
        ),
        (
            "linkage: [{id: x, when: {alarm: a, state: active}, then: {point: fan, action: set}}]",
            "action 'set' needs 'value'",
        ),
        (
            'programs: [{id: p, point: door, schedule: [{days: [mon], from: "07:00", to: "08:00"}]}]',
            "control.programs[0].point: point 'door' is a digital point, not a relay or an analog output",
        ),
        (
            'programs: [{id: p, point: fan, schedule: [{days: [mon], from: "07:00", to: "07:00"}]}]',
            "is empty; a whole day is 00:00 to 24:00",
        ),
        (
            'programs: [{id: p, point: fan, schedule: [{days: [funday], from: "07:00", to: "08:00"}]}]',
            "unknown day 'funday'",
        ),
        (
            'programs: [{id: p, point: fan, schedule: [{days: [mon], from: "7:00", to: "08:00"}]}]',
            "'7:00' is not a time of day HH:MM",
        ),
        (
            "interlocks: [{point: fan, requires: ghost}]",
            "control.interlocks[0].requires: unknown point 'ghost'",
        ),
        ("demand_limit: {loads: [{point: fan, power_kw: 2}]}", "give 'target_kw' (a contract limit)"),
        (
            "demand_limit: {from_capacity_tariff: true, loads: [{point: fan, power_kw: 2}]}",
            "from_capacity_tariff needs 'floor_kw' > 0",
        ),
        (
            "demand_limit: {target_kw: 40, loads: [{point: fan}]}",
            "control.demand_limit.loads[0]: give 'circuit' (where the load is metered) or 'power_kw'",
        ),
        (
            "demand_limit: {target_kw: 40, interval: 30, loads: [{point: fan, power_kw: 2}]}",
            "control.demand_limit.interval: the demand interval is the energy section's (15 min), not 30 min",
        ),
        (
            "demand_limit: {target_kw: 40, circuit: main, loads: [{point: fan, circuit: ev, power_kw: 2}]}",
            "control.demand_limit.circuit: unknown circuit 'main'; circuits: grid",
        ),
        (
            "demand_limit: {target_kw: 40, loads: [{point: fan, power_kw: 2, min_off: 600, max_off: 60}]}",
            "max_off (60 s) is shorter than min_off (600 s)",
        ),
    ],
)
def test_a_control_section_that_cannot_work_is_refused_naming_file_line_and_field(
    control: str, expected: str
):
    found = issues(site(control))
    assert any(expected in i for i in found), found


def test_a_simulated_load_enabled_by_a_point_that_is_not_a_relay_is_refused():
    text = BASE + "simulation:\n  loads:\n    grid: {model: ev, rated_power: 1000, enable: door}\n"
    assert any("simulation.loads.grid.enable: 'door' is not a relay point" in i for i in issues(text))
