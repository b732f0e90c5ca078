"""Commissioning checks: reversed CTs, CTs on the wrong phase, implausible ratios, missing voltages (pure).

What an electrician checks by hand with a clamp meter and a phase-angle meter, computed from what the
gateway already measures. No I/O: :class:`Observer` accumulates snapshots of live values
(:func:`site_sample` builds one from readings) and :meth:`Observer.report` answers, per circuit, a verdict
(``ok``, ``suspect``, ``insufficient-load``) with findings, each with its evidence and the exact
configuration change that fixes it (a patch for :func:`meterhub.config.edit.patch_circuit`).

**Angles.** The U–I angle of a channel is θ = arg(P + jQ) [°] (IEEE 1459 fundamental Q, positive when the
current lags), measured against the voltage the channel is configured to use: the phase voltage of its
supply phase (1P2W, 1P3W, 3P4W), or the line voltage to the common phase for a two-element Aron circuit
(3P3W with two CTs, as a two-wattmeter meter measures). If the CT of channel k actually sits on conductor c
with polarity s (±1 relative to the configuration), the load angle of that conductor is

    φ = θ − arg(U_ref,k) + arg(U_c) + 180°·[s = −1]                                   (1)

A hypothesis is an assignment of conductors (a permutation over the supply's phases) and polarities to
the circuit's channels; :func:`analyse_angles` scores every one (at most 6 × 8 = 48) by how plausible the
implied load angles are for the circuit's purpose (consumable: |φ| ≤ 62°, i.e. PF ≥ 0.47 lagging or
leading; renewable: generation, |φ − 180°| ≤ 62°; grid: either) and how alike they are across the phases
of one load, plus one unit per change. The configured wiring wins unless it is implausible; the best
hypothesis then names the fix: ``reversed`` toggled on a channel ("invert the CT on L2"), ``phases``
re-assigned ("swap channels 1 and 3"). A CT on another phase's conductor shifts θ by ±120° (seed 000
§6.3.2: P1 towards the supply, P2 towards the load; a reversed CT adds 180°).

**Ratios.** A current above twice the CT's rated primary (a CT is specified to 120 %), a 5 A adapter whose ratio names 5 A as the
primary (seed 003: 50/5 … 4000/5), and a grid circuit whose sub-circuits add up to more than it measures
(the unmetered rest negative beyond its tolerance: a sub-circuit reads a power of ten too high, found as the
circuit whose correction leaves the steadiest ordinary rest; or the incomer itself reversed).

**Voltage.** A phase below 20 % of nominal (a missing voltage tap or fuse), a phase voltage near √3 ×
nominal (a line-to-line voltage on a line-to-neutral input), the phase sequence L1→L2→L3 from the voltage
angles, and the frequency within ±2 % of nominal (EN 50160 §4.2.1: 50 Hz ± 1 % for 99.5 % of a year).

**Neutral.** The measured neutral current against the vector sum of the phase currents (their
fundamentals, rebuilt from U, P and Q): the measured one carries triplen harmonics too, so it may be
larger, never much smaller.

**Evidence first.** A channel counts only while its current is at least 5 % of the CT's rating; a circuit
needs :data:`MIN_SAMPLES` such snapshots over :data:`MIN_OBSERVATION` seconds before anything about its CTs
is said; until then its verdict is ``insufficient-load``. Angles are averaged as complex powers over
the snapshots (a power-weighted circular mean), so one noisy reading does not decide.
"""

from meterhub.energy.commissioning.angles import Hypothesis, analyse_angles
from meterhub.energy.commissioning.model import (
    MIN_LOAD_FRACTION,
    MIN_OBSERVATION,
    MIN_SAMPLES,
    NOMINAL_ANGLES,
    CircuitReport,
    CircuitSample,
    CircuitSetup,
    Finding,
    SiteSample,
    setup_of,
    site_sample,
)
from meterhub.energy.commissioning.observer import Observer

__all__ = [
    "MIN_LOAD_FRACTION",
    "MIN_OBSERVATION",
    "MIN_SAMPLES",
    "NOMINAL_ANGLES",
    "CircuitReport",
    "CircuitSample",
    "CircuitSetup",
    "Finding",
    "Hypothesis",
    "Observer",
    "SiteSample",
    "analyse_angles",
    "setup_of",
    "site_sample",
]
