"""Supervision: a failing task is restarted with exponential backoff and never takes the gateway down."""

import asyncio

import pytest

from meterhub import runtime


def test_supervise_restarts_with_doubling_backoff(monkeypatch):
    sleeps: list[float] = []
    runs = 0

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs >= 5:
            raise asyncio.CancelledError  # stop the test loop
        raise RuntimeError(f"bad frame {runs}")

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(runtime.supervise("t", flaky, initial_backoff=1.0, max_backoff=4.0, clock=lambda: 0.0))
    assert runs == 5
    assert sleeps == [1.0, 2.0, 4.0, 4.0]


def test_supervise_resets_backoff_after_a_healthy_run(monkeypatch):
    sleeps: list[float] = []
    now = [0.0]
    runs = 0

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def task() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            now[0] += 120.0  # this run lasted two minutes before failing
        if runs == 5:
            raise asyncio.CancelledError
        raise OSError("connection reset")

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(
            runtime.supervise("t", task, initial_backoff=1.0, healthy_after=60.0, clock=lambda: now[0])
        )
    assert sleeps == [1.0, 2.0, 1.0, 2.0]
