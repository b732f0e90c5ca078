"""Health of a running component (a source, a sink, the storage): one shape for the runtime, API and UI.

Every component answers ``health()`` with a :class:`Health`: a state a person can act on (ok, degraded,
down), one line saying why, and the counters behind it (requests, errors, dropped batches …). The
runtime collects them per component; the worst state is the gateway's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

__all__ = ["Health", "HealthState", "worst"]


class HealthState(StrEnum):
    """How well a component works, ordered from best to worst (see :func:`worst`)."""

    OK = "ok"  # doing its job
    DEGRADED = "degraded"  # working, but losing or delaying something (a device offline, a queue dropping)
    DOWN = "down"  # not doing its job at all (nothing answers, the database is away)


_RANK = {HealthState.OK: 0, HealthState.DEGRADED: 1, HealthState.DOWN: 2}


def _frozen(counters: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(counters))


@dataclass(frozen=True, slots=True)
class Health:
    """The state of one component.

    state : :class:`HealthState`.
    message : one line for a person, e.g. ``"2 of 3 devices online; m2: timeout"``.
    counters : named running totals since start, e.g. ``{"requests": 120, "errors": 3}`` [count].
    """

    state: HealthState
    message: str = ""
    counters: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counters", _frozen(self.counters))

    @property
    def ok(self) -> bool:
        return self.state is HealthState.OK

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form: ``{"state": "ok", "message": "...", "counters": {...}}``."""
        return {"state": self.state.value, "message": self.message, "counters": dict(self.counters)}


def worst(states: Iterable[HealthState]) -> HealthState:
    """The worst of ``states`` (OK when there are none)."""
    out = HealthState.OK
    for s in states:
        if _RANK[s] > _RANK[out]:
            out = s
    return out
