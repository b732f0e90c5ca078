"""The CT hardware catalogue is data (metering/ct_presets.yaml) read by a small typed loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterhub.config.schema import CTSpec
from meterhub.errors import ConfigurationError
from meterhub.metering.ct_presets import PRESETS_FILE, ct_presets, load_ct_presets


def test_the_shipped_catalogue_loads_with_sources_and_unique_ids() -> None:
    presets = ct_presets()
    ids = [p.id for p in presets]
    assert len(ids) == len(set(ids)) == 33
    assert all(p.source.strip() for p in presets)
    assert PRESETS_FILE.name == "ct_presets.yaml"


def test_a_preset_gives_the_datasheet_figures() -> None:
    by_id = {p.id: p for p in ct_presets()}
    cto = by_id["cto-100"]
    assert (cto.kind.value, cto.ratio, cto.rated_current) == ("current-output", "100/0.025", 100.0)
    assert cto.phase_error_arcmin == 50 and cto.phase_error == pytest.approx(50 / 60)  # 0.833°
    assert cto.ratio_value.value == pytest.approx(4000.0)  # 100 A / 25 mA
    assert by_id["cta-800"].ratio == "800/5" and by_id["cta-800"].source == "seed 000 §4.6"


def test_every_preset_is_a_ct_the_site_file_accepts() -> None:
    for p in ct_presets():
        spec = CTSpec.model_validate({"kind": p.kind.value, "ratio": p.ratio})
        assert spec.ratio.value == pytest.approx(p.ratio_value.value), p.id


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "presets.yaml"
    path.write_text("presets:\n" + body, encoding="utf-8")
    return path


ENTRY = "  - {{id: {id}, kind: adapter-5a, ratio: '{ratio}', rated_current: 100, phase_error_arcmin: 0, label: x, source: s}}\n"


def test_a_duplicate_id_is_refused_naming_the_file_and_entry(tmp_path: Path) -> None:
    path = _write(tmp_path, ENTRY.format(id="a", ratio="100/5") * 2)
    with pytest.raises(ConfigurationError, match=r"presets\.yaml: presets\.1\.id: 'a' is given twice"):
        load_ct_presets(path)


def test_a_ratio_the_site_schema_refuses_is_refused_naming_the_entry(tmp_path: Path) -> None:
    path = _write(tmp_path, ENTRY.format(id="a", ratio="1000 to 1"))
    with pytest.raises(ConfigurationError, match=r"presets\.0\.ratio: .*'1000 to 1' is not of the form"):
        load_ct_presets(path)


def test_an_unreadable_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the CT presets"):
        load_ct_presets(tmp_path / "missing.yaml")
