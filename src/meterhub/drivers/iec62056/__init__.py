"""IEC 62056-21 (formerly IEC 61107) acquisition: optical-port readout of meters in modes A, B and C,
and the switch to mode E (binary HDLC, for the DLMS/COSEM client).

Layers (STYLE.md §4): :mod:`.protocol` (messages, pure) → :mod:`.link` (TCP or a 7E1 serial port; typed
errors from :mod:`.errors`) → :mod:`.client` (the readout procedure) → the OBIS profile
(:mod:`meterhub.profiles.obis`, code → catalogue quantity with units checked) → :mod:`.source`.
Importing this package registers the source for :data:`~meterhub.config.BusKind.IEC62056_21`.
"""

from __future__ import annotations

from meterhub.config.schema import BusKind
from meterhub.drivers.base import register_source
from meterhub.drivers.iec62056.client import Readout, read_out, switch_to_mode_e
from meterhub.drivers.iec62056.errors import (
    BccError,
    FrameError,
    Iec62056Error,
    Iec62056LinkError,
    Iec62056Timeout,
)
from meterhub.drivers.iec62056.link import Link, SerialLink, TcpLink
from meterhub.drivers.iec62056.source import Iec62056Source, iec62056_sources

__all__ = [
    "BccError",
    "FrameError",
    "Iec62056Error",
    "Iec62056LinkError",
    "Iec62056Source",
    "Iec62056Timeout",
    "Link",
    "Readout",
    "SerialLink",
    "TcpLink",
    "iec62056_sources",
    "read_out",
    "switch_to_mode_e",
]

register_source(BusKind.IEC62056_21, iec62056_sources)
