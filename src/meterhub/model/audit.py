"""The audit trail's entry: every action on the plant or the configuration, by a person or a rule.

It lives in the model layer so that every layer that acts — the IO drivers' output control, the
alarm engine (acknowledge, shelve), the configuration writers, the web API — can hand entries to an
:class:`Auditor` without importing the storage that keeps them (the audit log in the storage backend).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["AuditEntry", "Auditor"]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One action on the plant or the configuration.

    ts : when [s since the epoch, UTC]; actor : the user name, or ``rule:<id>`` / ``schedule:<id>`` /
    ``demand-limit`` for automatic actions; action : e.g. ``relay.switch``, ``alarm.ack``,
    ``alarm.shelve``, ``alarm-rule.create``, ``config.write``; target : what it acted on;
    before / after : the state or value before and after (JSON-ready); comment : free text.
    """

    ts: float
    actor: str
    action: str
    target: str
    before: Any = None
    after: Any = None
    comment: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Auditor(Protocol):
    """Records audit entries durably (the audit log in the storage backend)."""

    def record(self, entry: AuditEntry) -> None: ...
