"""The operator's work queue: coalescing, one worker per key, backoff, delays.

Each test drives a real queue on its own event loop with delays of a few hundredths of a
second; times are checked as lower bounds only (a slow machine may be later, never earlier).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Hashable

import pytest

from modelfleet.backoff import Backoff
from modelfleet.operator.workqueue import RECONCILE_BACKOFF, WorkQueue

QUICK = Backoff(0.05, max=0.2)


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.005)


def _running(queue: WorkQueue, workers: int = 2) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(queue.run(workers))


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def _recorder(
    calls: list[tuple[Hashable, float]], result: float | None = None
) -> Callable[[Hashable], Awaitable[float | None]]:
    async def process(key: Hashable) -> float | None:
        calls.append((key, time.monotonic()))
        return result

    return process


def test_many_adds_of_one_key_become_one_pass() -> None:
    async def scenario() -> list[Hashable]:
        calls: list[tuple[Hashable, float]] = []
        queue = WorkQueue(_recorder(calls))
        for _ in range(5):
            queue.add(("ns", "a"))
        queue.add(("ns", "b"))
        task = _running(queue)
        await _until(lambda: len(calls) >= 2)
        await asyncio.sleep(0.1)
        await _stop(task)
        return sorted(key for key, _ in calls)  # type: ignore[type-var]

    assert asyncio.run(scenario()) == [("ns", "a"), ("ns", "b")]


def test_a_key_is_never_processed_by_two_workers_at_once() -> None:
    async def scenario() -> tuple[int, int, int]:
        release = asyncio.Event()
        running = {"a": 0}
        most = 0
        calls = 0

        async def process(key: Hashable) -> None:
            nonlocal most, calls
            calls += 1
            running["a"] += 1
            most = max(most, running["a"])
            if calls == 1:
                await release.wait()
            running["a"] -= 1

        queue = WorkQueue(process)
        queue.add("a")
        task = _running(queue, workers=3)
        await _until(lambda: calls == 1)
        queue.add("a")  # arrives while the first pass runs: waits for it
        await asyncio.sleep(0.1)
        while_blocked = calls
        release.set()
        await _until(lambda: calls == 2)
        await _stop(task)
        return while_blocked, calls, most

    while_blocked, calls, most = asyncio.run(scenario())
    assert while_blocked == 1 and calls == 2 and most == 1


def test_failures_retry_with_backoff_and_are_reported() -> None:
    async def scenario() -> tuple[list[float], list[tuple[Hashable, str]]]:
        times: list[float] = []
        errors: list[tuple[Hashable, str]] = []

        async def process(key: Hashable) -> None:
            times.append(time.monotonic())
            if len(times) <= 3:
                raise RuntimeError(f"failure {len(times)}")

        queue = WorkQueue(process, lambda key, err: errors.append((key, str(err))), backoff=QUICK)
        queue.add("k")
        task = _running(queue)
        await _until(lambda: len(times) == 4)
        await asyncio.sleep(0.3)  # a success ends the retries
        await _stop(task)
        return [b - a for a, b in itertools.pairwise(times)], errors

    gaps, errors = asyncio.run(scenario())
    assert len(gaps) == 3
    assert all(gap >= want for gap, want in zip(gaps, [0.05, 0.1, 0.2], strict=True)), gaps
    assert errors == [("k", "failure 1"), ("k", "failure 2"), ("k", "failure 3")]


def test_a_success_resets_the_backoff() -> None:
    async def scenario() -> list[float]:
        times: list[float] = []

        async def process(key: Hashable) -> float | None:
            times.append(time.monotonic())
            if len(times) in (1, 3):
                raise RuntimeError("flaky")
            return 0.0 if len(times) == 2 else None

        steep = Backoff(0.05, factor=100)  # a second failure in a row would wait 5 s
        queue = WorkQueue(process, backoff=steep)
        queue.add("k")
        task = _running(queue)
        await _until(lambda: len(times) == 4)
        await _stop(task)
        return [b - a for a, b in itertools.pairwise(times)]

    fail_wait, _, fail_again_wait = asyncio.run(scenario())
    assert fail_wait >= 0.05 and 0.05 <= fail_again_wait < 2.5


def test_a_delayed_add_waits_and_an_earlier_add_wins() -> None:
    async def scenario() -> tuple[float, float, int]:
        calls: list[tuple[Hashable, float]] = []
        queue = WorkQueue(_recorder(calls))
        task = _running(queue)
        start = time.monotonic()
        queue.add("late", delay=0.2)
        queue.add("soon", delay=5.0)
        queue.add("soon", delay=0.05)  # earlier: wins
        queue.add("soon", delay=3.0)  # later: ignored
        await _until(lambda: len(calls) == 2)
        await asyncio.sleep(0.1)
        await _stop(task)
        at = {key: when - start for key, when in calls}
        return at["soon"], at["late"], len(calls)

    soon, late, count = asyncio.run(scenario())
    assert 0.05 <= soon < 3.0 and late >= 0.2 and count == 2


def test_process_asks_for_its_key_again_after_a_delay() -> None:
    async def scenario() -> list[float]:
        calls: list[tuple[Hashable, float]] = []
        queue = WorkQueue(_recorder(calls, result=0.1))
        queue.add("periodic")
        task = _running(queue)
        await _until(lambda: len(calls) == 3)
        await _stop(task)
        return [b[1] - a[1] for a, b in itertools.pairwise(calls)]

    assert all(gap >= 0.1 for gap in asyncio.run(scenario()))


def test_the_default_backoff_doubles_from_one_second_to_a_minute() -> None:
    assert [RECONCILE_BACKOFF.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
