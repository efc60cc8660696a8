"""Revision numbers, history and promotion values."""

from __future__ import annotations

import pytest

from modelfleet.api.deployment import EdgeDeploymentStatus
from modelfleet.conditions import format_time
from modelfleet.operator.rollout.planner import RollBack, parse_promotion, promotion_value
from modelfleet.operator.rollout.revisions import RolloutProgress, track_artifact
from tests.unit.planner.builders import (
    T0,
    make_artifact,
    make_healthy,
    make_spec,
    make_status,
    make_view,
    names,
    plan,
    sha,
)


def test_the_first_artifact_is_revision_1_with_its_identity_recorded() -> None:
    p = plan([make_view("cam-000")], art=make_artifact(1))
    (record,) = p.status.history
    assert (p.status.current_revision, p.status.stable_revision) == (1, None)
    assert record.sha256 == sha(1) and record.uri == make_artifact(1).uri
    assert (record.conversion, record.conversion_generation) == ("detector-v1", 1)
    assert (record.size_bytes, record.probe_uri) == (1000, make_artifact(1).probe_uri)
    assert record.started_at == format_time(T0) and record.outcome == "Progressing"


def test_the_same_artifact_again_is_the_same_revision() -> None:
    status = make_status(current=2, stable=1)
    p = plan([make_healthy("cam-000", 1)], status=status, art=make_artifact(2))
    assert p.status.current_revision == 2 and len(p.status.history) == 2


def test_a_new_artifact_mid_rollout_supersedes_the_current_revision() -> None:
    p = plan(
        [make_healthy("cam-000", 1)], status=make_status(current=2, stable=1), art=make_artifact(3)
    )
    assert p.status.current_revision == 3
    assert [(r.revision, r.outcome) for r in p.status.history] == [
        (1, "Succeeded"),
        (2, "Superseded"),
        (3, "Progressing"),
    ]
    assert p.status.wave == 0 and p.status.history[1].finished_at == format_time(T0)


def test_back_to_the_stable_artifact_reuses_the_stable_revision() -> None:
    devices = [make_healthy("cam-000", 2), make_healthy("cam-001", 1)]
    p = plan(devices, status=make_status(current=2, stable=1, wave=1), art=make_artifact(1))
    assert (p.status.current_revision, p.status.stable_revision) == (1, 1)
    assert p.status.history[-1].outcome == "RolledBack"
    assert p.actions == (RollBack("cam-000", "detector", 2, 1, make_artifact(1).ref),)


def test_back_to_an_older_artifact_is_a_new_revision() -> None:
    status = make_status(current=3, stable=3)
    status.history[0] = status.history[0].model_copy(update={"revision": 3, "sha256": sha(3)})
    p = plan([make_healthy("cam-000", 3)], status=status, art=make_artifact(1))
    assert p.status.current_revision == 4 and p.status.history[-1].sha256 == sha(1)


def test_history_is_trimmed_but_keeps_the_current_and_stable_records() -> None:
    status = make_status(current=1, stable=1)
    devices = [make_healthy(n, 1) for n in names(3)]
    for n in range(2, 6):
        status = plan(
            devices, spec=make_spec(history_limit=2), status=status, art=make_artifact(n)
        ).status
    assert [r.revision for r in status.history] == [1, 5]  # 1 is still stable


def test_numbers_are_never_reused_when_the_status_was_lost() -> None:
    devices = [make_healthy("cam-000", 7), make_healthy("cam-001", 7)]
    p = plan(devices, status=None, art=make_artifact(9))
    assert p.status.current_revision == 8


def test_tracking_does_not_change_the_status_it_reads() -> None:
    status = make_status(current=2, stable=1)
    before = status.model_dump()
    progress = track_artifact(
        RolloutProgress.of(status), make_artifact(3), history_limit=1, last_wave=2, now=T0
    )
    assert progress.current == 3 and status.model_dump() == before
    assert isinstance(status, EdgeDeploymentStatus)
    assert [r.revision for r in progress.history] == [1, 3]


PROMOTIONS = {
    "3/0": (3, 0),
    "12/4": (12, 4),
    "0": None,
    "": None,
    "3/": None,
    "a/b": None,
    "3/0/1": None,
    "-1/0": None,
}


@pytest.mark.parametrize(("value", "parsed"), PROMOTIONS.items(), ids=PROMOTIONS.keys())
def test_parse_promotion(value: str, parsed: tuple[int, int] | None) -> None:
    assert parse_promotion(value) == parsed


def test_promotion_values_round_trip() -> None:
    assert parse_promotion(promotion_value(5, 2)) == (5, 2)
    assert parse_promotion(None) is None
