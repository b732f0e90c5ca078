"""Waveform acquisition: an ADC board's sampled V and I, metered by :mod:`meterhub.metering` (issue 3).

Modules: :mod:`.protocol` (the board's frame format and the client's resume request: encode, decode,
resynchronising reader) and
:mod:`.source` (the :class:`~meterhub.drivers.base.Source` for ``waveform`` buses). Importing this package
registers the source for :data:`~meterhub.config.BusKind.WAVEFORM`.
"""

from __future__ import annotations

from meterhub.drivers.waveform.protocol import (
    Frame,
    FrameError,
    FrameReader,
    decode_frame,
    decode_request,
    encode_frame,
    encode_request,
)
from meterhub.drivers.waveform.source import WaveformSource, interval_values, readings_of, waveform_sources

__all__ = [
    "Frame",
    "FrameError",
    "FrameReader",
    "WaveformSource",
    "decode_frame",
    "decode_request",
    "encode_frame",
    "encode_request",
    "interval_values",
    "readings_of",
    "waveform_sources",
]
