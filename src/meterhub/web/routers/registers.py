"""Energy registers over HTTP: what the register guard holds back, and the operator's confirmation.

* ``GET /api/v1/energy/registers`` — every register series the guard keeps (``?circuit=ID`` filters):
  its continuous value, its state — ``pending`` (a lower, or implausibly higher, counter waits for
  confirmation: a reset or a new meter?), ``armed`` (an operator or a new serial number said so: its
  next new counter is accepted), ``quarantined`` (outliers were refused, never counted), ``confirmed``
  (a reset, wrap or replacement was accepted) or ``ok`` — the counts, and one line for people.
* ``POST /api/v1/energy/registers/confirm`` (admin) ``{"circuit": ID, "quantity"?: ID, "phase"?: …}`` —
  the meter of that circuit was reset or replaced: its register series (all, or the one named) accept
  the pending or next lower counter at once instead of waiting for it to hold
  (:meth:`~meterhub.energy.pipeline.EnergyPipeline.confirm_meter_change`). Logged on the audit logger.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from meterhub.energy.register_events import GuardEvent, RegisterStatus
from meterhub.errors import ConflictError, NotFoundError
from meterhub.model.quantities import CATALOGUE, Kind
from meterhub.model.readings import SeriesKey, iso_utc
from meterhub.model.topology import Phase
from meterhub.web.auth import Principal, require_admin, require_reader
from meterhub.web.deps import Config, Pipeline, bad_param

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["energy"])
audit = logging.getLogger("meterhub.audit")

READER = Annotated[Principal, Depends(require_reader)]
ADMIN = Annotated[Principal, Depends(require_admin)]

PhaseName = Literal["L1", "L2", "L3", "N", "total"]
State = Literal["pending", "armed", "quarantined", "confirmed", "ok"]


class ConfirmedOut(BaseModel):
    event: str = Field(description="reset, wrap, change (announced) or rebase (a meter replacement)")
    ts: str = Field(description="ISO 8601 UTC")


class RegisterOut(BaseModel):
    circuit: str
    quantity: str
    phase: PhaseName | None
    unit: str
    value: float | None = Field(description="the continuous register [unit]; null when not known yet")
    state: State
    quarantined: int = Field(description="readings refused as outliers, never counted")
    held: int = Field(description="readings behind the register (stale frames), held at its value")
    refused: int = Field(description="NaN, infinite or negative readings")
    pending: int = Field(description="readings of a candidate counter awaiting confirmation")
    pending_since: str | None = Field(description="first of them, ISO 8601 UTC")
    pending_direction: Literal["lower", "higher"] | None
    armed: str | None = Field(description="why the next new counter is accepted at once")
    reason: str | None = Field(description="why the pending readings wait, else why outliers were refused")
    confirmed: list[ConfirmedOut] = Field(description="the last confirmed discontinuities, oldest first")
    message: str = Field(description="one line for people, times in the site's time zone")


class RegistersOut(BaseModel):
    registers: list[RegisterOut]


class ConfirmIn(BaseModel):
    """The meter of ``circuit`` was reset or replaced (all its registers, or one series)."""

    model_config = ConfigDict(extra="forbid")

    circuit: str = Field(min_length=1, max_length=64, description="circuit (or device) id")
    quantity: str | None = Field(default=None, max_length=64, description="one register quantity only")
    phase: PhaseName | None = Field(default=None, description="one phase only")


class ConfirmOut(BaseModel):
    circuit: str
    registers: list[RegisterOut] = Field(description="the series concerned, after the confirmation")
    message: str


def _state(st: RegisterStatus) -> State:
    if st.pending:
        return "pending"
    if st.armed:
        return "armed"
    if st.quarantined:
        return "quarantined"
    if st.confirmed:
        return "confirmed"
    return "ok"


def register_out(st: RegisterStatus, value: float | None, tz: str, now: float) -> RegisterOut:
    key = st.key
    q = CATALOGUE.get(key.quantity)
    direction = st.pending_direction if st.pending_direction in ("lower", "higher") else None
    return RegisterOut(
        circuit=key.circuit,
        quantity=key.quantity,
        phase=key.phase.value if key.phase is not None else None,
        unit=q.unit if q is not None else "",
        value=value,
        state=_state(st),
        quarantined=st.quarantined,
        held=st.held,
        refused=st.refused,
        pending=st.pending,
        pending_since=iso_utc(st.pending_since) if st.pending_since is not None else None,
        pending_direction=direction,
        armed=st.armed,
        reason=st.reason,
        confirmed=[ConfirmedOut(event=GuardEvent(e).value, ts=iso_utc(ts)) for e, ts in st.confirmed],
        message=st.text(tz, now),
    )


def _sort(key: SeriesKey) -> tuple[str, str, str]:
    return (key.circuit, key.quantity, key.phase.value if key.phase is not None else "")


@router.get(
    "/energy/registers",
    response_model=RegistersOut,
    summary="Register series: quarantined outliers, counters pending confirmation, confirmed resets",
)
def registers(
    energy: Pipeline,
    cfg: Config,
    _: READER,
    circuit: Annotated[str | None, Query(description="only this circuit", max_length=64)] = None,
) -> RegistersOut:
    status = energy.register_status()
    values = energy.register_values()
    tz, now = cfg.config.site.timezone, energy.clock()
    keys = sorted((k for k in status if circuit is None or k.circuit == circuit), key=_sort)
    return RegistersOut(registers=[register_out(status[k], values.get(k), tz, now) for k in keys])


@router.post(
    "/energy/registers/confirm",
    response_model=ConfirmOut,
    summary="Confirm a meter reset or replacement (admin)",
    responses={
        404: {"description": "unknown circuit"},
        409: {"description": "no register series of that circuit (and quantity, phase) read yet"},
        422: {"description": "an unknown key, or a quantity that is no register"},
    },
)
def confirm(body: ConfirmIn, energy: Pipeline, cfg: Config, who: ADMIN) -> ConfirmOut:
    config = cfg.config
    known = {c.id for c in config.circuits} | {d.id for d in config.devices}
    if body.circuit not in known:
        raise NotFoundError(f"unknown circuit {body.circuit!r}")
    if body.quantity is not None:
        q = CATALOGUE.get(body.quantity)
        if q is None or q.kind is not Kind.CUMULATIVE:
            raise bad_param(
                "body", "quantity", f"{body.quantity!r} is not a register quantity of the catalogue"
            )
    phase = Phase(body.phase) if body.phase is not None else None
    keys = energy.confirm_meter_change(body.circuit, body.quantity, phase)
    what = " ".join(x for x in (body.circuit, body.quantity, body.phase) if x)
    if not keys:
        raise ConflictError(f"no register series of {what} has been read yet; nothing to confirm")
    audit.info(
        "%s confirmed a meter reset or replacement of %s: %s",
        who.username or who.via,
        what,
        ", ".join(str(k) for k in keys),
    )
    status = energy.register_status()
    values = energy.register_values()
    tz, now = config.site.timezone, energy.clock()
    out = [register_out(status[k], values.get(k), tz, now) for k in sorted(keys, key=_sort) if k in status]
    n = len(keys)
    return ConfirmOut(
        circuit=body.circuit,
        registers=out,
        message=f"meter change of {what} confirmed for {n} register series",
    )
