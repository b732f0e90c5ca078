"""The commissioning assistant over HTTP (docs/commissioning.md).

* ``GET /api/v1/commissioning`` (reader) — per circuit: ``verdict`` ok | suspect | insufficient-load,
  ``findings`` (kind, phase, confidence, evidence, fix), what was checked and for how long. The first
  request starts the observation (:class:`meterhub.runtime.commissioning.Commissioning`, made with the app).
* ``POST /api/v1/commissioning/fix`` (admin) — body ``{"finding": "hvac:reversed-ct:L2"}`` applies that
  finding's fix, ``{"circuit": "hvac"}`` every fix of the circuit. The fix is the one the analysis
  proposes *now* (never a patch sent by the client), applied like ``PATCH /api/v1/circuits/{id}``: the
  site file written back with a backup, acquisition restarted; the circuit is then checked anew. Each
  change is audited (an :class:`~meterhub.model.audit.AuditEntry` to the gateway's audit log).
  404 for an unknown circuit or a finding that is not (or no longer) reported, 409
  for a finding whose fix is a change on site rather than in the configuration.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from meterhub.config import edit
from meterhub.errors import ConflictError, InputError, NotFoundError
from meterhub.model.audit import AuditEntry
from meterhub.runtime.commissioning import Commissioning
from meterhub.web.auth import Principal, require_admin, require_reader
from meterhub.web.deps import Auditing, Config, Runtime

__all__ = ["commissioning_of", "router"]

log = logging.getLogger("meterhub.web.commissioning")
router = APIRouter(prefix="/api/v1", tags=["commissioning"])
READER = Annotated[Principal, Depends(require_reader)]
ADMIN = Annotated[Principal, Depends(require_admin)]


async def commissioning_of(request: Request) -> Commissioning:
    """The app's assistant (made by :func:`meterhub.web.app.create_app`), sampling from its first use."""
    assistant: Commissioning = request.app.state.commissioning
    assistant.start()
    return assistant


Assistant = Annotated[Commissioning, Depends(commissioning_of)]


class FixIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    finding: str | None = Field(default=None, description="a finding's id, CIRCUIT:KIND:PHASE")
    circuit: str | None = Field(default=None, description="apply every fix proposed for this circuit")


@router.get("/commissioning", summary="Wiring checks per circuit: verdicts, findings and fixes")
async def get_commissioning(assistant: Assistant, _: READER) -> dict[str, Any]:
    return assistant.report()


@router.post("/commissioning/fix", summary="Apply a commissioning finding's fix to the configuration (admin)")
async def post_fix(
    body: FixIn, assistant: Assistant, cfg: Config, rt: Runtime, auditor: Auditing, who: ADMIN
) -> dict[str, Any]:
    if (body.finding is None) == (body.circuit is None):
        raise InputError("give either 'finding' (e.g. hvac:reversed-ct:L2) or 'circuit'")
    reports = {r.id: r for r in assistant.reports()}
    circuit_id = body.circuit if body.circuit is not None else (body.finding or "").split(":", 1)[0]
    report = reports.get(circuit_id)
    if report is None:
        raise NotFoundError(f"no circuit {circuit_id!r} is being checked")
    if body.finding is not None:
        chosen = [f for f in report.findings if f.id == body.finding]
        if not chosen:
            known = ", ".join(f.id for f in report.findings) or "none"
            raise NotFoundError(
                f"finding {body.finding!r} is not reported now (circuit {circuit_id}: {known})"
            )
        patch = chosen[0].fix.get("patch")
        texts = [chosen[0].fix["text"]]
    else:
        chosen = report.findings
        patch = report.patch
        texts = [f.fix["text"] for f in chosen]
    if not patch:
        raise ConflictError(
            f"circuit {circuit_id}: nothing to change in the configuration; on site: {'; '.join(texts) or '-'}"
        )
    before = cfg.config.circuit(circuit_id).model_dump(mode="json")
    new = edit.patch_circuit(cfg.config, circuit_id, patch, now=rt.clock())
    await cfg.apply(new)
    entry = AuditEntry(
        ts=rt.clock(),
        actor=who.username or who.via,
        action="commissioning.fix",
        target=f"circuit:{circuit_id}",
        before={k: before.get(k) for k in patch},
        after=patch,
        comment="; ".join(texts),
        extra={"findings": [f.id for f in chosen]},
    )
    auditor.record(entry)
    after = next(r for r in assistant.reports() if r.id == circuit_id)
    return {
        "circuit": circuit_id,
        "applied": patch,
        "findings": [f.id for f in chosen],
        "now": after.as_dict(),
    }
