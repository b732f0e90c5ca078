"""Load models of the simulated site: active and fundamental reactive power per phase over time.

Each model is a pure function of time (deterministic "noise" is a sum of slow sines with phases drawn
from the circuit's seed), so a value at any instant can be recomputed — by a test, or after a restart.
Powers are per circuit phase [W] and [var]; positive P = consumption, negative = generation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from meterhub.config.schema import LoadSpec

__all__ = ["LoadModel", "LoadPoint", "make_load"]


@dataclass(frozen=True, slots=True)
class LoadPoint:
    """Operating point of one circuit phase."""

    p: float  # active power [W]
    q: float  # fundamental reactive power [var], positive = inductive
    thd_i: float  # current THD as a fraction of the fundamental [-]
    harmonics: np.ndarray  # current harmonic magnitudes 0…50 as fractions of the fundamental [-]


def _harmonics(spec: dict[int, float]) -> np.ndarray:
    h = np.zeros(51)
    h[1] = 1.0
    for order, frac in spec.items():
        h[order] = frac
    return h


#: Current spectra typical of each load kind (fractions of the fundamental).
_SPECTRA: dict[str, np.ndarray] = {
    "constant": _harmonics({3: 0.02, 5: 0.01}),
    "lighting": _harmonics({3: 0.25, 5: 0.12, 7: 0.06, 9: 0.04}),  # LED drivers
    "hvac": _harmonics({5: 0.06, 7: 0.03}),
    "ev": _harmonics({5: 0.03, 7: 0.02, 11: 0.01}),
    "pv": _harmonics({3: 0.01, 5: 0.02, 7: 0.01}),
    "it": _harmonics({3: 0.70, 5: 0.45, 7: 0.25, 9: 0.12, 11: 0.08, 13: 0.05}),  # SMPS, crest ~2.5
    "motor": _harmonics({5: 0.04, 7: 0.02}),
    "heater": _harmonics({}),
    "kitchen": _harmonics({3: 0.08, 5: 0.05}),
    "supply": _harmonics({}),
}


class LoadModel:
    """P(t), Q(t) for one circuit; ``point(t, local_hour)`` for each of its ``n_phases`` phases."""

    def __init__(self, spec: LoadSpec, n_phases: int, seed: int) -> None:
        self.spec = spec
        self.n = n_phases
        rng = np.random.default_rng(seed * 7919 + spec.seed)
        self._phases = rng.uniform(0, 2 * math.pi, size=(4, 3))
        self._periods = rng.uniform(20, 180, size=4)
        # slight per-phase imbalance of three-phase loads (sums to n)
        w = 1 + rng.uniform(-0.06, 0.06, size=n_phases)
        self._share = w / w.sum()
        self._spectrum = _SPECTRA[spec.model]
        self._thd = float(np.sqrt(np.sum(self._spectrum[2:] ** 2)))

    def _wobble(self, t: float, depth: float) -> float:
        """Smooth deterministic variation around 1 with relative amplitude ``depth``."""
        s = sum(math.sin(2 * math.pi * t / self._periods[k] + self._phases[k, 0]) / (k + 1) for k in range(4))
        return 1.0 + depth * s / 2.08  # 2.08 = Σ 1/(k+1) for k < 4

    def total_power(self, t: float, local_hour: float) -> float:
        """Active power of the whole circuit at time t [W]; local_hour drives day curves [h]."""
        spec, m = self.spec, self.spec.model
        rated = spec.rated_power
        if m == "constant":
            return rated * self._wobble(t, 0.02)
        if m == "lighting":
            on = 1.0 if 6.5 <= local_hour < 20.5 else 0.2
            return rated * on * self._wobble(t, 0.01)
        if m == "hvac":  # compressor cycling: on for 60 % of the period, fan only otherwise
            phase = (t / spec.period + self._phases[0, 1] / (2 * math.pi)) % 1.0
            return rated * (1.0 if phase < 0.6 else 0.08) * self._wobble(t, 0.03)
        if m == "ev":  # session: ramp up over 10 % of the period, charge, taper, pause
            phase = (t / spec.period + self._phases[0, 2] / (2 * math.pi)) % 1.0
            if phase < 0.1:
                level = phase / 0.1
            elif phase < 0.7:
                level = 1.0
            elif phase < 0.8:
                level = (0.8 - phase) / 0.1
            else:
                level = 0.0
            return rated * level * self._wobble(t, 0.005) + (15.0 if level == 0 else 0.0)
        if m == "pv":  # generation on a clear-sky day curve between 06:00 and 20:00
            x = (local_hour - 6.0) / 14.0
            sun = math.sin(math.pi * x) ** 1.5 if 0.0 < x < 1.0 else 0.0
            cloud = 1.0 - 0.15 * max(0.0, self._wobble(t, 1.0) - 1.0)
            return -(rated * sun * cloud)
        if m == "it":
            return rated * self._wobble(t, 0.05)
        if m == "motor":  # lift: short runs
            phase = (t / spec.period + self._phases[1, 0] / (2 * math.pi)) % 1.0
            return rated * (1.0 if phase < 0.2 else 0.03)
        if m == "heater":  # thermostat
            phase = (t / spec.period + self._phases[1, 1] / (2 * math.pi)) % 1.0
            return rated * (1.0 if phase < 0.45 else 0.0)
        if m == "kitchen":
            busy = 1.0 if 10.5 <= local_hour < 14.5 or 17.0 <= local_hour < 20.0 else 0.35
            return rated * busy * self._wobble(t, 0.15)
        return 0.0  # "supply" is computed from the other circuits

    def points(self, t: float, local_hour: float) -> list[LoadPoint]:
        p_total = self.total_power(t, local_hour)
        pf = self.spec.power_factor
        # displacement angle: inductive for pf > 0, capacitive for pf < 0 (sign convention of LoadSpec)
        phi = math.acos(min(1.0, abs(pf))) * (1 if pf >= 0 else -1)
        out = []
        for k in range(self.n):
            p = p_total * self._share[k]
            q = abs(p) * math.tan(phi)
            out.append(LoadPoint(p=p, q=q, thd_i=self._thd, harmonics=self._spectrum))
        return out


def make_load(spec: LoadSpec, n_phases: int, seed: int) -> LoadModel:
    """Build the model of one circuit's load."""
    return LoadModel(spec, n_phases, seed)
