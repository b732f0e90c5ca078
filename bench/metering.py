"""Metering benchmark: prints one JSON line per sampling rate.

Workload (issue 3): 64 channels × 10 s — one voltage unit (3 channels) and 61 current channels
(twenty 3P4W circuits and one 1P2W circuit), with voltage and current harmonics, unbalance, an
off-nominal frequency (50.1 Hz) and a 200 ms dip on L2 — analysed end to end by
:class:`meterhub.metering.engine.Analyzer` fed in 1 s blocks: synchronisation, gapless 10-cycle windows,
RMS, IEEE 1459 powers, harmonic subgroups and groups, THD, unbalance, Urms(½) events, four-quadrant
energy. Baseline in the same run: pqopen-lib's ``PowerSystem`` (harmonics to the 50th, energy counters)
over one three-phase system (6 channels) of the same signal, fed in the same blocks.

``channel_seconds_per_second`` = channels × signal seconds / CPU seconds of this process (best of
``--repeat``, the two engines interleaved). Both run single-threaded (BLAS/OpenMP pinned to one thread),
so process CPU time is the one-core time the target speaks of, and it is not inflated when other
processes share the machine (wall time is, on a busy host). Targets: ratio ≥ 50 and ≥ 5 000
channel-seconds per second at 12.8 kHz on one core.

Usage: ``.venv/bin/python bench/metering.py [--seconds 10] [--repeat 3]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core (issue 3)
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from meterhub.metering.engine import Analyzer, CircuitSpec, EngineConfig  # noqa: E402
from meterhub.model.topology import Wiring  # noqa: E402
from meterhub.sim.waveform import Tone, record_3p4w  # noqa: E402

CIRCUITS_3P = 20
CHANNELS = 3 + 3 * CIRCUITS_3P + 1  # 64


def workload(fs: float, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    volts = (
        Tone(231.0, 0.0, {3: (0.01, 0.0), 5: (0.03, 0.0), 7: (0.015, 0.0)}),
        Tone(228.0, -120.5, {5: (0.025, 0.0)}),
        Tone(233.0, 119.5, {5: (0.028, 0.0)}),
    )
    cur = tuple(
        Tone(5.0 + k, a - 25.0 - k, {3: (0.2, 0.0), 5: (0.1, 0.0), 7: (0.05, 0.0)})
        for k in range(CIRCUITS_3P)
        for a in (0.0, -120.0, 120.0)
    ) + (Tone(3.0, -10.0, {3: (0.6, 0.0)}),)
    v, i = record_3p4w(fs=fs, duration=seconds, f=50.1, voltages=volts, currents=cur, theta0=0.4)
    t = np.arange(v.shape[1]) / fs
    v[1, (t >= seconds / 2) & (t < seconds / 2 + 0.2)] *= 0.6
    return v, i


def run_ours(v: np.ndarray, i: np.ndarray, fs: float) -> float:
    specs = [
        CircuitSpec(f"c{k}", Wiring.P3W4, (3 * k, 3 * k + 1, 3 * k + 2), (0, 1, 2))
        for k in range(CIRCUITS_3P)
    ]
    specs.append(CircuitSpec("single", Wiring.P1W2, (3 * CIRCUITS_3P,), (0,)))
    an = Analyzer(EngineConfig(fs=fs), specs, current_channels=i.shape[0])
    block = int(fs)
    t0 = time.process_time()
    events = 0
    for s in range(0, v.shape[1], block):
        events += len(an.feed(v[:, s : s + block], i[:, s : s + block]).events)
    dt = time.process_time() - t0
    if events < 1:
        raise RuntimeError("the dip was not detected")
    return dt


def run_pqopen(v: np.ndarray, i: np.ndarray, fs: float, tmp: Path) -> float:
    from daqopen.channelbuffer import AcqBuffer
    from pqopen.powersystem import PowerSystem

    n = v.shape[1]
    ub = [AcqBuffer(size=n + 16, dtype=np.float64, name=f"u{k}") for k in range(3)]
    ib = [AcqBuffer(size=n + 16, dtype=np.float64, name=f"i{k}") for k in range(3)]
    ps = PowerSystem(zcd_channel=ub[0], input_samplerate=fs, nominal_frequency=50, nper=10)
    for k in range(3):
        ps.add_phase(u_channel=ub[k], i_channel=ib[k])
    ps.enable_harmonic_calculation(50)
    ps.enable_energy_channels(tmp / f"energy-{time.monotonic_ns()}.json")
    block = int(fs)
    t0 = time.process_time()
    for s in range(0, n, block):
        for k in range(3):
            ub[k].put_data(v[k, s : s + block])
            ib[k].put_data(i[k, s : s + block])
        ps.process()
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="meterhub-bench-"))
    for fs in (12800.0, 6400.0):
        v, i = workload(fs, args.seconds)
        ours, base = float("inf"), float("inf")
        for _ in range(args.repeat):  # interleaved, so both see the same conditions
            ours = min(ours, run_ours(v, i, fs))
            base = min(base, run_pqopen(v, i[:3], fs, tmp))
        cps = CHANNELS * args.seconds / ours
        pq = 6 * args.seconds / base
        print(json.dumps({
            "fs": fs,
            "channel_seconds_per_second": round(cps, 1),
            "pqopen_channel_seconds_per_second": round(pq, 1),
            "ratio": round(cps / pq, 2),
        }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
