"""CT ratio changes on devices that report secondary values: the register continues, history stays.

A meter behind an x/5 A CT that reports secondary values counts secondary energy; meterhub multiplies
its register by the circuit's CT ratio (:func:`meterhub.profiles.transformers.ratio_factor`). The
register counts since the meter was installed, so after a ratio change from k₀ to k₁ the product jumps
by E_sec × (k₁ − k₀): all the past energy re-multiplied by the new ratio. Unannounced, the register
guard sees an implausible step: it quarantines the readings as a new counter until that is confirmed
and then only estimates the step across (or, where the jump exceeds what the circuit is rated for,
keeps quarantining).

So each ratio change is announced to the guard as a meter change (:class:`MeterChange`) at its time:
the old ratio's last value ``high`` is the "old meter's final" reading, ``high × k₁/k₀`` the "new meter's
initial" one, and the first reading after it adds Δ = r − high × k₁/k₀ = (E_sec − E_sec,last) × k₁ —
the energy since the last reading at the new ratio. What was counted before keeps the ratio it was
counted with; nothing stored is rescaled.

Waveform circuits are not concerned: the gateway integrates their energy from primary samples, so the
register never carries the ratio.
"""

from __future__ import annotations

import logging
from datetime import datetime

from meterhub.config.schema import Circuit, SiteConfig
from meterhub.energy.registers import MeterChange, RegisterGuard
from meterhub.profiles import get_profile
from meterhub.profiles.schema import ProfileError
from meterhub.profiles.transformers import ratio_factor

__all__ = ["announce_ratio_changes"]

log = logging.getLogger(__name__)

#: A change announced right after the last reading [s], so that the next reading is the first after it.
_AFTER = 1e-3


def _applied_ct(config: SiteConfig, circuit: Circuit) -> float | None:
    """CT ratio [-] meterhub applies to the circuit's device values, or None when it applies none (a
    device reporting primary values, a waveform board)."""
    device = next((d for d in config.devices if d.id == circuit.device), None)
    if device is None:
        return None
    try:
        profile = get_profile(device.profile)
    except ProfileError:
        return None  # not a Modbus profile: the waveform source applies the CT to samples
    return circuit.ct.ratio.value if profile.applies_ratios(circuit.ct.kind)[0] else None


def announce_ratio_changes(guard: RegisterGuard, previous: SiteConfig | None, config: SiteConfig) -> int:
    """Announce to ``guard`` each CT ratio change its registers have not seen; returns how many.

    ``previous``: the configuration in force until now (a live change: every changed ratio, at the
    recorded ``ct.ratio_from`` or right after the register's last reading, whichever is later); None at
    start (a change recorded in ``ct.ratio_from`` after a register's last persisted reading).
    """
    announced = 0
    before = {c.id: c for c in previous.circuits} if previous is not None else {}
    for circuit in config.circuits:
        ratio = _applied_ct(config, circuit)
        if ratio is None:
            continue
        start = circuit.ct.ratio_from
        start_ts = datetime.fromisoformat(start).timestamp() if start is not None else None
        for key in guard.keys():
            st = guard.state(key)
            if key.circuit != circuit.id or st is None or st.raw is None or st.ts is None:
                continue
            if previous is not None:
                old_circuit = before.get(circuit.id)
                if old_circuit is None or old_circuit.device != circuit.device:
                    continue
                old = _applied_ct(previous, old_circuit)
                at = max(start_ts or st.ts, st.ts + _AFTER)
            else:
                if start_ts is None or start_ts <= st.ts:
                    continue
                old = circuit.ct.ratio_at(st.ts).value
                at = start_ts
            if old is None or old == ratio:
                continue
            factor = ratio_factor(key.quantity, ratio / old, 1.0)
            if factor == 1.0:
                continue
            changes = guard.changes.setdefault(key, [])
            changes.append(MeterChange(at, st.raw, st.raw * factor))
            changes.sort(key=lambda c: c.ts)
            announced += 1
            log.info(
                "register %s: CT ratio of circuit %s changed %g → %g; the register continues from %g",
                key,
                circuit.id,
                old,
                ratio,
                st.value,
            )
    return announced
