"""Request-scoped helpers shared by the API modules: the gateway, time parsing, JSON shapes."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, Request
from starlette.requests import HTTPConnection

from meterhub.model import quantities
from meterhub.model.readings import Reading, iso_utc
from meterhub.runtime import Gateway

__all__ = ["bad_param", "gateway_of", "get_gateway", "parse_time", "reading_json"]


def gateway_of(conn: HTTPConnection) -> Gateway:
    """The :class:`Gateway` the app serves (set by :func:`meterhub.web.app.create_app`)."""
    gw: Gateway = conn.app.state.gateway
    return gw


def get_gateway(request: Request) -> Gateway:
    """FastAPI dependency form of :func:`gateway_of`."""
    return gateway_of(request)


def bad_param(where: str, name: str, message: str, status: int = 422) -> HTTPException:
    """An error in FastAPI's validation shape, so clients see one format for every bad parameter."""
    return HTTPException(
        status_code=status,
        detail=[{"loc": [where, name], "msg": message, "type": "value_error"}],
    )


def parse_time(text: str, name: str) -> float:
    """Parse a time given as Unix seconds or ISO 8601 into Unix seconds [s].

    ``"1763784000"``, ``"1763784000.5"``, ``"2026-11-22T04:00:00Z"`` and ``"2026-11-22T05:00:00+01:00"``
    are accepted; an ISO time without an offset is taken as UTC. Raises a 422 naming ``name``.
    """
    s = text.strip()
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if not math.isfinite(value) or not -1e11 < value < 1e11:
            raise bad_param("query", name, f"{text!r} is not a usable Unix time [s]")
        return value
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise bad_param(
            "query", name, f"{text!r} is neither Unix seconds nor ISO 8601 (e.g. 2026-11-22T04:00:00Z)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def unit_of(quantity: str) -> str:
    q = quantities.CATALOGUE.get(quantity)
    return q.unit if q is not None else ""


def reading_json(r: Reading) -> dict[str, Any]:
    """The public JSON shape of one reading (``/api/v1/live`` and the WebSocket stream)."""
    value = r.value if math.isfinite(r.value) else None
    return {
        "circuit": r.circuit,
        "quantity": r.quantity,
        "phase": r.phase.value if r.phase is not None else None,
        "value": value,
        "unit": unit_of(r.quantity),
        "ts": iso_utc(r.ts),
    }
