"""A deployment whose artifact's stored bytes no longer match (operator/integrity.py): devices
running it keep it, none moves to it, and Ready says why."""

from __future__ import annotations

from modelfleet.conditions import get_condition
from modelfleet.operator.integrity import ARTIFACT_CORRUPTED
from modelfleet.operator.rollout.planner import plan_rollout
from tests.unit.planner.builders import (
    NAME,
    T0,
    UID,
    assigned,
    make_healthy,
    make_spec,
    make_status,
    make_view,
    rolled_back,
)

URI = "s3://models/artifacts/1/onnx/model.onnx"


def test_a_corrupted_artifact_moves_no_device_and_keeps_the_devices_on_it() -> None:
    """Stable on revision 1, whose artifact is now corrupted: the two devices running it keep
    it (no rollback, no release), a device that joins gets nothing; Ready names why."""
    devices = [make_healthy("cam-a", 1), make_healthy("cam-b", 1), make_view("cam-new")]
    why = f"ModelConversion detector-v1 onnx artifact is corrupted: {URI}: expected ..."
    result = plan_rollout(
        deployment_name=NAME,
        deployment_uid=UID,
        generation=1,
        spec=make_spec(),
        status=make_status(current=1, stable=1, phase="Succeeded"),
        annotations={},
        artifact=None,
        devices=devices,
        other_claims={},
        now=T0,
        unresolved_message=why,
        unresolved_reason=ARTIFACT_CORRUPTED,
    )
    assert result.actions == ()
    assert assigned(result) == {} and rolled_back(result) == {}
    assert result.status.phase == "Degraded"
    ready = get_condition(result.status.conditions, "Ready")
    assert ready is not None and (ready.status, ready.reason, ready.message) == (
        "False",
        ARTIFACT_CORRUPTED,
        why,
    )
    assert result.status.stable_revision == 1 and result.status.counts.healthy == 2
