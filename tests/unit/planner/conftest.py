"""Fixtures of the rollout planner's tests; the builders are in builders.py, the simulated
fleet in simulated_fleet.py."""

from __future__ import annotations

import pytest

from tests.unit.planner.builders import make_artifact, make_spec
from tests.unit.planner.simulated_fleet import Fleet


@pytest.fixture
def fleet() -> Fleet:
    return Fleet(spec=make_spec(), art=make_artifact(1))
