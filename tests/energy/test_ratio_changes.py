"""A CT ratio change is effective-dated: recorded with its time, and no register is rescaled by it.

Hand-computed: an E21 behind 400/5 A CTs (ratio 80) reports secondary energy, 1 Wh every 10 s; meterhub
multiplies by the ratio, so 80 Wh per reading, and 160 Wh after the change to 800/5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meterhub.config import edit
from meterhub.config.loader import ConfigError, parse_config
from meterhub.energy.pipeline import EnergyPipeline
from meterhub.energy.ratio_changes import announce_ratio_changes
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase

SITE = """
site: {name: ct, timezone: Europe/Berlin}
buses: [{id: b1, kind: modbus-tcp, port: 5020}]
devices:
  - {id: e21, bus: b1, unit: 5, profile: enertrek-e21}
  - {id: m1, bus: b1, unit: 1, profile: eastron-sdm630}
circuits:
  - {id: chiller, device: e21, channels: [1, 2, 3], wiring: 3P4W, ct: {kind: adapter-5a, ratio: 400/5}}
  - {id: main, device: m1, ct: {kind: adapter-5a, ratio: 400/5}}
"""
T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z


def register(p: EnergyPipeline, circuit: str, t: float, value: float) -> list[Reading]:
    """The register readings the pipeline passes on for one raw reading (a step above the recent rate
    is confirmed by the next reading, then both go on)."""
    out = p.process([Reading(t, circuit, Q.ENERGY_ACTIVE_IMPORT, Phase.TOTAL, value)])
    return [r for r in out if r.quantity == Q.ENERGY_ACTIVE_IMPORT and r.circuit == circuit]


def test_a_ct_ratio_change_continues_the_register_at_the_new_ratio(tmp_path: Path) -> None:
    cfg = parse_config(SITE)
    clock = [T0]
    p = EnergyPipeline(cfg, None, clock=lambda: clock[0], state_file=tmp_path / "s.json")
    sec = 1000.0  # the device's own register [Wh, secondary]
    for i in range(20):
        clock[0] = T0 + 10 * i
        [last] = register(p, "chiller", clock[0], (sec + i) * 80)
    assert last.value == 80_000 + 19 * 80
    changed = edit.patch_circuit(cfg, "chiller", {"ct": {"ratio": "800/5"}}, now=T0 + 195)
    p.reconfigure(changed)
    out: list[Reading] = []
    for i in range(20, 40):
        clock[0] = T0 + 10 * i
        out += register(p, "chiller", clock[0], (sec + i) * 160)
    # the register goes on from 81 520 Wh, 160 Wh per reading; nothing quarantined, nothing rescaled
    assert [r.value for r in out] == [81_520 + 160 * k for k in range(1, 21)]
    assert out[-1].value == 80_000 + 19 * 80 + 20 * 160  # 84 720 Wh
    assert {r.quality for r in out} == {Quality.GOOD}
    # (unannounced, the product jumps by 1 020 Wh × 80: the guard quarantines it as a new counter for three
    # polls, then estimates the step — 84 640 Wh instead of 84 720 here)
    ct = changed.circuit("chiller").ct
    assert (ct.ratio_from, [(h.start, str(h.ratio)) for h in ct.ratio_history]) == (
        "2026-05-28T22:29:55+02:00",
        [(None, "400/5")],
    )


def test_no_change_is_announced_where_the_device_applies_its_own_ratio(tmp_path: Path) -> None:
    cfg = parse_config(SITE)
    p = EnergyPipeline(cfg, None, clock=lambda: T0 + 100, state_file=tmp_path / "s.json")
    register(p, "main", T0, 50_000.0)  # an SDM630 reports primary values: the ratio is not applied
    register(p, "chiller", T0, 80_000.0)
    both = edit.patch_circuit(cfg, "main", {"ct": {"ratio": "800/5"}}, now=T0 + 50)
    both = edit.patch_circuit(both, "chiller", {"ct": {"ratio": "800/5"}}, now=T0 + 50)
    assert announce_ratio_changes(p.guard, cfg, both) == 1  # chiller only


def test_ct_ratio_history_is_validated() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(
            SITE.replace(
                "ratio: 400/5}}\n  - {id: main",
                'ratio: 400/5, ratio_from: "2026-01-01T00:00:00+01:00", '
                'ratio_history: [{from: "2026-02-01T00:00:00+01:00", ratio: 200/5}]}}\n  - {id: main',
            )
        )
    assert (
        "ratio_from 2026-01-01T00:00:00+01:00 is not after ratio_history[0] 2026-02-01T00:00:00+01:00"
        in str(err.value)
    )
    with pytest.raises(ConfigError) as err:
        parse_config(
            SITE.replace(
                "ratio: 400/5}}\n  - {id: main", 'ratio: 400/5, ratio_from: "2026-01-01"}}\n  - {id: main'
            )
        )
    assert "is a date; give the time with a UTC offset" in str(err.value)


def test_a_ratio_change_recorded_while_stopped_is_announced_at_start(
    storage_spec: Any, tmp_path: Path
) -> None:
    cfg = parse_config(SITE)
    state = tmp_path / "energy.json"
    s1 = storage_spec.open(timezone="Europe/Berlin")
    p1 = EnergyPipeline(cfg, s1, clock=lambda: T0 + 10, state_file=state)
    out = register(p1, "chiller", T0, 1000 * 80) + register(p1, "chiller", T0 + 10, 1001 * 80)
    assert out[-1].value == 80_080
    s1.write(out)
    s1.save_registers(p1.registers())
    s1.flush()
    p1.close()
    s1.close()
    # the CT is changed while the gateway is down, and the change written down with its time
    changed = edit.patch_circuit(cfg, "chiller", {"ct": {"ratio": "800/5"}}, now=T0 + 60)
    s2 = storage_spec.open(timezone="Europe/Berlin")
    p2 = EnergyPipeline(changed, s2, clock=lambda: T0 + 120, state_file=state)
    out2 = register(p2, "chiller", T0 + 120, 1002 * 160)  # 1 Wh secondary since, at the new ratio
    assert [(r.value, r.quality) for r in out2] == [(80_080 + 160, Quality.GOOD)]
    p2.close()
    s2.close()
