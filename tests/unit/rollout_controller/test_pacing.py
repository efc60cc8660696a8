"""Pass and status pacing of one deployment (operator/rollout/pacing.py)."""

from __future__ import annotations

from modelfleet.operator.rollout.pacing import Pacing

KEY = ("fleet", "detector")


def test_a_deployment_rests_as_long_as_its_planning_took() -> None:
    pacing = Pacing()
    assert pacing.resting(KEY, now=100.0) == 0.0
    pacing.planned(KEY, planning_s=0.4, now=103.0)  # writes made the pass 3 s; planning 0.4 s
    assert 0.29 < pacing.resting(KEY, now=103.1) < 0.31
    assert pacing.resting(KEY, now=103.4) == 0.0
    assert pacing.resting(("fleet", "other"), now=103.1) == 0.0


def test_progress_only_status_writes_wait_for_the_interval() -> None:
    pacing = Pacing(status_interval=1.0)
    assert pacing.status_wait(KEY, now=50.0) == 0.0
    pacing.status_written(KEY, now=50.0)
    assert 0.69 < pacing.status_wait(KEY, now=50.3) < 0.71
    assert pacing.status_wait(KEY, now=51.0) == 0.0


def test_forgetting_a_deployment_drops_its_rest_and_interval() -> None:
    pacing = Pacing()
    pacing.planned(KEY, planning_s=5.0, now=10.0)
    pacing.status_written(KEY, now=10.0)
    pacing.forget(KEY)
    assert pacing.resting(KEY, now=10.0) == 0.0
    assert pacing.status_wait(KEY, now=10.0) == 0.0
