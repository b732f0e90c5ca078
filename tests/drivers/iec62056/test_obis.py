"""OBIS codes (IEC 62056-61:2017 §5) and OBIS profiles: code → catalogue quantity, units checked."""

from __future__ import annotations

import pytest

from meterhub.model.quantities import Q
from meterhub.model.topology import Phase
from meterhub.profiles.obis import ObisCode, ObisValue, get_obis_profile, obis_profile_ids, parse_obis_profile
from meterhub.profiles.schema import ProfileError


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("1.8.0", ObisCode(None, None, 1, 8, 0)),
        ("1-0:1.8.0*255", ObisCode(1, 0, 1, 8, 0, 255)),
        ("1-0:1.8.1&01", ObisCode(1, 0, 1, 8, 1, 1)),
        ("1.0.1.8.0.255", ObisCode(1, 0, 1, 8, 0, 255)),
        ("0.0.96.1.0.255", ObisCode(0, 0, 96, 1, 0, 255)),
        ("1.0.32.7.0", ObisCode(1, 0, 32, 7, 0)),
        ("C.1.0", ObisCode(None, None, 96, 1, 0)),  # "C" = 96 (§5.8)
        ("F.F", ObisCode(None, None, 97, 97, 0)),  # "F" = 97: error register
    ],
)
def test_obis_code_forms(text: str, code: ObisCode) -> None:
    assert ObisCode.parse(text) == code


@pytest.mark.parametrize("text", ["", "1", "1.8.0.0", "x.8.0", "1-0:1.8.0*256", "1.2.3.4.5.6.7"])
def test_bad_codes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        ObisCode.parse(text)


def test_reduced_and_full_forms_match() -> None:
    assert ObisCode.parse("1.8.0").matches(ObisCode.parse("1.0.1.8.0.255"))
    assert not ObisCode.parse("1-0:1.8.0").matches(ObisCode.parse("0-0:1.8.0"))
    assert not ObisCode.parse("1.8.0").matches(ObisCode.parse("1.8.1"))  # tariff 1 is not the total


def _v(code: str, value: str, unit: str | None = None) -> ObisValue:
    return ObisValue(ObisCode.parse(code), value, unit)


def test_the_seed_002_profile_converts_units_to_the_catalogue() -> None:
    p = get_obis_profile("seed002-1p-dlms")
    mapped, problems = p.decode(
        [
            _v("1.8.0", "012345.678", "kWh"),
            _v("32.7.0", "230.1", "V"),
            _v("16.7.0", "-001.250", "kW"),
            _v("13.7.0", "0.946"),
            _v("14.7.0", "50.01"),  # no unit in the line: the profile's Hz
            _v("0.9.1", "120000"),  # the clock: not a measured quantity, ignored
        ]
    )
    assert problems == []
    assert [(m.quantity, m.phase, m.value) for m in mapped] == [
        (Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL, pytest.approx(12_345_678.0)),
        (Q.VOLTAGE, Phase.L1, 230.1),
        (Q.ACTIVE_POWER, Phase.TOTAL, -1250.0),
        (Q.POWER_FACTOR, Phase.TOTAL, 0.946),
        (Q.FREQUENCY, Phase.TOTAL, 50.01),
    ]


def test_a_unit_that_does_not_convert_is_refused_with_code_and_units() -> None:
    p = get_obis_profile("seed002-1p-dlms")
    mapped, problems = p.decode([_v("1.8.0", "1.5", "kW"), _v("31.7.0", "x", "A"), _v("2.8.0", "3", "kWh")])
    assert [m.quantity for m in mapped] == [Q.ENERGY_ACTIVE_EXPORT]
    assert problems == [
        "1.8.0(1.5*kW): unit 'kW' cannot be converted to 'Wh' for energy_active_import (use the catalogue "
        "unit, an SI prefix of it, or 'scale')",
        "31.7.0(x): not a number for current",
    ]


def test_the_generic_profile_maps_every_catalogue_code_but_needs_units() -> None:
    g = get_obis_profile("obis-generic")
    assert g.entry(ObisCode.parse("52.7.0")) == (Q.VOLTAGE, Phase.L2)
    assert g.entry(ObisCode.parse("1-0:2.8.0*255")) == (Q.ENERGY_ACTIVE_EXPORT, Phase.TOTAL)
    mapped, problems = g.decode([_v("1.8.0", "12.5", "kWh"), _v("2.8.0", "3")])
    assert [(m.quantity, m.value) for m in mapped] == [(Q.ENERGY_ACTIVE_IMPORT, 12500.0)]
    assert problems == [
        "2.8.0(3): no unit given for energy_active_export [Wh] and none in profile obis-generic"
    ]
    assert g.serial_number([_v("C.1.0", "20260002")]) == "20260002"


def test_shipped_profiles_load() -> None:
    assert obis_profile_ids() == ["obis-generic", "seed002-1p-dlms"]
    for pid in obis_profile_ids():
        assert get_obis_profile(pid).id == pid


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("codes: [{obis: 1.8.0, quantity: energy_activ_import}]", "unknown quantity 'energy_activ_import'"),
        ("codes: [{obis: 1.8.0, quantity: energy_active_import, unit: kW}]", "cannot be converted to 'Wh'"),
        ('codes: [{obis: "1.8.0.0", quantity: energy_active_import}]', "is not an OBIS code"),
        ("codes: [{obis: 32.7.0, quantity: frequency, phase: L1}]", "frequency has no phase L1"),
    ],
)
def test_profile_errors_name_the_file_and_the_problem(body: str, message: str) -> None:
    head = "id: x\nvendor: v\nmodel: m\nsource: s\n"
    with pytest.raises(ProfileError, match=message) as info:
        parse_obis_profile(head + body, "x.yaml")
    assert str(info.value).startswith("x.yaml: ")


def test_an_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="unknown OBIS profile 'nope'; known OBIS profiles: obis-generic"):
        get_obis_profile("nope")
