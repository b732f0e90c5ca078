"""The event logs over HTTP, as JSON or CSV (``format=csv``), newest first unless ``order=asc``:

* ``GET /api/v1/alarms/log`` (reader) — every alarm transition (raised, reminder, cleared,
  acknowledged, shelved …) with its value, limit and user; filters ``rule``, ``target``, ``severity``,
  ``kind``, ``alarm`` (the alarm id);
* ``GET /api/v1/events/pq`` (reader) — power-quality events (dips, swells, interruptions, frequency
  deviations): start, duration, extreme, phase, IEC 61000-4-30 §4.7 flag, source; filters ``kind``,
  ``device``, ``phase``;
* ``GET /api/v1/events/device`` (reader) — the entries of the meters' own event logs (a DLMS meter's
  standard and alarm logs): the meter's capture time, device, log, event code and its text; filters
  ``device``, ``log``;
* ``GET /api/v1/audit`` (admin) — every action on the plant or the configuration: who, when, action,
  target, before and after; filters ``actor``, ``action``, ``target``.

``from`` and ``to`` are ISO 8601 or Unix seconds (``from`` ≤ time < ``to``; default: the 7 days up to
now); times in answers are ISO 8601 UTC, as everywhere in the API. A filter may be repeated or given as
a comma-separated list. At most ``limit`` rows are answered; ``truncated`` says more matched (narrow the
time range). The logs are kept in the storage backend (:mod:`meterhub.storage.events`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from meterhub.alarms.model import EventKind, Severity
from meterhub.model.pq import PqKind
from meterhub.model.readings import iso_utc
from meterhub.storage.events import AlarmLogRow, StoredAudit, StoredPqEvent
from meterhub.web.auth import Principal, require_admin, require_reader
from meterhub.web.deps import Logs, Runtime, bad_param, query_time

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["logs"])

READER = Annotated[Principal, Depends(require_reader)]
ADMIN = Annotated[Principal, Depends(require_admin)]

#: The default time range of a log query [s].
DEFAULT_SPAN = 7 * 86400
PQ_PHASES = ("L1", "L2", "L3", "L1-L2", "L2-L3", "L3-L1")

From = Annotated[
    str | None, Query(alias="from", description="ISO 8601 or Unix seconds (default: to − 7 days)")
]
To = Annotated[
    str | None, Query(alias="to", description="ISO 8601 or Unix seconds, exclusive (default: now)")
]
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv (a download)")]
Order = Annotated[
    Literal["desc", "asc"], Query(description="desc: newest first (default); asc: oldest first")
]
Limit = Annotated[int, Query(ge=1, le=100_000, description="rows at most")]
Filter = Annotated[list[str], Query(description="one or more values (repeat, or separate by commas)")]


# -- answer shapes ------------------------------------------------------------------------------------
class AlarmLogOut(BaseModel):
    seq: int = Field(description="the engine's event number (strictly increasing)")
    ts: str = Field(description="ISO 8601 UTC")
    alarm_id: str = Field(description="<rule>/<target>[/<phase>]")
    rule: str
    kind: str = Field(description="raised, reminder, cleared, acknowledged, shelved, unshelved …")
    state: str = Field(description="ISA-18.2 state after the event: normal, unack-active, ack-active …")
    severity: str
    target: str
    phase: str | None
    quantity: str | None = Field(description="catalogue id (None for rules on states)")
    value: float | None = Field(description="the value that decided it [unit]")
    limit: float | None = Field(description="the limit it crossed [unit]")
    unit: str | None
    title: str
    message: str
    user: str | None = Field(description="who acknowledged or shelved it")
    comment: str | None


class AlarmLogPage(BaseModel):
    events: list[AlarmLogOut]
    truncated: bool = Field(description="more events matched than 'limit'")


class PqOut(BaseModel):
    id: int
    kind: str = Field(description="dip, swell, interruption or frequency-deviation")
    start: str = Field(description="ISO 8601 UTC")
    duration: float = Field(description="[s]")
    extreme: float = Field(
        description="residual (dip, interruption) or highest (swell) voltage [V]; frequency [Hz]"
    )
    unit: str
    phase: str | None
    device: str
    circuit: str | None
    flagged: bool = Field(description="flags the values aggregated over its time (IEC 61000-4-30 §4.7)")
    source: str = Field(description="waveform (meterhub's engine) or device (a meter's event register)")
    threshold: float | None = Field(
        description="threshold that started it [% of the declared voltage, or Hz]"
    )


class PqPage(BaseModel):
    events: list[PqOut]
    truncated: bool


class DeviceEventOut(BaseModel):
    ts: str = Field(description="the meter's capture time, ISO 8601 UTC")
    device: str
    log: str = Field(description="which of the meter's logs: standard, alarm")
    code: int = Field(description="the meter's event code")
    text: str = Field(description="what the code means (docs/logs.md lists the codes)")


class DeviceEventPage(BaseModel):
    events: list[DeviceEventOut]
    truncated: bool


class AuditOut(BaseModel):
    id: int
    ts: str = Field(description="ISO 8601 UTC")
    actor: str = Field(description="user name, or rule:<id> / schedule:<id> / demand-limit")
    action: str = Field(description="e.g. config.write, relay.switch, alarm.ack, alarm.shelve")
    target: str
    before: Any
    after: Any
    comment: str | None
    extra: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditOut]
    truncated: bool


# -- helpers ------------------------------------------------------------------------------------------
def _span(rt: Runtime, start: str | None, end: str | None) -> tuple[float, float]:
    t_end = query_time(end, "to") if end is not None else rt.clock() + 1.0  # + 1 s: include "now"
    t_start = query_time(start, "from") if start is not None else t_end - DEFAULT_SPAN
    if t_start >= t_end:
        raise bad_param("query", "from", "'from' must be before 'to'")
    return t_start, t_end


def _values(name: str, given: Sequence[str], allowed: Iterable[str] | None = None) -> list[str]:
    """A filter's values (repeated or comma-separated); 422 naming ``name`` for one not allowed."""
    out = [v.strip() for item in given for v in item.split(",") if v.strip()]
    if allowed is not None:
        ok = list(allowed)
        for v in out:
            if v not in ok:
                raise bad_param("query", name, f"unknown {name} {v!r}; use one of {', '.join(ok)}")
    return out


def _csv(rows: list[dict[str, Any]], columns: Sequence[str], name: str) -> Response:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")  # RFC 4180
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r[c] is None else _cell(r[c]) for c in columns])
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, bool):
        return "1" if value else "0"
    return value


def _stamp(t0: float, t1: float) -> str:
    return f"{iso_utc(t0, 'seconds')}_{iso_utc(t1, 'seconds')}".replace(":", "")


def _alarm_json(r: AlarmLogRow) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "ts": iso_utc(r.ts),
        "alarm_id": r.alarm_id,
        "rule": r.rule,
        "kind": r.kind,
        "state": r.state,
        "severity": r.severity,
        "target": r.target,
        "phase": r.phase,
        "quantity": r.quantity,
        "value": r.value,
        "limit": r.limit,
        "unit": r.unit,
        "title": r.title,
        "message": r.message,
        "user": r.user,
        "comment": r.comment,
    }


def _pq_json(s: StoredPqEvent) -> dict[str, Any]:
    e = s.event
    return {
        "id": s.id,
        "kind": e.kind.value,
        "start": iso_utc(e.start),
        "duration": e.duration,
        "extreme": e.extreme,
        "unit": e.unit,
        "phase": e.phase,
        "device": e.device,
        "circuit": e.circuit,
        "flagged": e.flagged,
        "source": e.source.value,
        "threshold": e.threshold,
    }


def _audit_json(s: StoredAudit) -> dict[str, Any]:
    e = s.entry
    return {
        "id": s.id,
        "ts": iso_utc(e.ts),
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "before": e.before,
        "after": e.after,
        "comment": e.comment,
        "extra": e.extra,
    }


# -- routes -------------------------------------------------------------------------------------------
@router.get(
    "/alarms/log",
    summary="The alarm log: every alarm transition with value, limit and user",
    response_model=AlarmLogPage,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
)
def alarm_log(
    logs: Logs,
    rt: Runtime,
    _: READER,
    start: From = None,
    end: To = None,
    rule: Filter = [],  # noqa: B006 - FastAPI copies defaults per request
    target: Filter = [],  # noqa: B006
    severity: Filter = [],  # noqa: B006
    kind: Filter = [],  # noqa: B006
    alarm: Filter = [],  # noqa: B006
    limit: Limit = 1000,
    order: Order = "desc",
    format: Format = "json",
) -> Any:
    t0, t1 = _span(rt, start, end)
    page = logs.alarm_log(
        t0,
        t1,
        rule=_values("rule", rule),
        target=_values("target", target),
        severity=_values("severity", severity, (s.value for s in Severity)),
        kind=_values("kind", kind, (k.value for k in EventKind)),
        alarm_id=_values("alarm", alarm),
        limit=limit,
        newest_first=order == "desc",
    )
    rows = [_alarm_json(r) for r in page.rows]
    if format == "csv":
        return _csv(rows, list(AlarmLogOut.model_fields), f"alarm-log_{_stamp(t0, t1)}.csv")
    return AlarmLogPage.model_validate({"events": rows, "truncated": page.truncated})


@router.get(
    "/events/device",
    summary="The meters' own event logs (standard and alarm logs of DLMS meters)",
    response_model=DeviceEventPage,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
)
def device_events(
    logs: Logs,
    rt: Runtime,
    _: READER,
    start: From = None,
    end: To = None,
    device: Filter = [],  # noqa: B006
    log: Filter = [],  # noqa: B006
    limit: Limit = 1000,
    order: Order = "desc",
    format: Format = "json",
) -> Any:
    t0, t1 = _span(rt, start, end)
    page = logs.device_events(
        t0,
        t1,
        device=_values("device", device),
        log=_values("log", log),
        limit=limit,
        newest_first=order == "desc",
    )
    rows = [
        {"ts": iso_utc(e.ts), "device": e.device, "log": e.log, "code": e.code, "text": e.text}
        for e in page.rows
    ]
    if format == "csv":
        return _csv(rows, list(DeviceEventOut.model_fields), f"device-events_{_stamp(t0, t1)}.csv")
    return DeviceEventPage.model_validate({"events": rows, "truncated": page.truncated})


@router.get(
    "/events/pq",
    summary="The power-quality log: dips, swells, interruptions, frequency deviations",
    response_model=PqPage,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
)
def pq_log(
    logs: Logs,
    rt: Runtime,
    _: READER,
    start: From = None,
    end: To = None,
    kind: Filter = [],  # noqa: B006
    device: Filter = [],  # noqa: B006
    phase: Filter = [],  # noqa: B006
    limit: Limit = 1000,
    order: Order = "desc",
    format: Format = "json",
) -> Any:
    t0, t1 = _span(rt, start, end)
    page = logs.pq_log(
        t0,
        t1,
        kind=_values("kind", kind, (k.value for k in PqKind)),
        device=_values("device", device),
        phase=_values("phase", phase, PQ_PHASES),
        limit=limit,
        newest_first=order == "desc",
    )
    rows = [_pq_json(s) for s in page.rows]
    if format == "csv":
        return _csv(rows, list(PqOut.model_fields), f"pq-log_{_stamp(t0, t1)}.csv")
    return PqPage.model_validate({"events": rows, "truncated": page.truncated})


@router.get(
    "/audit",
    summary="The audit log: control actions and configuration changes (admin)",
    response_model=AuditPage,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}},
)
def audit_log(
    logs: Logs,
    rt: Runtime,
    _: ADMIN,
    start: From = None,
    end: To = None,
    actor: Filter = [],  # noqa: B006
    action: Filter = [],  # noqa: B006
    target: Filter = [],  # noqa: B006
    limit: Limit = 1000,
    order: Order = "desc",
    format: Format = "json",
) -> Any:
    t0, t1 = _span(rt, start, end)
    page = logs.audit_log(
        t0,
        t1,
        actor=_values("actor", actor),
        action=_values("action", action),
        target=_values("target", target),
        limit=limit,
        newest_first=order == "desc",
    )
    rows = [_audit_json(s) for s in page.rows]
    if format == "csv":
        return _csv(rows, list(AuditOut.model_fields), f"audit-log_{_stamp(t0, t1)}.csv")
    return AuditPage.model_validate({"entries": rows, "truncated": page.truncated})
