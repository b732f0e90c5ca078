"""What the parts of the alarm system hand each other: states, events, audit entries.

The engine (:mod:`meterhub.alarms.engine`) turns GOOD readings into alarm state changes, each an
:class:`AlarmEvent`. Listeners (:class:`AlarmListener`) consume them: the alarm log, the
notifications (email, webhooks) and the control linkage (relays). Every action a person or a rule
takes on the plant or on the configuration — a relay switched, an alarm acknowledged or shelved, a rule
edited — is one :class:`meterhub.model.audit.AuditEntry` handed to an
:class:`meterhub.model.audit.Auditor`.

States follow ISA-18.2 / IEC 62682 (the alarm state transition diagram):

========================  ===================================================================
``normal``                the condition is not present and nothing waits for acknowledgement
``unack-active``          the condition is present, nobody acknowledged it yet
``ack-active``            the condition is present and was acknowledged
``rtn-unack``             the condition returned to normal before anybody acknowledged it
``shelved``               an operator took it out of the list for a while (it comes back)
``suppressed``            suppressed by design, e.g. its device is offline (inhibition)
``out-of-service``        taken out of service (maintenance): evaluated nowhere
========================  ===================================================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "AlarmEvent",
    "AlarmListener",
    "AlarmState",
    "EventKind",
    "Severity",
]


class AlarmState(enum.StrEnum):
    """The ISA-18.2 states of one alarm (see the module docstring)."""

    NORMAL = "normal"
    UNACK_ACTIVE = "unack-active"
    ACK_ACTIVE = "ack-active"
    RTN_UNACK = "rtn-unack"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out-of-service"

    @property
    def active(self) -> bool:
        """The condition is present (acknowledged or not)."""
        return self in (AlarmState.UNACK_ACTIVE, AlarmState.ACK_ACTIVE)

    @property
    def unacknowledged(self) -> bool:
        """Somebody still has to acknowledge it (the badge on every page counts these)."""
        return self in (AlarmState.UNACK_ACTIVE, AlarmState.RTN_UNACK)


class Severity(enum.StrEnum):
    """How urgent an alarm is, highest first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class EventKind(enum.StrEnum):
    """What happened to an alarm."""

    RAISED = "raised"  # the condition held for its on-delay: normal → unack-active
    REMINDER = "reminder"  # still active after the rule's reminder time (no state change)
    CLEARED = "cleared"  # back to normal for the recovery time: → rtn-unack or normal
    ACKNOWLEDGED = "acknowledged"  # by a user, with a comment
    SHELVED = "shelved"  # by a user, for a duration
    UNSHELVED = "unshelved"  # the shelve time ran out, or a user took it back
    SUPPRESSED = "suppressed"  # inhibited (its device went offline, a site-level outage …)
    UNSUPPRESSED = "unsuppressed"
    OUT_OF_SERVICE = "out-of-service"
    IN_SERVICE = "in-service"


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One change of one alarm.

    seq : strictly increasing over the gateway's life (persisted), the id receivers deduplicate by.
    alarm_id : the alarm instance: ``<rule>/<target>[/<phase>]``, stable across restarts.
    rule : the rule's id (``system:…`` for the built-in rules).
    kind, state : what happened and the state after it.
    target : what the rule watches (a circuit, zone, device, IO point id, or ``site``).
    phase : ``L1``/``L2``/``L3``/``total`` … or None.
    quantity : the catalogue id watched (None for rules on states, e.g. device offline).
    value, limit, unit : the value that decided it (None when not a measurement), the limit it crossed.
    ts : when it happened [s since the epoch, UTC].
    title, message : the rule's texts with their placeholders filled in.
    user, comment : who acknowledged / shelved, and why (None for the engine's own changes).
    """

    seq: int
    alarm_id: str
    rule: str
    kind: EventKind
    state: AlarmState
    severity: Severity
    target: str
    phase: str | None
    quantity: str | None
    value: float | None
    limit: float | None
    unit: str | None
    ts: float
    title: str
    message: str
    user: str | None = None
    comment: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (enums as their values)."""
        return {
            "seq": self.seq,
            "alarm_id": self.alarm_id,
            "rule": self.rule,
            "kind": self.kind.value,
            "state": self.state.value,
            "severity": self.severity.value,
            "target": self.target,
            "phase": self.phase,
            "quantity": self.quantity,
            "value": self.value,
            "limit": self.limit,
            "unit": self.unit,
            "ts": self.ts,
            "title": self.title,
            "message": self.message,
            "user": self.user,
            "comment": self.comment,
        }


class AlarmListener(Protocol):
    """Consumes alarm events: called on the event loop, in ``seq`` order; must not block (queue work
    to a durable outbox or a thread). An exception is logged by the engine, never propagated."""

    def on_event(self, event: AlarmEvent) -> None: ...
