"""``modbus_server:`` in a site file: what is accepted, and every refusal at its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterhub.checks import parse_site
from meterhub.config import ConfigError
from meterhub.config.modbus_server import served_circuits
from meterhub.model.quantities import CATALOGUE, Kind
from meterhub.publish import modbus_map

from .conftest import SITE

BASE = SITE.split("modbus_server:")[0]


def issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_site(text, "site.yaml")
    return [str(i) for i in err.value.issues]


def test_the_lab_site_serves_three_circuits_at_their_units() -> None:
    cfg = parse_site(SITE, "site.yaml")
    assert cfg.modbus_server is not None
    served = served_circuits(cfg.modbus_server, [(c.id, c.wiring) for c in cfg.circuits])
    assert [(s.circuit, s.unit, s.encoding) for s in served] == [
        ("grid", 1, None),
        ("office", 2, "float"),
        ("motor", 3, None),
    ]
    assert cfg.modbus_server.flat_map_unit == 247 and cfg.modbus_server.rtu is None


def test_without_a_list_every_ac_circuit_is_served_from_unit_1() -> None:
    cfg = parse_site(BASE + "modbus_server:\n  tcp: {port: 1502}\n", "site.yaml")
    assert cfg.modbus_server is not None and cfg.modbus_server.tcp is not None
    assert cfg.modbus_server.tcp.host == "127.0.0.1"
    served = served_circuits(cfg.modbus_server, [(c.id, c.wiring) for c in cfg.circuits])
    assert [(s.circuit, s.unit) for s in served] == [("grid", 1), ("office", 2), ("motor", 3)]


def test_a_section_that_serves_nowhere_is_refused() -> None:
    assert issues(BASE + "modbus_server: {}\n") == [
        "site.yaml:12: modbus_server: say where to serve: 'tcp: {host, port}' and/or 'rtu: {device, baud, parity}'"
    ]


def test_unknown_circuits_reused_units_and_bad_values_are_refused_at_their_line() -> None:
    text = BASE + (
        "modbus_server:\n"
        "  tcp: {port: 1502}\n"
        "  rtu: {device: /dev/ttyUSB1, parity: X}\n"
        "  circuits:\n"
        "    - {circuit: grid, unit: 1}\n"
        "    - {circuit: gird, unit: 2}\n"
        "    - {circuit: motor, unit: 1}\n"
        "    - {circuit: office, unit: 247}\n"
        "    - {circuit: grid, unit: 248, encoding: double}\n"
    )
    found = issues(text)
    assert any(i.startswith("site.yaml:14: modbus_server.rtu.parity:") for i in found), found
    assert any(i.startswith("site.yaml:20: modbus_server.circuits[4].unit:") for i in found), found
    assert any(i.startswith("site.yaml:20: modbus_server.circuits[4].encoding:") for i in found), found
    # the cross-checks run once the schema is satisfied
    fixed = text.replace("parity: X", "parity: E").replace("unit: 248, encoding: double", "unit: 4")
    assert issues(fixed) == [
        "site.yaml:17: modbus_server.circuits[1].circuit: unknown circuit 'gird' (known: grid, motor, office)",
        "site.yaml:18: modbus_server.circuits[2].unit: unit 1 is already used by circuit 'grid'",
        "site.yaml:19: modbus_server.circuits[3].unit: unit 247 is already used by the flat map (flat_map_unit)",
        "site.yaml:20: modbus_server.circuits[4].circuit: circuit 'grid' is served twice",
    ]


def test_the_flat_map_document_is_generated_from_the_catalogue() -> None:
    doc = Path(__file__).parents[2] / "docs" / "modbus-map.md"
    assert doc.read_text(encoding="utf-8") == modbus_map.render_markdown(), (
        "docs/modbus-map.md is out of date: PYTHONPATH=src python -m meterhub.publish.modbus_map > docs/modbus-map.md"
    )


def test_the_flat_map_holds_every_catalogue_quantity_in_frozen_order() -> None:
    ids = [q.id for q in CATALOGUE.values() if q.kind is not Kind.SPECTRUM]
    assert sorted(modbus_map.FLAT_QUANTITIES) == sorted(ids), "append a new quantity to FLAT_QUANTITIES"
    assert modbus_map.entry_of("voltage", modbus_map.Phase.L1).offset == 20
    assert modbus_map.BLOCK_USED <= modbus_map.BLOCK
