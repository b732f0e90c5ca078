"""Supervised tasks: a failing or ending task is restarted with a backoff and never takes the gateway down."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

__all__ = ["TaskRecord", "cancel_and_wait", "supervise"]

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
    me = asyncio.current_task()
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
        if me is not None and me.cancelling():
            # the run swallowed our cancellation (asyncio.wait_for before Python 3.12, CPython
            # gh-86296, drops one that arrives with the awaited result): stop instead of restarting
            raise asyncio.CancelledError
        rec.failures += 1
        rec.last_failure = clock()
        if clock() - started >= healthy_after:
            backoff = initial_backoff
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff)


async def cancel_and_wait(
    tasks: Collection[asyncio.Task[None]], *, timeout: float = 10.0, retry: float = 0.5
) -> list[asyncio.Task[None]]:
    """Cancel ``tasks`` and wait until they end; return those still running after ``timeout`` [s].

    A task whose code swallowed the cancellation (see :func:`supervise`) is cancelled again every
    ``retry`` seconds, so that one lost cancellation cannot keep the gateway from shutting down.
    """
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pending:
        for t in pending:
            t.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(retry, left))
    for t in pending:
        log.error("task %s did not stop within %.0f s; shutting down without it", t.get_name(), timeout)
    # retrieve the tasks' outcomes, so that none is reported as "exception never retrieved"
    for t in tasks:
        if t.done() and not t.cancelled():
            t.exception()
    return sorted(pending, key=lambda t: t.get_name())
