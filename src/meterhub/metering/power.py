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
            "voltage": u.rms[..., k, :],
            "current": i.rms[..., k, :],
            "active_power": p[..., k, :],
            "reactive_power": q1[..., k, :],
            "apparent_power": s[..., k, :],
            "nonactive_power": n_act[..., k, :],
            "power_factor": pf[..., k, :],
            "displacement_power_factor": dpf[..., k, :],
            "thd_voltage": thd_u[..., k, :],
            "thd_current": thd_i[..., k, :],
            "tohd_voltage": tohd_u[..., k, :],
            "tehd_voltage": tehd_u[..., k, :],
            "tohd_current": tohd_i[..., k, :],
            "tehd_current": tehd_i[..., k, :],
            "crest_factor_voltage": cf_u[..., k, :],
            "crest_factor_current": cf_i[..., k, :],
            "k_factor": kf[..., k, :],
            "factor_k": fk[..., k, :],
            "angle_voltage": ang_u[..., k, :],
            "angle_current": ang_i[..., k, :],
            "angle_voltage_current": ang_ui[..., k, :],
            "harmonics_voltage": u.harmonics[..., k, :, :],
            "harmonics_current": i.harmonics[..., k, :, :],
            "_groups_voltage": u.groups[..., k, :, :],
            "_groups_current": i.groups[..., k, :, :],
            "_p1": p1[..., k, :],
            "_q1": q1[..., k, :],
        }
    if u_line_rms is not None and len(labels) == 3:
        for k, lab in enumerate(labels):
            out[lab]["voltage_line"] = np.broadcast_to(u_line_rms[k], p.shape[:-2] + u_line_rms.shape[1:])
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
                "voltage_unbalance_negative": u2,
                "voltage_unbalance_zero": u0,
                "current_unbalance_negative": i2,
                "current_unbalance_zero": i0,
                "voltage_zero_sequence": np.abs(zero),
            }
        )
    else:
        se = s_arith
    total.update(
        {
            "voltage": np.mean(u.rms, axis=-2),
            "current": np.mean(i.rms, axis=-2),
            "active_power": p_sum,
            "reactive_power": q_sum,
            "apparent_power": se,
            "apparent_power_arithmetic": s_arith,
            "apparent_power_vector": np.hypot(p_sum, q_sum),
            "nonactive_power": np.sqrt(np.maximum(se**2 - p_sum**2, 0.0)),
            "power_factor": _safe_div(p_sum, se),
            "displacement_power_factor": _safe_div(p1.sum(axis=-2), np.abs(s1.sum(axis=-2))),
            "_p1": p1.sum(axis=-2),
            "_q1": q_sum,
        }
    )
    if u_line_rms is not None and len(labels) == 3:
        total["voltage_line"] = np.broadcast_to(np.mean(u_line_rms, axis=0), p_sum.shape)
    out["total"] = total
    cur = i_n_rms if i_n_rms is not None else i_n_calc_rms
    if cur is not None:
        neutral: dict[str, F64] = {"current": cur}
        if i_n_calc_rms is not None:
            neutral["current_neutral_calculated"] = i_n_calc_rms
        out["N"] = neutral
    return out


def dc_quantities(*, u_dc: F64, i_dc: F64, p: F64, u_rms: F64, i_rms: F64) -> Quantities:
    """Per-window quantities of a DC circuit: mean voltage and current, power ``(1/T)∫u·i dt``.

    u_dc, i_dc : mean voltage [V] and current [A]; p : active power [W]; u_rms, i_rms for S [V], [A].
    """
    s = u_rms * i_rms
    phase = {
        "voltage": u_dc,
        "current": i_dc,
        "active_power": p,
        "reactive_power": np.zeros_like(p),
        "apparent_power": s,
        "power_factor": _safe_div(p, s),
        "_p1": p,
        "_q1": np.zeros_like(p),
    }
    total = dict(phase)
    total["apparent_power_arithmetic"] = s
    total["apparent_power_vector"] = np.abs(p)
    return {"L1": phase, "total": total}
