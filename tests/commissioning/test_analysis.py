"""The commissioning analysis on synthesised measurements (energy/commissioning/synth.py).

Every single fault and every pair of faults on 3P4W, 3P3W (Aron, two CTs), 1P3W and 1P2W circuits, loads
at PF 0.5…1.0 lagging and leading, generating circuits, loads at 5 % of the CT rating; the correct wiring
with capacitive loads gives no finding. "Fixed" means: the configuration after the proposed patch measures
the installation as it is (each channel labelled with the conductor its CT clamps, the right sign).

A geometric limit, stated where it bites: a CT on another phase shifts the U–I angle by ±120°, a reversed
CT by 180°. At exactly PF 0.5 (φ = ±60°) one transposition of two CTs lagging reads like another one
leading (60° − 120° = −60°), so swaps are tested from PF 0.55; and two swaps together (a rotation of all
three CTs) on a balanced load read like all three CTs reversed with the angle shifted by 60°: the report
then proposes one and names the other as ``alternative`` with a confidence below 0.5.
"""

from __future__ import annotations

import itertools
import math

import pytest

from meterhub.energy.commissioning import CircuitSetup, Observer, SiteSample
from meterhub.energy.commissioning.synth import Installation, apply_patch, fixed_correctly, install, measure
from meterhub.model.topology import Phase, Purpose, Wiring

L1, L2, L3 = Phase.L1, Phase.L2, Phase.L3
WIRINGS = {
    "3P4W": (Wiring.P3W4, (L1, L2, L3)),
    "3P3W": (Wiring.P3W3, (L1, L3)),
    "1P3W": (Wiring.P1W3, (L1, L2)),
    "1P2W": (Wiring.P1W2, (L1,)),
}


def setup(
    name: str, purpose: Purpose = Purpose.CONSUMABLE, *, rating: float = 100.0, cid: str = "c"
) -> CircuitSetup:
    wiring, phases = WIRINGS[name]
    return CircuitSetup(
        id=cid,
        wiring=wiring,
        purpose=purpose,
        channels=tuple(range(1, len(phases) + 1)),
        phases=phases,
        reversed=(False,) * len(phases),
        rating=rating,
        ct_primary=rating,
        ct_secondary=5.0,
        ct_kind=__import__("meterhub.config.ct", fromlist=["CTKind"]).CTKind.ADAPTER_5A,
    )


def observe(inst: Installation, s: CircuitSetup, pf: float, load: float, *, n: int = 15) -> Observer:
    """``n`` snapshots 1 s apart of a load drawing ``load`` × the rating at ``pf`` (negative: leading)."""
    phi = math.degrees(math.acos(abs(pf))) * (1 if pf >= 0 else -1)
    if s.purpose is Purpose.RENEWABLE:
        phi += 180.0
    obs = Observer([s])
    for t in range(n):
        current = {
            p: load * (s.rating or 1) * (1 + 0.02 * math.sin(t + k)) for k, p in enumerate((L1, L2, L3))
        }
        sample = measure(inst, s, load_angle={p: phi for p in (L1, L2, L3)}, current=current, ts=float(t))
        obs.add(SiteSample(float(t), {s.id: sample}))
    return obs


def faults_of(name: str) -> list[str]:
    phases = WIRINGS[name][1]
    rev = [f"reverse:{p.value}" for p in phases]
    return rev + [f"swap:{a.value},{b.value}" for a, b in itertools.combinations(phases, 2)]


def check(
    name: str, faults: list[str], pf: float, *, load: float = 0.5, purpose: Purpose = Purpose.CONSUMABLE
):
    s = setup(name, purpose)
    inst = install(s, faults)
    report = observe(inst, s, pf, load).report()[0]
    return s, inst, report


SINGLE = [(w, f) for w in WIRINGS for f in faults_of(w)]
PFS = [0.55, 0.7, 0.85, 1.0, -0.55, -0.7, -0.85, -0.99]


@pytest.mark.parametrize("pf", PFS)
@pytest.mark.parametrize(("wiring", "fault"), SINGLE)
def test_single_fault_is_named_with_the_fix_that_corrects_it(wiring: str, fault: str, pf: float) -> None:
    s, inst, report = check(wiring, [fault], pf)
    assert report.verdict == "suspect"
    kinds = {f.kind for f in report.findings}
    assert kinds == ({"reversed-ct"} if fault.startswith("reverse") else {"phase-mapping"})
    assert fixed_correctly(inst, apply_patch(s, report.patch)), report.as_dict()
    # near PF 0.5 the other reading of a swap is close, and one CT alone may also read as a CT on
    # another phase (±120° vs 180°): less sure then, still right
    if abs(pf) >= 0.7 and wiring != "1P2W":
        assert min(f.confidence for f in report.findings) >= 0.5


@pytest.mark.parametrize("pf", [0.5, -0.5])
@pytest.mark.parametrize("wiring", list(WIRINGS))
def test_reversed_ct_at_pf_one_half(wiring: str, pf: float) -> None:
    phase = WIRINGS[wiring][1][-1].value
    s, inst, report = check(wiring, [f"reverse:{phase}"], pf)
    assert [f.id for f in report.findings] == [f"c:reversed-ct:{phase}"]
    assert fixed_correctly(inst, apply_patch(s, report.patch))


PAIRS = [(w, list(p)) for w in WIRINGS for p in itertools.combinations(faults_of(w), 2)]


def _rotation(faults: list[str]) -> bool:
    return sum(f.startswith("swap") for f in faults) == 2


@pytest.mark.parametrize("pf", [0.7, 0.9, 1.0, -0.7, -0.9])
@pytest.mark.parametrize(("wiring", "faults"), PAIRS, ids=lambda v: "+".join(v) if isinstance(v, list) else v)
def test_fault_pairs_are_fixed_or_flagged_ambiguous(wiring: str, faults: list[str], pf: float) -> None:
    s, inst, report = check(wiring, faults, pf)
    assert report.verdict == "suspect"
    if fixed_correctly(inst, apply_patch(s, report.patch)):
        return
    # only a rotation of all three CTs may be mistaken, and then the right one is the alternative
    assert _rotation(faults), report.as_dict()
    alt = report.findings[0].evidence["alternative"]
    assert max(f.confidence for f in report.findings) < 0.5
    assert fixed_correctly(inst, apply_patch(s, alt))


@pytest.mark.parametrize("pf", [1.0, 0.9, -0.9])
@pytest.mark.parametrize(
    ("wiring", "fault"), [(w, f) for w in ("3P4W", "1P2W", "1P3W") for f in faults_of(w)]
)
def test_generating_circuit_faults(wiring: str, fault: str, pf: float) -> None:
    s, inst, report = check(wiring, [fault], pf, purpose=Purpose.RENEWABLE)
    assert report.verdict == "suspect"
    assert fixed_correctly(inst, apply_patch(s, report.patch)), report.as_dict()


@pytest.mark.parametrize("purpose", list(Purpose))
@pytest.mark.parametrize("wiring", list(WIRINGS))
@pytest.mark.parametrize("pf", [-0.8, -0.5, 0.5, 0.8, 1.0])
def test_correct_wiring_gives_no_finding(wiring: str, purpose: Purpose, pf: float) -> None:
    """Correct wiring with capacitive loads (PF 0.8 leading) and every other PF: no finding."""
    _, _, report = check(wiring, [], pf, purpose=purpose)
    assert report.verdict == "ok", report.as_dict()
    assert report.findings == []


@pytest.mark.parametrize(
    ("wiring", "fault"), [("3P4W", "reverse:L2"), ("3P4W", "swap:L1,L3"), ("1P2W", "reverse:L1")]
)
def test_load_at_five_percent_of_the_rating_is_enough(wiring: str, fault: str) -> None:
    s, inst, report = check(wiring, [fault], 0.8, load=0.051)
    assert report.verdict == "suspect"
    assert fixed_correctly(inst, apply_patch(s, report.patch))


def test_load_below_five_percent_is_insufficient() -> None:
    _, _, report = check("3P4W", ["reverse:L2"], 0.8, load=0.045)
    assert report.verdict == "insufficient-load"
    assert report.findings == []
    assert "with at least 5.00 A" in report.note  # 5 % of the 100 A rating


def test_evidence_needs_the_minimum_observation_time() -> None:
    s = setup("3P4W")
    inst = install(s, ["reverse:L2"])
    assert observe(inst, s, 0.9, 0.5, n=4).report()[0].verdict == "insufficient-load"  # 4 snapshots, 3 s
    assert observe(inst, s, 0.9, 0.5, n=12).report()[0].verdict == "suspect"


def test_finding_carries_angles_and_the_expected_range() -> None:
    """hvac-like load, PF 0.85 lagging (φ = 31.8°), CT on L2 reversed: its angle reads 31.8° − 180°."""
    _, _, report = check("3P4W", ["reverse:L2"], 0.85)
    (f,) = report.findings
    assert f.id == "c:reversed-ct:L2"
    assert f.evidence["angle"] == pytest.approx(-148.2, abs=0.2)
    assert f.evidence["load_angle_if_fixed"] == pytest.approx([31.8, 31.8, 31.8], abs=0.2)
    assert f.evidence["expected"] == "load: |φ| ≤ 62°"
    assert f.fix["patch"] == {"reversed": [False, True, False]}
    assert f.fix["text"].startswith("invert the CT on L2")


def test_swap_fix_names_the_channels() -> None:
    _, _, report = check("3P4W", ["swap:L1,L3"], 0.97)
    (f,) = report.findings
    assert f.id == "c:phase-mapping:L1,L3"
    assert f.fix["patch"] == {"phases": ["L3", "L2", "L1"]}
    assert "swap channels 1 and 3" in f.fix["text"]
    assert f.evidence["offset"] == [-120.0, 120.0]  # U L1 − U L3, U L3 − U L1


def test_dc_circuit_reversed() -> None:
    s = CircuitSetup(id="bat", wiring=Wiring.DC, purpose=Purpose.CONSUMABLE, channels=(1,), phases=(L1,),
                     reversed=(False,), rating=50.0)  # fmt: skip
    inst = install(s, ["reverse:L1"])
    report = observe(inst, s, 1.0, 0.4).report()[0]
    assert [f.kind for f in report.findings] == ["reversed-ct"]
    assert fixed_correctly(inst, apply_patch(s, report.patch))
