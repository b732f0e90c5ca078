"""An in-memory Modbus line for tests: the role of pymodbus' ``NullModem``, one layer up.

:class:`MemoryLink` satisfies :class:`~meterhub.drivers.modbus.transport.RegisterLink` without a socket:
each unit id is a register image (``(function, address) → 16-bit value``), and a script of
:class:`Fault` entries makes the next requests time out or get an exception response. Errors and
counters are the ones :class:`~meterhub.drivers.modbus.transport.ModbusLink` gives for the same event,
so a :class:`~meterhub.drivers.modbus.source.ModbusSource` built on it behaves as on a real line.

A unit id with no image is silent (an absent RS485 device: a timeout); a read that touches an address
the image does not hold gets exception 02 (illegal data address), as a meter answers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from meterhub.drivers.modbus.errors import LineStats, exception_response, no_response
from meterhub.profiles.schema import Function

__all__ = ["Fault", "MemoryLink"]

_ILLEGAL_ADDRESS = 2


@dataclass(frozen=True)
class Fault:
    """What the next request meets instead of an answer: silence (``timeout``) or an exception code."""

    timeout: bool = False
    exception: int | None = None

    @classmethod
    def silence(cls) -> Fault:
        return cls(timeout=True)

    @classmethod
    def exception_code(cls, code: int) -> Fault:
        return cls(exception=code)


@dataclass
class MemoryLink:
    """Register images by unit id; requests served in order, one at a time."""

    images: dict[int, dict[tuple[Function, int], int]] = field(default_factory=dict)
    timeout: float = 1.0  # [s] only named in messages: nothing waits
    stats: LineStats = field(default_factory=LineStats)
    faults: deque[Fault] = field(default_factory=deque)
    #: every request as (function, unit, start, count), in order
    requests: list[tuple[Function, int, int, int]] = field(default_factory=list)
    closed: int = 0

    @property
    def endpoint(self) -> str:
        return "memory://"

    def set(self, unit: int, function: Function, address: int, registers: Iterable[int]) -> None:
        """Store ``registers`` (16-bit values) from ``address`` in the image of ``unit``."""
        image = self.images.setdefault(unit, {})
        for k, r in enumerate(registers):
            if not 0 <= r <= 0xFFFF:
                raise ValueError(f"register {address + k}: {r} is not a 16-bit value")
            image[(function, address + k)] = r

    def script(self, *faults: Fault) -> None:
        """Make the next ``len(faults)`` requests meet these faults, in order."""
        self.faults.extend(faults)

    def _answer(self, unit: int) -> dict[tuple[Function, int], int]:
        self.stats.requests += 1
        fault = self.faults.popleft() if self.faults else None
        image = self.images.get(unit)
        if (fault is not None and fault.timeout) or image is None:
            self.stats.timeouts += 1
            raise no_response(unit, self.timeout)
        if fault is not None and fault.exception is not None:
            self.stats.errors += 1
            raise exception_response(unit, fault.exception)
        return image

    async def read(self, function: Function, unit: int, start: int, count: int) -> list[int]:
        self.requests.append((function, unit, start, count))
        image = self._answer(unit)
        try:
            values = [image[(function, a)] for a in range(start, start + count)]
        except KeyError:
            self.stats.errors += 1
            raise exception_response(unit, _ILLEGAL_ADDRESS) from None
        # request: unit, FC, start, count; response: unit, FC, byte count, data (RTU-sized, no CRC)
        data = (count + 7) // 8 if function.is_bit else 2 * count
        self.stats.bytes_sent += 6
        self.stats.bytes_received += 3 + data
        return values

    async def write(self, function: Function, unit: int, address: int, values: Sequence[int]) -> None:
        image = self._answer(unit)
        if function not in (Function.HOLDING, Function.COIL):
            self.stats.errors += 1
            raise exception_response(unit, _ILLEGAL_ADDRESS)
        for k, v in enumerate(values):
            image[(function, address + k)] = int(v)

    async def close(self) -> None:
        self.closed += 1
