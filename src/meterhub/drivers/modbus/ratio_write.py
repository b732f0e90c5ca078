"""Put a CT or VT ratio into a device that applies it itself, where its profile names the register.

A device that reports primary values (``transformers.values: primary``) scales by the ratio set in
it; meterhub cannot apply another one. When the profile names the register that holds the ratio
(``transformers.ct_register`` / ``vt_register``, cited from the vendor table), a ratio change is written
there over the line the bus's source already polls (so it waits behind at most one request in flight)
and read back: the change counts only when the device kept it.
"""

from __future__ import annotations

import math

from meterhub.config.types import Ratio
from meterhub.drivers.io.relay import OutputPort
from meterhub.drivers.modbus.codec import CodecError, decode, encode
from meterhub.drivers.modbus.errors import ModbusError
from meterhub.errors import DeviceError
from meterhub.profiles.datatypes import WordOrder, register_count
from meterhub.profiles.schema import RatioRegister

__all__ = ["RatioWriteError", "register_value", "write_ratio"]


class RatioWriteError(DeviceError):
    """A ratio could not be written to the device, or the device did not keep it."""


def register_value(register: RatioRegister, ratio: Ratio) -> float:
    """What ``register`` holds for ``ratio``: its rated primary [A or V] or primary/secondary [-]."""
    return ratio.primary if register.holds == "primary" else ratio.value


async def write_ratio(
    port: OutputPort,
    unit: int,
    register: RatioRegister,
    ratio: Ratio,
    *,
    word_order: WordOrder,
    what: str = "CT",
) -> float:
    """Write ``ratio`` into ``register`` of the device at ``unit`` and read it back.

    Returns the value the device holds now [A, V or -]. Raises :class:`RatioWriteError` naming the
    register when the line fails, the device refuses the write, or it reads back something else.
    """
    value = register_value(register, ratio)
    words = register.word_order or word_order
    where = f"{register.function.value} register 0x{register.address:04X}"
    try:
        regs = encode(value, register.type, word_order=words, saturate=False)
    except CodecError as exc:
        raise RatioWriteError(f"{what} ratio: {value:g} does not fit {where} ({exc})") from None
    try:
        await port.write(register.function, unit, register.address, regs)
        back = await port.read(register.function, unit, register.address, register_count(register.type))
    except ModbusError as exc:
        raise RatioWriteError(f"{what} ratio not written to {where} of unit {unit}: {exc}") from None
    kept = decode(back, register.type, word_order=words)
    # a float32 register keeps 24 bits: 1000.0 comes back exactly, 0.333 within 2⁻²⁴
    if not math.isclose(kept, value, rel_tol=1e-6, abs_tol=1e-9):
        raise RatioWriteError(
            f"{what} ratio: unit {unit} kept {kept:g} in {where} after {value:g} was written"
        )
    return kept
