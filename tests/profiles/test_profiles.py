"""Every shipped profile loads, names its source, and maps only catalogue quantities."""

from __future__ import annotations

import pytest

from meterhub.model import quantities
from meterhub.profiles import get_profile, profile_ids
from meterhub.profiles.schema import ProfileError, ProfileKind, parse_profile

IDS = profile_ids()


@pytest.mark.parametrize("pid", IDS)
def test_profile_loads_and_is_consistent(pid):
    p = get_profile(pid)
    assert p.id == pid
    assert len(p.source) > 20
    assert p.registers
    for pt in p.points():
        assert pt.quantity in quantities.CATALOGUE


def test_seed_000_current_modules_have_no_voltage_and_float64_energy():
    for pid, n in [
        ("enertrek-m10", 1),
        ("enertrek-m20", 2),
        ("enertrek-m30", 3),
        ("enertrek-m40", 4),
        ("enertrek-e10", 3),
        ("enertrek-e21", 3),
        ("enertrek-e31", 3),
    ]:
        p = get_profile(pid)
        assert p.kind is ProfileKind.CURRENT_MODULE and p.channels == n
        assert not [e for e in p.registers if e.quantity == "voltage"]
        energy = [pt for pt in p.points() if pt.quantity.startswith("energy_")]
        assert energy and all(pt.dtype.value == "float64" for pt in energy)
        assert p.point_channels() == list(range(1, n + 1))


def test_sdm630_energy_in_kwh_becomes_wh():
    p = get_profile("eastron-sdm630")
    imp = next(pt for pt in p.points() if pt.quantity == "energy_active_import" and pt.phase.value == "total")
    assert (imp.address, imp.factor) == (0x0048, 1000.0)


BAD = """id: bad
vendor: X
model: Y
source: a document
registers:
  - {quantity: voltage, phase: L1, address: 0}
  - {quantity: volts, phase: L2, address: 2}
  - {quantity: current, phase: L1, address: 1}
  - {quantity: frequency, phase: L1, address: 10}
  - {quantity: active_power, phase: L1, address: 12, unit: kV}
"""


def test_bad_profile_errors_name_line_field_and_fix():
    with pytest.raises(ProfileError) as exc:
        parse_profile(BAD, "bad.yaml")
    text = str(exc.value)
    assert "bad.yaml:7: registers[1].quantity: unknown quantity 'volts'" in text
    assert "bad.yaml:8: registers[2].address: input register 1 overlaps registers[0] (voltage)" in text
    assert "bad.yaml:9: registers[3].phase: frequency has no phase 'L1' (allowed: total)" in text
    assert "bad.yaml:10: registers[4].unit: unit 'kV' cannot be converted to 'W'" in text


def test_unknown_field_is_reported_with_its_line():
    with pytest.raises(ProfileError, match=r"x.yaml:5: registers\[0\].adress: unknown field"):
        parse_profile(
            "id: a\nvendor: v\nmodel: m\nsource: doc\nregisters: [{quantity: voltage, adress: 1}]\n", "x.yaml"
        )
