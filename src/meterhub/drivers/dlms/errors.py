"""The errors the DLMS/COSEM client reports, in one place (STYLE.md §12).

==========================  ==================  ===========================================================
error                       family              raised for
==========================  ==================  ===========================================================
DlmsTimeout                 DeviceTimeoutError  no (complete) frame or APDU within the timeout
DlmsFrameError              DeviceError         an HDLC frame or wrapper header that is corrupted or not
                                                what the protocol expects (FCS/HCS, length, sequence)
DlmsApduError               DeviceError         an APDU that cannot be decoded (unknown tag, cut off)
DlmsAssociationError        DeviceError (exit 2) the meter refused the association (wrong password,
                                                unknown client), with its diagnostic: the user fixes it
DlmsAccessError             DeviceError         the meter answered a GET with a data-access-result
                                                (object undefined, read denied …)
DlmsLinkError               DeviceError         the endpoint is not there or closed the connection
==========================  ==================  ===========================================================
"""

from __future__ import annotations

from meterhub.errors import DeviceError, DeviceTimeoutError

__all__ = [
    "DlmsAccessError",
    "DlmsApduError",
    "DlmsAssociationError",
    "DlmsError",
    "DlmsFrameError",
    "DlmsLinkError",
    "DlmsTimeout",
]


class DlmsError(DeviceError):
    """Base of our DLMS/COSEM errors."""


class DlmsTimeout(DlmsError, DeviceTimeoutError):
    """No answer within the timeout."""


class DlmsFrameError(DlmsError):
    """A frame that is corrupted or out of sequence."""


class DlmsApduError(DlmsError):
    """An APDU that cannot be decoded."""


class DlmsAssociationError(DlmsError):
    """The association (AARQ) was refused: a device's answer (HTTP 502), but one the user fixes in the
    configuration (password, client SAP), so the CLI exits with 2."""

    exit_code = 2

    def __init__(self, message: str, diagnostic: int | None = None) -> None:
        super().__init__(message)
        self.diagnostic = diagnostic


class DlmsAccessError(DlmsError):
    """A data-access-result other than success (Blue Book / Green Book §9.3: DataAccessResult)."""

    def __init__(self, message: str, result: int) -> None:
        super().__init__(message)
        self.result = result


class DlmsLinkError(DlmsError):
    """The endpoint cannot be reached or closed the connection."""
