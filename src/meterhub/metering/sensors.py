"""Current sensor models: what a CT input measures and how it becomes primary amps.

Kinds (:class:`meterhub.config.ct.CTKind`, seed 000 §4.6, seed 001 meter setup):

* ``current-output``: a CT with mA secondary into a burden resistor R; the ADC sees ``u = R·I/ratio``
  [V]; primary ``I = u·ratio/R``.
* ``voltage-output``: a CT with a built-in burden, 333 mV at rated current: ``ratio`` is written
  ``"50/0.333"`` (A per V); ``I = u·ratio``.
* ``rogowski``: an air-cored coil, ``u = M·di/dt``; ``ratio`` is primary amps per output volt at the
  nominal frequency, so ``M = 1/(ratio·2π·f_n)``. The reader blocks DC before and after integrating
  (subtracting the mean of the last nominal period, an FIR without a slow start-up transient: an ADC
  offset would otherwise ramp the integral), integrates with the trapezoidal rule, and corrects the
  whole chain per harmonic in the frequency domain (:meth:`Sensor.correction`): the trapezoid's
  response is ``(ωT/2)·cot(ωT/2)`` of the ideal one and each blocker ``1 − (1/P)·Σ_{k<P} e^{−jωkT}``
  (exactly 1 at f_n and its harmonics); the engine multiplies the fundamental
  phasor by the exact inverse, scales each harmonic subgroup by its magnitude, and moves RMS and P by
  the resulting change of the fundamental and harmonic components.
* ``adapter-5a``: a 5 A (or 1 A) adapter behind a primary CT such as 800/5; the board reports the
  secondary amps; ``I = i·ratio``.
* ``built-in`` / ``direct``: the module reports primary amps (``ratio`` 1 unless configured).

Ratio and phase-error correction vary with current, as IoTaWatt's CT tables do: a :class:`PhaseTable`
lists (primary current [A], phase error [°], ratio error [%]) points; between points the errors are
interpolated linearly, outside they are held. A CT's secondary *leads* its primary by the phase error;
the engine turns the fundamental current phasor back by it and adjusts P by the change of the
fundamental active power (IEEE 1459 P1), and scales the current by ``1/(1 + ratio error)``.
Polarity: ``reversed`` negates the samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from meterhub.config.ct import CTKind, CTSpec

__all__ = ["PhaseTable", "Sensor", "sensor_for"]

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class PhaseTable:
    """Phase and ratio error against primary current (IoTaWatt-style CT calibration).

    current : increasing primary currents [A]; phase : phase error (secondary leads) [°];
    ratio : ratio error [%] (positive = the sensor reads high)
    """

    current: tuple[float, ...]
    phase: tuple[float, ...]
    ratio: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.current) != len(self.phase) or (self.ratio and len(self.ratio) != len(self.current)):
            raise ValueError("phase table: current, phase (and ratio) need the same number of points")
        if any(b <= a for a, b in zip(self.current, self.current[1:], strict=False)):
            raise ValueError("phase table: currents must increase")

    def at(self, current: F64) -> tuple[F64, F64]:
        """(phase error [°], ratio error [%]) at primary RMS currents ``current`` [A]."""
        c = np.asarray(self.current)
        ph = np.interp(current, c, np.asarray(self.phase))
        ra = np.interp(current, c, np.asarray(self.ratio)) if self.ratio else np.zeros_like(ph)
        return ph, ra


def _trapezoid_response(f: F64, fs: float) -> F64:
    """Magnitude of the trapezoidal integrator relative to the ideal 1/(jω): (ωT/2)·cot(ωT/2). [-]"""
    x = np.pi * np.asarray(f, dtype=np.float64) / fs
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(np.abs(x) > 1e-12, x / np.tan(x), 1.0)
    return np.asarray(r, dtype=np.float64)


@dataclass
class Sensor:
    """One CT input's model (see the module docstring).

    kind : sensor kind; ratio : primary per secondary (A/A, or A/V) [-]; burden : [Ω] (current-output);
    fs : sampling rate [Hz]; f_nominal : [Hz]; sign : −1 for reversed polarity;
    table : current-dependent phase/ratio errors, or None
    """

    kind: CTKind
    ratio: float
    fs: float
    f_nominal: float = 50.0
    burden: float | None = None
    sign: float = 1.0
    table: PhaseTable | None = None
    _state: dict[str, float] = field(default_factory=dict, repr=False)
    _hist: dict[str, F64] = field(default_factory=dict, repr=False)

    @property
    def gain(self) -> float:
        """Primary amps per terminal unit (V or A) at the nominal frequency. [A/unit]"""
        if self.kind is CTKind.CURRENT_OUTPUT:
            if not self.burden:
                raise ValueError("a current-output CT needs 'burden' [Ω]")
            return self.ratio / self.burden
        return self.ratio

    @property
    def unit(self) -> str:
        return "A" if self.kind in (CTKind.ADAPTER_5A, CTKind.BUILT_IN, CTKind.DIRECT) else "V"

    # -- reader side ---------------------------------------------------------------------------
    def convert(self, x: F64) -> F64:
        """Terminal samples → primary current samples [A]; stateful across blocks (Rogowski)."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind is not CTKind.ROGOWSKI:
            return self.sign * self.gain * x
        return self.sign * self._integrate(x)

    def _period(self) -> int:
        return max(2, int(round(self.fs / self.f_nominal)))

    def _hp(self, x: F64, key: str) -> F64:
        """DC blocker: ``x − mean of the last P samples`` (P = one nominal period), stateful."""
        p = self._period()
        hist = self._hist.get(key)
        if hist is None:
            hist = np.full(p - 1, float(np.mean(x[:p])))
        buf = np.concatenate((hist, x))
        c = np.concatenate(([0.0], np.cumsum(buf)))
        ma = (c[p:] - c[:-p]) / p
        self._hist[key] = buf[-(p - 1) :].copy()
        return np.asarray(x - ma, dtype=np.float64)

    def _integrate(self, x: F64) -> F64:
        st = self._state
        xin = self._hp(x, "in")
        # trapezoid: y[n] = y[n-1] + T/2·(x[n] + x[n-1])
        prev = np.concatenate(([st.get("prev", float(xin[0]))], xin[:-1]))
        y = st.get("y", 0.0) + np.cumsum(0.5 * (xin + prev)) / self.fs
        st["prev"] = float(xin[-1])
        st["y"] = float(y[-1])
        return self._hp(self._k() * y, "out")

    def _k(self) -> float:
        """1/M corrected for the trapezoid at f_n: primary amps per volt-second. [A/(V·s)]"""
        trap = float(_trapezoid_response(np.array([self.f_nominal]), self.fs)[0])
        return self.ratio * 2.0 * math.pi * self.f_nominal / trap

    def response(self, f: F64) -> NDArray[np.complex128]:
        """Complex response of the reader chain relative to the ideal sensor at ``f`` [Hz]. [-]

        1 for proportional sensors; for a Rogowski coil the trapezoid (relative to f_n) times the
        two one-period moving-average DC blockers ``1 − (1/P)·Σ_{k<P} e^{−jωkT}``.
        """
        f = np.asarray(f, dtype=np.float64)
        if self.kind is not CTKind.ROGOWSKI:
            return np.ones(f.shape, dtype=np.complex128)
        p = self._period()
        w = 2.0 * np.pi * f / self.fs
        z1 = np.exp(-1j * w)
        small = np.abs(1.0 - z1) < 1e-12
        ma = np.where(small, 1.0, (1.0 - np.exp(-1j * w * p)) / (p * np.where(small, 1.0, 1.0 - z1)))
        hp = 1.0 - ma
        trap = _trapezoid_response(f, self.fs) / _trapezoid_response(np.array([self.f_nominal]), self.fs)[0]
        return np.asarray(trap * hp * hp, dtype=np.complex128)

    def correction(self, f: F64, i_rms: F64) -> tuple[NDArray[np.complex128], F64] | None:
        """Per-window corrections, or None when the sensor needs none.

        f : (W,) fundamental frequency of each window [Hz]; i_rms : (W,) measured current [A].
        Returns (F1 (W,) complex factor of the fundamental phasor, Fh (W, 51) factor of each harmonic
        magnitude); both undo the reader chain (:meth:`response`) and the table's phase/ratio error.
        """
        rog = self.kind is CTKind.ROGOWSKI
        if not rog and self.table is None:
            return None
        w = f.size
        orders = np.arange(51, dtype=np.float64)
        if rog:
            hf = np.where(np.isfinite(f), f, self.f_nominal)[:, None] * orders[None, :]
            hf[:, 0] = self.f_nominal  # DC: not corrected (the blockers remove it)
            g = 1.0 / self.response(hf)
            g[:, 0] = 1.0
        else:
            g = np.ones((w, 51), dtype=np.complex128)
        f1 = g[:, 1].copy()
        fh = np.abs(g)
        if self.table is not None:
            pe, re = self.table.at(i_rms)
            f1 *= np.exp(-1j * np.radians(pe)) / (1.0 + re / 100.0)
            fh /= (1.0 + re / 100.0)[:, None]
            fh[:, 1] = np.abs(f1)
        return f1, fh

    # -- simulator side ------------------------------------------------------------------------
    def output(self, phase: F64, i1: float, harmonics: F64, f: float) -> F64:
        """Terminal samples this sensor outputs for a primary current [V or A].

        phase : fundamental phase of the current θ(t) [rad]; i1 : fundamental RMS [A];
        harmonics : (51,) magnitudes as fractions of the fundamental [-]; f : frequency [Hz].
        The secondary leads by the table's (or rated) phase error at this current.
        """
        lead = 0.0
        ratio_err = 0.0
        if self.table is not None:
            irms = i1 * math.sqrt(float(np.sum(np.asarray(harmonics)[1:] ** 2)))
            pe, re = self.table.at(np.array([irms]))
            lead, ratio_err = math.radians(float(pe[0])), float(re[0]) / 100.0
        ph = phase + lead
        h = np.asarray(harmonics, dtype=np.float64)
        orders = np.flatnonzero(h > 0)
        orders = orders[orders >= 1]
        amp = math.sqrt(2.0) * i1 * (1.0 + ratio_err)
        if self.kind is CTKind.ROGOWSKI:
            # u = M·di/dt, M = 1/(ratio·2π·f_n): harmonic h scales by h·f/f_n and leads 90°
            y = np.zeros_like(ph)
            for n in orders:
                y += h[n] * (n * f / self.f_nominal) * np.cos(n * ph)
            return self.sign * amp * y / self.ratio
        y = np.zeros_like(ph)
        for n in orders:
            y += h[n] * np.sin(n * ph)
        return self.sign * amp * y / self.gain


def sensor_for(
    ct: CTSpec, *, fs: float, f_nominal: float, reversed: bool = False, table: PhaseTable | None = None
) -> Sensor:
    """The sensor model of a circuit's ``ct`` configuration.

    ``ct.table`` (the site file's calibration points) is used unless ``table`` is given; otherwise a
    non-zero ``ct.phase_error`` (at rated current) becomes a constant table.
    """
    if table is None and ct.table:
        pts = list(ct.table)
        table = PhaseTable(
            tuple(p.current for p in pts), tuple(p.phase for p in pts), tuple(p.ratio for p in pts)
        )
    if table is None and ct.phase_error:
        table = PhaseTable((0.0,), (float(ct.phase_error),), (0.0,))
    if ct.kind is CTKind.CURRENT_OUTPUT and not ct.burden:
        raise ValueError(f"a {ct.kind.value} CT ({ct.ratio}) needs 'burden' [Ω]")
    return Sensor(
        kind=ct.kind,
        ratio=float(ct.ratio.value),
        fs=float(fs),
        f_nominal=float(f_nominal),
        burden=ct.burden,
        sign=-1.0 if reversed else 1.0,
        table=table,
    )
