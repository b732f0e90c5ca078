"""Supervised tasks: a failing or ending task is restarted with a backoff and never takes the gateway down."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["TaskRecord", "supervise"]

log = logging.getLogger("meterhub.runtime")


@dataclass
class TaskRecord:
    """What supervision saw of one task (read by the runtime's health).

    runs : how often the task was started [count].
    failures : how often it raised or returned [count].
    last_error : the message of the last failure, or None.
    last_failure : clock time of the last failure [s].
    running : True while the task runs, False while it waits to be restarted.
    """

    name: str
    runs: int = 0
    failures: int = 0
    last_error: str | None = None
    last_failure: float | None = None
    running: bool = False


async def supervise(
    name: str,
    factory: Callable[[], Awaitable[None]],
    *,
    initial_backoff: float = 1.0,
    max_backoff: float = 30.0,
    healthy_after: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
    record: TaskRecord | None = None,
) -> None:
    """Run ``factory()`` forever; when it fails or returns, restart it after an exponential backoff.

    The backoff [s] doubles per consecutive failure up to ``max_backoff`` and resets once a run has
    lasted ``healthy_after`` seconds. Cancellation stops it. ``record`` (optional) is kept up to date.
    """
    rec = record if record is not None else TaskRecord(name)
    backoff = initial_backoff
    while True:
        started = clock()
        rec.runs += 1
        rec.running = True
        try:
            await factory()
            log.warning("task ended; restarting", extra={"task": name})
            rec.last_error = "ended by itself"
        except asyncio.CancelledError:
            rec.running = False
            raise
        except Exception as exc:  # a task must never take the gateway down
            log.exception("task failed: %s", exc, extra={"task": name})
            rec.last_error = f"{type(exc).__name__}: {exc}"
        rec.running = False
        rec.failures += 1
        rec.last_failure = clock()
        if clock() - started >= healthy_after:
            backoff = initial_backoff
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff)
