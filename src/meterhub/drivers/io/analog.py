"""Analog inputs and outputs: 4–20 mA, 0–20 mA, 0–10 V, 0–30 V ↔ engineering units.

Pure numpy: every function takes scalars or arrays and returns arrays of the same shape.

Scaling is linear between the signal's ends and the configured engineering ``range``
(``lo`` at the low end: 4 mA, 0 mA or 0 V; ``hi`` at the high end: 20 mA, 10 V or 30 V). A range may
be falling (``[100, 0]``).

Signal validity
---------------
* 4–20 mA follows NAMUR NE 43 (signal levels for failure information of digital transmitters):
  3.8–20.5 mA carries measurement information (values just outside 4–20 mA are the transmitter's
  over/under-range and are clipped to the range when ``clamp`` is set); **≤ 3.6 mA** is a failure
  signal — below it the loop is open or the transmitter has failed low (:attr:`AnalogStatus.FAIL_LOW`);
  **≥ 21.0 mA** is the high failure signal, e.g. a short circuit (:attr:`AnalogStatus.FAIL_HIGH`);
  the bands between (3.6–3.8 mA, 20.5–21.0 mA) are saturated values (:attr:`AnalogStatus.SATURATED`).
* 0–20 mA and the voltage inputs have no live zero, so an open loop cannot be told from a zero
  value. A reading within 2.5 % of the span outside the signal range is clipped and marked saturated;
  further out it is :attr:`AnalogStatus.OUT_OF_RANGE` (wrong wiring or configuration).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from meterhub.drivers.io.config import AnalogSignal
from meterhub.model.readings import Quality

__all__ = [
    "NE43_FAIL_HIGH",
    "NE43_FAIL_LOW",
    "NE43_MEASURE",
    "SIGNAL_RANGE",
    "AnalogStatus",
    "output_signal",
    "quality_of",
    "scale_input",
    "to_engineering",
]

#: Electrical ends of each signal type [mA or V].
SIGNAL_RANGE: dict[AnalogSignal, tuple[float, float]] = {
    AnalogSignal.MA_4_20: (4.0, 20.0),
    AnalogSignal.MA_0_20: (0.0, 20.0),
    AnalogSignal.V_0_10: (0.0, 10.0),
    AnalogSignal.V_0_30: (0.0, 30.0),
}
#: NAMUR NE 43: measurement information band [mA].
NE43_MEASURE = (3.8, 20.5)
#: NAMUR NE 43: failure information at or below [mA].
NE43_FAIL_LOW = 3.6
#: NAMUR NE 43: failure information at or above [mA].
NE43_FAIL_HIGH = 21.0
_TOLERANCE = 0.025  # of the span, for signals without live zero


class AnalogStatus(IntEnum):
    """Validity of one analog sample (ordered: higher is worse)."""

    OK = 0
    SATURATED = 1  # outside the measurement band but not a failure signal; value clipped
    OUT_OF_RANGE = 2  # far outside the signal range (no live zero)
    FAIL_LOW = 3  # NE 43 ≤ 3.6 mA: open loop, broken wire or transmitter failure
    FAIL_HIGH = 4  # NE 43 ≥ 21 mA: short circuit or transmitter failure


_QUALITY = {
    AnalogStatus.OK: Quality.GOOD,
    AnalogStatus.SATURATED: Quality.ESTIMATED,
    AnalogStatus.OUT_OF_RANGE: Quality.INVALID,
    AnalogStatus.FAIL_LOW: Quality.INVALID,
    AnalogStatus.FAIL_HIGH: Quality.INVALID,
}


def quality_of(status: AnalogStatus | int) -> Quality:
    """Reading quality for a status: OK → GOOD, SATURATED → ESTIMATED, otherwise INVALID."""
    return _QUALITY[AnalogStatus(int(status))]


def _status(x: NDArray[np.float64], signal: AnalogSignal) -> NDArray[np.int8]:
    s_lo, s_hi = SIGNAL_RANGE[signal]
    status = np.full(x.shape, AnalogStatus.OK, dtype=np.int8)
    if signal is AnalogSignal.MA_4_20:
        status[(x < NE43_MEASURE[0]) | (x > NE43_MEASURE[1])] = AnalogStatus.SATURATED
        status[x <= NE43_FAIL_LOW] = AnalogStatus.FAIL_LOW
        status[x >= NE43_FAIL_HIGH] = AnalogStatus.FAIL_HIGH
    else:
        tol = _TOLERANCE * (s_hi - s_lo)
        status[(x < s_lo) | (x > s_hi)] = AnalogStatus.SATURATED
        status[(x < s_lo - tol) | (x > s_hi + tol)] = AnalogStatus.OUT_OF_RANGE
    status[~np.isfinite(x)] = AnalogStatus.OUT_OF_RANGE
    return status


def to_engineering(
    signal_value: ArrayLike, signal: AnalogSignal, lo: float, hi: float
) -> NDArray[np.float64]:
    """Linear scaling without clipping or validity checks [engineering unit] (for diagnosis)."""
    x = np.asarray(signal_value, dtype=np.float64)
    s_lo, s_hi = SIGNAL_RANGE[signal]
    return lo + (x - s_lo) * ((hi - lo) / (s_hi - s_lo))


def scale_input(
    signal_value: ArrayLike,
    signal: AnalogSignal,
    lo: float,
    hi: float,
    *,
    clamp: bool = True,
) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """Scale measured signal values to engineering units.

    Parameters
    ----------
    signal_value : measured current [mA] or voltage [V].
    signal : the signal type.
    lo, hi : engineering value at the low and high signal end [engineering unit].
    clamp : clip results to ``[min(lo, hi), max(lo, hi)]``.

    Returns
    -------
    value : engineering values [engineering unit]; NaN where the status is a failure or out of range.
    status : :class:`AnalogStatus` per sample (int8).

    Example: 12 mA on a 4–20 mA input with range [0, 10] bar gives 5.0 bar, status OK.
    """
    x = np.asarray(signal_value, dtype=np.float64)
    value = to_engineering(x, signal, lo, hi)
    if clamp:
        value = np.clip(value, min(lo, hi), max(lo, hi))
    status = _status(x, signal)
    value = np.where(status >= AnalogStatus.OUT_OF_RANGE, np.nan, value)
    return value, status


def output_signal(value: ArrayLike, signal: AnalogSignal, lo: float, hi: float) -> NDArray[np.float64]:
    """Signal to drive for an engineering value, clipped to the signal's range.

    Parameters
    ----------
    value : wanted engineering value [engineering unit].
    signal : the output's signal type.
    lo, hi : engineering value at the low and high signal end [engineering unit].

    Returns the output current [mA] or voltage [V]. Example: 75 % on a 4–20 mA output with range
    [0, 100] gives 16.0 mA. Raises ``ValueError`` for NaN (an output must always have a value).
    """
    v = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError("an analog output value must be a finite number")
    s_lo, s_hi = SIGNAL_RANGE[signal]
    out = s_lo + (v - lo) * ((s_hi - s_lo) / (hi - lo))
    return np.clip(out, s_lo, s_hi)
