"""Relay (and other) outputs: write, read back, confirm.

Seed 000 §3.4.5: the DIO-4/2 has two passive relay outputs for remote logic control and alarm
linkage. A command is only done when the device holds it: :func:`write_confirmed` writes the coil or
register, reads the same address back and raises :class:`~meterhub.drivers.io.errors.ReadbackMismatch`
when the device holds anything else (a local override, an interlock, a write to the wrong address).

The transport is injected (STYLE.md §4): any object with the two coroutines of :class:`OutputPort` —
the Modbus line :class:`meterhub.drivers.modbus.transport.ModbusLink` has exactly these. Transport
failures become :class:`~meterhub.drivers.io.errors.OutputWriteError` naming the point and address.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from meterhub.drivers.io.config import RelayMode, RelayPoint
from meterhub.drivers.io.errors import OutputWriteError, ReadbackMismatch
from meterhub.model.quantities import Q
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase

__all__ = ["OutputPort", "OutputTarget", "RelayChange", "RelayOutput", "write_confirmed"]

log = logging.getLogger("meterhub.io")


class OutputPort(Protocol):
    """What an output needs from a bus (``function`` is the Modbus table: coil or holding)."""

    async def read(self, function: Any, unit: int, start: int, count: int) -> list[int]: ...

    async def write(self, function: Any, unit: int, address: int, values: Sequence[int]) -> None: ...


@dataclass(frozen=True, slots=True)
class OutputTarget:
    """Where an output lives: device id (for messages), Modbus table, unit id and 0-based address."""

    device: str
    function: Any
    unit: int
    address: int

    def __str__(self) -> str:
        fn = getattr(self.function, "value", self.function)
        return f"device {self.device} (unit {self.unit}) {fn} {self.address} (0x{self.address:04X})"


async def write_confirmed(port: OutputPort, target: OutputTarget, values: Sequence[int]) -> list[int]:
    """Write ``values`` at ``target`` and read them back; return what the device holds.

    Raises :class:`ReadbackMismatch` if the read-back differs, :class:`OutputWriteError` if the write
    or the read fails (the original error is chained).
    """
    wrote = [int(v) for v in values]
    try:
        await port.write(target.function, target.unit, target.address, wrote)
    except Exception as exc:  # a library or transport error, turned into ours at this boundary
        raise OutputWriteError(f"{target}: write {wrote} failed: {exc}") from exc
    try:
        held = await port.read(target.function, target.unit, target.address, len(wrote))
    except Exception as exc:
        raise OutputWriteError(f"{target}: wrote {wrote}, read-back failed: {exc}") from exc
    held = [int(v) for v in held[: len(wrote)]]
    if held != wrote:
        raise ReadbackMismatch(str(target), wrote, held)
    return held


@dataclass(frozen=True, slots=True)
class RelayChange:
    """A confirmed relay state. ts [s]; ``energised`` is the coil state after the command."""

    ts: float
    point: str
    energised: bool

    def reading(self) -> Reading:
        return Reading(self.ts, self.point, Q.RELAY_OUTPUT, Phase.TOTAL, float(self.energised), Quality.GOOD)


class RelayOutput:
    """One relay output of a point (:class:`~meterhub.drivers.io.config.RelayPoint`).

    ``inverted`` points are wired fail-safe: coil value 0 energises the load. ``sleep`` and ``clock``
    are injectable for tests.
    """

    def __init__(
        self,
        point: RelayPoint,
        port: OutputPort,
        target: OutputTarget,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.point = point
        self.port = port
        self.target = target
        self.clock = clock
        self.sleep = sleep
        self._lock = asyncio.Lock()

    def _coil(self, energised: bool) -> int:
        return int(energised != self.point.inverted)

    async def _set(self, energised: bool) -> RelayChange:
        await write_confirmed(self.port, self.target, [self._coil(energised)])
        change = RelayChange(self.clock(), self.point.id, energised)
        log.info("relay %s %s (%s)", self.point.id, "energised" if energised else "released", self.target)
        return change

    async def switch(self, energised: bool) -> RelayChange:
        """Latch the relay on or off and confirm it. A pulse-mode relay only accepts :meth:`pulse`."""
        if self.point.mode is RelayMode.PULSE:
            raise ValueError(f"relay {self.point.id} is a pulse-mode output; use pulse()")
        async with self._lock:
            return await self._set(energised)

    async def pulse(self, duration: float | None = None) -> tuple[RelayChange, RelayChange]:
        """Energise for ``duration`` [s] (default the point's ``pulse_duration``), then release.

        Both edges are confirmed by read-back. The release is attempted even if the wait is cancelled;
        a failed release raises :class:`OutputWriteError` saying the relay may still be energised.
        """
        length = self.point.pulse_duration if duration is None else duration
        if not 0 < length <= 3600:
            raise ValueError(f"pulse duration {length} s is outside 0…3600 s")
        async with self._lock:
            on = await self._set(True)
            try:
                await self.sleep(length)
            finally:
                try:
                    off = await self._set(False)
                except OutputWriteError as exc:
                    raise OutputWriteError(f"relay {self.point.id} may still be energised: {exc}") from exc
            return on, off

    async def state(self) -> bool:
        """Read the relay's present state (True = energised)."""
        try:
            held = await self.port.read(self.target.function, self.target.unit, self.target.address, 1)
        except Exception as exc:
            raise OutputWriteError(f"{self.target}: reading relay {self.point.id} failed: {exc}") from exc
        return bool(held[0]) != self.point.inverted
