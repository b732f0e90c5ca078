"""Payload decoding of MQTT ingest (no broker): each format to catalogue readings, checked by hand."""

from __future__ import annotations

import json

import pytest

from meterhub.checks import parse_site
from meterhub.drivers.mqtt.decode import PayloadDecoder
from meterhub.model.formats import RTDATA_FIELDS
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality
from meterhub.model.topology import Phase
from meterhub.publish.formats import meterhub_json
from meterhub.publish.interval import CircuitInfo, CircuitInterval, Value

L1, L2, L3, T = Phase.L1, Phase.L2, Phase.L3, Phase.TOTAL
RECEIVED = 1_790_000_000.0

SITE = """
site: {name: Ingest}
buses: [{id: broker, kind: mqtt, port: 1883}]
devices:
  - {id: eni, bus: broker, mqtt: {topic: "eniscope/#", format: eniscope-rtdata}}
  - {id: hub, bus: broker, mqtt: {topic: "meterhub/+/json", format: meterhub-json}}
  - id: plug
    bus: broker
    mqtt:
      topic: plugs/1
      format: json
      timestamp: ts
      mapping:
        - {path: "meters[0].power", quantity: active_power, phase: total, unit: kW}
        - {path: "meters[0].total", quantity: energy_active_import, phase: total, unit: kWh}
        - {path: voltage, quantity: voltage, phase: L1, unit: V}
        - {path: freq, quantity: frequency, unit: Hz}
circuits:
  - {id: office, device: eni, channels: [1, 2, 3], wiring: 3P4W}
  - {id: kitchen, device: eni, channels: [4]}
  - {id: main, device: hub, channels: [1, 2, 3], wiring: 3P4W}
  - {id: plug, device: plug}
"""


def decoder(device_id: str) -> PayloadDecoder:
    cfg = parse_site(SITE, "site.yaml")
    d = cfg.device(device_id)
    assert d.mqtt is not None
    return PayloadDecoder(d.id, d.mqtt, [c for c in cfg.circuits if c.device == d.id])


def rtdata_entry(did: int, **values: float | None) -> dict[str, object]:
    entry: dict[str, object] = {"uid": f"00:01:02:03:04:05:00:{did:02x}", "did": did, "ts": 1_790_000_060}
    entry.update({f.name: None for f in RTDATA_FIELDS})
    entry.update(values)
    return entry


def test_rtdata_fields_become_the_catalogue_readings_of_the_circuit_with_that_did() -> None:
    payload = {
        "rtdata": [
            rtdata_entry(1, V1=230.1, P1=1000, P2=1100, P3=1200, P=3300, E=12345, E1=4000, PF=0.97, F=50.01),
            rtdata_entry(4, P1=-150.5, Ex=77),
            rtdata_entry(9, P1=1),  # no circuit has did 9
        ]
    }
    out = decoder("eni").decode(json.dumps(payload).encode(), RECEIVED)
    got = {(r.circuit, r.quantity, r.phase): r.value for r in out.readings}
    assert got == {
        ("office", Q.VOLTAGE, L1): 230.1,
        ("office", Q.ACTIVE_POWER, L1): 1000.0,
        ("office", Q.ACTIVE_POWER, L2): 1100.0,
        ("office", Q.ACTIVE_POWER, L3): 1200.0,
        ("office", Q.ACTIVE_POWER, T): 3300.0,
        ("office", Q.ENERGY_ACTIVE_IMPORT, T): 12345.0,
        ("office", Q.ENERGY_ACTIVE_IMPORT, L1): 4000.0,
        ("office", Q.POWER_FACTOR, T): 0.97,
        ("office", Q.FREQUENCY, T): 50.01,
        ("kitchen", Q.ACTIVE_POWER, L1): -150.5,
        ("kitchen", Q.ENERGY_ACTIVE_EXPORT, T): 77.0,
    }
    assert {r.ts for r in out.readings} == {1_790_000_060.0}  # the entry's ts, not the receive time
    assert {r.quality for r in out.readings} == {Quality.GOOD}
    assert out.problems == [] and out.skipped == ["did 9"]


def test_rtdata_system_current_is_a_sum_and_is_not_taken_as_the_catalogue_total() -> None:
    # seed 001's example: I = I1 + I2 + I3; the catalogue's total current is their mean
    payload = {"rtdata": [rtdata_entry(1, I1=2.436, I2=2.423, I3=2.4304, I=7.2894, In=0.1)]}
    out = decoder("eni").decode(json.dumps(payload).encode(), RECEIVED)
    got = {(r.quantity, r.phase): r.value for r in out.readings}
    assert got == {
        (Q.CURRENT, L1): 2.436,
        (Q.CURRENT, L2): 2.423,
        (Q.CURRENT, L3): 2.4304,
        (Q.CURRENT, Phase.N): 0.1,
    }


def test_a_meterhub_json_message_from_publish_decodes_to_the_same_values() -> None:
    values = {
        (Q.VOLTAGE, L1): Value(230.4, Quality.GOOD, 60),
        (Q.ACTIVE_POWER, T): Value(7200.0, Quality.ESTIMATED, 58),
        (Q.ENERGY_ACTIVE_IMPORT, T): Value(123456.0, Quality.GOOD, 60),
        (Q.POWER_FACTOR, T): Value(0.94, Quality.FLAGGED, 60),
    }
    ci = CircuitInterval(
        CircuitInfo("main", "Main incomer", "plant", "3P4W", 3), 1_790_000_100.0, 60.0, values
    )
    payload = meterhub_json(ci, site_id="remote-site")
    out = decoder("hub").decode(payload, RECEIVED)
    got = {(r.quantity, r.phase): (r.value, r.quality) for r in out.readings}
    assert got == {k: (v.value, v.quality) for k, v in values.items()}
    assert {(r.circuit, r.ts) for r in out.readings} == {("main", 1_790_000_100.0)}
    assert out.problems == []


def test_a_declared_json_mapping_converts_kw_and_kwh_to_the_catalogue_units() -> None:
    payload = {
        "meters": [{"power": 1.5, "total": 12.345}],
        "voltage": 231.2,
        "freq": 49.98,
        "ts": 1_790_000_000,
    }
    out = decoder("plug").decode(json.dumps(payload).encode(), 1.0)
    got = {(r.circuit, r.quantity, r.phase): r.value for r in out.readings}
    assert got == {
        ("plug", Q.ACTIVE_POWER, T): 1500.0,  # 1.5 kW
        ("plug", Q.ENERGY_ACTIVE_IMPORT, T): pytest.approx(12345.0),  # 12.345 kWh
        ("plug", Q.VOLTAGE, L1): 231.2,
        ("plug", Q.FREQUENCY, T): 49.98,  # frequency has only the total phase: taken without 'phase'
    }
    assert {r.ts for r in out.readings} == {1_790_000_000.0}


def test_a_millisecond_timestamp_is_taken_as_milliseconds() -> None:
    payload = {"meters": [{"power": 0.2, "total": 1}], "voltage": 230, "freq": 50, "ts": 1_790_000_000_500}
    out = decoder("plug").decode(json.dumps(payload).encode(), 1.0)
    assert {r.ts for r in out.readings} == {1_790_000_000.5}


@pytest.mark.parametrize(
    ("device", "payload", "reason"),
    [
        ("plug", b"\xff\xfe not json", "not JSON"),
        ("plug", b'{"meters": [', "not JSON"),
        ("eni", b"[1, 2, 3]", "no rtdata list"),
        ("eni", b'{"rtdata": [{"P1": 5}]}', "no did"),
        ("eni", b'{"rtdata": [{"did": 1, "P1": "high"}]}', "P1 not a number"),
        ("hub", b'{"schema": "other/2"}', "wrong schema"),
        (
            "hub",
            b'{"schema": "meterhub-json/1", "circuit": "main", "ts": 1790000000,'
            b' "values": [{"quantity": "active_power", "phase": "total", "value": 1, "unit": "furlong"}]}',
            "unknown unit",
        ),
        (
            "plug",
            b'{"ts": 1790000000, "voltage": 230, "freq": 50, "meters": [{"total": 1}]}',
            "missing meters[0].power",
        ),
        ("plug", b'{"ts": true, "meters": []}', "bad ts"),
    ],
)
def test_a_bad_payload_gives_a_problem_and_never_raises(device: str, payload: bytes, reason: str) -> None:
    out = decoder(device).decode(payload, RECEIVED)
    assert reason in [p.reason for p in out.problems]
