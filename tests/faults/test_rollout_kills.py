"""The operator killed (SIGKILL) at each point of a rollout, then restarted: four real agents,
one EdgeDeployment whose pinned artifact each case changes, waves of 1, 2 and 4 devices.

Cases run in order, each from the state the previous one left (a day of operations).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from faults.builders import (
    AGENTS,
    BAKE,
    STRATEGY,
    Deployment,
    assert_loadable,
    assignment_waves,
    healthy_on,
    no_double_assignment,
    summary,
)

from modelfleet.api.deployment import EdgeDeploymentStatus, RevisionRecord
from modelfleet.conditions import parse_time
from modelfleet.rollout_commands import promote_patch, rollback_patch
from support.faults import freeze, poll
from support.fleet import Artifact
from support.operator import OperatorHandle
from support.recorders import AssignmentLog, LinkWatch
from support.rollouts import assignment_of

pytestmark = [pytest.mark.faults, pytest.mark.integration]
Hit = Callable[[Deployment, OperatorHandle, Artifact, int], dict[str, Any]]
"""Changes the deployment and returns once the operator is dead at the point (what it saw)."""


def _spec_changed_while_down(
    relay: Deployment, operator: OperatorHandle, artifact: Artifact, _: int
) -> dict[str, Any]:
    freeze(operator.process)
    relay.pin(artifact)
    operator.process.kill()
    return {}


def _first_wave_assigned(
    relay: Deployment, operator: OperatorHandle, artifact: Artifact, revision: int
) -> dict[str, Any]:
    relay.pin(artifact)
    poll("the canary's assignment", lambda: relay.on_revision(revision))
    operator.process.kill()
    return {}


def _during_bake(
    relay: Deployment, operator: OperatorHandle, artifact: Artifact, revision: int
) -> dict[str, Any]:
    relay.pin(artifact)

    def baking() -> dict[str, Any] | None:
        status = relay.status()
        done = (
            status.get("currentRevision") == revision
            and status.get("wave") == 0
            and status.get("waveCompletedAt")
        )
        return status if done else None

    status: Any = poll("the canary wave healthy and baking", baking)
    freeze(operator.process)
    assert len(relay.on_revision(revision)) == 1, "the bake was cut short before the kill"
    operator.process.kill()
    return {"baking_since": status["waveCompletedAt"]}


def _second_wave_assigned(
    relay: Deployment, operator: OperatorHandle, artifact: Artifact, revision: int
) -> dict[str, Any]:
    relay.pin(artifact)
    poll("the second wave's assignments", lambda: len(relay.on_revision(revision)) >= 2)
    operator.process.kill()
    return {}


def _paused_between_waves(
    relay: Deployment, operator: OperatorHandle, artifact: Artifact, revision: int
) -> dict[str, Any]:
    relay.pin(artifact, **STRATEGY, pause="betweenWaves")
    poll("Paused after the canary", lambda: relay.status().get("phase") == "Paused")
    operator.process.kill()
    return {"promote": True}


def _during_automatic_rollback(
    relay: Deployment, operator: OperatorHandle, artifact: Artifact, revision: int
) -> dict[str, Any]:
    relay.pin(artifact)
    poll("RollingBack", lambda: relay.status().get("phase") == "RollingBack")
    operator.process.kill()
    return {}


@dataclass(frozen=True)
class Point:
    id: str
    fault: str
    hit: Hit
    bad_probe: bool = False


POINTS = [
    Point(
        "spec-changed-while-down",
        "SIGKILL; spec.model changed while down",
        _spec_changed_while_down,
    ),
    Point(
        "first-wave-assigned", "SIGKILL right after the canary's assignment", _first_wave_assigned
    ),
    Point("during-bake", "SIGSTOP+SIGKILL while the canary wave bakes", _during_bake),
    Point(
        "second-wave-assigned", "SIGKILL right after wave 2's assignments", _second_wave_assigned
    ),
    Point(
        "paused-between-waves", "SIGKILL while Paused (pause: betweenWaves)", _paused_between_waves
    ),
    Point(
        "during-automatic-rollback",
        "SIGKILL while RollingBack (canary fails its probe)",
        _during_automatic_rollback,
        bad_probe=True,
    ),
]


@pytest.mark.parametrize("point", POINTS, ids=[p.id for p in POINTS])
def test_operator_killed_mid_rollout(
    point: Point,
    relay: Deployment,
    operator: OperatorHandle,
    record_property: Callable[[str, object], None],
) -> None:
    """Restarted, the operator finishes the rollout (Succeeded, or RolledBack naming the failed
    device); each device got the new revision once (and its rollback once); every device serves
    a verified model throughout, loadable at the end; waves and bake hold across the restart."""
    record_property("fault", f"operator {point.fault}")
    stable = relay.status()["stableRevision"]
    revision = relay.status()["currentRevision"] + 1
    artifact = relay.publish(point.id, shift=0.25 * revision, bad_probe=point.bad_probe)
    with relay.assignments() as log, relay.watch() as disk:
        seen = point.hit(relay, operator, artifact, revision)
        operator.restart()
        if seen.get("promote"):
            _still_paused(relay, revision)
        phase = "RolledBack" if point.bad_probe else "Succeeded"
        status = relay.settle(phase, revision)
        if seen.get("promote"):  # back to no pauses for the cases after this one
            relay.pin(artifact, **STRATEGY, pause="none")
        if point.bad_probe:
            devices = healthy_on(relay, relay.artifact_of(stable), AGENTS)
        else:
            devices = healthy_on(relay, artifact, AGENTS)
    record_property("status", summary(status))
    _assert_invariants(disk, log, relay)
    names = [d["metadata"]["name"] for d in relay.devices()]
    moved = [n for n in names if revision in log.revisions(relay.slot, n)]
    for name in moved:
        assert log.revisions(relay.slot, name).count(revision) == 1, log.revisions(relay.slot, name)
    record = next(r for r in status["history"] if r["revision"] == revision)
    if point.bad_probe:
        assert record["outcome"] == "RolledBack" and status["stableRevision"] == stable
        assert len(moved) == 1, "only the canary wave may move"
        assert moved[0] in summary(status), summary(status)
        assert {assignment_of(d, relay.slot)["revision"] for d in devices} == {stable}
    else:
        assert record["outcome"] == "Succeeded" and status["stableRevision"] == revision
        assert len(moved) == AGENTS
        assert assignment_waves(relay, revision) == [1, 2, AGENTS], "the waves did not hold"
    if "baking_since" in seen:
        _bake_held(relay, revision, parse_time(seen["baking_since"]))


def _still_paused(relay: Deployment, revision: int) -> None:
    """The restarted operator keeps the pause (nothing moves for a while), then each wave
    waits for its own promote."""
    time.sleep(2)
    assert relay.status()["phase"] == "Paused" and len(relay.on_revision(revision)) == 1
    for wave in range(len(STRATEGY["waves"]) - 1):  # type: ignore[arg-type]
        poll(
            f"Paused after wave {wave}",
            lambda wave=wave: (
                relay.status().get("phase") == "Paused" and relay.status().get("wave") == wave
            ),
        )
        status = EdgeDeploymentStatus.model_validate(relay.status())
        relay.rollouts.patch(relay.name, promote_patch(status))


def _bake_held(relay: Deployment, revision: int, since: Any) -> None:
    """Wave 2 was assigned no sooner than the bake allowed (second-precision timestamps)."""
    later = [
        parse_time(assignment_of(d, relay.slot)["assignedAt"])
        for d in relay.devices()
        if assignment_of(d, relay.slot).get("revision") == revision
    ]
    first_wave = min(later)
    second = sorted(t for t in later if t > first_wave)
    assert second and (second[0] - since).total_seconds() >= BAKE - 1, (since, sorted(later))


def test_operator_killed_during_manual_rollback(
    relay: Deployment,
    operator: OperatorHandle,
    record_property: Callable[[str, object], None],
) -> None:
    """`rollback --to-revision` of an older artifact rolls out as a new revision in waves;
    restarted after a kill in its first wave, the operator finishes it once per device."""
    record_property("fault", "operator SIGKILL right after the manual rollback's first assignment")
    status = EdgeDeploymentStatus.model_validate(relay.status())
    older = _older_succeeded(status)
    if older is None:  # run alone: make an older revision to go back to
        newer = relay.publish("newer", shift=5.0)
        relay.pin(newer)
        relay.settle("Succeeded", (status.current_revision or 0) + 1)
        status = EdgeDeploymentStatus.model_validate(relay.status())
        older = _older_succeeded(status)
    assert older is not None
    revision = (status.current_revision or 0) + 1
    with relay.assignments() as log, relay.watch() as disk:
        relay.rollouts.patch(relay.name, rollback_patch(status, older.revision))
        poll("the rollback's first assignment", lambda: relay.on_revision(revision))
        operator.process.kill()
        operator.restart()
        done = relay.settle("Succeeded", revision)
        healthy_on(relay, relay.published[older.sha256], AGENTS)
    record_property("status", summary(done))
    _assert_invariants(disk, log, relay)
    record = next(r for r in done["history"] if r["revision"] == revision)
    assert record["sha256"] == older.sha256 and record["outcome"] == "Succeeded"


def _older_succeeded(status: EdgeDeploymentStatus) -> RevisionRecord | None:
    """A revision that succeeded before the stable one, on another artifact."""
    stable = next(r for r in status.history if r.revision == status.stable_revision)
    return next(
        (
            r
            for r in reversed(status.history)
            if r.outcome == "Succeeded"
            and r.revision < stable.revision
            and r.sha256 != stable.sha256
        ),
        None,
    )


def _assert_invariants(disk: LinkWatch, log: AssignmentLog, relay: Deployment) -> None:
    assert disk.broken == [], disk.broken
    no_double_assignment(log, relay)
    assert_loadable(relay)
