"""Sampled-record readers: CSV, NPZ and COMTRADE (IEEE C37.111 / IEC 60255-24) files.

All return a :class:`Record`: voltages and currents as float64 arrays (channels, samples) in V and A
and the sampling rate. Channel names follow ``v_l1, v_l2, v_l3, i_l1, i_l2, i_l3[, i_n]``; single-phase
records carry ``v_l1, i_l1`` (split-phase ``v_l1, v_l2, i_l1, i_l2``).

* CSV: a header row naming the columns, one row per sample; the sampling rate comes from the caller.
* NPZ: arrays named as above plus a scalar ``fs`` [Hz].
* COMTRADE: ``.cfg`` + ``.dat`` (ASCII or binary, through the ``comtrade`` package). Channels are
  matched by id (``v_l1`` …, or ``UA``/``VA``/``IA``/``IL1`` … with the unit deciding voltage or current)
  and the phase field; kV and kA are converted. The sampling rate is the first rate of the file.

Errors are :class:`RecordError` naming the file and what is wrong.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["VOLTAGE_NAMES", "CURRENT_NAMES", "Record", "RecordError", "read_record"]

F64 = NDArray[np.float64]
VOLTAGE_NAMES = ("v_l1", "v_l2", "v_l3")
CURRENT_NAMES = ("i_l1", "i_l2", "i_l3")


class RecordError(ValueError):
    """A record file that cannot be analysed; the message names the file and the problem."""


@dataclass
class Record:
    """A sampled record.

    fs : sampling rate [Hz]
    voltages : (k, n) phase voltages in name order [V]
    currents : (k, n) phase currents in name order [A]
    neutral : (n,) measured neutral current or None [A]
    names : channel names found, in order voltages, currents, neutral
    """

    fs: float
    voltages: F64
    currents: F64
    neutral: F64 | None
    names: list[str]

    @property
    def current_names(self) -> list[str]:
        return [n for n in self.names if n in CURRENT_NAMES]

    @property
    def samples(self) -> int:
        return int(self.voltages.shape[1])


def _assemble(path: Path, cols: dict[str, F64], fs: float) -> Record:
    if not fs or not np.isfinite(fs) or fs <= 0:
        raise RecordError(f"{path}: sampling rate must be given and positive (use --fs HZ)")
    v_names = [n for n in VOLTAGE_NAMES if n in cols]
    i_names = [n for n in CURRENT_NAMES if n in cols]
    if not v_names or v_names != list(VOLTAGE_NAMES[: len(v_names)]):
        raise RecordError(f"{path}: needs voltage columns v_l1[, v_l2[, v_l3]]; found {sorted(cols)}")
    if i_names and i_names[0] != "i_l1":
        raise RecordError(f"{path}: current columns must start with i_l1; found {i_names}")
    arrays = [cols[n] for n in v_names + i_names]
    n = arrays[0].size
    for name in v_names + i_names:
        if cols[name].size != n:
            raise RecordError(f"{path}: column {name} has {cols[name].size} samples, expected {n}")
        if not np.all(np.isfinite(cols[name])):
            bad = int(np.flatnonzero(~np.isfinite(cols[name]))[0])
            raise RecordError(f"{path}: column {name} has a non-numeric value at sample {bad}")
    neutral = cols.get("i_n")
    names = v_names + i_names + (["i_n"] if neutral is not None else [])
    v = np.vstack([cols[x] for x in v_names]).astype(np.float64)
    i = np.vstack([cols[x] for x in i_names]).astype(np.float64) if i_names else np.zeros((0, n))
    return Record(float(fs), v, i, None if neutral is None else np.asarray(neutral, np.float64), names)


def read_csv(path: Path, fs: float | None) -> Record:
    """Read a CSV record with a header row (columns named as in the module docstring)."""
    try:
        with path.open("r", encoding="utf-8") as fh:
            header = fh.readline()
            names = [h.strip().lower() for h in header.strip().split(",")]
            data = np.loadtxt(fh, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise RecordError(f"{path}: not a numeric CSV after the header row ({exc})") from None
    if data.shape[1] != len(names):
        raise RecordError(f"{path}:2: {data.shape[1]} columns per row but {len(names)} names in the header")
    cols = {n: data[:, k] for k, n in enumerate(names)}
    return _assemble(path, cols, fs or 0.0)


def read_npz(path: Path, fs: float | None) -> Record:
    """Read an ``.npz`` record (arrays ``v_l1`` … and scalar ``fs``; ``fs`` argument overrides)."""
    with np.load(path, allow_pickle=False) as z:
        cols = {k.lower(): np.asarray(z[k], dtype=np.float64).ravel() for k in z.files}
    rate = fs if fs else (float(cols.pop("fs")[0]) if "fs" in cols else 0.0)
    cols.pop("fs", None)
    return _assemble(path, cols, rate)


_PHASE = {"a": "l1", "1": "l1", "l1": "l1", "r": "l1", "b": "l2", "2": "l2", "l2": "l2", "s": "l2",
          "c": "l3", "3": "l3", "l3": "l3", "t": "l3", "n": "n", "0": "n"}  # fmt: skip


def _comtrade_name(cid: str, phase: str, unit: str) -> str | None:
    cid_l = cid.strip().lower()
    if re.fullmatch(r"[vi]_(l[123]|n)", cid_l):
        return cid_l
    u = unit.strip().lower()
    kind = "v" if u in ("v", "kv", "mv") else "i" if u in ("a", "ka", "ma") else None
    if kind is None:
        return None
    ph = _PHASE.get(phase.strip().lower())
    if ph is None:
        m = re.search(r"(l[123]|[abcn123])$", cid_l)
        ph = _PHASE.get(m.group(1)) if m else None
    if ph is None or (kind == "v" and ph == "n"):
        return None
    return f"{kind}_{ph}"


def read_comtrade(path: Path, fs: float | None) -> Record:
    """Read a COMTRADE record given its ``.cfg`` (the ``.dat`` beside it)."""
    import comtrade

    cfg = path if path.suffix.lower() == ".cfg" else path.with_suffix(".cfg")
    if not cfg.exists():
        raise RecordError(f"{path}: COMTRADE configuration file {cfg.name} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = comtrade.Comtrade(ignore_warnings=True, use_numpy_arrays=True, use_double_precision=True)
            rec.load(str(cfg))
    except Exception as exc:  # the package raises bare Exceptions for malformed files
        raise RecordError(f"{cfg}: cannot read COMTRADE record: {exc}") from None
    chans = rec.cfg.analog_channels
    cols: dict[str, F64] = {}
    for k, ch in enumerate(chans):
        name = _comtrade_name(str(ch.name), str(ch.ph or ""), str(ch.uu or ""))
        if name is None or name in cols:
            continue
        scale = 1000.0 if str(ch.uu).strip().lower() in ("kv", "ka") else 1.0
        scale = 0.001 if str(ch.uu).strip().lower() in ("mv", "ma") else scale
        cols[name] = np.asarray(rec.analog[k], dtype=np.float64) * scale
    rates = rec.cfg.sample_rates
    rate = fs or (float(rates[0][0]) if rates and rates[0][0] else 0.0)
    return _assemble(cfg, cols, rate)


def read_record(path: Path, fs: float | None = None) -> Record:
    """Read a record; the format follows the suffix (``.csv``, ``.npz``, ``.cfg``/``.dat``)."""
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path, fs)
    if suffix == ".npz":
        return read_npz(path, fs)
    if suffix in (".cfg", ".dat"):
        return read_comtrade(path, fs)
    raise RecordError(f"{path}: unknown record format {suffix!r}; use .csv, .npz or COMTRADE .cfg/.dat")
