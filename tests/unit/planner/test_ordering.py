"""The rollout order and label selectors."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelfleet.api.base import LabelSelector
from modelfleet.operator.rollout.ordering import order_key, rollout_order, selector_matches


@dataclass(frozen=True)
class Named:
    name: str


@given(st.sets(st.text(min_size=1, max_size=12), max_size=30), st.randoms())
def test_the_order_is_independent_of_the_input_order(names: set[str], rnd: random.Random) -> None:
    devices = [Named(n) for n in names]
    shuffled = list(devices)
    rnd.shuffle(shuffled)
    assert rollout_order("uid-1", devices) == rollout_order("uid-1", shuffled)


def test_the_order_is_stable_across_runs() -> None:
    # sha256("uid-1/cam-001"): a change here reorders every fleet, so it must be deliberate
    assert order_key("uid-1", "cam-001") == (
        hashlib.sha256(b"uid-1/cam-001").hexdigest(),
        "cam-001",
    )
    assert order_key("uid-1", "cam-001")[0][:12] == "2719297c85f0"


def test_another_deployment_picks_other_canaries() -> None:
    devices = [Named(f"cam-{i:03d}") for i in range(100)]
    firsts = {rollout_order(f"uid-{n}", devices)[0].name for n in range(20)}
    assert len(firsts) > 10


def test_the_first_wave_spreads_across_sites() -> None:
    devices = [
        Named(f"{site}-cam-{i:03d}") for site in ("north", "south", "east") for i in range(50)
    ]
    first_wave = rollout_order("uid-1", devices)[:15]
    sites = Counter(d.name.split("-")[0] for d in first_wave)
    assert len(sites) == 3  # sorting by name would put 15 "east" devices first


SELECTORS = {
    "matchLabels all equal": ({"matchLabels": {"site": "a"}}, {"site": "a", "hw": "x"}, True),
    "matchLabels one differs": ({"matchLabels": {"site": "a"}}, {"site": "b"}, False),
    "In": (
        {"matchExpressions": [{"key": "hw", "operator": "In", "values": ["x", "y"]}]},
        {"hw": "y"},
        True,
    ),
    "In, key absent": (
        {"matchExpressions": [{"key": "hw", "operator": "In", "values": ["x"]}]},
        {},
        False,
    ),
    "NotIn, key absent matches": (
        {"matchExpressions": [{"key": "hw", "operator": "NotIn", "values": ["x"]}]},
        {},
        True,
    ),
    "NotIn, listed value": (
        {"matchExpressions": [{"key": "hw", "operator": "NotIn", "values": ["x"]}]},
        {"hw": "x"},
        False,
    ),
    "Exists": (
        {"matchExpressions": [{"key": "canary", "operator": "Exists"}]},
        {"canary": ""},
        True,
    ),
    "DoesNotExist": (
        {"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]},
        {"canary": "1"},
        False,
    ),
    "labels and expressions both apply": (
        {"matchLabels": {"site": "a"}, "matchExpressions": [{"key": "hw", "operator": "Exists"}]},
        {"site": "a"},
        False,
    ),
}


@pytest.mark.parametrize(
    ("selector", "labels", "matches"), SELECTORS.values(), ids=SELECTORS.keys()
)
def test_selector_matches(
    selector: dict[str, object], labels: dict[str, str], matches: bool
) -> None:
    assert selector_matches(LabelSelector.model_validate(selector), labels) is matches
