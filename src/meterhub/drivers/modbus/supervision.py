"""Bus supervision: a running line is watched for new, vanished and doubly used addresses (issue 13).

Seed 000 §9 asks the gateway to notice modules added to or removed from a bus and two modules on one
address. What a master can see of that on a half-duplex line (Modbus over Serial Line V1.02 §2.1):

* **new device**: an address that is not configured answers. Only a request to that address can show
  it, so this needs the optional background scan (``scan:`` on the bus, :class:`BusScanner`), which
  probes the configured ``range`` one address at a time, through the same link as polling (one master
  at a time), spending at most ``share`` of the line's time.
* **vanished**: a configured device that answered since the start stops answering (the scheduler
  takes it offline after ``retries + 1`` failed polls). It is back when it answers again.
* **address conflict**: two devices answering one request at once garble the frame: the master sees a
  CRC error or a cut-off frame (§2.5.1.2). One bad frame is noise on a long RS485 line; at least
  :data:`CONFLICT_FRAMES` unreadable answers from one address within :data:`CONFLICT_WINDOW` seconds are
  a conflict. Two identities read from one address (serial numbers that disagree) are one too. A
  conflict ends after :data:`CONFLICT_HOLD` seconds without another sign of it.

Each change is a :class:`BusEvent` (kept, newest last, for the devices page) and the current sets
(``new``, ``vanished``, ``conflicts``) are the conditions of the system alarms "bus: new device",
"bus: device vanished" and "bus: address conflict" (:mod:`meterhub.alarms.system`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from meterhub.drivers.modbus.errors import (
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusTimeout,
)
from meterhub.drivers.modbus.scan import ScanHit, scan_line
from meterhub.drivers.modbus.transport import LineStats, RegisterLink
from meterhub.profiles.schema import Function, Profile

__all__ = [
    "CONFLICT_FRAMES",
    "CONFLICT_HOLD",
    "CONFLICT_WINDOW",
    "BusEvent",
    "BusEventKind",
    "BusScanner",
    "BusWatch",
    "WatchedLink",
]

log = logging.getLogger("meterhub.modbus")

#: Unreadable answers from one address that make a conflict [count] ...
CONFLICT_FRAMES = 2
#: ... within this long [s].
CONFLICT_WINDOW = 300.0
#: A conflict ends after this long without a new sign of it [s].
CONFLICT_HOLD = 300.0
#: Events kept per bus for the devices page [count].
HISTORY = 200


class BusEventKind(enum.StrEnum):
    NEW_DEVICE = "new_device"  # an address that is not configured answers
    GONE = "gone"  # an address found by the scan stopped answering
    VANISHED = "vanished"  # a configured device that answered stopped answering
    BACK = "back"  # a vanished device answers again
    CONFLICT = "conflict"  # two devices on one address
    CONFLICT_CLEARED = "conflict_cleared"


@dataclass(frozen=True)
class BusEvent:
    """One change on a bus: when (Unix time [s]), what, at which address, which configured device."""

    ts: float
    bus: str
    kind: BusEventKind
    unit: int
    device: str | None
    message: str

    def as_dict(self) -> dict[str, object]:
        return {
            "ts": self.ts,
            "bus": self.bus,
            "kind": self.kind.value,
            "unit": self.unit,
            "device": self.device,
            "message": self.message,
        }


@dataclass
class BusWatch:
    """What is known of one line's addresses (see the module docstring).

    ``configured``: unit id → the configured device at it. ``clock``: Unix time [s].
    """

    bus: str
    configured: dict[int, str]
    clock: Callable[[], float] = time.time
    #: unit → (since [s], message): unconfigured addresses that answer
    new: dict[int, tuple[float, str]] = field(default_factory=dict)
    #: unit → (since [s], message): configured devices that answered and stopped
    vanished: dict[int, tuple[float, str]] = field(default_factory=dict)
    #: unit → (last sign [s], message)
    conflicts: dict[int, tuple[float, str]] = field(default_factory=dict)
    events: deque[BusEvent] = field(default_factory=lambda: deque(maxlen=HISTORY))
    #: units that answered at least once since the start
    seen: set[int] = field(default_factory=set)
    #: the background scan's counters (probes, sweeps, busy_s: its time on the line [s]); empty: no scan
    scan: dict[str, float] = field(default_factory=dict)
    _frames: dict[int, deque[float]] = field(default_factory=dict)

    def _event(self, kind: BusEventKind, unit: int, message: str, ts: float) -> None:
        ev = BusEvent(ts, self.bus, kind, unit, self.configured.get(unit), message)
        self.events.append(ev)
        level = (
            logging.INFO if kind in (BusEventKind.BACK, BusEventKind.CONFLICT_CLEARED) else logging.WARNING
        )
        log.log(level, "bus %s: %s", self.bus, message)

    def _name(self, unit: int) -> str:
        dev = self.configured.get(unit)
        return f"address {unit} ({dev})" if dev else f"address {unit}"

    def answered(self, unit: int, ts: float | None = None, what: str = "") -> None:
        """``unit`` gave a readable answer (data or a Modbus exception); ``what`` it seems to be."""
        ts = self.clock() if ts is None else ts
        self.seen.add(unit)
        if unit in self.vanished:
            del self.vanished[unit]
            self._event(BusEventKind.BACK, unit, f"{self._name(unit)} answers again", ts)
        if unit not in self.configured and unit not in self.new:
            msg = f"a device that is not configured answers at address {unit}{': ' + what if what else ''}"
            self.new[unit] = (ts, msg)
            self._event(BusEventKind.NEW_DEVICE, unit, msg, ts)

    def silent(self, unit: int, ts: float | None = None, why: str = "") -> None:
        """``unit`` stopped answering (a configured device went offline, a scanned address timed out)."""
        ts = self.clock() if ts is None else ts
        reason = f": {why}" if why else ""
        if unit in self.new:
            del self.new[unit]
            self.seen.discard(unit)
            self._event(
                BusEventKind.GONE, unit, f"the device at address {unit} no longer answers{reason}", ts
            )
            return
        if unit in self.configured and unit in self.seen and unit not in self.vanished:
            msg = f"{self._name(unit)} answered before and no longer does{reason}"
            self.vanished[unit] = (ts, msg)
            self._event(BusEventKind.VANISHED, unit, msg, ts)

    def garbled(self, unit: int, why: str, ts: float | None = None) -> None:
        """An unreadable answer from ``unit`` (bad CRC, cut-off frame): a conflict once it repeats."""
        ts = self.clock() if ts is None else ts
        frames = self._frames.setdefault(unit, deque(maxlen=CONFLICT_FRAMES))
        frames.append(ts)
        if len(frames) >= CONFLICT_FRAMES and ts - frames[0] <= CONFLICT_WINDOW:
            self.conflict(
                unit, f"{len(frames)} unreadable answers within {ts - frames[0]:.0f} s, last: {why}", ts
            )

    def conflict(self, unit: int, why: str, ts: float | None = None) -> None:
        """Two devices on ``unit``'s address (garbled frames, identities that disagree)."""
        ts = self.clock() if ts is None else ts
        msg = f"two devices at {self._name(unit)}? {why}"
        if unit not in self.conflicts:
            self._event(BusEventKind.CONFLICT, unit, msg, ts)
        self.conflicts[unit] = (ts, msg)

    def expire(self, now: float | None = None) -> None:
        """End the conflicts without a sign for :data:`CONFLICT_HOLD` seconds."""
        now = self.clock() if now is None else now
        for unit, (last, _) in list(self.conflicts.items()):
            if now - last > CONFLICT_HOLD:
                del self.conflicts[unit]
                self._frames.pop(unit, None)
                self._event(
                    BusEventKind.CONFLICT_CLEARED,
                    unit,
                    f"no sign of two devices at {self._name(unit)} for {CONFLICT_HOLD:.0f} s",
                    now,
                )

    def snapshot(self) -> dict[str, object]:
        """The state for the API: current sets and the recent events (newest last)."""
        self.expire()

        def rows(d: dict[int, tuple[float, str]]) -> list[dict[str, object]]:
            return [
                {"unit": u, "device": self.configured.get(u), "since": ts, "message": m}
                for u, (ts, m) in sorted(d.items())
            ]

        return {
            "bus": self.bus,
            "new": rows(self.new),
            "vanished": rows(self.vanished),
            "conflicts": rows(self.conflicts),
            "events": [e.as_dict() for e in self.events],
        }


class WatchedLink:
    """A :class:`RegisterLink` that tells a :class:`BusWatch` of every unreadable answer it carries
    (the scheduler and the serial-number reads go through it; the line is the wrapped link's)."""

    def __init__(self, link: RegisterLink, watch: BusWatch) -> None:
        self.link = link
        self.watch = watch
        self.stats: LineStats = link.stats  # the same counters: one line

    @property
    def endpoint(self) -> str:
        return self.link.endpoint

    async def read(self, function: Function, unit: int, start: int, count: int) -> list[int]:
        try:
            return await self.link.read(function, unit, start, count)
        except ModbusFrameError as exc:
            self.watch.garbled(unit, str(exc))
            raise

    async def write(self, function: Function, unit: int, address: int, values: Sequence[int]) -> None:
        await self.link.write(function, unit, address, values)

    async def close(self) -> None:
        await self.link.close()


class BusScanner:
    """The background scan of one line (``scan:`` on the bus; see the module docstring).

    It probes each unconfigured address of ``units`` in turn with a read of one holding register at 0:
    any readable answer (values or a Modbus exception) means a device is there, silence that nobody is,
    a garbled answer a device (or two) is. A device found anew is identified against ``profiles``
    (:func:`meterhub.drivers.modbus.scan.scan_line`: "sure" only where a model-code register matched,
    else "likely"). After each probe it waits so that its own requests take at most ``share`` of the
    time: a probe (with its identification) that took *t* seconds is followed by a pause of
    *t* · (1 − share) / share. It never ends by itself; cancel it.
    """

    def __init__(
        self,
        link: RegisterLink,
        watch: BusWatch,
        units: Iterable[int],
        *,
        share: float,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
        profiles: Sequence[Profile] = (),
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"scan share {share} must be within (0, 1]")
        self.link = link
        self.watch = watch
        self.units = [u for u in units if u not in watch.configured]
        self.share = share
        self.profiles = list(profiles)
        self.monotonic = monotonic
        self._sleep = sleep
        self.busy = 0.0  # time spent in probes [s]
        self.probes = 0
        self.sweeps = 0  # complete passes over the range

    async def probe(self, unit: int) -> bool | None:
        """Probe ``unit`` once: True (a device answers), False (silent), None (line not reachable)."""
        try:
            await self.link.read(Function.HOLDING, unit, 0, 1)
        except ModbusTimeout:
            return False
        except ModbusExceptionResponse as exc:
            return exc.code not in (10, 11)  # a TCP gateway saying that nobody is at this unit
        except ModbusFrameError as exc:
            self.watch.garbled(unit, str(exc))
            return True
        except ModbusConnectionError:
            return None
        except ModbusError:
            return True
        return True

    async def identify(self, unit: int) -> str:
        """What the device at ``unit`` seems to be, in words ("" when nothing matched)."""
        try:
            result = await scan_line(self.link, [unit], self.profiles)
        except ModbusError as exc:
            return f"not identified ({exc})"
        hit: ScanHit | None = result.hits[0] if result.hits else None
        if hit is None or not hit.profiles:
            return "no known profile matches"
        if hit.sure:
            return f"{', '.join(hit.sure)} (sure: its model code matches)"
        return f"likely {' or '.join(hit.likely)} (plausible values, no model code to be sure)"

    async def step(self, unit: int) -> None:
        """Probe one address, tell the watch, then pause for the share."""
        t0 = self.monotonic()
        found = await self.probe(unit)
        spent = max(0.0, self.monotonic() - t0)
        self.busy += spent
        self.probes += 1
        self.watch.scan.update(probes=self.probes, sweeps=self.sweeps, busy_s=round(self.busy, 3))
        if found is True:
            what = await self.identify(unit) if unit not in self.watch.new and self.profiles else ""
            spent = max(0.0, self.monotonic() - t0)
            self.watch.answered(unit, what=what)
        elif found is False:
            self.watch.silent(unit, why="no answer to the background scan")
        pause = spent * (1.0 - self.share) / self.share if found is not None else 1.0
        ret = self._sleep(max(pause, 0.001))
        if asyncio.iscoroutine(ret):
            await ret

    async def run(self) -> None:
        if not self.units:
            log.info("bus %s: background scan has no unconfigured address to probe", self.watch.bus)
            return
        log.info(
            "bus %s: background scan of %d address(es) at %.0f %% of the line's time",
            self.watch.bus,
            len(self.units),
            self.share * 100,
        )
        while True:
            for unit in self.units:
                await self.step(unit)
            self.sweeps += 1
