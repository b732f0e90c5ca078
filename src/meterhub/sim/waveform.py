"""Waveform synthesis: distorted, unbalanced, drifting three-phase voltages and currents.

A signal is built from the *fundamental phase* ``θ(t) = θ0 + 2π∫f dt`` so the frequency may drift
without phase jumps between blocks. A channel with RMS ``X``, angle ``φ`` and harmonics
``{h: (a_h, ψ_h)}`` (fraction of the fundamental, angle in degrees) is

    x(t) = √2·X·[sin(θ + φ) + Σ_h a_h·sin(h·(θ + φ) + ψ_h)]

so each phase's harmonics turn with it, as a non-linear load on that phase would make them. The RMS of
the fundamental is X; the total RMS is ``X·√(1 + Σ a_h²)``. Angles are degrees, positive leading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["Harmonics", "PhaseClock", "Tone", "channel", "record_3p4w", "theta"]

F64 = NDArray[np.float64]
Harmonics = Mapping[int, tuple[float, float]]


def theta(n: int, fs: float, f: float | F64, theta0: float = 0.0) -> F64:
    """Fundamental phase of ``n`` samples [rad].

    f : frequency, a constant or one value per sample [Hz]; theta0 : phase of the first sample [rad].
    """
    if np.ndim(f) == 0:
        return np.asarray(theta0 + 2.0 * np.pi * float(f) * np.arange(n) / fs, dtype=np.float64)
    fa = np.asarray(f, dtype=np.float64)
    return theta0 + 2.0 * np.pi * np.concatenate(([0.0], np.cumsum(fa[:-1]))) / fs


def channel(th: F64, rms: float | F64, angle: float = 0.0, harmonics: Harmonics | None = None) -> F64:
    """One channel's samples from the fundamental phase ``th`` [rad] (see module docstring). [unit of rms]"""
    ph = th + np.radians(angle)
    x = np.sin(ph)
    for h, (a, psi) in (harmonics or {}).items():
        x = x + a * np.sin(h * ph + np.radians(psi))
    return np.sqrt(2.0) * np.asarray(rms) * x


@dataclass
class Tone:
    """A phasor with harmonics: RMS of the fundamental [unit], angle [°], harmonics {h: (fraction, °)}."""

    rms: float
    angle: float = 0.0
    harmonics: dict[int, tuple[float, float]] = field(default_factory=dict)


def record_3p4w(
    *,
    fs: float,
    duration: float,
    f: float | F64 = 50.0,
    voltages: tuple[Tone, Tone, Tone] | None = None,
    currents: tuple[Tone, ...] = (),
    theta0: float = 0.0,
) -> tuple[F64, F64]:
    """A three-phase record: (3, n) voltages [V] and (len(currents), n) currents [A].

    Defaults: 230 V, 0°/−120°/+120°. Current angles are absolute (relative to U L1), so a current
    lagging its voltage by φ on L2 has angle −120° − φ.
    """
    n = int(round(fs * duration))
    th = theta(n, fs, f, theta0)
    vt = voltages or (Tone(230.0, 0.0), Tone(230.0, -120.0), Tone(230.0, 120.0))
    v = np.vstack([channel(th, t.rms, t.angle, t.harmonics) for t in vt])
    i = (
        np.vstack([channel(th, t.rms, t.angle, t.harmonics) for t in currents])
        if currents
        else np.zeros((0, n))
    )
    return v, i


class PhaseClock:
    """Keeps the fundamental phase across blocks for a stream with a drifting frequency."""

    def __init__(self, fs: float, theta0: float = 0.0) -> None:
        self.fs = float(fs)
        self.theta = float(theta0)

    def advance(self, n: int, f: float | F64) -> F64:
        """Phase of the next ``n`` samples [rad]; ``f`` constant or per sample [Hz]."""
        th = theta(n, self.fs, f, self.theta)
        last_f = float(np.asarray(f).ravel()[-1])
        self.theta = float(np.mod(th[-1] + 2.0 * np.pi * last_f / self.fs, 2.0 * np.pi)) if n else self.theta
        return th
