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


async def _swallows_first_cancellation(log: list[str]) -> None:
    """Like a driver hit by CPython gh-86296: the first cancellation is lost, the loop goes on."""
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        log.append("swallowed")
    while True:
        await asyncio.sleep(0.01)


def test_cancel_and_wait_cancels_again_a_task_that_swallowed_its_cancellation():
    async def go() -> tuple[list[str], list[asyncio.Task[None]], bool]:
        log: list[str] = []
        task = asyncio.create_task(_swallows_first_cancellation(log), name="source:adc")
        await asyncio.sleep(0)
        left = await runtime.cancel_and_wait([task], timeout=2.0, retry=0.05)
        return log, left, task.cancelled()

    log, left, cancelled = asyncio.run(go())
    assert log == ["swallowed"] and left == [] and cancelled


def test_cancel_and_wait_gives_up_on_a_task_that_never_stops_and_names_it(caplog):
    async def go() -> list[str]:
        release = asyncio.Event()

        async def stubborn() -> None:
            while not release.is_set():
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    pass

        task = asyncio.create_task(stubborn(), name="source:stuck")
        await asyncio.sleep(0)
        left = await runtime.cancel_and_wait([task], timeout=0.2, retry=0.05)
        release.set()
        task.cancel()
        await asyncio.wait([task])
        return [t.get_name() for t in left]

    assert asyncio.run(go()) == ["source:stuck"]
    assert "task source:stuck did not stop within 0 s; shutting down without it" in caplog.text


def test_supervise_stops_instead_of_restarting_when_a_run_swallowed_the_cancellation():
    async def go() -> tuple[int, bool]:
        runs = 0

        async def run() -> None:
            nonlocal runs
            runs += 1
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                return  # lost, as asyncio.wait_for loses one before Python 3.12

        task = asyncio.create_task(runtime.supervise("t", run, initial_backoff=0.01))
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.wait([task], timeout=1.0)
        return runs, task.cancelled()

    assert asyncio.run(go()) == (1, True)
