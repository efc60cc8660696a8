"""Pure arithmetic for the benchmarks: percentiles, ratios, rates. No I/O, no clock."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks, like
    numpy's default; NaN for no values."""
    if not values:
        return math.nan
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside [0, 100]")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    weight = position - low
    return float(ordered[low] * (1.0 - weight) + ordered[high] * weight)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator; NaN where the denominator is zero or either is NaN."""
    if denominator == 0 or math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    return numerator / denominator


def per_minute(count: int, seconds: float) -> float:
    """A count over a duration as a rate per minute; NaN for an empty duration."""
    return ratio(count * 60.0, seconds) if seconds > 0 else math.nan


def meets(value: float, target: float, *, higher_is_better: bool) -> bool:
    """Whether `value` meets `target`; NaN never does."""
    if math.isnan(value):
        return False
    return value >= target if higher_is_better else value <= target


def wave_advance_latencies(
    wave_sizes: Sequence[int],
    assigned: Sequence[float],
    healthy: dict[int, float],
) -> list[float]:
    """Seconds from the last device of each wave healthy to the first device of the next wave
    assigned.

    `wave_sizes` are cumulative (as `operator.waves.wave_sizes` returns them); `assigned` are
    the assignment times of the devices in assignment order (index = position in the rollout);
    `healthy` maps a position to when that device reported Healthy. A wave whose devices did not
    all report, or an empty next wave, gives no entry.

    Example: sizes (1, 3), assigned [0.0, 2.5, 2.6], healthy {0: 2.0, 1: 3.0, 2: 3.1}
    → wave 0 last healthy 2.0, wave 1 first assigned 2.5 → [0.5].
    """
    latencies: list[float] = []
    start = 0
    for index, end in enumerate(wave_sizes[:-1]):
        following = wave_sizes[index + 1]
        if end <= start or following <= end or following > len(assigned):
            start = end
            continue
        wave = range(start, end)
        if all(position in healthy for position in wave):
            last_healthy = max(healthy[position] for position in wave)
            first_next = min(assigned[end:following])
            latencies.append(first_next - last_healthy)
        start = end
    return latencies
