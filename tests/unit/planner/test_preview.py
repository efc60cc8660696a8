"""`preview_rollout`: the whole rollout a spec would make, from the live fleet, as rows.

Each case is a fleet as `modelfleet plan` would read it; the rows must say which wave each
device lands in, which artifact it gets, and why the others never move.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

import pytest

from modelfleet.api.deployment import EdgeDeploymentSpec, EdgeDeploymentStatus, ModelRef
from modelfleet.operator.rollout.fleet import DeviceView
from modelfleet.operator.rollout.ordering import rollout_order
from modelfleet.operator.rollout.planner import AssignRevision
from modelfleet.operator.rollout.preview import DEFAULT_VARIANT, Preview, preview_rollout
from modelfleet.operator.rollout.resolution import Resolution, conversion_artifact
from modelfleet.operator.rollout.revisions import ResolvedArtifact
from tests.unit.planner.builders import (
    NAME,
    T0,
    UID,
    make_artifact,
    make_failed,
    make_healthy,
    make_spec,
    make_status,
    make_view,
    names,
)
from tests.unit.planner.simulated_fleet import Fleet


def preview(
    devices: Iterable[DeviceView],
    *,
    spec: EdgeDeploymentSpec | None = None,
    status: EdgeDeploymentStatus | None = None,
    art: ResolvedArtifact | None = None,
    uid: str | None = UID,
    other_claims: Mapping[str, list[str]] | None = None,
) -> Preview:
    return preview_rollout(
        deployment_name=NAME,
        deployment_uid=uid,
        generation=1,
        spec=spec or make_spec(),
        status=status,
        annotations={},
        artifact=art or make_artifact(1),
        devices=list(devices),
        other_claims=other_claims or {},
        now=T0,
    )


def waves(result: Preview) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for row in result.rows:
        if row.disposition == "rollout":
            assert row.wave is not None
            found.setdefault(row.wave, []).append(row.device)
    return found


def skipped(result: Preview) -> dict[str, str]:
    return {r.device: r.reason for r in result.rows if r.disposition == "skipped"}


def test_a_first_rollout_puts_devices_into_waves_in_the_planners_order() -> None:
    devices = [make_view(n) for n in names(20)]
    result = preview(devices, spec=make_spec(waves=[1, "50%", "100%"], max_in_flight=1, bake=60))
    order = [d.name for d in rollout_order(UID, devices)]
    assert waves(result) == {1: order[:1], 2: order[1:10], 3: order[10:]}
    assert result.wave_sizes == (1, 10, 20)
    assert result.revision == 1 and result.outcome == "Succeeded"
    assert result.order_known
    art = make_artifact(1)
    assert {(r.artifact.sha256, r.artifact.uri) for r in result.rows if r.artifact} == {
        (art.sha256, art.uri)
    }
    assert {r.variant for r in result.rows} == {DEFAULT_VARIANT}


def test_offline_conflicting_and_unselected_devices_are_skipped_with_their_reason() -> None:
    devices = [
        *(make_view(n) for n in names(4)),
        make_view("cam-offline", online=False),
        make_view("cam-claimed"),
        make_view("cam-held", revision=3, deployment="other", slot=NAME),
        make_view("kiosk-1", labels={"fleet": "kiosks"}),
    ]
    result = preview(devices, other_claims={"cam-claimed": ["rival"]})
    assert skipped(result) == {
        "cam-offline": "Offline",
        "cam-claimed": "Conflict",
        "cam-held": "Conflict",
        "kiosk-1": "NotSelected",
    }
    messages = {r.device: r.message for r in result.rows}
    assert "rival" in messages["cam-claimed"] and "other" in messages["cam-held"]
    assert "Lease last renewed" in messages["cam-offline"]
    assert sorted(d for ds in waves(result).values() for d in ds) == names(4)
    assert result.wave_sizes == (1, 3, 5)  # the offline device is targeted: it counts
    assert next(r for r in result.rows if r.device == "kiosk-1").variant is None


def test_a_new_artifact_rolls_over_the_stable_fleet_and_newcomers_catch_up_first() -> None:
    fleet = [make_healthy(n, 1) for n in names(6)]
    result = preview(
        [*fleet, make_view("cam-new")],
        status=make_status(current=1, stable=1, phase="Succeeded"),
        art=make_artifact(2),
    )
    assert result.revision == 2 and result.outcome == "Succeeded"
    rows = {r.device: r for r in result.rows}
    assert {r.disposition for r in rows.values()} == {"rollout"}
    assert {r.revision for r in rows.values()} == {2}
    assert "catching up to stable revision 1" in rows["cam-new"].message
    assert sum(len(ds) for ds in waves(result).values()) == 7


def test_the_stable_artifact_again_moves_nothing() -> None:
    result = preview(
        [make_healthy(n, 1) for n in names(5)],
        status=make_status(current=1, stable=1, phase="Succeeded"),
        art=make_artifact(1),
    )
    assert {r.disposition for r in result.rows} == {"unchanged"}
    assert {r.artifact.uri for r in result.rows if r.artifact} == {make_artifact(1).uri}
    assert result.outcome == "Succeeded"


def test_a_device_no_longer_selected_is_released() -> None:
    gone = make_healthy("cam-moved", 1, labels={"fleet": "elsewhere"})
    result = preview(
        [*(make_healthy(n, 1) for n in names(3)), gone],
        status=make_status(current=1, stable=1, phase="Succeeded"),
    )
    assert {r.device: r.disposition for r in result.rows}["cam-moved"] == "release"


def test_an_abort_rolls_the_failed_device_back_and_reaches_no_one_else() -> None:
    result = preview(
        [make_failed("cam-000", 2, previous=1), *(make_healthy(n, 1) for n in names(4)[1:])],
        status=make_status(current=2, stable=1, wave=0),
        art=make_artifact(2),
    )
    rows = {r.device: r for r in result.rows}
    assert rows["cam-000"].disposition == "rollback" and rows["cam-000"].revision == 1
    assert skipped(result) == {n: "NotReached" for n in names(4)[1:]}
    assert result.outcome == "RolledBack"
    assert "failed" in rows["cam-001"].message.lower()


def test_a_paused_spec_is_previewed_as_if_resumed_and_says_so() -> None:
    result = preview([make_view(n) for n in names(3)], spec=make_spec(paused=True))
    assert sum(len(ds) for ds in waves(result).values()) == 3
    assert result.message.startswith("spec.paused is true")


def test_a_deployment_not_created_yet_has_a_provisional_order() -> None:
    result = preview([make_view(n) for n in names(3)], uid=None)
    assert not result.order_known
    assert sum(len(ds) for ds in waves(result).values()) == 3


def _conversion(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "detector-v1", "generation": 2}, "status": status}


def test_a_ready_conversion_offers_its_artifact_in_the_format_asked_for() -> None:
    art = make_artifact(1)
    artifact = {
        "format": "onnx",
        "uri": art.uri,
        "sha256": art.sha256,
        "sizeBytes": 1000,
        "probeUri": art.probe_uri,
        "manifestUri": "s3://models/manifests/1.json",
    }
    raw = _conversion(
        observedGeneration=2,
        conditions=[{"type": "Ready", "status": "True", "reason": "Succeeded"}],
        artifacts=[artifact],
    )
    resolved = conversion_artifact(raw, make_spec()).artifact
    assert resolved is not None and resolved.sha256 == art.sha256
    assert resolved.conversion_generation == 2
    int8 = make_spec().model_copy(
        update={"model": ModelRef(conversion="detector-v1", format="onnx-int8")}
    )
    assert conversion_artifact(raw, int8) == Resolution(
        None, "WaitingForArtifact", "ModelConversion detector-v1 has no onnx-int8 artifact"
    )


def test_a_conversion_not_ready_for_its_generation_offers_nothing() -> None:
    ready = [{"type": "Ready", "status": "True", "reason": "Succeeded"}]
    stale = _conversion(observedGeneration=1, phase="Succeeded", conditions=ready)
    assert conversion_artifact(stale, make_spec()).artifact is None
    failing = _conversion(
        observedGeneration=2,
        phase="Failed",
        conditions=[{"type": "Ready", "status": "False", "reason": "ToleranceExceeded"}],
    )
    assert conversion_artifact(failing, make_spec()) == Resolution(
        None,
        "WaitingForArtifact",
        "ModelConversion detector-v1 is Failed: ToleranceExceeded, not approved",
    )


@pytest.mark.parametrize(
    ("waves_", "max_in_flight", "bake", "pause"),
    [
        ([1, "50%", "100%"], 1, 30, "none"),
        (["25%", "50%", "100%"], "50%", 10, "none"),
        (["10%", "25%", "100%"], "20%", 0, "betweenWaves"),
        ([2, 5, "100%"], 3, 120, "betweenWaves"),
    ],
)
def test_the_waves_previewed_are_the_waves_a_paced_rollout_takes(
    waves_: list[int | str], max_in_flight: int | str, bake: int, pause: str
) -> None:
    """The preview drops maxInFlight, bake and promotion pauses: they change when a device
    moves, not its wave. A paced rollout on the simulated fleet (slow agents, offline
    devices) puts every device into the wave the preview named."""
    spec = make_spec(waves=waves_, max_in_flight=max_in_flight, bake=bake, pause=pause)
    fleet = Fleet(spec=spec, art=make_artifact(1))
    fleet.add(*names(12), slow=2)
    offline = names(6, prefix="gone")
    fleet.add(*offline, online=False)
    for name in offline:  # silent for a day: counted in the wave sizes, never assigned
        fleet.devices[name].lease = T0 - timedelta(days=1)
    previewed = preview(fleet.views(), spec=spec)

    seen: dict[str, int] = {}
    for _ in range(400):
        step = fleet.step(seconds=10)
        for action in step.actions:
            if isinstance(action, AssignRevision):
                seen.setdefault(action.device, (step.status.wave or 0) + 1)
        if step.status.phase == "Paused":
            fleet.promote()
        if step.status.phase == "Succeeded" and not step.actions:
            break
    assert step.status.phase == "Succeeded"
    assert seen == {r.device: r.wave for r in previewed.rows if r.disposition == "rollout"}
    assert skipped(previewed) == dict.fromkeys(offline, "Offline")
