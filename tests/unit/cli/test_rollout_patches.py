"""The patches behind `modelfleet rollback` and `modelfleet promote`."""

from __future__ import annotations

import click
import pytest

from modelfleet.api.annotations import PROMOTE_ANNOTATION
from modelfleet.api.deployment import EdgeDeploymentStatus, RevisionRecord
from modelfleet.rollout_commands import promote_patch, rollback_patch


def record(revision: int) -> RevisionRecord:
    return RevisionRecord(
        revision=revision,
        sha256=str(revision) * 64,
        format="onnx",
        uri=f"s3://modelfleet/artifacts/d{revision}/onnx/model.onnx",
        conversion="cam",
    )


STATUS = EdgeDeploymentStatus(
    current_revision=3, stable_revision=2, wave=0, history=[record(1), record(2), record(3)]
)


def test_rollback_defaults_to_the_stable_revision_and_pins_its_artifact() -> None:
    model = rollback_patch(STATUS, None)["spec"]["model"]
    assert model == {"conversion": None, "uri": record(2).uri, "sha256": "2" * 64, "format": "onnx"}


def test_rollback_to_a_named_revision() -> None:
    assert rollback_patch(STATUS, 1)["spec"]["model"]["sha256"] == "1" * 64


def test_rollback_without_stable_takes_the_revision_before_current() -> None:
    status = STATUS.model_copy(update={"stable_revision": None})
    assert rollback_patch(status, None)["spec"]["model"]["sha256"] == "2" * 64


def test_rollback_to_an_unknown_revision_names_the_known_ones() -> None:
    with pytest.raises(click.ClickException, match=r"revision 7 not in history \(known: 1, 2, 3\)"):
        rollback_patch(STATUS, 7)


def test_promote_names_revision_and_wave() -> None:
    assert promote_patch(STATUS)["metadata"]["annotations"] == {PROMOTE_ANNOTATION: "3/0"}


def test_promote_without_a_rollout_explains() -> None:
    with pytest.raises(click.ClickException, match="nothing to promote"):
        promote_patch(EdgeDeploymentStatus())
