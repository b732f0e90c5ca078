"""IO points and their values now, in their engineering units (issue 6: the device readings table).

``GET /api/v1/io`` lists the points of the site's ``io:`` section — pulse meters, digital inputs,
relay and analog outputs, analog inputs, 1-wire probes — with what the live cache holds for them.
The live readings of a point carry *catalogue* units (``analog_input`` is unitless, a pulse index is
in Wh or m³); this answer gives each value in the point's own unit instead:

=============  =====================================================================================
kind           values
=============  =====================================================================================
pulse          ``count`` [pulses] since counting started, ``total`` = initial + count × weight
               [``unit``: the pulse weight's unit, kWh, Wh, m³ or l], ``rate`` [``rate_unit``: W or
               m³/h] once two pulses have come
digital        ``state`` (true = the input's active state, after NO/NC) and ``label`` from its
               function (breaker-sd: normal/tripped, door: closed/open, …); ``labels`` gives both
relay          ``state`` (true = energised) and ``label`` off/on
analog-in/out  ``value`` [``unit``: the configured engineering unit, e.g. bar] scaled over ``range``
temperature    ``value`` [°C]
=============  =====================================================================================

Readable like ``/api/v1/live``: by every signed-in user, and by anyone when ``web.public_live`` is on.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, ValidationError

from meterhub.config.schema import SiteConfig
from meterhub.drivers.io.config import (
    AnalogInPoint,
    AnalogOutPoint,
    DigitalPoint,
    IOPoint,
    PulsePoint,
    RelayPoint,
    io_section,
)
from meterhub.drivers.io.digital import STATE_LABELS
from meterhub.drivers.io.pulse import INDEX_QUANTITY, RATE_QUANTITY
from meterhub.drivers.io.units import index_in_pulse_unit, pulse_unit_text
from meterhub.errors import NotFoundError
from meterhub.live import LiveCache
from meterhub.model import quantities
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading, SeriesKey, iso_utc
from meterhub.model.topology import Phase
from meterhub.web.auth import Principal, require_live
from meterhub.web.deps import Config, Live

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["io"])

LIVE = Annotated[Principal, Depends(require_live)]

_RELAY_LABELS = ("off", "on")


class IOPointOut(BaseModel):
    """One IO point and its value now, in the point's engineering unit."""

    id: str = Field(description="point id; the `circuit` of its readings in /api/v1/live")
    name: str
    kind: Literal["pulse", "digital", "relay", "analog-in", "analog-out", "temperature"]
    device: str
    channel: int | None = Field(None, description="1-based input/output number on the device")
    sensor: str | None = Field(None, description="1-wire probe id (temperature points)")
    medium: str | None = Field(None, description="pulse meter: electricity, gas, water or oil")
    weight: float | None = Field(None, description="pulse meter: quantity per pulse [unit/pulse]")
    function: str | None = Field(None, description="digital input: breaker-of, breaker-sd, door, run, …")
    contact: str | None = Field(None, description="pulse or digital input: NO or NC")
    mode: str | None = Field(None, description="relay: latched or pulse")
    signal: str | None = Field(None, description="analog point: 4-20mA, 0-20mA, 0-10V or 0-30V")
    range: tuple[float, float] | None = Field(
        None, description="analog point: engineering value at the low and high signal end [unit]"
    )
    unit: str = Field(description="engineering unit of `value` / `total` ('' when none is configured)")
    value: float | None = Field(
        None, description="analog or temperature value [unit]; pulse meter: same as `total`"
    )
    count: int | None = Field(None, description="pulse meter: pulses counted [1]")
    total: float | None = Field(None, description="pulse meter: meter index, initial + count × weight [unit]")
    rate: float | None = Field(None, description="pulse meter: power or flow now [rate_unit]")
    rate_unit: str | None = Field(None, description="pulse meter: W (electricity) or m³/h (volumes)")
    state: bool | None = Field(
        None, description="digital input: in its active state (after NO/NC); relay: energised"
    )
    label: str | None = Field(None, description="the state in words, e.g. tripped, open, on")
    labels: tuple[str, str] | None = Field(None, description="words for the inactive and the active state")
    quality: int | None = Field(None, description="0 good, 1 estimated, 2 flagged, 3 invalid (out of range)")
    ts: str | None = Field(None, description="time of the newest value, ISO 8601 UTC; null before any")


class IOPointsOut(BaseModel):
    points: list[IOPointOut]


def _live(live: LiveCache, point: str, quantity: str) -> Reading | None:
    return live.get(SeriesKey(point, quantity, Phase.TOTAL))


def _newest(*rs: Reading | None) -> Reading | None:
    present = [r for r in rs if r is not None]
    return max(present, key=lambda r: r.ts) if present else None


def _stamp(out: IOPointOut, r: Reading | None) -> IOPointOut:
    if r is not None:
        out.ts, out.quality = iso_utc(r.ts), int(r.quality)
    return out


def point_out(live: LiveCache, p: IOPoint) -> IOPointOut:
    """The public shape of ``p`` with its values from the live cache."""
    base = IOPointOut(id=p.id, name=p.name or p.id, kind=p.kind, device=p.device, unit="")
    if isinstance(p, PulsePoint):
        count = _live(live, p.id, Q.PULSE_COUNT)
        index = _live(live, p.id, INDEX_QUANTITY[p.medium])
        rate = _live(live, p.id, RATE_QUANTITY[p.medium])
        total = index_in_pulse_unit(index.value, p.unit) if index is not None else None
        out = base.model_copy(
            update={
                "channel": p.channel,
                "medium": p.medium.value,
                "weight": p.weight,
                "contact": p.contact.value,
                "unit": pulse_unit_text(p.unit),
                "count": round(count.value) if count is not None else None,
                "total": total,
                "value": total,
                "rate": rate.value if rate is not None else None,
                "rate_unit": quantities.CATALOGUE[RATE_QUANTITY[p.medium]].unit,
            }
        )
        return _stamp(out, _newest(count, index, rate))
    if isinstance(p, DigitalPoint):
        r = _live(live, p.id, Q.DIGITAL_INPUT)
        labels = STATE_LABELS[p.function]
        state = bool(r.value >= 0.5) if r is not None else None
        out = base.model_copy(
            update={
                "channel": p.channel,
                "function": p.function.value,
                "contact": p.contact.value,
                "state": state,
                "label": labels[int(state)] if state is not None else None,
                "labels": labels,
            }
        )
        return _stamp(out, r)
    if isinstance(p, RelayPoint):
        r = _live(live, p.id, Q.RELAY_OUTPUT)
        state = bool(r.value >= 0.5) if r is not None else None
        out = base.model_copy(
            update={
                "channel": p.channel,
                "mode": p.mode.value,
                "state": state,
                "label": _RELAY_LABELS[int(state)] if state is not None else None,
                "labels": _RELAY_LABELS,
            }
        )
        return _stamp(out, r)
    if isinstance(p, AnalogInPoint | AnalogOutPoint):
        r = _live(live, p.id, Q.ANALOG_INPUT if isinstance(p, AnalogInPoint) else Q.ANALOG_OUTPUT)
        out = base.model_copy(
            update={
                "channel": p.channel,
                "signal": p.signal.value,
                "range": p.range,
                "unit": p.unit,
                "value": r.value if r is not None else None,
            }
        )
        return _stamp(out, r)
    r = _live(live, p.id, Q.TEMPERATURE)  # a TemperaturePoint (1-wire probe)
    out = base.model_copy(
        update={
            "sensor": p.sensor,
            "unit": quantities.CATALOGUE[Q.TEMPERATURE].unit,
            "value": r.value if r is not None else None,
        }
    )
    return _stamp(out, r)


def _points(config: SiteConfig) -> list[IOPoint]:
    try:
        return list(io_section(config).points)
    except ValidationError:  # an invalid io section: the site check reports where
        return []


@router.get(
    "/io",
    response_model=IOPointsOut,
    summary="IO points (pulse meters, inputs, outputs, analog sensors) and their values now",
    responses={
        401: {"description": "not signed in (and web.public_live is off)"},
        404: {"description": "unknown device"},
    },
)
def io_points(
    cfg: Config,
    live: Live,
    _: LIVE,
    device: Annotated[str | None, Query(description="only the points of this device", max_length=64)] = None,
) -> IOPointsOut:
    points = _points(cfg.config)
    if device is not None:
        if not any(d.id == device for d in cfg.config.devices):
            raise NotFoundError(f"unknown device {device!r}")
        points = [p for p in points if p.device == device]
    return IOPointsOut(points=[point_out(live, p) for p in points])
