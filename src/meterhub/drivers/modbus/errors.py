"""The errors a Modbus line reports, in one place (STYLE.md §12), and the line's counters.

Every library or socket exception is turned into one of these at the transport boundary, so a
caller never sees a pymodbus or asyncio exception. They belong to the families of
:mod:`meterhub.errors` (which decide the HTTP status and exit code):

=========================  =======================  ==============================================
error                      family                   raised for
=========================  =======================  ==============================================
ModbusTimeout              DeviceTimeoutError       no answer for this request within the timeout
                                                    (stray frames that arrived meanwhile are named)
ModbusExceptionResponse    DeviceError              an exception response (Modbus Application
                                                    Protocol V1.1b3 §7), with its ``code``
ModbusFrameError           DeviceError              an answer that does not fit the request: wrong
                                                    function, byte count or length, a cut-off frame
ModbusCrcError             DeviceError              an RTU frame whose CRC does not match (Modbus
                                                    over Serial Line V1.02 §2.5.1.2): noise or two
                                                    devices answering at once
ModbusConnectionError      DeviceError              the TCP endpoint or serial port is not there,
                                                    or the peer closed the connection
=========================  =======================  ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass

from meterhub.errors import DeviceError, DeviceTimeoutError

__all__ = [
    "EXCEPTION_NAMES",
    "LineStats",
    "ModbusConnectionError",
    "ModbusCrcError",
    "ModbusError",
    "ModbusExceptionResponse",
    "ModbusFrameError",
    "ModbusTimeout",
    "exception_response",
    "no_response",
]

#: Modbus Application Protocol V1.1b3 §7 exception codes.
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ModbusError(DeviceError):
    """Base of our Modbus errors."""


class ModbusTimeout(ModbusError, DeviceTimeoutError):
    """No answer to this request within the timeout."""


class ModbusExceptionResponse(ModbusError):
    """The device answered with an exception code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class ModbusFrameError(ModbusError):
    """An answer that does not fit the request (function, byte count, length, a cut-off frame)."""


class ModbusCrcError(ModbusFrameError):
    """An RTU frame whose CRC does not match its content."""


class ModbusConnectionError(ModbusError):
    """The endpoint cannot be reached, or the peer closed the connection."""


def no_response(unit: int, timeout: float, why: str = "") -> ModbusTimeout:
    """The error of a request that got no answer (every link words it the same way)."""
    return ModbusTimeout(f"no response from unit {unit} within {timeout:g} s{'; ' + why if why else ''}")


def exception_response(unit: int, code: int) -> ModbusExceptionResponse:
    """The error of an exception response ``code`` (Modbus Application Protocol V1.1b3 §7)."""
    name = EXCEPTION_NAMES.get(code, "unknown exception")
    return ModbusExceptionResponse(code, f"unit {unit}: exception {code:02X} ({name})")


@dataclass
class LineStats:
    """Counters of one line: requests, bytes on the wire (both directions), and what went wrong."""

    requests: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    timeouts: int = 0
    errors: int = 0
    #: frames (or stray bytes) received that answered no request in flight and were dropped:
    #: duplicates, late answers, wrong transaction ids
    discarded: int = 0
    #: time the line was held by requests, from taking the line to the answer or timeout [s]
    busy: float = 0.0

    @property
    def bytes(self) -> int:
        return self.bytes_sent + self.bytes_received

    def as_dict(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "bytes": self.bytes,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "timeouts": self.timeouts,
            "errors": self.errors,
            "discarded": self.discarded,
        }
