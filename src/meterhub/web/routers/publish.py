"""The state of the site's ``publish:`` instances (MQTT publish, HTTP upload) and a test message.

* ``GET /api/v1/publish`` (reader) — every instance of the site file with its state
  (``connected | connecting | down | disabled``), a one-line message naming the instance and the cause,
  when a message was last acknowledged, the outbox's backlog and oldest pending message, what the outbox
  dropped when full, and the messages acknowledged since start (:mod:`meterhub.publish.status`).
* ``POST /api/v1/publish/{id}/test`` (admin) — queue a test message through the instance's outbox and
  wait up to 10 s for the broker's PUBACK or the server's 2xx; the answer says whether it came. 404 for an
  unknown instance, 409 for a disabled one or one that could not start.
* ``PUT /api/v1/config/publish/{id}`` (admin) — add an instance or replace the one with that id (the body
  is one ``publish:`` entry of the site file, as docs/publish.md describes it; secrets only by
  variable name or file path); ``DELETE /api/v1/config/publish/{id}`` removes one. Like every
  configuration change the site file is written back and the change applies at once: an instance added
  or enabled starts, one disabled or removed stops (``GET /api/v1/publish`` shows it).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from meterhub.config.publish import PublishInstance
from meterhub.errors import NotFoundError
from meterhub.model.readings import iso_utc
from meterhub.publish.status import InstanceStatus, send_test, statuses
from meterhub.web.auth import Principal, require_admin, require_reader
from meterhub.web.deps import Config, Publishing

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["publish"])

READER = Annotated[Principal, Depends(require_reader)]
ADMIN = Annotated[Principal, Depends(require_admin)]


class InstanceOut(BaseModel):
    """One ``publish:`` instance and the state of its link and outbox."""

    id: str
    name: str
    transport: str = Field(description="'mqtt' or 'http'")
    formats: list[str] = Field(description="eniscope-rtdata, meterhub-json, homeassistant")
    enabled: bool
    endpoint: str = Field(description="broker (mqtt://host:port) or upload URL")
    state: str = Field(description="connected | connecting | down | disabled")
    message: str = Field(description="the instance's health in one line (names the instance and the cause)")
    last_sent: str | None = Field(
        description="when a message was last acknowledged (UTC); null: none since start"
    )
    backlog: int = Field(description="messages waiting in the outbox")
    oldest: str | None = Field(description="creation time of the oldest waiting message (UTC)")
    oldest_age_s: float = Field(description="its age [s]; 0 when none waits")
    dropped: int = Field(description="messages the outbox dropped when full, ever")
    sent_total: int = Field(description="messages acknowledged by the broker or server since start")


class InstancesOut(BaseModel):
    instances: list[InstanceOut]


class TestOut(BaseModel):
    instance: str
    message_id: int = Field(description="the test message's outbox id (its MQTT message-id property)")
    target: str = Field(description="the MQTT topic or the upload URL")
    acknowledged: bool = Field(description="PUBACK or 2xx within the wait")
    seconds: float = Field(description="how long the answer took, or the wait when none came [s]")
    message: str


def _out(s: InstanceStatus) -> InstanceOut:
    return InstanceOut(
        id=s.id,
        name=s.name,
        transport=s.transport,
        formats=list(s.formats),
        enabled=s.enabled,
        endpoint=s.endpoint,
        state=s.state,
        message=s.message,
        last_sent=iso_utc(s.last_sent) if s.last_sent is not None else None,
        backlog=s.backlog,
        oldest=iso_utc(s.oldest) if s.oldest is not None else None,
        oldest_age_s=s.oldest_age_s,
        dropped=s.dropped,
        sent_total=s.sent_total,
    )


_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no publish instance with that id"},
    409: {"description": "the instance is disabled or could not start"},
    503: {"description": "the instance's outbox cannot take the message"},
}


@router.get(
    "/publish", response_model=InstancesOut, summary="State of the publish instances (MQTT, HTTP upload)"
)
def publish_state(_: READER, pub: Publishing) -> InstancesOut:
    return InstancesOut(instances=[_out(s) for s in statuses(pub.sink, pub.instances, pub.clock())])


@router.post(
    "/publish/{instance_id}/test",
    response_model=TestOut,
    responses=_ERRORS,
    summary="Send a test message through an instance's outbox and wait for its acknowledgement (admin)",
)
async def publish_test(instance_id: str, who: ADMIN, pub: Publishing) -> TestOut:
    r = await send_test(pub.sink, pub.instances, instance_id, by=who.username or "admin", now=pub.clock())
    return TestOut(
        instance=r.instance,
        message_id=r.message_id,
        target=r.target,
        acknowledged=r.acknowledged,
        seconds=r.seconds,
        message=r.message,
    )


@router.put(
    "/config/publish/{instance_id}",
    response_model=InstanceOut,
    summary="Add a publish instance or replace the one with this id; it applies at once (admin)",
    responses={422: {"description": "invalid field, or the body's id is not the one of the path"}},
)
async def put_publish_instance(
    instance_id: str, body: PublishInstance, cfg: Config, pub: Publishing, _: ADMIN
) -> InstanceOut:
    if body.id != instance_id:
        raise HTTPException(
            422,
            [
                {
                    "loc": ["body", "id"],
                    "msg": f"the body's id {body.id!r} is not the path's {instance_id!r}",
                    "type": "value_error",
                }
            ],
        )
    new = cfg.config.model_copy(deep=True)
    instances = list(new.publish or [])
    at = next((i for i, inst in enumerate(instances) if inst.id == instance_id), None)
    if at is None:
        instances.append(body)
    else:
        instances[at] = body
    new.publish = instances
    applied = await cfg.apply(new)
    (status,) = [
        s for s in statuses(pub.sink, list(applied.publish or []), pub.clock()) if s.id == instance_id
    ]
    return _out(status)


@router.delete(
    "/config/publish/{instance_id}",
    status_code=204,
    summary="Remove a publish instance; it stops at once (admin)",
    responses={404: {"description": "no publish instance with that id"}},
)
async def delete_publish_instance(instance_id: str, cfg: Config, _: ADMIN) -> None:
    instances = list(cfg.config.publish or [])
    if not any(i.id == instance_id for i in instances):
        known = ", ".join(i.id for i in instances) or "none"
        raise NotFoundError(f"no publish instance {instance_id!r} (known: {known})")
    new = cfg.config.model_copy(deep=True)
    new.publish = [i for i in instances if i.id != instance_id] or None
    await cfg.apply(new)
