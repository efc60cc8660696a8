"""Wave sizes and the in-flight limit: the worked examples in waves.py's docstring."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelfleet.operator.rollout.waves import in_flight_limit, resolve_count, wave_sizes

WAVES = {
    "20 devices, waves [1, 50%, 100%] → (1, 10, 20)": ([1, "50%", "100%"], 20, (1, 10, 20)),
    "10 devices, waves [10%, 50%, 100%] → (1, 5, 10)": (["10%", "50%", "100%"], 10, (1, 5, 10)),
    "3 devices, waves [5%, 50%, 100%] → (1, 2, 3): round up": (["5%", "50%", "100%"], 3, (1, 2, 3)),
    "5 devices, waves [1, 10, 100%] → (1, 5, 5): capped": ([1, 10, "100%"], 5, (1, 5, 5)),
    "0 devices → (0, 0, 0)": ([1, "50%", "100%"], 0, (0, 0, 0)),
    "1 device, waves [1%, 100%] → (1, 1)": (["1%", "100%"], 1, (1, 1)),
    "1000 devices, waves [1%, 10%, 50%, 100%] → (10, 100, 500, 1000)": (
        ["1%", "10%", "50%", "100%"],
        1000,
        (10, 100, 500, 1000),
    ),
    "a last wave under 100% still covers everything": ([1, "50%"], 10, (1, 10)),
    "decreasing waves never shrink a later wave": (["50%", 2, "100%"], 10, (5, 5, 10)),
    "a 0% wave still holds one device": (["0%", "100%"], 10, (1, 10)),
}


@pytest.mark.parametrize(("waves", "total", "sizes"), WAVES.values(), ids=WAVES.keys())
def test_wave_sizes(waves: list[int | str], total: int, sizes: tuple[int, ...]) -> None:
    assert wave_sizes(waves, total) == sizes


LIMITS = {
    "10 devices, 25% → 3 (round up)": ("25%", 10, 3),
    "10 devices, 0 → 1 (at least one, or nothing moves)": (0, 10, 1),
    "10 devices, 0% → 1": ("0%", 10, 1),
    "10 devices, 50 → 10 (capped at the fleet)": (50, 10, 10),
    "0 devices, 25% → 1": ("25%", 0, 1),
    "400 devices, 1% → 4": ("1%", 400, 4),
}


@pytest.mark.parametrize(("value", "total", "limit"), LIMITS.values(), ids=LIMITS.keys())
def test_in_flight_limit(value: int | str, total: int, limit: int) -> None:
    assert in_flight_limit(value, total) == limit


def test_a_numeric_string_is_a_count() -> None:
    assert resolve_count("3", 10) == 3


@given(
    st.lists(st.one_of(st.integers(0, 50), st.integers(0, 100).map(lambda p: f"{p}%"))),
    st.integers(0, 500),
)
def test_wave_sizes_are_cumulative_and_end_at_the_fleet(waves: list[int | str], total: int) -> None:
    sizes = wave_sizes(waves, total)
    assert list(sizes) == sorted(sizes)
    assert sizes[-1] == total
    assert all(min(1, total) <= s <= total for s in sizes)
