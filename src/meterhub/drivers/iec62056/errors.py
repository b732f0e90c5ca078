"""The errors an IEC 62056-21 line reports, in one place (STYLE.md §12).

Every socket or serial exception is turned into one of these at the link boundary, so a caller never
sees an OSError or a pyserial exception. Their families (:mod:`meterhub.errors`) decide the HTTP
status and exit code:

==================  ==================  ==============================================================
error               family              raised for
==================  ==================  ==============================================================
Iec62056Timeout     DeviceTimeoutError  no (complete) answer within the reaction / inter-character time
FrameError          DeviceError         an answer that is not the message expected (garbage, no
                                        identification, a data block without its end line)
BccError            DeviceError         a data message whose block check character does not match
Iec62056LinkError   DeviceError         the TCP endpoint or serial port is not there or was closed
==================  ==================  ==============================================================
"""

from __future__ import annotations

from meterhub.errors import DeviceError, DeviceTimeoutError

__all__ = ["BccError", "FrameError", "Iec62056Error", "Iec62056LinkError", "Iec62056Timeout"]


class Iec62056Error(DeviceError):
    """Base of our IEC 62056-21 errors."""


class Iec62056Timeout(Iec62056Error, DeviceTimeoutError):
    """No answer, or an answer cut off, within the timeout."""


class FrameError(Iec62056Error):
    """Bytes that are not the message the protocol expects at this point."""


class BccError(FrameError):
    """A data message whose block check character does not match its data (IEC 62056-21 §6.3.4)."""


class Iec62056LinkError(Iec62056Error):
    """The endpoint or port cannot be opened, or the peer closed the connection."""
