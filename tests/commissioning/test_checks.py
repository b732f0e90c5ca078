"""Ratio, voltage and neutral checks of the commissioning analysis, on hand-made snapshots."""

from __future__ import annotations

import math

import pytest

from meterhub.config.ct import CTKind
from meterhub.energy.commissioning import CircuitSample, CircuitSetup, Observer, SiteSample
from meterhub.energy.commissioning.synth import apply_patch, fixed_correctly, install, measure
from meterhub.model.topology import Phase, Purpose, Wiring

L1, L2, L3 = Phase.L1, Phase.L2, Phase.L3
ANGLES = {L1: 0.0, L2: -120.0, L3: 120.0}


def three(
    cid: str, *, purpose: Purpose = Purpose.CONSUMABLE, ratio: float = 100.0, grid_of: tuple[str, ...] = ()
) -> CircuitSetup:
    return CircuitSetup(cid, Wiring.P3W4, purpose, (1, 2, 3), (L1, L2, L3), (False,) * 3, rating=ratio,
                        ct_primary=ratio, ct_secondary=5.0, ct_kind=CTKind.ADAPTER_5A, grid_of=grid_of)  # fmt: skip


@pytest.mark.parametrize("factor", [10.0, 100.0])
@pytest.mark.parametrize("wiring", ["3P4W", "1P2W"])
def test_sub_circuit_ratio_too_high_is_found_from_the_balance(factor: float, wiring: str) -> None:
    """Main 3P4W 400/5 feeding a, b and c; c's ratio is ``factor`` × its true one: Σ sub > main."""
    main = three("main", purpose=Purpose.GRID, ratio=400.0, grid_of=("a", "b", "c"))
    a, b = three("a"), three("b")
    if wiring == "3P4W":
        c = three("c", ratio=50.0 * factor)
        true_c = three("c", ratio=50.0)
    else:
        c = CircuitSetup("c", Wiring.P1W2, Purpose.CONSUMABLE, (1,), (L2,), (False,), rating=50.0 * factor,
                         ct_primary=50.0 * factor, ct_secondary=5.0, ct_kind=CTKind.ADAPTER_5A)  # fmt: skip
        true_c = CircuitSetup("c", Wiring.P1W2, Purpose.CONSUMABLE, (1,), (L2,), (False,), rating=50.0,
                              ct_primary=50.0, ct_secondary=5.0, ct_kind=CTKind.ADAPTER_5A)  # fmt: skip
    obs = Observer([main, a, b, c])
    pf = {p: 25.0 for p in ANGLES}
    inst_c = install(true_c, [])
    for t in range(20):
        ic = 12.0 + 6.0 * math.sin(t / 3)  # [A] the sub-circuit cycles: its share of the balance moves
        currents = {"a": 40.0, "b": 30.0}
        samples = {k: measure(install(three(k), []), three(k), load_angle=pf, current=dict.fromkeys(ANGLES, v), ts=t)
                   for k, v in currents.items()}  # fmt: skip
        samples["c"] = measure(inst_c, c, load_angle=pf, current=dict.fromkeys(ANGLES, ic), ts=t)
        main_i = {p: 70.0 + (ic if p in true_c.phases else 0.0) + 3.0 for p in ANGLES}  # 3 A unmetered
        samples["main"] = measure(install(main, []), main, load_angle=pf, current=main_i, ts=t)
        obs.add(SiteSample(float(t), samples))
    reports = {r.id: r for r in obs.report()}
    assert [reports[k].verdict for k in ("a", "b", "main")] == ["ok"] * 3, [
        r.as_dict() for r in reports.values()
    ]
    (f,) = reports["c"].findings
    assert f.kind == "ratio"
    assert f.evidence["factor"] == factor
    assert f.fix["text"] == f"ratio {50 * factor:g}/5 looks {factor:g}× too high: 50/5?"
    assert f.fix["patch"] == {"ct": {"ratio": "50/5"}}
    assert f.evidence["unmetered"] < -f.evidence["tolerance"]


def test_current_far_above_the_ct_primary() -> None:
    """A 50/5 CT read with 400/5 in the configuration: the ratio says 50 A rated, 320 A flow."""
    s = three("c", ratio=50.0)
    obs = Observer([s])
    for t in range(12):
        obs.add(SiteSample(t, {"c": measure(install(s, ["ratio:8"]), s, load_angle=dict.fromkeys(ANGLES, 20.0),
                                            current=dict.fromkeys(ANGLES, 40.0), ts=t)}))  # fmt: skip
    (f,) = obs.report()[0].findings
    assert f.kind == "ratio"
    assert f.evidence["peak_amps"] == pytest.approx(320.0, rel=0.03)
    assert f.fix["patch"] == {"ct": {"ratio": "5/5"}}  # a power of ten: 320 A on 50 A rated → /10


def test_five_amp_secondary_written_as_primary() -> None:
    s = CircuitSetup("c", Wiring.P1W2, Purpose.CONSUMABLE, (1,), (L1,), (False,), rating=None, ct_primary=5.0,
                     ct_secondary=5.0, ct_kind=CTKind.ADAPTER_5A)  # fmt: skip
    report = Observer([s]).report()[0]
    assert [f.kind for f in report.findings] == ["ratio"]
    assert "the 5 A is the CT's secondary" in report.findings[0].fix["text"]
    assert report.verdict == "suspect"


def test_missing_voltage_phase_is_named_and_its_angles_are_not_judged() -> None:
    s = three("hvac")
    inst = install(s, ["drop:L2"])
    obs = Observer([s])
    for t in range(12):
        obs.add(SiteSample(t, {"hvac": measure(inst, s, load_angle=dict.fromkeys(ANGLES, 30.0),
                                               current=dict.fromkeys(ANGLES, 20.0), ts=t)}))  # fmt: skip
    report = obs.report()[0]
    assert [f.id for f in report.findings] == ["hvac:voltage-missing:L2"]
    assert report.findings[0].fix["patch"] is None
    assert report.findings[0].evidence["volts"] == 0.0


def _sample(
    ts: float, u: float, *, freq: float = 50.0, neutral: float | None = None, p: float = 2000.0
) -> CircuitSample:
    return CircuitSample(ts, (p,) * 3, (0.0,) * 3, (p / u,) * 3, (u,) * 3, neutral=neutral, frequency=freq)


def test_line_to_line_voltage_on_a_line_to_neutral_input() -> None:
    s = three("m")
    obs = Observer([s])
    for t in range(12):
        obs.add(SiteSample(t, {"m": _sample(t, 399.0)}))
    kinds = {(f.kind, f.phase) for f in obs.report()[0].findings}
    assert kinds == {("voltage-level", "L1"), ("voltage-level", "L2"), ("voltage-level", "L3")}


def test_frequency_far_from_nominal() -> None:
    s = three("m")
    obs = Observer([s], nominal_frequency=60.0)
    for t in range(12):
        obs.add(SiteSample(t, {"m": _sample(t, 230.0, freq=50.0)}))
    (f,) = obs.report()[0].findings
    assert (f.kind, f.evidence["hz"]) == ("frequency-deviation", 50.0)


def test_negative_phase_sequence() -> None:
    s = three("m")
    obs = Observer([s])
    for t in range(12):
        obs.add(SiteSample(t, {"m": _sample(t, 230.0)}, voltage_angles={L1: 0.0, L2: 120.0, L3: -120.0}))
    kinds = [f.kind for f in obs.report()[0].findings]
    assert "phase-sequence" in kinds


def _grid_sample(ts: float, neutral: float) -> CircuitSample:
    """An incomer importing 2 kW on L1 and L3 and exporting 2 kW on L2 at PF 1 (8.7 A each) [W, var, A, V]."""
    return CircuitSample(ts, (2000.0, -2000.0, 2000.0), (0.0,) * 3, (8.7,) * 3, (230.0,) * 3,
                         neutral=neutral, frequency=50.0)  # fmt: skip


@pytest.mark.parametrize(("neutral", "finding"), [(17.4, False), (19.0, False), (0.4, True)])
def test_neutral_against_the_vector_sum(neutral: float, finding: bool) -> None:
    """As configured, L2's current points the other way: the phase currents add to 2 × 8.7 = 17.4 A in
    the neutral. A measured 17.4 A (or more: triplen harmonics) agrees; 0.4 A says L2's CT is reversed
    and the three currents in fact cancel, which an incomer's angles alone cannot tell."""
    s = three("grid", purpose=Purpose.GRID, ratio=100.0)
    obs = Observer([s])
    for t in range(12):
        obs.add(SiteSample(t, {"grid": _grid_sample(t, neutral)}))
    report = obs.report()[0]
    assert "neutral" in report.checked
    if finding:
        (f,) = report.findings
        assert f.kind == "neutral"
        assert f.evidence == {"neutral_measured": 0.4, "neutral_vector_sum": pytest.approx(17.4, abs=0.05)}
    else:
        assert report.findings == []


def test_correct_site_with_balance_gives_no_finding() -> None:
    main = three("main", purpose=Purpose.GRID, ratio=400.0, grid_of=("a",))
    a = three("a")
    obs = Observer([main, a])
    for t in range(12):
        obs.add(SiteSample(t, {
            "a": measure(install(a, []), a, load_angle=dict.fromkeys(ANGLES, 20.0), current=dict.fromkeys(ANGLES, 30.0), ts=t),
            "main": measure(install(main, []), main, load_angle=dict.fromkeys(ANGLES, 20.0),
                            current=dict.fromkeys(ANGLES, 31.0), ts=t),
        }))  # fmt: skip
    assert [r.verdict for r in obs.report()] == ["ok", "ok"]


def test_reconfigure_restarts_only_changed_circuits() -> None:
    a, b = three("a"), three("b")
    obs = Observer([a, b])
    inst = install(a, ["reverse:L1"])
    for t in range(12):
        obs.add(SiteSample(t, {k: measure(inst if k == "a" else install(b, []), s, load_angle=dict.fromkeys(ANGLES, 10.0),
                                          current=dict.fromkeys(ANGLES, 20.0), ts=t) for k, s in (("a", a), ("b", b))}))  # fmt: skip
    report = obs.report()[0]
    fixed = apply_patch(a, report.patch)
    assert obs.reconfigure([fixed, b]) == ["a"]
    verdicts = {r.id: r.verdict for r in obs.report()}
    assert verdicts == {"a": "insufficient-load", "b": "ok"}
    for t in range(12, 24):
        obs.add(SiteSample(t, {"a": measure(inst, fixed, load_angle=dict.fromkeys(ANGLES, 10.0),
                                            current=dict.fromkeys(ANGLES, 20.0), ts=t)}))  # fmt: skip
    assert obs.report()[0].verdict == "ok"
    assert fixed_correctly(inst, fixed)
