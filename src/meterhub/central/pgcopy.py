"""PostgreSQL's binary COPY format for central's point rows, built in bulk with numpy.

A binary COPY stream (https://www.postgresql.org/docs/15/sql-copy.html, "Binary Format") is a header
(the 11-byte signature ``PGCOPY\\n\\377\\r\\n\\0``, an int32 flags field, an int32 header-extension
length), then per row an int16 field count and, per field, an int32 byte length and the value in network
byte order, then an int16 −1 trailer. Every field of a point row has a fixed length, so a batch of rows
is one numpy array of a packed big-endian structured dtype: one ``tobytes()`` instead of a Python call
per row and field.

Pure: arrays in, bytes out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["COPY_TYPES", "POINT_ROW", "point_rows"]

#: The PostgreSQL types of a point row, in column order: series, ts [Unix s], value, quality, samples.
COPY_TYPES = ("int8", "int8", "float8", "int2", "int4")
#: One point row as it travels: field count 5, then (length, value) per field, big-endian, unpadded.
POINT_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("series_len", ">i4"),
        ("series", ">i8"),
        ("ts_len", ">i4"),
        ("ts", ">i8"),
        ("value_len", ">i4"),
        ("value", ">f8"),
        ("quality_len", ">i4"),
        ("quality", ">i2"),
        ("samples_len", ">i4"),
        ("samples", ">i4"),
    ]
)
_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_TRAILER = (-1).to_bytes(2, "big", signed=True)
_LIMITS = {
    "series": (-(2**63), 2**63 - 1),
    "ts": (-(2**63), 2**63 - 1),
    "quality": (-(2**15), 2**15 - 1),
    "samples": (-(2**31), 2**31 - 1),
}


def point_rows(
    series: Sequence[int] | np.ndarray,
    ts: Sequence[int] | np.ndarray,
    value: Sequence[float] | np.ndarray,
    quality: Sequence[int] | np.ndarray,
    samples: Sequence[int] | np.ndarray,
) -> bytes:
    """The whole binary COPY stream (header, rows, trailer) of the point rows given column by column.

    series : series ids; ts : interval ends [Unix s]; value : values [the series' unit], finite;
    quality : quality codes; samples : readings aggregated [count]. All of one length.
    Raises ValueError for columns of different lengths, a value that is not finite or an integer out of
    its column's range (numpy would wrap it silently)."""
    try:
        cols = {
            "series": np.asarray(series, dtype=np.int64),
            "ts": np.asarray(ts, dtype=np.int64),
            "value": np.asarray(value, dtype=np.float64),
            "quality": np.asarray(quality, dtype=np.int64),
            "samples": np.asarray(samples, dtype=np.int64),
        }
    except OverflowError as exc:  # a Python integer beyond 64 bits
        raise ValueError(f"a point column is outside 64 bits: {exc}") from None
    n = len(cols["series"])
    if any(c.shape != (n,) for c in cols.values()):
        raise ValueError(f"point columns of different lengths: {[c.shape for c in cols.values()]}")
    if n and not np.isfinite(cols["value"]).all():
        raise ValueError("a point value is not finite")
    for name, (lo, hi) in _LIMITS.items():
        c = cols[name]
        if n and (c.min() < lo or c.max() > hi):
            raise ValueError(f"a point's {name} is outside {lo}…{hi}")
    rows = np.empty(n, dtype=POINT_ROW)
    rows["fields"] = 5
    rows["series_len"] = 8
    rows["ts_len"] = 8
    rows["value_len"] = 8
    rows["quality_len"] = 2
    rows["samples_len"] = 4
    for name, c in cols.items():
        rows[name] = c
    return _HEADER + rows.tobytes() + _TRAILER
