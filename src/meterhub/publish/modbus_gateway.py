"""The Modbus gateway: a Modbus TCP port forwarding reads to devices on meterhub's own lines (``modbus_gateway:``).

A request for a routed unit id goes to the bus's running link — the very :class:`RegisterLink` the
bus's source polls with — so it waits its turn behind the request in flight (the link's lock, first
come first served): one master at a time on the line, polling and gateway interleaved request by
request, never a collision (seed 000 §10.3). The link is looked up per request, so the gateway follows
the sources when the configuration is applied again. See :mod:`meterhub.config.modbus_gateway` for the
answers a client gets.

Its share of each line's time (``share``) is kept by a :class:`WireShare` per line: the time each
forwarded request held the line is measured by the link itself (``WIRE_TIME``, from taking the line
to the answer, so time spent waiting behind a poll is not counted against the gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Mapping

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer

from meterhub.config.modbus_gateway import GatewayRoute, ModbusGatewayConfig
from meterhub.drivers.modbus.errors import (
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusTimeout,
)
from meterhub.drivers.modbus.transport import WIRE_TIME, ModbusLink, RegisterLink
from meterhub.model.health import Health, HealthState
from meterhub.profiles.schema import Function
from meterhub.publish.modbus_server import check_bind, placeholder_device, read_pdus

__all__ = ["GatewayStats", "ModbusGatewayServer", "WireShare"]

log = logging.getLogger("meterhub.publish.modbus_gateway")

_FUNCTION = {1: Function.COIL, 2: Function.DISCRETE, 3: Function.HOLDING, 4: Function.INPUT}
#: The gateway's credit of line time may build up to this much while it is idle [s]: a short burst of
#: requests goes at once, and over any interval it holds the line at most share · T + this + one request.
BURST = 0.25

#: Largest quantity of one read (Modbus Application Protocol V1.1b3 §6.1-6.4): bits, registers.
_MAX = {1: 2000, 2: 2000, 3: 125, 4: 125}


class GatewayStats:
    """Counters of the gateway [count]: forwarded requests, answers from the cache, device exceptions
    passed on, timeouts, requests refused (no route, bus down, writes)."""

    def __init__(self) -> None:
        self.forwarded = 0
        self.cached = 0
        self.exceptions = 0
        self.timeouts = 0
        self.refused = 0
        self.busy = 0  # answered 06: the gateway's share of the line was spent for longer than the timeout
        self.wire_time = 0.0  # time forwarded requests held the lines [s]


class WireShare:
    """The gateway's credit of one line's time (a token bucket of seconds).

    The credit grows by ``share`` seconds per second of ``clock`` up to ``burst`` seconds and is spent by
    the time each forwarded request held the line; while it is negative, forwarded requests wait
    :meth:`wait` seconds. Over any interval *T* the gateway holds the line at most share · T + burst
    seconds plus one request, so polling keeps at least (1 − share) of the line.
    """

    def __init__(self, share: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share {share} must be within (0, 1]")
        self.share = share
        self.burst = burst
        self.clock = clock
        self.credit = burst  # [s]
        self._t = clock()
        self.used = 0.0  # line time spent so far [s]

    def _refill(self) -> None:
        now = self.clock()
        self.credit = min(self.burst, self.credit + (now - self._t) * self.share)
        self._t = now

    def wait(self) -> float:
        """How long a forwarded request must wait before it may take the line [s] (0: at once)."""
        self._refill()
        return 0.0 if self.credit >= 0 else -self.credit / self.share

    def spend(self, seconds: float) -> None:
        """A forwarded request held the line ``seconds`` [s]."""
        self._refill()
        self.credit -= seconds
        self.used += seconds


class _Busy(Exception):
    """The gateway's share of the line cannot be had within the request's timeout."""


class _Forwarder:
    """The datastore the pymodbus server calls: each read goes to its route's link."""

    def __init__(
        self,
        routes: Mapping[int, GatewayRoute],
        links: Callable[[], Mapping[str, RegisterLink]],
        timeouts: Mapping[str, float],
        stats: GatewayStats,
        cache_max_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        share: float = 1.0,
    ) -> None:
        self.routes = routes
        self.links = links
        self.timeouts = timeouts
        self.stats = stats
        self.share = share
        #: bus → the gateway's credit of its line's time, and the lock that keeps its requests in order
        self.shares: dict[str, tuple[WireShare, asyncio.Lock]] = {}
        self.cache_max_age = cache_max_age
        self.clock = clock
        #: (bus, function, address on the line, register) → (value, clock time it was read [s])
        self.cache: dict[tuple[str, Function, int, int], tuple[int, float]] = {}
        self._watched: list[weakref.ref[ModbusLink]] = []  # links keep no hash (dataclasses): by identity

    def watch(self, links: Mapping[str, RegisterLink]) -> None:
        """Keep the cache from every read on these lines (polling's included), once per link."""
        if self.cache_max_age is None:
            return
        for bus, link in links.items():
            if isinstance(link, ModbusLink) and not any(ref() is link for ref in self._watched):
                self._watched = [ref for ref in self._watched if ref() is not None] + [weakref.ref(link)]
                link.observers.append(self._observer(bus))

    def _observer(self, bus: str) -> Callable[[Function, int, int, list[int]], None]:
        def observe(function: Function, unit: int, start: int, values: list[int]) -> None:
            now = self.clock()
            cache = self.cache
            for i, v in enumerate(values):
                cache[(bus, function, unit, start + i)] = (v, now)

        return observe

    def _cached(self, bus: str, function: Function, unit: int, address: int, count: int) -> list[int] | None:
        if self.cache_max_age is None:
            return None
        oldest = self.clock() - self.cache_max_age
        out: list[int] = []
        for a in range(address, address + count):
            hit = self.cache.get((bus, function, unit, a))
            if hit is None or hit[1] < oldest:
                return None
            out.append(hit[0])
        return out

    def device_ids(self) -> list[int]:
        return list(self.routes)

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        route = self.routes.get(device_id)
        function = _FUNCTION.get(func_code)
        if function is None:
            self.stats.refused += 1
            return ExcCodes.ILLEGAL_FUNCTION
        if not 1 <= count <= _MAX[func_code]:
            self.stats.refused += 1
            return ExcCodes.ILLEGAL_VALUE
        if route is None:
            self.stats.refused += 1
            return ExcCodes.GATEWAY_PATH_UNAVIABLE
        links = self.links()
        link = links.get(route.bus)
        if link is None:
            self.stats.refused += 1
            return ExcCodes.GATEWAY_PATH_UNAVIABLE
        self.watch(links)
        cached = self._cached(route.bus, function, route.target, address, count)
        if cached is not None:
            self.stats.cached += 1
            return [bool(v) for v in cached] if function.is_bit else cached
        timeout = self.timeouts[route.bus]
        try:
            values = await asyncio.wait_for(
                self._forward(link, route.bus, function, route.target, address, count, timeout), timeout
            )
        except _Busy:
            self.stats.busy += 1
            return ExcCodes.DEVICE_BUSY
        except ModbusExceptionResponse as exc:  # the device's own answer, passed on
            self.stats.exceptions += 1
            try:
                return ExcCodes(exc.code)
            except ValueError:  # a code pymodbus cannot send: a failure of the device, for the client
                return ExcCodes.DEVICE_FAILURE
        except (ModbusTimeout, TimeoutError):
            self.stats.timeouts += 1
            return ExcCodes.GATEWAY_NO_RESPONSE
        except ModbusConnectionError:
            self.stats.refused += 1
            return ExcCodes.GATEWAY_PATH_UNAVIABLE
        except ModbusError as exc:
            log.warning("gateway: unit %d → %s address %d: %s", device_id, route.bus, route.target, exc)
            self.stats.exceptions += 1
            return ExcCodes.DEVICE_FAILURE
        self.stats.forwarded += 1
        if function.is_bit:
            return [bool(v) for v in values]
        return values

    def _share(self, bus: str, timeout: float) -> tuple[WireShare, asyncio.Lock]:
        got = self.shares.get(bus)
        if got is None or got[0].share != self.share:
            got = self.shares[bus] = (WireShare(self.share, burst=BURST, clock=self.clock), asyncio.Lock())
        return got

    async def _forward(
        self,
        link: RegisterLink,
        bus: str,
        function: Function,
        unit: int,
        address: int,
        count: int,
        timeout: float,
    ) -> list[int]:
        """One read on ``bus`` within the gateway's share of its time (see :class:`WireShare`)."""
        if self.share >= 1:
            return await self._timed(link, function, unit, address, count, None)
        share, lock = self._share(bus, timeout)
        started = self.clock()
        async with lock:  # the gateway's own requests on a line, in arrival order
            wait = share.wait()
            if wait > 0:
                if self.clock() - started + wait >= timeout:
                    raise _Busy
                await asyncio.sleep(wait)
            return await self._timed(link, function, unit, address, count, share)

    async def _timed(
        self,
        link: RegisterLink,
        function: Function,
        unit: int,
        address: int,
        count: int,
        share: WireShare | None,
    ) -> list[int]:
        spent: list[float] = []
        token = WIRE_TIME.set(spent)
        try:
            return await link.read(function, unit, address, count)
        finally:
            WIRE_TIME.reset(token)
            held = sum(spent)
            self.stats.wire_time += held
            if share is not None:
                share.spend(held)

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        self.stats.refused += 1
        return ExcCodes.ILLEGAL_FUNCTION  # outputs go through meterhub's audited control path


class ModbusGatewayServer:
    """The gateway's listener. ``links()`` gives the running link of each bus (bus id → link);
    ``bus_timeouts`` each bus's own response timeout [s]."""

    def __init__(
        self,
        section: ModbusGatewayConfig,
        links: Callable[[], Mapping[str, RegisterLink]],
        bus_timeouts: Mapping[str, float],
    ) -> None:
        self.section = section
        self.stats = GatewayStats()
        timeouts = {bus: section.timeout or 3 * t for bus, t in bus_timeouts.items()}
        routes = {r.unit: r for r in section.routes}
        self._forwarder = _Forwarder(
            routes, links, timeouts, self.stats, section.cache_max_age, share=section.share
        )
        self._links = links
        self._server: ModbusTcpServer | None = None
        self.endpoint = ""

    def reconfigure(self, section: ModbusGatewayConfig, bus_timeouts: Mapping[str, float]) -> None:
        """Take the routes and timeouts of a changed site; a changed ``tcp`` applies at the next start."""
        if section.tcp != self.section.tcp:
            log.warning("modbus_gateway: its port changed; restart meterhub to apply it")
        self.section = section
        self._forwarder.routes = {r.unit: r for r in section.routes}
        self._forwarder.timeouts = {bus: section.timeout or 3 * t for bus, t in bus_timeouts.items()}
        if section.cache_max_age != self._forwarder.cache_max_age:
            self._forwarder.cache.clear()
        self._forwarder.cache_max_age = section.cache_max_age
        self._forwarder.share = section.share
        self._forwarder.watch(self._links())

    async def start(self) -> None:
        """Listen; a port that cannot be bound is a :class:`~meterhub.errors.ConfigurationError`."""
        host, port = self.section.tcp.host, self.section.tcp.port
        check_bind(host, port, "modbus_gateway.tcp")
        server = ModbusTcpServer(
            placeholder_device(), framer=FramerType.SOCKET, address=(host, port), custom_pdu=read_pdus()
        )
        server.context = self._forwarder  # type: ignore[assignment]  # same async interface
        await server.serve_forever(background=True)
        self._server = server
        self._forwarder.watch(self._links())  # the cache fills from polling before the first request
        sockets = getattr(server.transport, "sockets", None)
        self.endpoint = f"tcp://{host}:{sockets[0].getsockname()[1] if sockets else port}"
        log.info("Modbus gateway: %d unit(s) routed, on %s", len(self.section.routes), self.endpoint)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(Exception):
                await server.shutdown()

    def health(self) -> Health:
        s = self.stats
        counters = {
            "forwarded": s.forwarded,
            "cached": s.cached,
            "exceptions": s.exceptions,
            "timeouts": s.timeouts,
            "refused": s.refused,
            "busy": s.busy,
            "wire_time_ms": round(s.wire_time * 1000),
        }
        if self._server is None:
            return Health(HealthState.DOWN, "not listening", counters)
        return Health(HealthState.OK, f"forwarding on {self.endpoint}", counters)
