"""Lease renewal timing: jittered waits that spread a fleet started at one instant."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from modelfleet.agent.heartbeats import JITTER, MIN_RETRY_SECONDS, renewal_delay

INTERVAL = 60.0


def _renewal_times(agents: int, *, renewals: int, jitter: bool) -> list[float]:
    """When a fleet whose agents all started at t=0 renews, over `renewals` rounds."""
    times: list[float] = []
    for seed in range(agents):
        draw = random.Random(seed).random if jitter else (lambda: 0.5)
        now, first = 0.0, True
        for _ in range(renewals):
            times.append(now)
            if jitter:
                now += renewal_delay(INTERVAL, first=first, failed=False, draw=draw())
            else:
                now += INTERVAL
            first = False
    return times


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.999])
def test_steady_waits_stay_within_the_jitter_of_the_interval(draw: float) -> None:
    wait = renewal_delay(INTERVAL, first=False, failed=False, draw=draw)
    assert INTERVAL * (1 - JITTER) <= wait < INTERVAL * (1 + JITTER)


def test_first_wait_is_drawn_from_the_whole_interval() -> None:
    assert renewal_delay(INTERVAL, first=True, failed=False, draw=0.0) == 0.0
    assert renewal_delay(INTERVAL, first=True, failed=False, draw=0.5) == INTERVAL / 2
    assert renewal_delay(INTERVAL, first=True, failed=False, draw=0.999) < INTERVAL


@pytest.mark.parametrize("first", [True, False])
def test_a_failed_renewal_is_retried_after_a_quarter_of_the_interval(first: bool) -> None:
    waits = [renewal_delay(INTERVAL, first=first, failed=True, draw=d) for d in (0.0, 0.999)]
    assert min(waits) >= INTERVAL / 4 * (1 - JITTER)
    assert max(waits) < INTERVAL / 4 * (1 + JITTER)


def test_a_retry_never_comes_sooner_than_the_floor() -> None:
    assert renewal_delay(0.1, first=False, failed=True, draw=0.0) == MIN_RETRY_SECONDS


def test_a_fleet_started_together_spreads_its_renewals_over_the_interval() -> None:
    """1,000 agents start in the same second: without jitter every renewal round is one
    burst of 1,000 writes; with it, no second after the start sees more than a few percent."""
    agents = 1000
    bursts = Counter(int(t) for t in _renewal_times(agents, renewals=10, jitter=False))
    assert max(bursts.values()) == agents

    spread = Counter(int(t) for t in _renewal_times(agents, renewals=10, jitter=True) if t > 0)
    assert max(spread.values()) <= 0.05 * agents
    average = 10 * agents / (10 * INTERVAL)
    assert max(spread.values()) <= 3 * average


def test_jitter_keeps_the_average_rate() -> None:
    """Jitter moves renewals, it does not add any: a device still renews once an interval."""
    times = _renewal_times(200, renewals=50, jitter=True)
    last = max(times)
    per_device_interval = last / 49
    assert INTERVAL * 0.95 <= per_device_interval <= INTERVAL * 1.05
