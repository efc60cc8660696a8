"""One backoff policy for every retry: the agent's API calls, watches, downloads and failed
assignments, the operator's work queue and watches, the dev Job runner.

`Backoff.delay(attempt)` is a pure function of the attempt number (1-based: the wait after the
first failure is `initial`, then `factor` times longer each time, never above `max`). Pure
planners need exactly that and no loop: the agent's failure record computes a `retry_at`, the
work queue and the Job runner a due time, and they wait elsewhere. Blocking retry loops call
`retry`, which gives the policy to tenacity as its wait strategy and adds the two things our
loops need on top of it: a stop Event that cuts a wait short (shutting down must not sit out a
30 s backoff, and must not start one more attempt) and a hook that logs each retry.

Each call site keeps its own numbers (its constant says why); this module only computes them.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """`initial * factor ** (attempt - 1)`, at most `max`, spread by ±`jitter` (a fraction)
    when a random draw is asked for: many agents failing together must not retry together."""

    initial: float
    factor: float = 2.0
    max: float = math.inf
    jitter: float = 0.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based), without jitter."""
        if attempt < 1:
            raise ValueError(f"attempts count from 1, not {attempt}")
        try:
            grown = self.initial * self.factor ** (attempt - 1)
        except OverflowError:
            grown = math.inf
        return min(grown, self.max)

    def jittered(self, attempt: int, draw: float | None = None) -> float:
        """`delay(attempt)` moved within ±jitter; `draw` in [0, 1] picks where (0.5: no change),
        a random one when None."""
        spread = 2 * (random.random() if draw is None else draw) - 1
        return self.delay(attempt) * (1 + self.jitter * spread)

    def wait(self, state: tenacity.RetryCallState) -> float:
        """tenacity's wait strategy: the pause after the attempt that just failed."""
        return self.jittered(state.attempt_number)


class Stopped(Exception):  # noqa: N818 (a signal, not a failure)
    """The stop Event was set while `retry` waited for the next attempt."""


def retry(
    call: Callable[[], T],
    *,
    backoff: Backoff,
    retry_on: Callable[[BaseException], bool],
    attempts: int | None = None,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """`call()` until it returns. An exception `retry_on` rejects, or the one of the last of
    `attempts` (None: no limit), is raised as it is. With `stop`, the waits end as soon as it
    is set and `Stopped` is raised instead of another attempt. `on_retry(attempt, error,
    delay)` runs before each wait."""

    def pause(seconds: float) -> None:
        if stop is None:
            sleep(seconds)
        elif stop.wait(seconds):
            raise Stopped

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if on_retry is not None and error is not None and state.next_action is not None:
            on_retry(state.attempt_number, error, state.next_action.sleep)

    retrying = tenacity.Retrying(
        wait=backoff.wait,
        stop=tenacity.stop_after_attempt(attempts) if attempts else tenacity.stop_never,
        retry=tenacity.retry_if_exception(retry_on),
        sleep=pause,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(call)
