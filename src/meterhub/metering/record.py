"""Whole-record analysis: a :class:`~meterhub.metering.readers.Record` in, the ``meterhub analyze`` JSON out.

The record runs through one :class:`~meterhub.metering.engine.Analyzer` (one circuit of the given wiring);
window values are aggregated over every complete basic window of the record (IEC 61000-4-30 §4.5
rules, see :mod:`.aggregation`); ``record.analysed_seconds`` says how long those are. Energy registers
count every sample (:meth:`~meterhub.metering.engine.Analyzer.flush` adds the part before the first
synchronised zero crossing and after the last complete window), ``record.metered_seconds`` long.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from meterhub.metering.aggregation import aggregate, clock_groups, consecutive_groups
from meterhub.metering.engine import Analyzer, Batch, CircuitSpec, EngineConfig, VoltageInput
from meterhub.metering.readers import Record, RecordError
from meterhub.model.quantities import Q
from meterhub.model.topology import Wiring

__all__ = ["PHASE_KEYS", "TOTAL_KEYS", "analyse", "declared_voltage_guess", "spec_for"]

PHASE_KEYS = (
    Q.VOLTAGE,
    Q.CURRENT,
    Q.ACTIVE_POWER,
    Q.REACTIVE_POWER,
    Q.NONACTIVE_POWER,
    Q.APPARENT_POWER,
    Q.POWER_FACTOR,
    Q.DISPLACEMENT_POWER_FACTOR,
    Q.THD_VOLTAGE,
    Q.THD_CURRENT,
    Q.TOHD_VOLTAGE,
    Q.TEHD_VOLTAGE,
    Q.CREST_FACTOR_VOLTAGE,
    Q.CREST_FACTOR_CURRENT,
    Q.K_FACTOR,
    Q.ANGLE_VOLTAGE,
    Q.ANGLE_CURRENT,
    Q.HARMONICS_VOLTAGE,
    Q.HARMONICS_CURRENT,
)
TOTAL_KEYS = (
    Q.ACTIVE_POWER,
    Q.REACTIVE_POWER,
    Q.APPARENT_POWER,
    Q.APPARENT_POWER_ARITHMETIC,
    Q.APPARENT_POWER_VECTOR,
    Q.POWER_FACTOR,
)
_EXTRA_PHASE = (
    Q.VOLTAGE_LINE,
    Q.VOLTAGE_MAX,
    Q.VOLTAGE_MIN,
    Q.CURRENT_MAX,
    Q.FACTOR_K,
    Q.TOHD_CURRENT,
    Q.TEHD_CURRENT,
)
_BLOCK_SECONDS = 30.0  # record fed to the analyser in blocks of this length [s]
_STANDARD_VOLTAGES = (
    100.0,
    110.0,
    115.0,
    120.0,
    127.0,
    220.0,
    230.0,
    240.0,
    277.0,
    347.0,
    400.0,
    480.0,
    600.0,
)


def declared_voltage_guess(v: NDArray[np.float64], fs: float, f_nominal: float) -> float:
    """The standard nominal voltage nearest the median one-cycle RMS of ``v`` [V]."""
    n = max(1, int(round(fs / f_nominal)))
    m = v.size // n
    if m == 0:
        return 230.0
    cyc = np.sqrt(np.mean(v[: m * n].reshape(m, n) ** 2, axis=1))
    med = float(np.median(cyc))
    return min(_STANDARD_VOLTAGES, key=lambda x: abs(x - med))


def spec_for(wiring: Wiring, record: Record) -> tuple[CircuitSpec, int]:
    """The circuit of a record of ``wiring`` and the number of voltage channels it uses."""
    nv = record.voltages.shape[0]
    cur = record.current_names
    need_v = {Wiring.P1W2: 1, Wiring.DC: 1, Wiring.P1W3: 2, Wiring.P3W4: 3, Wiring.P3W3: 3}[wiring]
    if nv < need_v:
        raise RecordError(f"wiring {wiring.value} needs {need_v} voltage column(s), the record has {nv}")
    if wiring is Wiring.P3W3 and cur == ["i_l1", "i_l3"]:
        return CircuitSpec("record", wiring, (0, 1), (0, 2)), need_v
    want = {Wiring.P1W2: 1, Wiring.DC: 1, Wiring.P1W3: 2, Wiring.P3W4: 3, Wiring.P3W3: 3}[wiring]
    if len(cur) < want:
        raise RecordError(f"wiring {wiring.value} needs current columns i_l1…i_l{want}, the record has {cur}")
    neutral = len(cur) if (record.neutral is not None and wiring is Wiring.P3W4) else None
    idx = tuple(range(want))
    return CircuitSpec("record", wiring, idx, idx, neutral=neutral), need_v


def _clean(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, float | np.floating):
        f = float(x)
        return None if not math.isfinite(f) else f
    if isinstance(x, np.integer | np.bool_):
        return x.item()
    return x


def _concat(batches: list[Batch]) -> Batch:
    """One batch of the windows of successive batches (energy: the last registers)."""
    if len(batches) == 1:
        return batches[0]
    b0 = batches[-1]
    full = [b for b in batches if b.windows]
    out = Batch(
        t=np.concatenate([b.t for b in batches]),
        duration=np.concatenate([b.duration for b in batches]),
        frequency=np.concatenate([b.frequency for b in batches]),
        flagged=np.concatenate([b.flagged for b in batches]),
        energy=b0.energy,
        events=[e for b in batches for e in b.events],
    )
    if not full:
        return out
    for cid in full[-1].circuits:
        out.circuits[cid] = {
            g: {k: np.concatenate([b.circuits[cid][g][k] for b in full]) for k in d}
            for g, d in full[-1].circuits[cid].items()
        }
    return out


def analyse(
    record: Record,
    *,
    wiring: Wiring = Wiring.P3W4,
    f_nominal: float = 50.0,
    declared_voltage: float | None = None,
    voltage_input: VoltageInput = VoltageInput.LN,
    windows: bool = False,
    net_phases: bool = True,
) -> dict[str, Any]:
    """Analyse a whole record; returns the JSON-ready dict of ``meterhub analyze``.

    f_nominal : 50 or 60 [Hz]; declared_voltage : Udin phase-to-neutral [V] (default: the standard
    value nearest the record's median cycle RMS); windows : add the per-window series.
    """
    spec, nv = spec_for(wiring, record)
    v = record.voltages[:nv]
    if voltage_input is VoltageInput.LL:
        v_ln_guess = v[0] / np.sqrt(3.0)
    else:
        v_ln_guess = v[0]
    udin = declared_voltage or declared_voltage_guess(v_ln_guess, record.fs, f_nominal)
    currents = record.currents
    if record.neutral is not None:
        currents = np.vstack((currents, record.neutral[None, :]))
    cfg = EngineConfig(
        fs=record.fs,
        f_nominal=f_nominal,
        declared_voltage=udin,
        voltage_input=voltage_input,
        voltage_channels=nv,
        net_phases=net_phases,
        dc=wiring is Wiring.DC,
    )
    an = Analyzer(cfg, [spec], current_channels=currents.shape[0])
    block = max(1, int(record.fs * _BLOCK_SECONDS))  # bounded memory for long records
    batches = [an.feed(v[:, k : k + block], currents[:, k : k + block]) for k in range(0, v.shape[1], block)]
    batch = _concat([*batches, an.flush()])  # the flush meters the record's tail
    if batch.windows == 0:
        raise RecordError(
            f"record too short or without a usable fundamental: {record.samples} samples at {record.fs:g} Hz "
            f"gave no complete {an.cycles}-cycle window"
        )
    q = batch.circuits["record"]
    q_all = dict(q)
    q_all["_system"] = {Q.FREQUENCY: batch.frequency}
    agg = aggregate(q_all, batch.duration, np.array([0], dtype=np.int64))
    one = {g: {k: (v_[0] if v_.ndim == 1 else v_[0]) for k, v_ in d.items()} for g, d in agg.items()}
    labels = [lab for lab in ("L1", "L2", "L3") if lab in one]
    freq = None if wiring is Wiring.DC else float(one["_system"][Q.FREQUENCY])
    out: dict[str, Any] = {Q.FREQUENCY: freq}
    for lab in labels:
        ph = one[lab]
        out[lab] = {k: ph.get(k) for k in PHASE_KEYS} | {k: ph[k] for k in _EXTRA_PHASE if k in ph}
        if Q.HARMONICS_VOLTAGE in ph:
            for kind in (Q.VOLTAGE, Q.CURRENT):
                h = np.asarray(ph[f"harmonics_{kind}"])
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[lab][f"harmonics_{kind}_percent"] = 100.0 * h / h[1] if h[1] > 0 else h * 0.0
                # IEC 61000-4-7 harmonic groups (eq. 8) beside the subgroups above (Class A, eq. 9)
                out[lab][f"harmonic_groups_{kind}"] = ph[f"_groups_{kind}"]
    out["N"] = {Q.CURRENT: one["N"][Q.CURRENT] if "N" in one else None}
    tot = one["total"]
    energy = batch.energy["record"]["total"]
    out["total"] = {k: tot.get(k) for k in TOTAL_KEYS} | dict(energy)
    out["unbalance"] = {
        "voltage_negative": tot.get(Q.VOLTAGE_UNBALANCE_NEGATIVE),
        "voltage_zero": tot.get(Q.VOLTAGE_UNBALANCE_ZERO),
        "current_negative": tot.get(Q.CURRENT_UNBALANCE_NEGATIVE),
        "current_zero": tot.get(Q.CURRENT_UNBALANCE_ZERO),
    }
    phase_names = ["L1-L2", "L2-L3", "L3-L1"] if an._events_on_line() else labels
    out["events"] = [
        {
            "type": e.kind,
            "phase": phase_names[e.channel] if e.channel < len(phase_names) else "L1",
            "start": e.start,
            "duration": e.duration,
            "extreme": e.extreme,
        }
        for e in batch.events
    ]
    out["frequency_deviation"] = None if freq is None else freq - f_nominal
    out["record"] = {
        "fs": record.fs,
        "samples": record.samples,
        "wiring": wiring.value,
        "declared_voltage": udin,
        "windows": batch.windows,
        "cycles_per_window": an.cycles,
        "analysed_seconds": float(batch.duration.sum()),
        "metered_seconds": record.samples / record.fs,
        "flagged_windows": int(batch.flagged.sum()),
    }
    if windows:
        out["windows"] = _window_series(batch, q, an.cycles)
    return dict(_clean(out))


def _window_series(batch: Batch, q: dict[str, dict[str, NDArray[np.float64]]], cycles: int) -> dict[str, Any]:
    series: dict[str, Any] = {
        "t": batch.t,
        "duration": batch.duration,
        Q.FREQUENCY: batch.frequency,
        "flagged": batch.flagged,
    }
    for g, d in q.items():
        series[g] = {k: v for k, v in d.items() if not k.startswith("_")}
        if "_groups_voltage" in d:
            series[g]["harmonic_groups_voltage"] = d["_groups_voltage"]
            series[g]["harmonic_groups_current"] = d["_groups_current"]
    starts, t10 = clock_groups(batch.t, 10.0)
    f10 = aggregate({"s": {Q.FREQUENCY: batch.frequency}}, batch.duration, starts)["s"][Q.FREQUENCY]
    series["frequency_10s"] = {"t": t10, Q.FREQUENCY: f10}
    series["aggregates"] = _aggregates(batch, q, cycles)
    return series


def _aggregates(batch: Batch, q: dict[str, dict[str, NDArray[np.float64]]], cycles: int) -> dict[str, Any]:
    """150/180-cycle (15 windows) and clock-aligned 1-min and 10-min aggregates (IEC 61000-4-30 §4.5).

    Times are seconds from the record start; incomplete intervals at the end are included and say
    how many windows they hold.
    """
    scalar = {g: {k: v for k, v in d.items() if v.ndim == 1} for g, d in q.items()}
    scalar["system"] = {Q.FREQUENCY: batch.frequency}
    out: dict[str, Any] = {}
    n = batch.windows
    groups: list[tuple[str, NDArray[np.int64], NDArray[np.float64]]] = []
    s15 = consecutive_groups(n, 15)
    if s15.size:
        groups.append((f"{15 * cycles}_cycle", s15, batch.t[s15]))
    for name, interval in (("1_min", 60.0), ("10_min", 600.0)):
        st, t0 = clock_groups(batch.t, interval)
        groups.append((name, st, t0))
    for name, st, t0 in groups:
        stop = int(st[-1] + 15) if name.endswith("_cycle") else None
        agg = aggregate(scalar, batch.duration, st, stop)
        counts = np.diff(np.append(st, stop if stop is not None else n))
        out[name] = {"t": t0, "windows": counts} | {
            g: {k: v for k, v in d.items() if not k.startswith("_")} for g, d in agg.items()
        }
    return out
