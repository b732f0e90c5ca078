"""Site-file checks of ``iec62056-21`` and ``dlms`` buses (:mod:`meterhub.drivers.dlms.checks`): each
refusal names the file, the line of the device and why."""

from __future__ import annotations

import pytest

from meterhub.checks import parse_site
from meterhub.config.loader import ConfigError

SITE = """\
site: {name: meters}
buses:
  - {id: optical, kind: iec62056-21, port: 2101, host: 127.0.0.1}
  - {id: remote, kind: dlms, port: 4059, host: 127.0.0.1}
devices:
  - {id: m1, bus: optical, profile: seed002-1p-dlms}
  - {id: m2, bus: remote, profile: obis-generic}
circuits:
  - {id: home, device: m1, channels: [1], wiring: 1P2W}
"""


def _issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_site(text, "site.yaml")
    return [str(i) for i in info.value.issues]


def test_a_valid_site_with_both_kinds_is_accepted() -> None:
    cfg = parse_site(SITE, "site.yaml")
    assert [d.profile for d in cfg.devices] == ["seed002-1p-dlms", "obis-generic"]


def test_an_unknown_obis_profile_is_refused_at_its_line() -> None:
    issues = _issues(SITE.replace("profile: obis-generic", "profile: eastron-sdm630"))
    assert len(issues) == 1
    assert issues[0].startswith(
        "site.yaml:7: devices[1].profile: unknown OBIS profile 'eastron-sdm630'; known OBIS profiles: "
    )
    assert "obis-generic" in issues[0] and "seed002-1p-dlms" in issues[0]


def test_a_second_meter_on_an_optical_bus_is_refused_at_its_line() -> None:
    text = SITE.replace("circuits:", "  - {id: m3, bus: optical, profile: obis-generic}\ncircuits:")
    assert _issues(text) == [
        "site.yaml:8: devices[2].bus: bus 'optical' (iec62056-21) already has meter 'm1': an optical port "
        "(IEC 62056-21) is point to point; give this meter a bus of its own or set enabled: false"
    ]


def test_a_second_meter_on_a_dlms_bus_is_refused_at_its_line() -> None:
    text = SITE.replace("circuits:", "  - {id: m3, bus: remote, unit: 2, profile: obis-generic}\ncircuits:")
    assert _issues(text) == [
        "site.yaml:8: devices[2].bus: bus 'remote' (dlms) already has meter 'm2': one meter per dlms bus "
        "(several logical devices on one bus are not implemented); give this meter a bus of its own or "
        "set enabled: false"
    ]


def test_a_disabled_spare_meter_on_the_same_bus_is_accepted() -> None:
    text = SITE.replace(
        "circuits:", "  - {id: spare, bus: optical, profile: obis-generic, enabled: false}\ncircuits:"
    )
    assert [d.id for d in parse_site(text, "site.yaml").devices] == ["m1", "m2", "spare"]
