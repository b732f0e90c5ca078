"""Sections of the site file whose implementation has not landed yet.

``fleet`` is typed now so that the schema is complete and a
site file written for a later version is refused instead of being silently ignored: each section accepts
nothing (absent, empty or ``null``) until the issue that implements it replaces its model here. The same
holds for bus kinds without a driver (:data:`PENDING_BUS_KINDS`, checked in :mod:`meterhub.config.schema`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import model_validator

from meterhub.config.types import StrictModel

__all__ = [
    "PENDING_BUS_ISSUES",
    "FleetConfig",
    "not_implemented",
]

#: Bus kinds (their ``BusKind`` values) with no driver yet → the issue that adds one.
PENDING_BUS_ISSUES: dict[str, int] = {}


def not_implemented(issue: int) -> str:
    """The message for a configured feature whose issue has not landed."""
    return f"not implemented yet (issue {issue})"


class _Pending(StrictModel):
    """A section that accepts no content yet (``issue``: the issue that implements it)."""

    issue: ClassVar[int]

    @model_validator(mode="before")
    @classmethod
    def _refuse(cls, value: Any) -> Any:
        if value is None or value == {}:
            return {}
        raise ValueError(not_implemented(cls.issue))


class FleetConfig(_Pending):
    """``fleet:`` — reporting to a central fleet service (issue 15)."""

    issue = 15
