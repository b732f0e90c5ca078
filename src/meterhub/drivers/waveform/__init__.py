"""Waveform acquisition: an ADC board's sampled V and I, metered by :mod:`meterhub.metering` (issue 3).

Modules: :mod:`.protocol` (the board's frame format and the client's resume request: encode, decode,
resynchronising reader) and
:mod:`.source` (the :class:`~meterhub.drivers.base.Source` for ``waveform`` buses). Importing this package
registers the source for :data:`~meterhub.config.BusKind.WAVEFORM`; the source module and the waveform
engine behind it (numpy, scipy.fft) load when a site has a waveform bus, not on every gateway.
"""

from __future__ import annotations

from meterhub.config.schema import BusKind
from meterhub.drivers.base import Source, SourceContext, register_source
from meterhub.drivers.waveform.protocol import (
    Frame,
    FrameError,
    FrameReader,
    decode_frame,
    decode_request,
    encode_frame,
    encode_request,
)

__all__ = [
    "Frame",
    "FrameError",
    "FrameReader",
    "decode_frame",
    "decode_request",
    "encode_frame",
    "encode_request",
]


def _waveform_sources(ctx: SourceContext) -> list[Source]:
    # lazy: the engine (scipy.fft and its numpy.testing imports, ~15 MB resident) loads only for waveform buses
    from meterhub.drivers.waveform.source import waveform_sources

    return list(waveform_sources(ctx))


register_source(BusKind.WAVEFORM, _waveform_sources)
