"""Per-line poll scheduler: one request in flight, per-device intervals and priorities, dead-device isolation.

An RS485 line is half-duplex with one master (Modbus over Serial Line V1.02 §2.1): requests are
time-shared, never concurrent. The scheduler keeps, per device, when it is next due; when several
are due the one with the higher ``priority`` (0…9, 9 first) goes first, then voltage units (their
values complete the current modules' circuits), then the one waiting longest.

Failures and isolation:

* a device read stops at its first timeout (:class:`.reader.DeviceReader`), so a silent device costs
  at most one timeout each time it is polled;
* after ``retries + 1`` consecutive failed polls the device is *offline*; it is then polled again
  only after an exponential backoff ``interval · 2^k`` (capped at ``max_backoff``), so a dead device
  delays the others by at most one timeout per cycle, and less and less often;
* one good answer brings it back online at its normal interval.

Logging: one line per state change of a device (offline, back online) with its counters, and an
error of a device that stays online only when it differs from the last one logged — never a line per
failed poll. The counters and the last error are always in the device's :class:`DeviceStatus`
(``/api/v1/devices``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from meterhub.drivers.base import DeviceStatus
from meterhub.drivers.modbus.reader import DeviceRead, DeviceReader
from meterhub.drivers.modbus.transport import RegisterLink
from meterhub.profiles.schema import ProfileKind

__all__ = ["LineScheduler", "PolledDevice"]

log = logging.getLogger("meterhub.modbus")


@dataclass
class PolledDevice:
    """Scheduling state of one device."""

    reader: DeviceReader
    status: DeviceStatus
    interval: float  # [s]
    priority: int = 0
    next_due: float = 0.0  # monotonic [s]
    failures: int = 0  # consecutive failed polls
    polls: int = 0
    logged: str | None = None  # the last error logged for this device (logged again only if it changes)

    @property
    def id(self) -> str:
        return self.reader.device_id

    def sort_key(self) -> tuple[int, int, float]:
        vu = 0 if self.reader.profile.kind is ProfileKind.VOLTAGE_UNIT else 1
        return (-self.priority, vu, self.next_due)


OnResult = Callable[[PolledDevice, DeviceRead, float], Awaitable[None] | None]


class LineScheduler:
    """Polls the devices of one line, one request at a time."""

    def __init__(
        self,
        link: RegisterLink,
        devices: list[PolledDevice],
        *,
        retries: int = 2,
        max_backoff: float = 60.0,
        on_result: OnResult | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.link = link
        self.devices = devices
        self.retries = retries
        self.max_backoff = max_backoff
        self.on_result = on_result
        self.monotonic = monotonic
        self.wall = wall

    def due(self, now: float) -> list[PolledDevice]:
        return sorted((d for d in self.devices if d.next_due <= now), key=PolledDevice.sort_key)

    async def poll(self, dev: PolledDevice) -> DeviceRead:
        """Read one device now and update its status and schedule."""
        started = self.monotonic()
        result = await dev.reader.read(self.link)
        now_wall = self.wall()
        now = self.monotonic()
        dev.polls += 1
        st = dev.status
        st.requests += result.requests
        if result.any_ok and not result.timed_out:
            if not st.online and dev.failures:
                log.info(
                    "device %s is back online after %d failed polls (%s)", dev.id, dev.failures, _counters(st)
                )
                dev.logged = None
            st.ok(now_wall)
            if result.errors:
                st.errors += len(result.errors)
                st.last_error = result.errors[-1]
                if st.last_error != dev.logged:  # a block that fails while the device answers
                    log.warning("%s", st.last_error)
                    dev.logged = st.last_error
            dev.failures = 0
            # keep the cadence (no drift), but never schedule into the past after a slow cycle
            dev.next_due = max(dev.next_due + dev.interval, now)
        else:
            dev.failures += 1
            st.errors += max(1, len(result.errors))
            st.timeouts += int(result.timed_out)
            st.last_error = result.errors[-1] if result.errors else "no values"
            if dev.failures > self.retries:
                if st.online or dev.failures == self.retries + 1:
                    log.warning(
                        "device %s is offline after %d failed polls: %s (%s)",
                        dev.id,
                        dev.failures,
                        st.last_error,
                        _counters(st),
                    )
                    dev.logged = st.last_error
                st.online = False
                k = dev.failures - self.retries - 1
                dev.next_due = started + min(dev.interval * 2.0**k, max(self.max_backoff, dev.interval))
            else:
                dev.next_due = now + dev.interval
        if self.on_result is not None:
            ret = self.on_result(dev, result, now_wall)
            if asyncio.iscoroutine(ret):
                await ret
        return result

    async def run_cycle(self) -> int:
        """Poll every device that is due now, in priority order; return how many were polled."""
        n = 0
        for dev in self.due(self.monotonic()):
            await self.poll(dev)
            n += 1
        return n

    async def run_forever(self) -> None:
        start = self.monotonic()
        for d in self.devices:
            d.next_due = start
        task = asyncio.current_task()
        urgent = [d for d in self.devices if d.priority > min((x.priority for x in self.devices), default=0)]
        while True:
            now = self.monotonic()
            batch = self.due(now)  # sorted once per batch, not once per request
            if not batch:
                nxt = min((d.next_due for d in self.devices), default=now + 1.0)
                await asyncio.sleep(max(0.0, min(nxt - now, 1.0)))
                continue
            for dev in batch:
                if task is not None and task.cancelling():
                    # asyncio.wait_for before Python 3.12 can swallow a cancellation that arrives just
                    # as the awaited answer does (CPython gh-86296); honour it here
                    raise asyncio.CancelledError
                # a higher-priority device that fell due during the batch goes first
                t = self.monotonic()
                for u in urgent:
                    if u.priority > dev.priority and u.next_due <= t:
                        await self.poll(u)
                if dev.next_due <= self.monotonic():
                    await self.poll(dev)


def _counters(st: DeviceStatus) -> str:
    return f"{st.requests} requests, {st.errors} errors, {st.timeouts} timeouts so far"
