"""The ``alarms:`` section: what a valid rule looks like, and every refusal naming FILE:LINE and field."""

from __future__ import annotations

import pytest

from meterhub.alarms.rules import Code, Mode, expand_rules, system_alarms
from meterhub.checks import parse_site
from meterhub.config import ConfigError
from meterhub.model.topology import Phase

SITE = """\
site: {name: Test}
buses:
  - {id: b1, kind: modbus-tcp, port: 5020}
devices:
  - {id: d1, bus: b1, unit: 1, profile: eastron-sdm630}
  - {id: vu, bus: b1, unit: 3, profile: enertrek-v10}
  - {id: dio1, bus: b1, unit: 6, profile: enertrek-dio-4-2}
circuits:
  - {id: main, device: d1, channels: [1, 2, 3], wiring: 3P4W, purpose: grid, zone: plant}
  - {id: office, device: d1, channels: [1, 2, 3], wiring: 3P4W, zone: plant}
io:
  points:
    - {id: q1, kind: digital, device: dio1, channel: 1, function: breaker-of}
alarms:
  rules:
"""
LINE = SITE.count("\n") + 1  # the line of the first rule


def refused(rule: str) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_site(SITE + f"    - {rule}\n", "site.yaml")
    assert len(exc.value.issues) == 1, exc.value
    return str(exc.value.issues[0])


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "{id: r, target: main, quantity: active_powr, condition: high, high: 1}",
            "alarms.rules[0].quantity: unknown quantity 'active_powr' (did you mean active_power",
        ),
        (
            "{id: r, target: mian, quantity: active_power, condition: high, high: 1}",
            "alarms.rules[0].target: unknown target 'mian': not a circuit, IO point, device or zone",
        ),
        (
            "{id: r, target: main, quantity: active_power, phase: L4, condition: high, high: 1}",
            "alarms.rules[0].phase: Input should be 'L1', 'L2', 'L3', 'total', 'any' or 'all'",
        ),
        (
            "{id: r, target: main, quantity: frequency, phase: any, condition: high, high: 51}",
            "alarms.rules[0]: frequency has no phase L1, L2, L3 (it has: total)",
        ),
        (
            "{id: r, target: main, quantity: voltage, condition: band, low: 253, high: 207}",
            "alarms.rules[0]: low 253 is not below high 207: the band is empty, the rule can never fire",
        ),
        (
            "{id: r, target: main, quantity: voltage, condition: high}",
            "alarms.rules[0]: condition high needs 'high'",
        ),
        (
            "{id: r, target: main, quantity: voltage, condition: high, high: 253, low: 207}",
            "alarms.rules[0]: 'low' is not used by condition high; remove it",
        ),
        (
            "{id: r, target: main, quantity: voltage, condition: high, high: 0.25, unit: kA}",
            "alarms.rules[0]: unit 'kA' is not a unit of voltage (use 'V', 'mV', 'kV', 'MV', 'GV')",
        ),
        (
            "{id: r, target: main, quantity: voltage, condition: high, high: 253, message: '{volts}'}",
            "alarms.rules[0].message: unknown placeholder {volts}; use {limit} {phase}",
        ),
        (
            "{id: r, target: main, quantity: voltage, condition: state, state: true}",
            "alarms.rules[0]: condition state watches an on/off input (digital_input, relay_output), not voltage",
        ),
        (
            "{id: r, target: main, quantity: harmonics_voltage, condition: high, high: 5}",
            "alarms.rules[0].quantity: 'harmonics_voltage' is a spectrum",
        ),
        (
            "{id: r, target: plant, quantity: voltage, condition: high, high: 253, on_delay: -1}",
            "alarms.rules[0].on_delay: Input should be greater than or equal to 0",
        ),
        (
            "{id: r, target: 'zoen:plant', quantity: voltage, condition: high, high: 253}",
            "alarms.rules[0].target: unknown target kind 'zoen'; use circuit, point, device, zone",
        ),
    ],
)
def test_a_bad_rule_is_refused_at_its_line_naming_the_field(rule: str, expected: str) -> None:
    message = refused(rule)
    assert message.startswith(f"site.yaml:{LINE}: {expected}"), message


def test_duplicate_rule_ids_are_refused_naming_both() -> None:
    text = (
        SITE
        + "    - {id: r, target: main, quantity: voltage, condition: high, high: 253}\n"
        + "    - {id: r, target: main, quantity: voltage, condition: low, low: 207}\n"
    )
    with pytest.raises(ConfigError) as exc:
        parse_site(text, "site.yaml")
    assert (
        str(exc.value)
        == f"site.yaml:{LINE + 1}: alarms.rules[1].id: duplicate rule id 'r' (also alarms.rules[0])"
    )


def test_rules_expand_per_target_with_limits_in_the_catalogue_unit() -> None:
    cfg = parse_site(
        SITE
        + "    - {id: p, target: 'zone:plant', quantity: active_power, unit: kW, condition: high, high: 25}\n"
        + "    - {id: v, target: main, quantity: voltage, phase: all, condition: band, low: 207, high: 253}\n"
        + "    - {id: trip, target: q1, quantity: digital_input, condition: state, state: true, severity: critical}\n",
        "site.yaml",
    )
    defs = {d.alarm_id: d for d in expand_rules(cfg)}
    assert sorted(defs) == ["p/main", "p/office", "trip/q1", "v/main/all"]
    (s,) = defs["p/office"].slots
    assert (s.series, s.code, s.high, defs["p/office"].unit, defs["p/office"].device) == (
        ("office", "active_power", Phase.TOTAL),
        Code.LEVEL,
        25_000.0,  # 25 kW in W
        "kW",
        "d1",
    )
    v = defs["v/main/all"]
    assert v.mode is Mode.ALL and [x.series[2] for x in v.slots] == [Phase.L1, Phase.L2, Phase.L3]
    assert (v.slots[0].low, v.slots[0].high) == (207.0, 253.0)
    trip = defs["trip/q1"]
    assert (trip.slots[0].series, trip.slots[0].high, trip.device) == (
        ("q1", "digital_input", Phase.TOTAL),
        0.5,
        "dio1",
    )


def test_system_rules_have_settings_and_one_alarm_per_device_circuit_or_site() -> None:
    cfg = parse_site(
        SITE.replace("alarms:\n  rules:\n", "")
        + "alarms:\n  system:\n    device_offline: {on_delay: 120, severity: critical}\n"
        + "    clock_drift: {enabled: false}\n",
        "site.yaml",
    )
    defs = {d.alarm_id: d for d in system_alarms(cfg)}
    off = defs["system:device_offline/d1"]
    assert (off.on_delay, off.severity.value) == (120.0, "critical")
    assert not defs["system:clock_drift/d1"].enabled
    assert {"system:site_outage/site", "system:unmetered/site", "system:storage_spool/site"} <= set(defs)
    assert "system:register_quarantine/office" in defs and "system:register_quarantine/q1" in defs


def test_an_empty_section_is_the_defaults_and_readers_cannot_acknowledge_by_default() -> None:
    cfg = parse_site(SITE.replace("alarms:\n  rules:\n", "alarms: {}\n"), "site.yaml")
    assert cfg.alarms is not None and cfg.alarms.reader_can_ack is False and cfg.alarms.rules == []


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "{id: r, target: main, quantity: power_factor, condition: high, high: 1}",
            "alarms.rules[0]: high 1: power_factor is never above 1; the rule can never fire",
        ),
        (
            "{id: r, target: main, quantity: voltage, unit: kV, condition: low, low: 0}",
            "alarms.rules[0]: low 0 kV: voltage is never below 0; the rule can never fire",
        ),
        (
            "{id: r, target: main, quantity: power_factor, condition: band, low: -1, high: 1}",
            "alarms.rules[0]: low -1: power_factor is never below -1; the rule can never fire",
        ),
    ],
)
def test_a_limit_beyond_what_the_quantity_can_take_can_never_fire(rule: str, expected: str) -> None:
    message = refused(rule)
    assert message.startswith(f"site.yaml:{LINE}: {expected}"), message
