"""Power quantities of one circuit per window (IEEE Std 1459-2010).

Per phase (§3.1, single-phase definitions applied to each phase conductor against its voltage):

* active power ``P = (1/T)∫u·i dt`` (§3.1.1.4), measured in the time domain (:mod:`.windows`);
* fundamental active/reactive power ``P1 + jQ1 = U1·I1*`` (§3.1.2.3–§3.1.2.4); ``reactive_power`` is Q1,
  positive when the current lags (inductive, quadrants I and II);
* apparent power ``S = U·I`` (§3.1.2.7), nonactive power ``N = √(S² − P²)`` (§3.1.2.9);
* power factor ``λ = P/S`` (§3.1.2.11), displacement power factor ``cos θ1 = P1/S1`` (§3.1.2.10).

System (§3.2): ``P = ΣP``, ``Q = ΣQ1``, arithmetic ``ΣS``, vector ``|ΣP + jΣQ1|`` and the effective
apparent power ``Se = 3·Ue·Ie`` (§3.2.2.7):

* 4-wire: ``Ie = √((Ia² + Ib² + Ic² + In²)/3)``, ``Ue = √((3(Ua² + Ub² + Uc²) + Uab² + Ubc² + Uca²)/18)``
* 3-wire: ``Ie = √((Ia² + Ib² + Ic²)/3)``, ``Ue = √((Uab² + Ubc² + Uca²)/9)``

Single-phase and split-phase circuits use ``Se = ΣS``. The total power factor is ``P/Se``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from meterhub.metering.harmonics import distortion, load_factors
from meterhub.metering.sequence import sequence_components, unbalance
from meterhub.metering.windows import ChannelWindows
from meterhub.model.quantities import Q
from meterhub.model.topology import Wiring

__all__ = ["Quantities", "circuit_quantities", "dc_quantities", "wrap_degrees"]

F64 = NDArray[np.float64]
#: group ("L1", "L2", "L3", "N", "total") → catalogue quantity id (or "_internal") → values (W,) or (W, 51)
Quantities = dict[str, dict[str, F64]]


def wrap_degrees(a: F64) -> F64:
    """Wrap angles to (−180°, 180°]. [°]"""
    return 180.0 - np.mod(180.0 - a, 360.0)


def _safe_div(a: F64, b: F64) -> F64:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1.0), 0.0)


def circuit_quantities(
    *,
    wiring: Wiring,
    labels: tuple[str, ...],
    u: ChannelWindows,
    u_line_rms: F64 | None,
    i: ChannelWindows,
    p: F64,
    i_n_rms: F64 | None,
    i_n_calc_rms: F64 | None,
    u_ref: NDArray[np.complex128],
) -> Quantities:
    """Per-window quantities of a set of AC circuits of the same wiring and phases, all at once.

    Arrays carry a leading circuit axis C (``...`` below), so the result's arrays are (C, W)
    (or (C, W, 51) for spectra); one circuit is C = 1.

    Parameters
    ----------
    wiring : the circuits' wiring system
    labels : phase label of each conductor, e.g. ("L1", "L2", "L3")
    u : voltage windows of each conductor's phase-to-neutral voltage (..., k, W) [V]
    u_line_rms : (3, W) line-to-line RMS (L1-L2, L2-L3, L3-L1) or None [V]
    i : current windows (..., k, W) [A]
    p : active power per conductor (..., k, W) [W]
    i_n_rms : measured neutral current (..., W) or None [A]
    i_n_calc_rms : neutral current from the sample-wise sum of the phase currents (..., W) or None [A]
    u_ref : fundamental phasor of U L1 per window (W,), the angle reference [V]
    """
    s1 = u.fundamental * np.conj(i.fundamental)
    p1 = s1.real
    q1 = s1.imag
    s = u.rms * i.rms
    ref = np.where(np.abs(u_ref) > 0, u_ref / np.where(np.abs(u_ref) > 0, np.abs(u_ref), 1.0), 1.0)
    ang_u = wrap_degrees(np.degrees(np.angle(u.fundamental * np.conj(ref))))
    ang_i = wrap_degrees(np.degrees(np.angle(i.fundamental * np.conj(ref))))
    thd_u, tohd_u, tehd_u = distortion(u.harmonics)
    thd_i, tohd_i, tehd_i = distortion(i.harmonics)
    kf, fk = load_factors(i.harmonics)
    n_act = np.sqrt(np.maximum(s * s - p * p, 0.0))
    pf = _safe_div(p, s)
    dpf = _safe_div(p1, np.abs(s1))
    cf_u = _safe_div(u.peak, u.rms)
    cf_i = _safe_div(i.peak, i.rms)
    ang_ui = wrap_degrees(ang_u - ang_i)
    out: Quantities = {}
    for k, lab in enumerate(labels):
        out[lab] = {
            Q.VOLTAGE: u.rms[..., k, :],
            Q.CURRENT: i.rms[..., k, :],
            Q.ACTIVE_POWER: p[..., k, :],
            Q.REACTIVE_POWER: q1[..., k, :],
            Q.APPARENT_POWER: s[..., k, :],
            Q.NONACTIVE_POWER: n_act[..., k, :],
            Q.POWER_FACTOR: pf[..., k, :],
            Q.DISPLACEMENT_POWER_FACTOR: dpf[..., k, :],
            Q.THD_VOLTAGE: thd_u[..., k, :],
            Q.THD_CURRENT: thd_i[..., k, :],
            Q.TOHD_VOLTAGE: tohd_u[..., k, :],
            Q.TEHD_VOLTAGE: tehd_u[..., k, :],
            Q.TOHD_CURRENT: tohd_i[..., k, :],
            Q.TEHD_CURRENT: tehd_i[..., k, :],
            Q.CREST_FACTOR_VOLTAGE: cf_u[..., k, :],
            Q.CREST_FACTOR_CURRENT: cf_i[..., k, :],
            Q.K_FACTOR: kf[..., k, :],
            Q.FACTOR_K: fk[..., k, :],
            Q.ANGLE_VOLTAGE: ang_u[..., k, :],
            Q.ANGLE_CURRENT: ang_i[..., k, :],
            Q.ANGLE_VOLTAGE_CURRENT: ang_ui[..., k, :],
            Q.HARMONICS_VOLTAGE: u.harmonics[..., k, :, :],
            Q.HARMONICS_CURRENT: i.harmonics[..., k, :, :],
            "_groups_voltage": u.groups[..., k, :, :],
            "_groups_current": i.groups[..., k, :, :],
            "_p1": p1[..., k, :],
            "_q1": q1[..., k, :],
        }
    if u_line_rms is not None and len(labels) == 3:
        for k, lab in enumerate(labels):
            out[lab][Q.VOLTAGE_LINE] = np.broadcast_to(u_line_rms[k], p.shape[:-2] + u_line_rms.shape[1:])
    total: dict[str, F64] = {}
    p_sum = p.sum(axis=-2)
    q_sum = q1.sum(axis=-2)
    s_arith = s.sum(axis=-2)
    if wiring in (Wiring.P3W4, Wiring.P3W3) and len(labels) == 3 and u_line_rms is not None:
        ull2 = np.sum(u_line_rms**2, axis=-2)
        if wiring is Wiring.P3W4:
            i_n = i_n_rms if i_n_rms is not None else i_n_calc_rms
            in2 = 0.0 if i_n is None else i_n**2
            ie = np.sqrt((np.sum(i.rms**2, axis=-2) + in2) / 3.0)
            ue = np.sqrt((3.0 * np.sum(u.rms**2, axis=-2) + ull2) / 18.0)
        else:
            ie = np.sqrt(np.sum(i.rms**2, axis=-2) / 3.0)
            ue = np.sqrt(ull2 / 9.0)
        se = 3.0 * ue * ie
        u2, u0 = unbalance(np.moveaxis(u.fundamental, -2, 0))
        i2, i0 = unbalance(np.moveaxis(i.fundamental, -2, 0))
        zero, _, _ = sequence_components(np.moveaxis(u.fundamental, -2, 0))
        total.update(
            {
                Q.VOLTAGE_UNBALANCE_NEGATIVE: u2,
                Q.VOLTAGE_UNBALANCE_ZERO: u0,
                Q.CURRENT_UNBALANCE_NEGATIVE: i2,
                Q.CURRENT_UNBALANCE_ZERO: i0,
                Q.VOLTAGE_ZERO_SEQUENCE: np.abs(zero),
            }
        )
    else:
        se = s_arith
    total.update(
        {
            Q.VOLTAGE: np.mean(u.rms, axis=-2),
            Q.CURRENT: np.mean(i.rms, axis=-2),
            Q.ACTIVE_POWER: p_sum,
            Q.REACTIVE_POWER: q_sum,
            Q.APPARENT_POWER: se,
            Q.APPARENT_POWER_ARITHMETIC: s_arith,
            Q.APPARENT_POWER_VECTOR: np.hypot(p_sum, q_sum),
            Q.NONACTIVE_POWER: np.sqrt(np.maximum(se**2 - p_sum**2, 0.0)),
            Q.POWER_FACTOR: _safe_div(p_sum, se),
            Q.DISPLACEMENT_POWER_FACTOR: _safe_div(p1.sum(axis=-2), np.abs(s1.sum(axis=-2))),
            "_p1": p1.sum(axis=-2),
            "_q1": q_sum,
        }
    )
    if u_line_rms is not None and len(labels) == 3:
        total[Q.VOLTAGE_LINE] = np.broadcast_to(np.mean(u_line_rms, axis=0), p_sum.shape)
    out["total"] = total
    cur = i_n_rms if i_n_rms is not None else i_n_calc_rms
    if cur is not None:
        neutral: dict[str, F64] = {Q.CURRENT: cur}
        if i_n_calc_rms is not None:
            neutral[Q.CURRENT_NEUTRAL_CALCULATED] = i_n_calc_rms
        out["N"] = neutral
    return out


def dc_quantities(*, u_dc: F64, i_dc: F64, p: F64, u_rms: F64, i_rms: F64) -> Quantities:
    """Per-window quantities of a DC circuit: mean voltage and current, power ``(1/T)∫u·i dt``.

    u_dc, i_dc : mean voltage [V] and current [A]; p : active power [W]; u_rms, i_rms for S [V], [A].
    """
    s = u_rms * i_rms
    phase = {
        Q.VOLTAGE: u_dc,
        Q.CURRENT: i_dc,
        Q.ACTIVE_POWER: p,
        Q.REACTIVE_POWER: np.zeros_like(p),
        Q.APPARENT_POWER: s,
        Q.POWER_FACTOR: _safe_div(p, s),
        "_p1": p,
        "_q1": np.zeros_like(p),
    }
    total = dict(phase)
    total[Q.APPARENT_POWER_ARITHMETIC] = s
    total[Q.APPARENT_POWER_VECTOR] = np.abs(p)
    return {"L1": phase, "total": total}
