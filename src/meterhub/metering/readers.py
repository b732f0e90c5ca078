"""Sampled-record readers: CSV, NPZ and COMTRADE (IEEE C37.111 / IEC 60255-24) files.

All return a :class:`Record`: voltages and currents as float64 arrays (channels, samples) in V and A
and the sampling rate. Channel names follow ``v_l1, v_l2, v_l3, i_l1, i_l2, i_l3[, i_n]``; single-phase
records carry ``v_l1, i_l1`` (split-phase ``v_l1, v_l2, i_l1, i_l2``).

* CSV: a header row naming the columns, one row per sample; the sampling rate comes from the caller.
* NPZ: arrays named as above plus a scalar ``fs`` [Hz].
* COMTRADE: ``.cfg`` + ``.dat`` (ASCII or binary, through the ``comtrade`` package). Channels are
  matched by id (``v_l1`` …, or ``UA``/``VA``/``IA``/``IL1`` … with the unit deciding voltage or current)
  and the phase field; kV and kA are converted. The sampling rate is the first rate of the file.

Errors are :class:`RecordError` (an :class:`~meterhub.errors.InputError`) naming the file and what is
wrong: the line of a bad CSV row, the array of a bad NPZ member (complex, object or string values,
more than one dimension, truncated), the sample of a NaN; nothing else escapes the readers.
"""

from __future__ import annotations

import re
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tokenize import TokenError

import numpy as np
from numpy.typing import NDArray

from meterhub.errors import InputError

__all__ = ["VOLTAGE_NAMES", "CURRENT_NAMES", "Record", "RecordError", "read_record"]

F64 = NDArray[np.float64]
VOLTAGE_NAMES = ("v_l1", "v_l2", "v_l3")
CURRENT_NAMES = ("i_l1", "i_l2", "i_l3")
_CHANNELS = frozenset((*VOLTAGE_NAMES, *CURRENT_NAMES, "i_n"))


class RecordError(InputError):
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


FS_RANGE = (500.0, 1e7)
"""Sampling rates a record may have [Hz]: at least 10 samples per cycle of 50 Hz, at most 10 MHz."""
MAX_ABS = 1e9
"""Largest magnitude of a sample [V or A]: beyond it a value is corrupt, not a measurement."""
MAX_ARRAY_BYTES = 1 << 31
"""Largest array of an NPZ record [bytes] (checked against its header before it is allocated)."""


def _assemble(
    path: Path, cols: dict[str, F64], fs: float, where: Callable[[int], str] | None = None
) -> Record:
    """Check the columns and build the record; ``where(k)`` names sample k's place in the file."""
    place = where or (lambda k: f"sample {k}")
    if not fs:
        raise RecordError(f"{path}: sampling rate must be given (use --fs HZ)")
    if not (np.isfinite(fs) and FS_RANGE[0] <= fs <= FS_RANGE[1]):
        raise RecordError(f"{path}: sampling rate {fs:g} Hz outside {FS_RANGE[0]:g}…{FS_RANGE[1]:g} Hz")
    v_names = [n for n in VOLTAGE_NAMES if n in cols]
    i_names = [n for n in CURRENT_NAMES if n in cols]
    if not v_names or v_names != list(VOLTAGE_NAMES[: len(v_names)]):
        raise RecordError(f"{path}: needs voltage columns v_l1[, v_l2[, v_l3]]; found {sorted(cols)}")
    if i_names and i_names != list(CURRENT_NAMES[: len(i_names)]):
        raise RecordError(f"{path}: current columns must be i_l1[, i_l2[, i_l3]]; found {i_names}")
    n = cols[v_names[0]].size
    if n == 0:
        raise RecordError(f"{path}: the record holds no samples")
    used = v_names + i_names + (["i_n"] if "i_n" in cols else [])
    for name in used:
        x = cols[name]
        if x.size != n:
            raise RecordError(f"{path}: column {name} has {x.size} samples, expected {n}")
        bad = np.flatnonzero(~np.isfinite(x))
        if bad.size:
            k = int(bad[0])
            raise RecordError(f"{path}: column {name} has a non-finite value ({x[k]}) at {place(k)}")
        big = np.flatnonzero(np.abs(x) > MAX_ABS)
        if big.size:
            k = int(big[0])
            raise RecordError(f"{path}: column {name} has {x[k]:g} at {place(k)}, beyond ±{MAX_ABS:g}")
    neutral = cols.get("i_n")
    v = np.vstack([cols[x] for x in v_names]).astype(np.float64)
    i = np.vstack([cols[x] for x in i_names]).astype(np.float64) if i_names else np.zeros((0, n))
    return Record(float(fs), v, i, None if neutral is None else np.asarray(neutral, np.float64), used)


def _data_lines(lines: list[str]) -> tuple[list[str], list[int]]:
    """The data rows after the header (blank and ``#`` comment lines left out) and their line numbers."""
    rows: list[str] = []
    numbers: list[int] = []
    for no, line in enumerate(lines[1:], start=2):
        if line.split("#", 1)[0].strip():
            rows.append(line)
            numbers.append(no)
    return rows, numbers


def _first_bad_row(path: Path, rows: list[str], numbers: list[int], width: int) -> RecordError | None:
    """The error of the first row that is not ``width`` comma-separated numbers, or None."""
    for line, no in zip(rows, numbers, strict=True):
        cells = line.split("#", 1)[0].split(",")
        if len(cells) != width:
            return RecordError(f"{path}:{no}: {len(cells)} values, the header names {width} columns")
        for col, cell in enumerate(cells, start=1):
            try:
                float(cell)
            except ValueError:
                return RecordError(f"{path}:{no}: column {col} is not a number: {cell.strip()[:40]!r}")
    return None


def read_csv(path: Path, fs: float | None) -> Record:
    """Read a CSV record with a header row (columns named as in the module docstring)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RecordError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise RecordError(f"{path}:1: empty; expected a header row naming the columns (v_l1,…,i_l1,…)")
    names = [h.strip().lower() for h in lines[0].split(",")]
    if "" in names:
        raise RecordError(f"{path}:1: the header has an empty column name")
    twice = sorted({x for x in names if names.count(x) > 1})
    if twice:
        raise RecordError(f"{path}:1: column(s) {', '.join(twice)} named more than once")
    rows, numbers = _data_lines(lines)
    if not rows:
        raise RecordError(f"{path}: no data rows after the header")
    try:
        data = np.loadtxt(rows, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise (_first_bad_row(path, rows, numbers, len(names)) or RecordError(f"{path}: {exc}")) from None
    if data.shape[1] != len(names):
        bad = _first_bad_row(path, rows, numbers, len(names))
        raise bad or RecordError(f"{path}:2: {data.shape[1]} values per row, the header names {len(names)}")
    cols = {n: data[:, k] for k, n in enumerate(names)}
    return _assemble(path, cols, fs or 0.0, lambda k: f"line {numbers[k]}")


def _npz_array(path: Path, z: zipfile.ZipFile, info: zipfile.ZipInfo) -> NDArray[np.generic]:
    """One member of an NPZ archive, checked before it is allocated."""
    key = info.filename.removesuffix(".npy")
    try:
        with z.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(
                    f"format version {version[0]}.{version[1]} (only 1.0 and 2.0 hold plain numbers)"
                )
    # numpy parses the header with ast.literal_eval: a garbled one raises SyntaxError, TokenError, TypeError …
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, SyntaxError, TokenError, TypeError,
            KeyError, RecursionError) as exc:  # fmt: skip
        raise RecordError(f"{path}: array {key!r} is not a readable .npy array ({exc})") from None
    if dtype.hasobject or dtype.kind not in "biufc":
        raise RecordError(f"{path}: array {key!r} holds {dtype} values, not numbers")
    if dtype.kind == "c":
        raise RecordError(
            f"{path}: array {key!r} is complex ({dtype}); samples must be real (the imaginary part "
            "would be lost)"
        )
    size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if size > min(MAX_ARRAY_BYTES, info.file_size):
        raise RecordError(f"{path}: array {key!r} claims shape {shape} of {dtype}, more than the file holds")
    try:
        with z.open(info) as fh:
            return np.asarray(np.lib.format.read_array(fh, allow_pickle=False))
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise RecordError(f"{path}: array {key!r} is truncated or corrupt ({exc})") from None


def read_npz(path: Path, fs: float | None) -> Record:
    """Read an ``.npz`` record (arrays ``v_l1`` … and scalar ``fs``; ``fs`` argument overrides).

    Every channel is a one-dimensional array of real numbers; complex, object, string, multi-dimensional
    or truncated arrays are refused with what is wrong.
    """
    arrays: dict[str, NDArray[np.generic]] = {}
    try:
        with zipfile.ZipFile(path) as z:
            members = [m for m in z.infolist() if not m.is_dir()]
            for info in members:
                key = info.filename.removesuffix(".npy").lower()
                if key not in _CHANNELS and key != "fs":
                    continue  # other arrays (metadata) are not read
                if key in arrays:
                    raise RecordError(f"{path}: array {key!r} stored more than once")
                arrays[key] = _npz_array(path, z, info)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as exc:
        if isinstance(exc, RecordError):
            raise
        size = path.stat().st_size
        what = "an empty file" if size == 0 else f"not a valid .npz (zip) archive ({exc})"
        raise RecordError(f"{path}: {what}") from None
    if not arrays:
        raise RecordError(f"{path}: the archive holds none of the arrays v_l1 … i_n, fs")
    rate = 0.0
    stored = arrays.pop("fs", None)
    if stored is not None:
        if stored.size != 1 or stored.dtype.kind not in "iuf":
            raise RecordError(
                f"{path}: 'fs' must be one real number [Hz], got shape {stored.shape} {stored.dtype}"
            )
        rate = float(stored.reshape(-1)[0])
    if fs:
        rate = fs
    elif stored is None:
        raise RecordError(f"{path}: no 'fs' array (sampling rate [Hz]) in the archive; give --fs HZ")
    cols: dict[str, F64] = {}
    for key, x in arrays.items():
        if key not in _CHANNELS:
            continue
        if x.ndim != 1:
            raise RecordError(f"{path}: array {key!r} has shape {x.shape}; a channel is one-dimensional (n,)")
        cols[key] = x.astype(np.float64)
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
    import comtrade  # lazy: the COMTRADE parser loads only for .cfg/.dat records

    cfg = path if path.suffix.lower() == ".cfg" else path.with_suffix(".cfg")
    if not cfg.exists():
        raise RecordError(f"{path}: COMTRADE configuration file {cfg.name} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = comtrade.Comtrade(ignore_warnings=True, use_numpy_arrays=True, use_double_precision=True)
            rec.load(str(cfg))
            chans = rec.cfg.analog_channels
            cols: dict[str, F64] = {}
            for k, ch in enumerate(chans):
                name = _comtrade_name(str(ch.name), str(ch.ph or ""), str(ch.uu or ""))
                if name is None or name in cols:
                    continue
                scale = 1000.0 if str(ch.uu).strip().lower() in ("kv", "ka") else 1.0
                scale = 0.001 if str(ch.uu).strip().lower() in ("mv", "ma") else scale
                cols[name] = np.asarray(rec.analog[k], dtype=np.float64).reshape(-1) * scale
            rates = rec.cfg.sample_rates
            rate = fs or (float(rates[0][0]) if rates and rates[0][0] else 0.0)
    except RecordError:
        raise
    except Exception as exc:  # the package raises bare Exceptions (and others) for malformed files
        detail = str(exc) or type(exc).__name__
        raise RecordError(f"{cfg}: cannot read COMTRADE record: {detail}") from None
    return _assemble(cfg, cols, rate)


def read_record(path: Path, fs: float | None = None) -> Record:
    """Read a record; the format follows the suffix (``.csv``, ``.npz``, ``.cfg``/``.dat``).

    Any problem with the file is a :class:`RecordError` naming it (and the line, array or sample).
    """
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    if path.is_dir():
        raise RecordError(f"{path}: a directory, not a record file")
    if fs is not None and not (np.isfinite(fs) and fs > 0):
        raise RecordError(f"{path}: sampling rate {fs:g} Hz must be a positive number")
    suffix = path.suffix.lower()
    readers = {".csv": read_csv, ".npz": read_npz, ".cfg": read_comtrade, ".dat": read_comtrade}
    reader = readers.get(suffix)
    if reader is None:
        raise RecordError(f"{path}: unknown record format {suffix!r}; use .csv, .npz or COMTRADE .cfg/.dat")
    try:
        return reader(path, fs)
    except OSError as exc:
        raise RecordError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except MemoryError:
        raise RecordError(f"{path}: too large to analyse in memory") from None
