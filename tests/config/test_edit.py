"""Site configuration edits as pure functions: a SiteConfig in, a new one out, typed errors (config/edit)."""

from __future__ import annotations

import pytest
import yaml

from meterhub.config import edit
from meterhub.config.schema import SiteConfig
from meterhub.errors import ConfigurationError, ConflictError, NotFoundError

#: 2026-12-06 12:00 UTC [s]
NOW = 1796558400.0

SITE = """
site: {name: Edit site, timezone: Europe/Berlin}
buses:
  - {id: panel, kind: modbus-tcp, port: 15999}
devices:
  - {id: meter, bus: panel, unit: 1, profile: eastron-sdm630}
  - {id: m2, bus: panel, unit: 4, profile: enertrek-m30}
circuits:
  - {id: grid, device: meter, channels: [1, 2, 3], wiring: 3P4W, purpose: grid, ct: {kind: adapter-5a, ratio: 800/5}}
  - {id: pv, device: m2, channels: [2], wiring: 1P2W, purpose: renewable}
"""


@pytest.fixture
def cfg() -> SiteConfig:
    # the schema alone: the edits check items; cross-references are checked when a change is applied
    return SiteConfig.model_validate(yaml.safe_load(SITE))


def test_a_ct_patch_changes_the_ratio_and_keeps_the_kind_and_the_input_untouched(cfg: SiteConfig) -> None:
    before = cfg.model_dump()
    new = edit.patch_circuit(cfg, "grid", {"ct": {"ratio": "1000/5", "kind": None}})
    grid = new.circuit("grid")
    assert grid.ct.ratio.value == 200.0 and grid.ct.kind.value == "adapter-5a"
    assert cfg.model_dump() == before  # pure: the given configuration is not modified
    assert cfg.circuit("grid").ct.ratio.value == 160.0


def test_a_new_wiring_takes_as_many_channels_as_it_has_phases_from_the_first_one(cfg: SiteConfig) -> None:
    new = edit.patch_circuit(cfg, "pv", {"wiring": "3P4W"})
    assert new.circuit("pv").channels == [2, 3, 4]  # 3P4W: three phases from channel 2
    back = edit.patch_circuit(new, "pv", {"wiring": "1P2W"})
    assert back.circuit("pv").channels == [2]


def test_an_invalid_value_is_located_inside_the_edited_item(cfg: SiteConfig) -> None:
    with pytest.raises(edit.InvalidEdit) as err:
        edit.patch_circuit(cfg, "grid", {"ct": {"ratio": "800 to 5"}})
    assert isinstance(err.value, ConfigurationError) and err.value.http_status == 422
    assert err.value.issues[0].loc[:2] == ("ct", "ratio")


def test_unknown_items_are_not_found(cfg: SiteConfig) -> None:
    with pytest.raises(NotFoundError, match="unknown circuit 'nope'"):
        edit.patch_circuit(cfg, "nope", {"name": "x"})
    with pytest.raises(NotFoundError, match="unknown device 'nope'"):
        edit.remove_device(cfg, "nope")


def test_adding_an_existing_id_is_a_conflict(cfg: SiteConfig) -> None:
    with pytest.raises(ConflictError, match="circuit 'grid' exists"):
        edit.add_circuit(cfg, {"id": "grid", "device": "meter", "channels": [1], "wiring": "1P2W"})
    with pytest.raises(ConflictError, match="device 'meter' exists"):
        edit.add_device(cfg, {"id": "meter", "bus": "panel", "profile": "eastron-sdm630"})


def test_a_device_that_circuits_measure_with_cannot_be_removed(cfg: SiteConfig) -> None:
    with pytest.raises(ConflictError, match="circuits grid use device 'meter'"):
        edit.remove_device(cfg, "meter")
    without_pv = edit.remove_circuit(cfg, "pv")
    assert [d.id for d in edit.remove_device(without_pv, "m2").devices] == ["meter"]


def test_a_device_profile_must_be_a_known_one_when_the_caller_gives_them(cfg: SiteConfig) -> None:
    with pytest.raises(edit.InvalidEdit, match="unknown profile 'nope'; known: a, b") as err:
        edit.patch_device(cfg, "meter", {"profile": "nope"}, profiles=["a", "b"])
    assert err.value.issues[0].loc == ("profile",)
    added = edit.add_device(cfg, {"id": "m3", "bus": "panel", "unit": 9, "profile": "a"}, profiles=["a"])
    assert added.device("m3").unit == 9


def test_site_options_are_validated_by_the_site_schema(cfg: SiteConfig) -> None:
    new = edit.patch_site(cfg, {"currency": "CHF", "title": "", "public_live": True, "name": None})
    assert (new.site.currency, new.web.title, new.web.public_live, new.site.name) == (
        "CHF",
        None,
        True,
        "Edit site",
    )
    with pytest.raises(edit.InvalidEdit) as err:
        edit.patch_site(cfg, {"timezone": "Mars/Olympus"})
    assert err.value.issues[0].loc == ("timezone",)


def test_tariffs_replace_the_section_and_are_validated(cfg: SiteConfig) -> None:
    assert cfg.energy is None
    new = edit.replace_tariffs(
        cfg, {"rates": [{"id": "flat", "price": 0.3}], "standing_charge": 0.5}, now=NOW
    )
    assert new.energy is not None and [r.price for r in new.energy.tariffs.rates] == [0.3]
    with pytest.raises(edit.InvalidEdit) as err:
        edit.replace_tariffs(cfg, {"rates": [{"id": "flat", "price": -1}]}, now=NOW)
    assert err.value.issues[0].loc[:3] == ("rates", 0, "price")


def test_deep_merge_merges_mappings_and_replaces_the_rest() -> None:
    merged = edit.deep_merge(
        {"a": 1, "ct": {"kind": "x", "ratio": "1/1"}}, {"ct": {"ratio": "5/1"}, "a": None}
    )
    assert merged == {"a": None, "ct": {"kind": "x", "ratio": "5/1"}}


def test_a_tariff_change_keeps_the_previous_tariff_in_the_history(cfg: SiteConfig) -> None:
    first = edit.replace_tariffs(cfg, {"rates": [{"id": "flat", "price": 0.2}]}, now=NOW)
    assert first.energy is not None
    assert first.energy.tariffs.effective_from == "2026-12-06T13:00:00+01:00"  # now, in the site's zone
    assert first.energy.tariff_history == []  # no tariff before: nothing to keep
    body = {"rates": [{"id": "flat", "price": 0.3}], "effective_from": "2027-01-01"}
    second = edit.replace_tariffs(first, body, now=NOW)
    assert second.energy is not None and second.energy.tariffs.effective_from == "2027-01-01"
    [past] = second.energy.tariff_history
    assert (past.start, [r.price for r in past.tariffs.rates]) == ("2026-12-06T13:00:00+01:00", [0.2])
    assert past.tariffs.effective_from is None
    # the same start corrects the current tariff in place
    fixed = edit.replace_tariffs(second, {**body, "rates": [{"id": "flat", "price": 0.31}]}, now=NOW)
    assert fixed.energy is not None and len(fixed.energy.tariff_history) == 1
    assert [r.price for r in fixed.energy.tariffs.rates] == [0.31]
    # an earlier start would rewrite a period that is history now: refused, naming both starts
    with pytest.raises(edit.InvalidEdit) as err:
        edit.replace_tariffs(second, {**body, "effective_from": "2026-12-31"}, now=NOW)
    assert err.value.issues[0].loc == ("effective_from",)
    assert "2026-12-31 is before the current tariff's start 2027-01-01" in err.value.issues[0].message
