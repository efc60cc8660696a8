"""Latency benchmarks of the reference and candidate runtimes (called by validation).

`measure` times `iterations` calls after `warmup` untimed ones (`time_runs`, which the Paddle
child of a convert-validate Job also runs for the reference); `summarize` is the pure part:
p50/p90/p99 latency in ms and throughput in samples (rows) per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from modelfleet.reports import Latency


@dataclass(frozen=True)
class LatencySummary:
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput_per_s: float
    iterations: int
    batch_size: int


def summarize(durations_s: Sequence[float], batch_size: int) -> LatencySummary:
    if not durations_s:
        raise ValueError("no durations to summarize")
    ms = np.asarray(durations_s, dtype=np.float64) * 1000.0
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    total_s = float(np.sum(durations_s))
    throughput = len(durations_s) * batch_size / total_s if total_s > 0 else float("inf")
    return LatencySummary(
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        mean_ms=float(ms.mean()),
        throughput_per_s=throughput,
        iterations=len(durations_s),
        batch_size=batch_size,
    )


def time_runs(
    run: Callable[[], object],
    *,
    warmup: int,
    iterations: int,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Seconds of each of `iterations` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        run()
    durations = []
    for _ in range(iterations):
        start = clock()
        run()
        durations.append(clock() - start)
    return durations


def measure(
    run: Callable[[], object],
    *,
    warmup: int,
    iterations: int,
    batch_size: int,
    clock: Callable[[], float] = time.perf_counter,
) -> LatencySummary:
    durations = time_runs(run, warmup=warmup, iterations=iterations, clock=clock)
    return summarize(durations, batch_size)


def speedup(source: LatencySummary, target: LatencySummary) -> float:
    """How many times faster the target is at the median (> 1: faster, < 1: slower)."""
    return source.p50_ms / target.p50_ms if target.p50_ms > 0 else float("inf")


def latency(runtime: str, summary: LatencySummary) -> Latency:
    """The report's view of a summary, named for the runtime that was timed."""
    return Latency(runtime=runtime, **summary.__dict__)
