"""Alarms over HTTP: the active list, acknowledge, shelve, out of service, and the rules (issue 11).

* ``GET /api/v1/alarms`` (reader) — ``{"alarms": [{"id", "rule", "target", "phase", "quantity", "state",
  "severity", "value", "limit", "since", "acked_by", "title", "message", "unit", …}], "counts": {…}}``:
  the alarms that need attention (not normal, shelved or out of service), worst first; ``?all=true``
  lists every alarm.
* ``POST /api/v1/alarms/{id}/ack`` ``{"comment"}`` — admin, or a reader when ``alarms.reader_can_ack``.
* ``POST /api/v1/alarms/{id}/shelve`` ``{"duration_s", "comment"}``, ``POST …/unshelve``,
  ``POST …/out-of-service``, ``POST …/in-service`` (admin).
* ``GET|POST /api/v1/alarm-rules``, ``GET|PUT|DELETE /api/v1/alarm-rules/{rule_id}`` — the site file's
  rules (reading: reader; changes: admin), validated like the site file (422 naming the field) and
  written through the site file.

Alarm ids contain ``/`` (``pf-low/compressor``, ``system:device_offline/m1``): the path takes them whole.
Every acknowledge, shelve, service change and rule change is an audit entry (who, when, before, after).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from meterhub.alarms.engine import MAX_SHELVE
from meterhub.config.alarms import AlarmRule, AlarmsConfig
from meterhub.config.loader import ConfigError, ConfigIssue
from meterhub.errors import ConflictError, NotFoundError
from meterhub.model.audit import AuditEntry
from meterhub.model.readings import iso_utc
from meterhub.web.auth import Principal, require_admin, require_reader
from meterhub.web.deps import Alarms, Config

__all__ = ["router"]

log = logging.getLogger("meterhub.web.alarms")

router = APIRouter(prefix="/api/v1", tags=["alarms"])

READER = Annotated[Principal, Depends(require_reader)]
ADMIN = Annotated[Principal, Depends(require_admin)]


class AlarmOut(BaseModel):
    """One alarm and its ISA-18.2 state."""

    id: str = Field(
        description="<rule>/<circuit or point>[/<phase>]; system:<name>/<target> for built-in rules"
    )
    rule: str
    target: str = Field(description="circuit, IO point, device id or 'site'")
    phase: str | None
    quantity: str | None = Field(description="catalogue id watched; null for state rules (device offline …)")
    state: str = Field(
        description="normal | unack-active | ack-active | rtn-unack | shelved | suppressed | out-of-service"
    )
    severity: str
    value: float | None = Field(description="the value that decided the state, in 'unit'")
    limit: float | None
    unit: str | None
    since: str | None = Field(description="when the current state began (UTC)")
    acked_by: str | None
    ack_comment: str | None = None
    shelved_until: str | None = None
    shelved_by: str | None = None
    title: str
    message: str


class AlarmsOut(BaseModel):
    alarms: list[AlarmOut]
    counts: dict[str, int] = Field(description="alarms per state; 'unacknowledged' is the badge's number")


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(default=None, max_length=2000)


class ShelveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration_s: float = Field(gt=0, le=MAX_SHELVE, description="how long the alarm stays shelved [s]")
    comment: str | None = Field(default=None, max_length=2000)


class RulesOut(BaseModel):
    rules: list[dict[str, Any]]
    reader_can_ack: bool


def _user(who: Principal) -> str:
    """The name audit entries and events carry (a token is its user's)."""
    return who.username or f"({who.via})"


def _alarm_out(view: dict[str, Any]) -> AlarmOut:
    data = dict(view)
    data["since"] = iso_utc(view["since"], "seconds") if view["since"] is not None else None
    data["shelved_until"] = (
        iso_utc(view["shelved_until"], "seconds") if view["shelved_until"] is not None else None
    )
    return AlarmOut(**data)


@router.get("/alarms", response_model=AlarmsOut, summary="Alarms that need attention (all with ?all=true)")
def list_alarms(
    alarms: Alarms, _: READER, all: bool = Query(False, description="every alarm, normal ones too")
) -> AlarmsOut:
    views = alarms.engine.alarms(include_normal=all)
    return AlarmsOut(alarms=[_alarm_out(v) for v in views], counts=alarms.engine.counts())


def _one(alarms: Alarms, alarm_id: str) -> AlarmOut:
    return _alarm_out(alarms.engine.view(alarms.engine.find(alarm_id)))


_ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not signed in"},
    403: {"description": "not allowed for this role"},
    404: {"description": "unknown alarm"},
    409: {"description": "the alarm is not in a state that takes this action"},
}


@router.post(
    "/alarms/{alarm_id:path}/ack",
    response_model=AlarmOut,
    summary="Acknowledge an alarm (admin; readers when alarms.reader_can_ack)",
    responses=_ACTION_ERRORS,
)
def acknowledge(alarm_id: str, body: AckIn, alarms: Alarms, who: READER) -> AlarmOut:
    if not who.is_admin and not alarms.reader_can_ack:
        raise HTTPException(
            403,
            "acknowledging alarms needs the admin role here (the site file's alarms.reader_can_ack is off)",
        )
    alarms.engine.acknowledge(alarm_id, _user(who), body.comment)
    log.info("%s acknowledged %s", _user(who), alarm_id)
    return _one(alarms, alarm_id)


@router.post(
    "/alarms/{alarm_id:path}/shelve",
    response_model=AlarmOut,
    summary="Shelve an alarm for a time (admin); it comes back by itself",
    responses=_ACTION_ERRORS,
)
def shelve(alarm_id: str, body: ShelveIn, alarms: Alarms, who: ADMIN) -> AlarmOut:
    alarms.engine.shelve(alarm_id, _user(who), body.duration_s, body.comment)
    return _one(alarms, alarm_id)


@router.post(
    "/alarms/{alarm_id:path}/unshelve",
    response_model=AlarmOut,
    summary="Take an alarm back from the shelf (admin)",
    responses=_ACTION_ERRORS,
)
def unshelve(alarm_id: str, body: AckIn, alarms: Alarms, who: ADMIN) -> AlarmOut:
    alarms.engine.unshelve(alarm_id, _user(who), body.comment)
    return _one(alarms, alarm_id)


@router.post(
    "/alarms/{alarm_id:path}/out-of-service",
    response_model=AlarmOut,
    summary="Take an alarm out of service: not evaluated until put back (admin)",
    responses=_ACTION_ERRORS,
)
def out_of_service(alarm_id: str, body: AckIn, alarms: Alarms, who: ADMIN) -> AlarmOut:
    alarms.engine.set_in_service(alarm_id, _user(who), False, body.comment)
    return _one(alarms, alarm_id)


@router.post(
    "/alarms/{alarm_id:path}/in-service",
    response_model=AlarmOut,
    summary="Put an alarm back in service (admin)",
    responses=_ACTION_ERRORS,
)
def in_service(alarm_id: str, body: AckIn, alarms: Alarms, who: ADMIN) -> AlarmOut:
    alarms.engine.set_in_service(alarm_id, _user(who), True, body.comment)
    return _one(alarms, alarm_id)


# -- rules ------------------------------------------------------------------------------------------------
def _rule_json(rule: AlarmRule) -> dict[str, Any]:
    return rule.model_dump(mode="json", exclude_none=True)


def _rules(cfg: Config) -> list[AlarmRule]:
    return list((cfg.config.alarms or AlarmsConfig()).rules)


async def _apply(cfg: Config, rules: list[AlarmRule], index: int) -> None:
    """Write the changed rules through the site file; a refusal names the rule's field (``loc``
    ``["body", field]``) rather than its place in the file."""
    section = cfg.config.alarms or AlarmsConfig()
    new = cfg.config.model_copy(update={"alarms": section.model_copy(update={"rules": rules})})
    try:
        await cfg.apply(new)
    except ConfigError as exc:
        issues = []
        for i in exc.issues:
            loc = i.loc
            if loc[:3] == ("alarms", "rules", index):
                loc = loc[3:]
            issues.append(ConfigIssue(i.file, i.line, loc, i.message))
        raise ConfigError(issues) from None


def _audit(alarms: Alarms, who: Principal, action: str, rule_id: str, before: Any, after: Any) -> None:
    entry = AuditEntry(
        ts=alarms.engine.clock(),
        actor=_user(who),
        action=action,
        target=rule_id,
        before=before,
        after=after,
    )
    try:
        alarms.auditor.record(entry)
    except Exception:
        log.exception("the auditor failed to record %s of rule %s by %s", action, rule_id, _user(who))


@router.get("/alarm-rules", response_model=RulesOut, summary="The alarm rules of the site file")
def list_rules(cfg: Config, _: READER) -> RulesOut:
    section = cfg.config.alarms or AlarmsConfig()
    return RulesOut(rules=[_rule_json(r) for r in section.rules], reader_can_ack=section.reader_can_ack)


def _find_rule(cfg: Config, rule_id: str) -> tuple[int, AlarmRule]:
    for i, r in enumerate(_rules(cfg)):
        if r.id == rule_id:
            return i, r
    raise NotFoundError(f"unknown alarm rule {rule_id!r}")


@router.get(
    "/alarm-rules/{rule_id}", summary="One alarm rule", responses={404: {"description": "unknown rule"}}
)
def get_rule(rule_id: str, cfg: Config, _: READER) -> dict[str, Any]:
    return _rule_json(_find_rule(cfg, rule_id)[1])


@router.post(
    "/alarm-rules",
    status_code=201,
    summary="Add an alarm rule (admin)",
    responses={409: {"description": "a rule with this id exists"}, 422: {"description": "invalid rule"}},
)
async def create_rule(body: AlarmRule, cfg: Config, alarms: Alarms, who: ADMIN) -> dict[str, Any]:
    rules = _rules(cfg)
    if any(r.id == body.id for r in rules):
        raise ConflictError(
            f"alarm rule {body.id!r} exists; change it with PUT /api/v1/alarm-rules/{body.id}"
        )
    await _apply(cfg, [*rules, body], len(rules))
    _audit(alarms, who, "alarm-rule.create", body.id, None, _rule_json(body))
    return _rule_json(body)


@router.put(
    "/alarm-rules/{rule_id}",
    summary="Replace an alarm rule (admin); alarms that stay keep their states",
    responses={404: {"description": "unknown rule"}, 422: {"description": "invalid rule"}},
)
async def replace_rule(
    rule_id: str, body: AlarmRule, cfg: Config, alarms: Alarms, who: ADMIN
) -> dict[str, Any]:
    i, before = _find_rule(cfg, rule_id)
    if body.id != rule_id:
        raise ConfigError(
            [ConfigIssue("<api>", None, ("id",), f"the body's id {body.id!r} is not {rule_id!r}")]
        )
    rules = _rules(cfg)
    rules[i] = body
    await _apply(cfg, rules, i)
    _audit(alarms, who, "alarm-rule.update", rule_id, _rule_json(before), _rule_json(body))
    return _rule_json(body)


@router.delete(
    "/alarm-rules/{rule_id}",
    status_code=204,
    summary="Remove an alarm rule (admin); its alarms are announced out of service",
    responses={404: {"description": "unknown rule"}},
)
async def delete_rule(rule_id: str, cfg: Config, alarms: Alarms, who: ADMIN) -> None:
    i, before = _find_rule(cfg, rule_id)
    rules = _rules(cfg)
    del rules[i]
    await _apply(cfg, rules, -1)
    _audit(alarms, who, "alarm-rule.delete", rule_id, _rule_json(before), None)
