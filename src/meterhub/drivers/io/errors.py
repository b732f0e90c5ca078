"""The exceptions of the IO drivers, in one place (STYLE.md §12).

::

    IOPointError                 anything that went wrong with one IO point
    ├── OutputWriteError         the write (or its read-back) did not reach the device
    │   └── ReadbackMismatch     the device answered, but holds another value than was written
    └── OneWireError             a 1-wire probe could not be read
        ├── ProbeMissing         no such probe under the sysfs root (unplugged, wrong id)
        ├── ProbeCrcError        the scratchpad CRC failed (noise, long cable, weak pull-up)
        ├── ProbePowerOnValue    85 °C power-on reset value: no conversion took place
        └── ProbeFormatError     the w1_slave text is not what the kernel driver writes

Every message names the point (or probe) and where it is, so a log line is enough to act on.
"""

from __future__ import annotations

__all__ = [
    "IOPointError",
    "OneWireError",
    "OutputWriteError",
    "ProbeCrcError",
    "ProbeFormatError",
    "ProbeMissing",
    "ProbePowerOnValue",
    "ReadbackMismatch",
]


class IOPointError(Exception):
    """An IO point could not be read or written."""


class OutputWriteError(IOPointError):
    """Writing an output failed: the device did not accept it or could not be reached."""


class ReadbackMismatch(OutputWriteError):
    """The output was written, but reading it back gives another value.

    Attributes: ``where`` (device, function, address), ``wrote`` and ``read`` (register or coil values).
    """

    def __init__(self, where: str, wrote: list[int], read: list[int]) -> None:
        super().__init__(f"{where}: wrote {wrote} but read back {read}")
        self.where = where
        self.wrote = wrote
        self.read = read


class OneWireError(IOPointError):
    """A 1-wire probe could not be read. ``sensor`` is its w1 id, e.g. ``28-0316a2795bff``."""

    def __init__(self, sensor: str, message: str) -> None:
        super().__init__(f"1-wire probe {sensor}: {message}")
        self.sensor = sensor


class ProbeMissing(OneWireError):
    pass


class ProbeCrcError(OneWireError):
    pass


class ProbePowerOnValue(OneWireError):
    pass


class ProbeFormatError(OneWireError):
    pass
