"""The patches behind `modelfleet rollback` and `modelfleet promote`."""

from __future__ import annotations

from typing import Literal

import click
import pytest

from modelfleet.api.annotations import PROMOTE_ANNOTATION
from modelfleet.api.deployment import EdgeDeploymentStatus, RevisionRecord, VariantArtifact
from modelfleet.rollout_commands import previous_revision, promote_patch, rollback_patch


def record(
    revision: int, sha: int | None = None, outcome: Literal["Succeeded", "RolledBack"] = "Succeeded"
) -> RevisionRecord:
    return RevisionRecord(
        revision=revision,
        sha256=str(sha or revision) * 64,
        outcome=outcome,
        format="onnx",
        uri=f"s3://modelfleet/artifacts/d{revision}/onnx/model.onnx",
        conversion="cam",
    )


STATUS = EdgeDeploymentStatus(
    current_revision=3, stable_revision=2, wave=0, history=[record(1), record(2), record(3)]
)


def test_rollback_defaults_to_the_revision_before_current_and_pins_its_artifact() -> None:
    model = rollback_patch(STATUS, previous_revision(STATUS))["spec"]["model"]
    assert model == {"conversion": None, "uri": record(2).uri, "sha256": "2" * 64, "format": "onnx"}


def test_rollback_to_a_revision_without_variants_removes_them_and_one_with_them_refuses() -> None:
    assert rollback_patch(STATUS, 1)["spec"]["variants"] is None
    variant = VariantArtifact(name="intel", format="onnx", sha256="4" * 64, uri=record(4).uri)
    status = STATUS.model_copy(
        update={"history": [*STATUS.history, record(4).model_copy(update={"variants": [variant]})]}
    )
    with pytest.raises(click.ClickException, match=r"revision 4 has variants \(intel\)"):
        rollback_patch(status, 4)


def test_rollback_to_a_named_revision() -> None:
    assert rollback_patch(STATUS, 1)["spec"]["model"]["sha256"] == "1" * 64


def test_rollback_without_stable_takes_the_revision_before_current() -> None:
    status = STATUS.model_copy(update={"stable_revision": None})
    assert rollback_patch(status, previous_revision(status))["spec"]["model"]["sha256"] == "2" * 64


def test_after_a_finished_rollout_rollback_leaves_the_current_revision() -> None:
    # Stable == current once a rollout succeeds: the old default pinned it and changed nothing.
    status = STATUS.model_copy(update={"stable_revision": 3})
    assert previous_revision(status) == 2


def test_rollback_skips_rolled_back_revisions_and_the_current_artifact() -> None:
    history = [record(1), record(2, outcome="RolledBack"), record(3, sha=1), record(4)]
    status = EdgeDeploymentStatus(current_revision=4, stable_revision=4, history=history)
    assert previous_revision(status) == 3
    again = EdgeDeploymentStatus(current_revision=3, stable_revision=3, history=history[:3])
    with pytest.raises(click.ClickException, match="nothing to roll back to: revision 3"):
        previous_revision(again)


def test_rollback_before_any_rollout_explains() -> None:
    with pytest.raises(click.ClickException, match="nothing to roll back: no revision"):
        previous_revision(EdgeDeploymentStatus())


def test_rollback_to_an_unknown_revision_names_the_known_ones() -> None:
    with pytest.raises(click.ClickException, match=r"revision 7 not in history \(known: 1, 2, 3\)"):
        rollback_patch(STATUS, 7)


def test_promote_names_revision_and_wave() -> None:
    assert promote_patch(STATUS)["metadata"]["annotations"] == {PROMOTE_ANNOTATION: "3/0"}


def test_promote_without_a_rollout_explains() -> None:
    with pytest.raises(click.ClickException, match="nothing to promote"):
        promote_patch(EdgeDeploymentStatus())
