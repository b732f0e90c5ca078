"""Relay and analog outputs of IO modules over HTTP (seed 000 §3.4.5 "Remote Logic Control").

* ``GET /api/v1/devices/{device_id}/outputs`` — the output points of a device (the ``io:`` section) and
  their last known state: what the poller last read, or the last confirmed command.
* ``POST /api/v1/devices/{device_id}/outputs/{point}`` (admin) — body ``{"state": true|false}`` latches
  a relay on or off. The command goes through :class:`meterhub.drivers.io.control.OutputControl` on the
  Modbus line that already polls the device, and is done only when reading the coil back gives the
  commanded state; the answer says so (``confirmed``). Errors name the device and point: 404 for an
  unknown device or point, 409 for a point that cannot be switched this way (a pulse-mode relay, an
  analog output), 503 when the device's bus is not running, 504 when the device does not answer,
  502 when it answers but does not hold the commanded state (or refuses the write).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from meterhub.config.control import Action
from meterhub.config.schema import SiteConfig
from meterhub.drivers.io.config import AnalogOutPoint, RelayMode, RelayPoint, io_section
from meterhub.drivers.io.errors import IOPointError, OutputWriteError, ReadbackMismatch
from meterhub.drivers.modbus.transport import ModbusExceptionResponse, ModbusTimeout
from meterhub.errors import ConflictError, NotFoundError
from meterhub.live import LiveCache
from meterhub.model.quantities import Q
from meterhub.model.readings import SeriesKey, iso_utc
from meterhub.model.topology import Phase
from meterhub.web.auth import Principal, require_admin, require_reader
from meterhub.web.deps import Config, Controls, Live, Status

__all__ = ["router"]

log = logging.getLogger("meterhub.web.outputs")

router = APIRouter(prefix="/api/v1", tags=["outputs"])

READER = Annotated[Principal, Depends(require_reader)]
ADMIN = Annotated[Principal, Depends(require_admin)]

_GATEWAY_TIMEOUT = 0x0B  # Modbus exception 0B: a TCP gateway's target device did not answer


class OutputOut(BaseModel):
    """One output point of a device and its last known state."""

    point: str = Field(description="point id from the io section")
    name: str
    kind: str = Field(description="'relay' or 'analog-out'")
    channel: int = Field(description="1-based output number on the device")
    mode: str | None = Field(None, description="relay mode: 'latched' or 'pulse'")
    state: bool | None = Field(None, description="relay energised; null when not known yet")
    value: float | None = Field(None, description="analog output value [its engineering unit]")
    unit: str | None = Field(None, description="engineering unit of an analog output")
    ts: str | None = Field(None, description="when the state was read or confirmed (UTC)")


class OutputsOut(BaseModel):
    device: str
    online: bool = Field(description="the device answered its last poll")
    outputs: list[OutputOut]


class SwitchIn(BaseModel):
    """One command: ``state`` (latch a relay), ``pulse`` (a pulse-mode relay) or ``value`` (an analog output)."""

    model_config = ConfigDict(extra="forbid")

    state: bool | None = Field(None, description="true: energise the relay, false: release it")
    pulse: bool | float | None = Field(
        None, description="true: pulse a relay for its pulse_duration; a number: for that many seconds"
    )
    value: float | None = Field(None, description="drive an analog output to this value [its unit]")
    force: bool = Field(False, description="switch even inside the output's minimum on/off time")
    comment: str | None = Field(None, max_length=500, description="why (kept in the audit log)")

    @model_validator(mode="after")
    def _one_command(self) -> SwitchIn:
        given = [k for k in ("state", "pulse", "value") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'state', 'pulse' or 'value'")
        if (
            isinstance(self.pulse, float | int)
            and not isinstance(self.pulse, bool)
            and not 0 < self.pulse <= 3600
        ):
            raise ValueError("'pulse' is a duration in seconds, 0 < pulse <= 3600")
        if self.pulse is False:
            raise ValueError("'pulse' is true or a duration [s]")
        return self


class SwitchOut(BaseModel):
    device: str
    point: str
    state: bool | None = Field(None, description="the relay state the device holds after the command")
    value: float | None = Field(None, description="the analog value the device holds after the command")
    confirmed: bool = Field(description="the state was read back from the device")


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not signed in"},
    403: {"description": "needs the admin role"},
    404: {"description": "unknown device or output point"},
}


def _outputs_of(config: SiteConfig, device_id: str) -> list[RelayPoint | AnalogOutPoint]:
    if not any(d.id == device_id for d in config.devices):
        raise NotFoundError(f"unknown device {device_id!r}")
    try:
        points = io_section(config).points
    except ValueError:  # an invalid io section: the site check reports where
        points = []
    return [p for p in points if p.device == device_id and isinstance(p, RelayPoint | AnalogOutPoint)]


def _output_out(live: LiveCache, p: RelayPoint | AnalogOutPoint) -> OutputOut:
    if isinstance(p, RelayPoint):
        r = live.get(SeriesKey(p.id, Q.RELAY_OUTPUT, Phase.TOTAL))
        return OutputOut(
            point=p.id,
            name=p.name or p.id,
            kind=p.kind,
            channel=p.channel,
            mode=p.mode.value,
            state=bool(r.value) if r is not None else None,
            ts=iso_utc(r.ts) if r is not None else None,
        )
    r = live.get(SeriesKey(p.id, Q.ANALOG_OUTPUT, Phase.TOTAL))
    return OutputOut(
        point=p.id,
        name=p.name or p.id,
        kind=p.kind,
        channel=p.channel,
        value=r.value if r is not None else None,
        unit=p.unit,
        ts=iso_utc(r.ts) if r is not None else None,
    )


@router.get(
    "/devices/{device_id}/outputs",
    response_model=OutputsOut,
    summary="Relay and analog outputs of a device and their states",
    responses={k: v for k, v in _ERRORS.items() if k != 403},
)
def list_outputs(device_id: str, cfg: Config, live: Live, status: Status, _: READER) -> OutputsOut:
    points = _outputs_of(cfg.config, device_id)
    st = status.get(device_id)
    return OutputsOut(
        device=device_id,
        online=bool(st is not None and st.online),
        outputs=[_output_out(live, p) for p in points],
    )


def _write_failed(device_id: str, point: str, exc: OutputWriteError) -> HTTPException:
    where = f"device {device_id!r} output {point!r}"
    if isinstance(exc, ReadbackMismatch):
        return HTTPException(502, f"{where}: write not confirmed: {exc}")
    cause = exc.__cause__
    if isinstance(cause, ModbusTimeout) or (
        isinstance(cause, ModbusExceptionResponse) and cause.code == _GATEWAY_TIMEOUT
    ):
        return HTTPException(504, f"{where}: the device did not answer (offline?): {exc}")
    return HTTPException(502, f"{where}: the write did not reach the device: {exc}")


@router.post(
    "/devices/{device_id}/outputs/{point}",
    response_model=SwitchOut,
    response_model_exclude_none=True,
    summary="Switch or pulse a relay, or set an analog output (admin); confirmed by reading it back",
    responses={
        **_ERRORS,
        409: {
            "description": "the command does not fit the point (a pulse-mode relay latched, a relay set to a "
            "value), or an interlock or a minimum on/off time refuses it"
        },
        422: {"description": "not exactly one of state, pulse, value"},
        502: {"description": "the device refused the write or holds another state after it"},
        503: {"description": "the device's bus is not running"},
        504: {"description": "the device did not answer"},
    },
)
async def switch_output(
    device_id: str, point: str, body: SwitchIn, cfg: Config, control: Controls, who: ADMIN
) -> SwitchOut:
    outputs = {p.id: p for p in _outputs_of(cfg.config, device_id)}
    p = outputs.get(point)
    if p is None:
        known = ", ".join(outputs) or "none configured"
        raise NotFoundError(f"device {device_id!r} has no output point {point!r}; its outputs: {known}")
    duration: float | None = None
    if body.value is not None:
        if not isinstance(p, AnalogOutPoint):
            raise ConflictError(
                f"output {point!r} is a relay; switch it with 'state' or 'pulse', not 'value'"
            )
        action = Action.SET
    elif not isinstance(p, RelayPoint):
        raise ConflictError(f"output {point!r} is an analog output; set it with 'value'")
    elif body.pulse is not None:
        action = Action.PULSE
        duration = None if body.pulse is True else float(body.pulse)
    elif p.mode is RelayMode.PULSE:
        raise ConflictError(
            f"relay {point!r} is a pulse-mode output; it cannot be latched on or off (use 'pulse')"
        )
    else:
        action = Action.ON if body.state else Action.OFF
    try:
        res = await control.service().command(
            point,
            action,
            body.value,
            actor=who.username or who.via,
            automatic=False,
            duration=duration,
            comment=body.comment,
            force=body.force,
        )
    except OutputWriteError as exc:
        raise _write_failed(device_id, point, exc) from None
    except IOPointError as exc:  # the bus is not running, the profile cannot load
        raise HTTPException(503, f"device {device_id!r} output {point!r}: {exc}") from None
    if res.result == "refused":
        raise ConflictError(f"device {device_id!r} output {point!r}: {res.reason}")
    log.info("%s: %s %s of %s → %s (confirmed)", who.username, action.value, point, device_id, res.after)
    if action is Action.SET:
        return SwitchOut(device=device_id, point=point, value=res.after, confirmed=res.confirmed)
    state = bool(res.after) if isinstance(res.after, bool) else False  # a pulse ends released
    return SwitchOut(device=device_id, point=point, state=state, confirmed=res.confirmed)


class ControlPointOut(BaseModel):
    """What the control path knows of one output point."""

    point: str
    state: float | None = Field(
        None, description="1/0 for a relay (energised), the value of an analog output"
    )
    since: str | None = Field(
        None, description="when the state last changed, as far as the gateway saw (UTC)"
    )
    override_by: str | None = Field(None, description="the user whose switch holds it against automation")
    override_until: str | None = Field(None, description="until when (UTC)")


class ControlOut(BaseModel):
    outputs: list[ControlPointOut]
    demand_limit: dict[str, Any] | None = Field(
        None, description="target, predicted demand [W], the month's peak, each load's state; null when off"
    )
    health: dict[str, Any]


@router.get(
    "/control",
    response_model=ControlOut,
    summary="The control path: output states and overrides, the demand limiter's state",
    responses={401: _ERRORS[401]},
)
def control_status(cfg: Config, control: Controls, _: READER) -> ControlOut:
    service = control.service()
    points = []
    for p in cfg.config.io.points if cfg.config.io is not None else []:
        if not isinstance(p, RelayPoint | AnalogOutPoint):
            continue
        since, held = service.since(p.id), service.override(p.id)
        points.append(
            ControlPointOut(
                point=p.id,
                state=service.state(p.id),
                since=iso_utc(since) if since is not None else None,
                override_by=held[0] if held else None,
                override_until=iso_utc(held[1]) if held else None,
            )
        )
    limiter = control.limiter()
    return ControlOut(
        outputs=points,
        demand_limit=limiter.status() if limiter is not None else None,
        health=control.control_health().as_dict(),
    )
