"""Writing a changed configuration back into its site file: comments, order and style kept, only
changed values rewritten, defaults not filled in, validated before writing, a timestamped backup."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from meterhub.checks import SITE_CHECKS, load_site, parse_site
from meterhub.config import Circuit, ConfigError, Ratio
from meterhub.config.store import backup_path, write_site_file

SITE = """\
# Workshop site — edited by hand; keep these notes.
site:
  name: Workshop
  timezone: Europe/Berlin   # local time for tariffs

buses:
  # the meter's RS485 line behind a converter
  - id: rs485
    kind: modbus-tcp
    port: 1502
    timeout: 0.5

devices:
  - {id: meter, bus: rs485, unit: 1, profile: eastron-sdm630}   # incomer

circuits:
  # main incomer, CTs in the board
  - id: main
    device: meter
    channels: [1, 2, 3]
    wiring: 3P4W
    ct: {kind: adapter-5a, ratio: 400/5}   # label on the CT: 400/5 A
    purpose: grid
  - {id: spare, device: meter, channels: [1], wiring: 1P2W}
"""
NOW = datetime(2026, 12, 6, 11, 0, 0, tzinfo=UTC)


@pytest.fixture
def site_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    return path


def _with_ratio(path: Path, ratio: str):
    cfg = load_site(path)
    main = cfg.circuits[0]
    ct = main.ct.model_copy(update={"ratio": Ratio.model_validate(ratio)})
    return cfg.model_copy(update={"circuits": [main.model_copy(update={"ct": ct}), *cfg.circuits[1:]]})


def test_changing_a_ct_ratio_rewrites_only_that_value(site_file: Path) -> None:
    result = write_site_file(site_file, _with_ratio(site_file, "600/5"), checks=SITE_CHECKS, now=NOW)
    assert site_file.read_text(encoding="utf-8") == SITE.replace(
        "ratio: 400/5}   # label", "ratio: 600/5}   # label"
    )
    assert result.config.circuits[0].ct.ratio.value == pytest.approx(120.0)


def test_adding_a_circuit_keeps_comments_order_and_sibling_style(site_file: Path) -> None:
    cfg = load_site(site_file)
    added = Circuit(id="boiler", name="Boiler", device="meter", channels=[2], zone="plant")
    write_site_file(
        site_file, cfg.model_copy(update={"circuits": [*cfg.circuits, added]}), checks=SITE_CHECKS
    )
    text = site_file.read_text(encoding="utf-8")
    # Only one line more; defaults of the new circuit (wiring, ct, purpose, …) are not written.
    assert text == SITE + "  - {id: boiler, name: Boiler, device: meter, channels: [2], zone: plant}\n"
    assert [c.id for c in load_site(site_file).circuits] == ["main", "spare", "boiler"]


def test_removing_a_circuit_and_naming_another_keeps_the_rest(site_file: Path) -> None:
    cfg = load_site(site_file)
    main = cfg.circuits[0].model_copy(update={"name": "Incomer"})
    write_site_file(site_file, cfg.model_copy(update={"circuits": [main]}), checks=SITE_CHECKS)
    # The new key goes where the schema has it (after id), the removed item with its line.
    expected = SITE.replace("  - id: main\n", "  - id: main\n    name: Incomer\n").replace(
        "  - {id: spare, device: meter, channels: [1], wiring: 1P2W}\n", ""
    )
    assert site_file.read_text(encoding="utf-8") == expected


def test_clearing_an_optional_field_removes_its_key(site_file: Path) -> None:
    cfg = load_site(site_file)
    spare = cfg.circuits[1].model_copy(update={"zone": "plant"})
    write_site_file(site_file, cfg.model_copy(update={"circuits": [cfg.circuits[0], spare]}))
    assert (
        "  - {id: spare, device: meter, channels: [1], wiring: 1P2W, zone: plant}\n" in site_file.read_text()
    )
    cfg = load_site(site_file)
    spare = cfg.circuits[1].model_copy(update={"zone": None})
    write_site_file(site_file, cfg.model_copy(update={"circuits": [cfg.circuits[0], spare]}))
    assert site_file.read_text(encoding="utf-8") == SITE


def test_a_backup_with_a_timestamp_keeps_the_old_file(site_file: Path) -> None:
    result = write_site_file(site_file, _with_ratio(site_file, "600/5"), now=NOW)
    assert result.backup == site_file.with_name("site.yaml.20261206T110000.bak")
    assert result.backup.read_text(encoding="utf-8") == SITE
    second = write_site_file(site_file, _with_ratio(site_file, "800/5"), now=NOW)
    assert second.backup == site_file.with_name("site.yaml.20261206T110000-2.bak")
    assert "ratio: 600/5" in second.backup.read_text(encoding="utf-8")
    assert sorted(p.name for p in site_file.parent.iterdir()) == [
        "site.yaml",
        "site.yaml.20261206T110000-2.bak",
        "site.yaml.20261206T110000.bak",
    ]  # no temporary file left behind


def test_a_change_that_fails_the_checks_writes_nothing(site_file: Path) -> None:
    cfg = load_site(site_file)
    # A 3P4W circuit on the Modbus meter moved to a device that does not exist.
    moved = cfg.circuits[0].model_copy(update={"device": "nowhere"})
    with pytest.raises(ConfigError, match=r"site.yaml:\d+: circuits\[0\].device: unknown device 'nowhere'"):
        write_site_file(site_file, cfg.model_copy(update={"circuits": [moved, *cfg.circuits[1:]]}), now=NOW)
    assert site_file.read_text(encoding="utf-8") == SITE
    assert [p.name for p in site_file.parent.iterdir()] == ["site.yaml"]


def test_cross_checks_passed_in_are_run_before_writing(site_file: Path) -> None:
    cfg = parse_site(SITE + "energy:\n  virtual: [{id: rest, formula: main - spare}]\n")
    assert cfg.energy is not None
    virtual = cfg.energy.virtual[0].model_copy(update={"formula": "main - boiler"})
    energy = cfg.energy.model_copy(update={"virtual": [virtual]})
    with pytest.raises(ConfigError, match="unknown circuit 'boiler' in the formula"):
        write_site_file(site_file, cfg.model_copy(update={"energy": energy}), checks=SITE_CHECKS, now=NOW)
    assert site_file.read_text(encoding="utf-8") == SITE


def test_a_new_section_is_added_with_its_non_default_values_only(site_file: Path) -> None:
    cfg = load_site(site_file)
    web = cfg.web.model_copy(update={"port": 8443})
    write_site_file(site_file, cfg.model_copy(update={"web": web}))
    assert site_file.read_text(encoding="utf-8") == SITE + "web:\n  port: 8443\n"


def test_a_missing_file_is_created_with_non_default_values_and_no_backup(tmp_path: Path) -> None:
    cfg = parse_site(SITE)
    path = tmp_path / "new.yaml"
    result = write_site_file(path, cfg, checks=SITE_CHECKS)
    assert result.backup is None
    text = path.read_text(encoding="utf-8")
    assert "baud" not in text and "poll_interval" not in text  # defaults stay out
    assert "ratio: 400/5" in text
    assert parse_site(text) == cfg


def test_an_aliased_value_is_copied_before_one_use_changes(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        SITE.replace(
            "ct: {kind: adapter-5a, ratio: 400/5}", "ct: &ct {kind: adapter-5a, ratio: 400/5}"
        ).replace("wiring: 1P2W}", "wiring: 1P2W, ct: *ct}"),
        encoding="utf-8",
    )
    cfg = load_site(path)
    spare = cfg.circuits[1]
    ct = spare.ct.model_copy(update={"ratio": Ratio.model_validate("100/5")})
    write_site_file(
        path, cfg.model_copy(update={"circuits": [cfg.circuits[0], spare.model_copy(update={"ct": ct})]})
    )
    after = load_site(path)
    assert [str(c.ct.ratio) for c in after.circuits] == ["400/5", "100/5"]


def test_backup_names_are_utc_and_never_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    local = datetime(2026, 12, 6, 12, 30, 5).astimezone()
    assert backup_path(path, local).name == f"site.yaml.{local.astimezone(UTC):%Y%m%dT%H%M%S}.bak"


def test_the_demo_site_is_rewritten_byte_for_byte_when_nothing_changed(tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"
    path = tmp_path / "site.yaml"
    path.write_bytes(demo.read_bytes())
    write_site_file(path, load_site(path), checks=SITE_CHECKS, now=NOW)
    assert path.read_bytes() == demo.read_bytes()


def test_a_ct_ratio_edit_of_the_demo_site_changes_one_line(tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"
    path = tmp_path / "site.yaml"
    path.write_bytes(demo.read_bytes())
    write_site_file(path, _with_ratio(path, "600/5"), checks=SITE_CHECKS, now=NOW)
    before = demo.read_text(encoding="utf-8").splitlines()
    after = path.read_text(encoding="utf-8").splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [
        ("    ct: {kind: adapter-5a, ratio: 400/5}", "    ct: {kind: adapter-5a, ratio: 600/5}")
    ]


@pytest.mark.parametrize(
    "name", [": a", "a, b", "#x", "[a]", "yes", "1e5", "0o17", "07:30", "null", " lead", "°C"]
)
def test_text_that_yaml_would_misread_is_quoted_and_reads_back(tmp_path: Path, name: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("site: {name: x}\npanels: [{id: p}]\n", encoding="utf-8")
    cfg = load_site(path)
    write_site_file(
        path, cfg.model_copy(update={"panels": [cfg.panels[0].model_copy(update={"name": name})]})
    )
    assert load_site(path).panels[0].name == name
