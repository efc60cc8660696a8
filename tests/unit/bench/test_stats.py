"""The benchmarks' arithmetic: percentiles, ratios, rates and wave-advance latencies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.stats import meets, per_minute, percentile, ratio, wave_advance_latencies


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        pytest.param([5.0], 50, 5.0, id="one value"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 50, 2.5, id="even count interpolates"),
        pytest.param([4.0, 1.0, 3.0, 2.0], 0, 1.0, id="unsorted, minimum"),
        pytest.param([4.0, 1.0, 3.0, 2.0], 100, 4.0, id="maximum"),
        pytest.param(list(range(101)), 99, 99.0, id="p99 of 0..100"),
    ],
)
def test_percentile_cases(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 100])
def test_percentile_matches_numpy_linear(q: float) -> None:
    values = list(np.random.default_rng(3).exponential(size=257))
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 50))


def test_percentile_outside_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(3.0, 2.0, 1.5), (0.0, 5.0, 0.0), (1.0, 0.0, math.nan), (math.nan, 1.0, math.nan)],
)
def test_ratio(numerator: float, denominator: float, expected: float) -> None:
    got = ratio(numerator, denominator)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_per_minute() -> None:
    assert per_minute(1000, 6.0) == pytest.approx(10_000.0)
    assert math.isnan(per_minute(10, 0.0))


@pytest.mark.parametrize(
    ("value", "target", "higher", "expected"),
    [
        (10_000.0, 10_000.0, True, True),
        (9_999.0, 10_000.0, True, False),
        (3.0, 3.0, False, True),
        (3.01, 3.0, False, False),
        (math.nan, 1.0, False, False),
    ],
)
def test_meets(value: float, target: float, higher: bool, expected: bool) -> None:
    assert meets(value, target, higher_is_better=higher) is expected


def test_wave_advance_worked_example() -> None:
    """The docstring's example: sizes (1, 3), wave 0 healthy at 2.0, wave 1 assigned at 2.5."""
    latencies = wave_advance_latencies((1, 3), [0.0, 2.5, 2.6], {0: 2.0, 1: 3.0, 2: 3.1})
    assert latencies == pytest.approx([0.5])


def test_wave_advance_takes_the_last_healthy_of_a_wave() -> None:
    assigned = [0.0, 0.0, 5.0, 5.1, 9.0, 9.0]
    healthy = {0: 1.0, 1: 4.0, 2: 6.0, 3: 8.5, 4: 9.5, 5: 9.6}
    assert wave_advance_latencies((2, 4, 6), assigned, healthy) == pytest.approx([1.0, 0.5])


def test_wave_advance_skips_incomplete_and_empty_waves() -> None:
    assigned = [0.0, 1.0, 2.0]
    # wave 0 (position 0) never healthy: no entry; a repeated size is an empty wave
    assert wave_advance_latencies((1, 1, 3), assigned, {1: 1.5, 2: 2.5}) == []
    assert wave_advance_latencies((1, 3), assigned, {0: 0.5}) == pytest.approx([0.5])


def test_wave_advance_ignores_waves_beyond_what_was_assigned() -> None:
    assert wave_advance_latencies((1, 10), [0.0, 1.0], {0: 0.2, 1: 1.2}) == []
