"""``modbus_gateway:`` — a Modbus TCP port that forwards requests to devices on meterhub's own lines (issue 13).

Example::

    modbus_gateway:
      tcp: {host: 0.0.0.0, port: 503}
      routes:                                 # unit id a client asks for → a bus and the address on it
        - {unit: 11, bus: panel, address: 1}
        - {unit: 12, bus: panel, address: 2}
        - {unit: 21, bus: incomer}            # address: the unit id itself
      timeout: null                           # [s] per request, queueing included; default 3 × the bus's
      cache_max_age: 2.0                      # [s] answer from what was read on the line this recently
      share: 0.5                              # fraction of each line's time forwarded requests may use

A forwarded request waits its turn on the line with meterhub's own polling (one master at a time: the
line's single request-in-flight lock, first come first served), so a SCADA and the gateway never talk
over each other on an RS485 line (seed 000 §10.3). Reads only (function codes 1-4); a write gets
exception 01, since outputs are driven through meterhub's audited control path. Answers (Modbus
Application Protocol V1.1b3 §7): the device's own exception codes as they come, 0A (gateway path
unavailable) for a unit without a route or a bus that is not running, 0B (gateway target device failed
to respond) when the device is silent within the timeout, 04 for an answer that could not be read.

Time-sharing: forwarded requests may hold a line for at most ``share`` of its time (0.5 by default;
polling keeps the rest). The gateway keeps, per line, a credit of line time that grows by ``share``
seconds each second up to 0.25 s (so a short burst goes at once) and is spent by the time each
forwarded request held the line; a request that finds the credit spent waits for it, in arrival order.
One that could not get the line within its ``timeout`` (waiting for the credit, for polling's request in
flight and for the answer) gets 06 (server device busy: retry later) if it never reached the line, 0B
if the device did not answer in time.

With ``cache_max_age``, a read whose every register was read on the line (by meterhub's polling or an
earlier gateway request) at most that long ago is answered at once from those values, without taking
the line (seed 000 §10.3's time-sharing buffer); anything else goes to the device.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated

from pydantic import Field

from meterhub.config.modbus_server import TcpEndpoint
from meterhub.config.reader import Loc
from meterhub.config.types import Identifier, StrictModel

__all__ = ["GatewayRoute", "ModbusGatewayConfig", "modbus_gateway_issues"]

Unit = Annotated[int, Field(ge=1, le=247, description="Modbus unit id (1-247)")]


class GatewayRoute(StrictModel):
    """Requests for ``unit`` go to ``address`` (default: the same number) on bus ``bus``."""

    unit: Unit
    bus: Identifier
    address: Unit | None = None

    @property
    def target(self) -> int:
        return self.address if self.address is not None else self.unit


class ModbusGatewayConfig(StrictModel):
    """``modbus_gateway:`` — see the module docstring."""

    enabled: bool = True
    tcp: TcpEndpoint
    routes: list[GatewayRoute] = Field(min_length=1, max_length=247)
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=60,
        description="per request, waiting for the line included [s]; default 3 × the bus's",
    )
    share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="fraction of each line's time forwarded requests may hold it [-]; polling keeps the rest",
    )
    cache_max_age: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="answer from registers read on the line at most this long ago [s]; null: always ask the device",
    )


def modbus_gateway_issues(
    section: ModbusGatewayConfig | None, modbus_buses: Sequence[str], other_buses: Sequence[str]
) -> Iterable[tuple[Loc, str]]:
    """Cross-checks of ``modbus_gateway:``: each route on a Modbus bus of the site, each unit routed once."""
    if section is None:
        return
    seen: dict[int, int] = {}
    for i, route in enumerate(section.routes):
        loc: Loc = ("modbus_gateway", "routes", i)
        if route.bus in other_buses:
            yield (
                (*loc, "bus"),
                f"bus {route.bus!r} is not a Modbus line; the gateway forwards Modbus requests only",
            )
        elif route.bus not in modbus_buses:
            known = ", ".join(modbus_buses) or "none"
            yield (*loc, "bus"), f"unknown bus {route.bus!r} (Modbus buses: {known})"
        if route.unit in seen:
            yield (*loc, "unit"), f"unit {route.unit} is already routed by routes[{seen[route.unit]}]"
        else:
            seen[route.unit] = i
