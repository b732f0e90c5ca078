"""Per-interval aggregation and selection, without a broker."""

from __future__ import annotations

from meterhub.config import parse_config
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase
from meterhub.publish.interval import IntervalAggregator, Selection

SITE = """
site: {name: T}
buses: [{id: b, kind: modbus-tcp, port: 1502}]
devices: [{id: m, bus: b, unit: 1, profile: eastron-sdm630}]
circuits:
  - {id: a, device: m, zone: office}
  - {id: b, device: m, zone: plant}
  - {id: c, device: m}
publish:
  - id: p
    broker: mqtt://127.0.0.1
    interval: 60
    selection: {circuits: [c], zones: [office], quantities: [active_power, energy_active_import]}
"""
T = Phase.TOTAL


def test_selection_is_the_union_of_circuits_and_zones_and_only_the_listed_quantities() -> None:
    cfg = parse_config(SITE)
    assert cfg.publish is not None
    sel = Selection(cfg, cfg.publish[0])
    assert sorted(sel.circuits) == ["a", "c"]
    assert [c.did for c in sel.circuits.values()] == [1, 3]
    assert sel.wants(Reading(0, "a", "active_power", T, 1.0))
    assert not sel.wants(Reading(0, "b", "active_power", T, 1.0))
    assert not sel.wants(Reading(0, "a", "voltage", T, 1.0))


def test_an_interval_holds_the_mean_of_values_the_last_register_and_the_worst_quality() -> None:
    cfg = parse_config(SITE)
    assert cfg.publish is not None
    agg = IntervalAggregator(Selection(cfg, cfg.publish[0]), 60.0)
    t0 = 1_800_000_000.0  # a multiple of 60
    agg.add(
        [
            Reading(t0 + 1, "a", "active_power", T, 100.0),
            Reading(t0 + 31, "a", "active_power", T, 200.0, Quality.ESTIMATED),
            Reading(t0 + 45, "a", "active_power", T, 9e9, Quality.INVALID),
            Reading(t0 + 1, "a", "energy_active_import", T, 5000.0),
            Reading(t0 + 59, "a", "energy_active_import", T, 5002.5),
            Reading(t0 + 61, "a", "active_power", T, 300.0),  # the next interval
        ]
    )
    assert agg.close(t0 + 61) == []  # the interval ended 1 s ago: within the 2 s grace
    [ci] = agg.close(t0 + 62)
    assert (ci.circuit.id, ci.end, ci.interval) == ("a", t0 + 60, 60.0)
    p = ci.values[("active_power", T)]
    assert (p.value, p.quality, p.samples) == (150.0, Quality.ESTIMATED, 2)
    assert ci.values[("energy_active_import", T)].value == 5002.5
    assert agg.invalid == 1
    agg.add([Reading(t0 + 30, "a", "active_power", T, 1.0)])  # too late for its published interval
    assert agg.late == 1
    [nxt] = agg.close(t0 + 200)
    assert nxt.values[("active_power", T)].value == 300.0
