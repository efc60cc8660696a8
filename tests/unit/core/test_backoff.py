"""The one backoff policy: its delays as numbers, and the retry loop built on it."""

from __future__ import annotations

import math
import threading

import pytest

from modelfleet.backoff import Backoff, Stopped, retry


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        pytest.param(Backoff(0.5, max=30.0), [0.5, 1, 2, 4, 8, 16, 30, 30], id="agent API"),
        pytest.param(
            Backoff(10.0, max=600.0), [10, 20, 40, 80, 160, 320, 600, 600], id="assignment"
        ),
        pytest.param(Backoff(1.0, max=60.0), [1, 2, 4, 8, 16, 32, 60, 60], id="work queue"),
        pytest.param(Backoff(1.0, max=32.0), [1, 2, 4, 8, 16, 32, 32, 32], id="dev Job runner"),
        pytest.param(Backoff(2.0, factor=1.0), [2] * 8, id="constant"),
        pytest.param(Backoff(1.0, factor=3.0), [1, 3, 9, 27, 81, 243, 729, 2187], id="no cap"),
    ],
)
def test_delay_grows_by_the_factor_up_to_the_cap(policy: Backoff, delays: list[float]) -> None:
    assert [policy.delay(n) for n in range(1, 9)] == delays


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert Backoff(0.5, max=30.0).delay(10_000) == 30.0
    assert Backoff(0.5).delay(10_000) == math.inf


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        Backoff(1.0).delay(0)


@pytest.mark.parametrize(("draw", "factor"), [(0.0, 0.8), (0.5, 1.0), (1.0, 1.2)])
def test_jitter_spreads_the_delay_both_ways(draw: float, factor: float) -> None:
    policy = Backoff(0.5, max=30.0, jitter=0.2)
    assert policy.jittered(3, draw) == pytest.approx(2.0 * factor)


def test_random_jitter_stays_inside_its_band() -> None:
    policy = Backoff(10.0, jitter=0.2)
    samples = [policy.jittered(1) for _ in range(200)]
    assert all(8.0 <= s <= 12.0 for s in samples)
    assert len(set(samples)) > 1


def test_without_jitter_the_draw_changes_nothing() -> None:
    assert Backoff(4.0).jittered(2, 0.0) == Backoff(4.0).jittered(2, 1.0) == 8.0


class Flaky:
    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or OSError("down")
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def test_retry_waits_the_policy_between_attempts_and_returns_the_result() -> None:
    slept: list[float] = []
    retries: list[tuple[int, str, float]] = []
    call = Flaky(3)
    result = retry(
        call,
        backoff=Backoff(0.5, max=1.5),
        retry_on=lambda err: isinstance(err, OSError),
        sleep=slept.append,
        on_retry=lambda n, err, delay: retries.append((n, str(err), delay)),
    )
    assert result == "done" and call.calls == 4
    assert slept == [0.5, 1.0, 1.5]
    assert retries == [(1, "down", 0.5), (2, "down", 1.0), (3, "down", 1.5)]


def test_retry_raises_the_last_error_after_its_attempts() -> None:
    slept: list[float] = []
    call = Flaky(5, OSError("still down"))
    with pytest.raises(OSError, match="still down"):
        retry(call, backoff=Backoff(0.5), retry_on=lambda _: True, attempts=3, sleep=slept.append)
    assert call.calls == 3 and slept == [0.5, 1.0]


def test_retry_raises_an_error_it_must_not_retry_at_once() -> None:
    call = Flaky(1, KeyError("final"))
    with pytest.raises(KeyError):
        retry(call, backoff=Backoff(0.5), retry_on=lambda e: isinstance(e, OSError), sleep=print)
    assert call.calls == 1


def test_a_stop_event_ends_the_wait_without_another_attempt() -> None:
    stop = threading.Event()
    call = Flaky(100)

    def stop_before_the_long_wait(attempt: int, _: BaseException, delay: float) -> None:
        if delay > 1:
            stop.set()

    with pytest.raises(Stopped):
        retry(
            call,
            backoff=Backoff(0.01, factor=6000),  # 0.01 s, then a minute: the test would time out
            retry_on=lambda _: True,
            stop=stop,
            on_retry=stop_before_the_long_wait,
        )
    assert call.calls == 2


def test_a_set_stop_event_ends_the_first_wait() -> None:
    stop = threading.Event()
    stop.set()
    call = Flaky(1)
    with pytest.raises(Stopped):
        retry(call, backoff=Backoff(60.0), retry_on=lambda _: True, stop=stop)
    assert call.calls == 1
