"""DLMS/COSEM acquisition (IEC 62056-5-3, -6-2; DLMS UA Green and Blue Books): our own client.

Layers (STYLE.md §4): :mod:`.hdlc` (frames, pure) and the TCP wrapper → :mod:`.transport` (APDUs over
HDLC or the wrapper, on the links of :mod:`meterhub.drivers.iec62056.link`) → :mod:`.axdr` / :mod:`.apdu`
(A-XDR data, AARQ/AARE, GET) → :mod:`.client` (association, GET with block transfer, interface classes)
→ the OBIS profile (:mod:`meterhub.profiles.obis`) → :mod:`.source`. Importing this package registers the
source for :data:`~meterhub.config.BusKind.DLMS`.
"""

from __future__ import annotations

from meterhub.config.schema import BusKind
from meterhub.drivers.base import register_source
from meterhub.drivers.dlms.client import DlmsClient
from meterhub.drivers.dlms.errors import (
    DlmsAccessError,
    DlmsApduError,
    DlmsAssociationError,
    DlmsError,
    DlmsFrameError,
    DlmsLinkError,
    DlmsTimeout,
)
from meterhub.drivers.dlms.source import DlmsSource, dlms_sources
from meterhub.drivers.dlms.transport import HdlcTransport, WrapperTransport

__all__ = [
    "DlmsAccessError",
    "DlmsApduError",
    "DlmsAssociationError",
    "DlmsClient",
    "DlmsError",
    "DlmsFrameError",
    "DlmsLinkError",
    "DlmsSource",
    "DlmsTimeout",
    "HdlcTransport",
    "WrapperTransport",
    "dlms_sources",
]

register_source(BusKind.DLMS, dlms_sources)
