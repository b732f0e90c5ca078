"""Site files: valid ones load; invalid ones name file:line, the field and what is allowed."""

from pathlib import Path

import pytest

from meterhub.config import ConfigError, load_config, parse_config
from meterhub.model import Phase, Wiring

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"

BASE = """\
site:
  name: Test
  timezone: Europe/Berlin
buses:
  - id: b1
    kind: modbus-tcp
    port: 5020
devices:
  - id: d1
    bus: b1
    unit: 1
    profile: eastron-sdm630
circuits:
  - id: c1
    device: d1
    channels: [1, 2, 3]
    wiring: 3P4W
    ct: {kind: adapter-5a, ratio: 800/5}
    vt_ratio: 600/100
"""


def issue(text: str):
    with pytest.raises(ConfigError) as err:
        parse_config(text, "site.yaml")
    return err.value.issues[0]


def test_demo_site_is_valid_and_has_at_least_twelve_circuits():
    cfg = load_config(DEMO)
    assert len(cfg.circuits) >= 12
    assert cfg.site.nominal_frequency == 50


def test_ratios_parse_from_text():
    c = parse_config(BASE).circuits[0]
    assert c.ct.ratio.value == pytest.approx(160.0)
    assert c.vt_ratio.value == pytest.approx(6.0)
    assert c.supply_phases == (Phase.L1, Phase.L2, Phase.L3)
    assert c.wiring is Wiring.P3W4


def test_bad_enum_names_line_field_and_allowed_values():
    i = issue(BASE.replace("wiring: 3P4W", "wiring: 3P5W"))
    assert (i.file, i.line, i.field) == ("site.yaml", 17, "circuits[0].wiring")
    assert "'3P4W'" in i.message and "'1P2W'" in i.message
    assert str(i).startswith("site.yaml:17: circuits[0].wiring:")


def test_unknown_field_is_an_error_with_its_line():
    i = issue(BASE.replace("    unit: 1\n", "    unit: 1\n    baudrate: 9600\n"))
    assert (i.line, i.field) == (12, "devices[0].baudrate")
    assert "unknown field" in i.message


def test_unknown_reference_lists_known_ids():
    i = issue(BASE.replace("    device: d1", "    device: d2"))
    assert (i.line, i.field) == (15, "circuits[0].device")
    assert "unknown device 'd2'" in i.message and "d1" in i.message


def test_channels_must_match_wiring():
    i = issue(BASE.replace("channels: [1, 2, 3]", "channels: [1]"))
    assert i.field == "circuits[0]" and "3P4W needs 3 channel(s)" in i.message


def test_bad_ratio_text_explains_the_form():
    i = issue(BASE.replace("ratio: 800/5", "ratio: 800 to 5"))
    assert "PRIMARY/SECONDARY" in i.message and i.line == 18


def test_duplicate_unit_on_one_bus():
    text = BASE.replace("circuits:", "  - id: d2\n    bus: b1\n    unit: 1\n    profile: x\ncircuits:")
    i = issue(text)
    assert i.field == "devices[1].unit" and "already used by device 'd1'" in i.message


def test_yaml_syntax_error_has_a_line():
    i = issue("site:\n  name: [unclosed\n")
    assert i.line is not None and "YAML syntax" in i.message


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_web_session_timeouts_default_and_must_nest():
    web = parse_config(BASE, "site.yaml").web
    assert (web.session_idle, web.session_lifetime) == (12 * 3600, 7 * 86400)
    i = issue(BASE + "web: {session_idle: 86400, session_lifetime: 3600}\n")
    assert i.field.startswith("web") and "session_idle must not exceed session_lifetime" in i.message
