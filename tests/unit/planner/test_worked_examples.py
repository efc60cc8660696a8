"""Single passes of the planner, one named case per worked example (as Argo's canary tests).

Revision n has make_artifact(n); "stable 1" means revision 1 succeeded before. Device names are
cam-000... and the planner visits them in its own hash order, so the cases count devices
rather than name them, except where a name matters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from modelfleet.api.deployment import EdgeDeploymentSpec, EdgeDeploymentStatus
from modelfleet.api.device import EdgeDevice
from modelfleet.conditions import format_time, get_condition
from modelfleet.operator.rollout.planner import (
    CONFLICT,
    PROGRESSING,
    PROMOTE_ANNOTATION,
    AssignRevision,
    DeviceView,
    Plan,
    RefreshUrl,
    ReleaseSlot,
)
from tests.unit.planner.builders import (
    T0,
    assigned,
    make_artifact,
    make_assignment,
    make_failed,
    make_healthy,
    make_pending,
    make_spec,
    make_status,
    make_view,
    names,
    plan,
    rolled_back,
)


@dataclass
class Example:
    devices: list[DeviceView]
    spec: EdgeDeploymentSpec = field(default_factory=make_spec)
    status: EdgeDeploymentStatus | None = None
    art: int | None = 1
    annotations: dict[str, str] = field(default_factory=dict)
    assigns: int = 0
    """How many devices get the current revision."""
    rollbacks: int = 0
    phase: str = "Progressing"
    reason: str | None = None

    def run(self) -> Plan:
        return plan(
            self.devices,
            spec=self.spec,
            status=self.status,
            art=make_artifact(self.art) if self.art else None,
            annotations=self.annotations,
        )


def fleet_of(count: int, revision: int | None = None) -> list[DeviceView]:
    """`count` online devices, healthy on `revision` (or never assigned)."""
    if revision is None:
        return [make_view(n) for n in names(count)]
    return [make_healthy(n, revision) for n in names(count)]


def with_rollout(
    count: int, *, healthy_on: int = 0, pending_on: int = 0, failed_on: int = 0, current: int = 2
) -> list[DeviceView]:
    """A fleet on stable revision 1 where some devices already moved to `current`."""
    devices = []
    for i, name in enumerate(names(count)):
        if i < healthy_on:
            devices.append(make_healthy(name, current))
        elif i < healthy_on + pending_on:
            devices.append(make_pending(name, current, previous=1))
        elif i < healthy_on + pending_on + failed_on:
            devices.append(make_failed(name, current, previous=1))
        else:
            devices.append(make_healthy(name, 1))
    return devices


EXAMPLES = {
    "20 devices, waves [1, 50%, 100%] → first pass assigns 1": Example(
        fleet_of(20), assigns=1, reason="WaveProgressing"
    ),
    "10 devices, waves [10%, 50%, 100%] → first pass assigns 1 (10% of 10)": Example(
        fleet_of(10), spec=make_spec(waves=["10%", "50%", "100%"]), assigns=1
    ),
    "3 devices, waves [5%, 50%, 100%] → 5% rounds up to 1 device": Example(
        fleet_of(3), spec=make_spec(waves=["5%", "50%", "100%"]), assigns=1
    ),
    "20 devices, maxInFlight 5, single wave 100% → first pass assigns 5": Example(
        fleet_of(20), spec=make_spec(waves=["100%"], max_in_flight=5), assigns=5
    ),
    "20 devices, maxInFlight 25%, single wave 100% → first pass assigns 5": Example(
        fleet_of(20), spec=make_spec(waves=["100%"], max_in_flight="25%"), assigns=5
    ),
    "20 devices, stable 1, canary healthy on 2, no bake → wave 1 (50%) assigns 9 more": Example(
        with_rollout(20, healthy_on=1),
        status=make_status(current=2, stable=1, wave=0),
        art=2,
        assigns=9,
    ),
    "20 devices, wave 1 with 3 in flight and maxInFlight 5 → assigns 2": Example(
        with_rollout(20, healthy_on=1, pending_on=3),
        spec=make_spec(max_in_flight=5),
        status=make_status(current=2, stable=1, wave=1),
        art=2,
        assigns=2,
    ),
    "20 devices, wave 1 with 5 in flight and maxInFlight 5 → assigns nothing": Example(
        with_rollout(20, healthy_on=1, pending_on=5),
        spec=make_spec(max_in_flight=5),
        status=make_status(current=2, stable=1, wave=1),
        art=2,
    ),
    "20 devices, canary healthy, bake 60s, completed 30s ago → waits, baking": Example(
        with_rollout(20, healthy_on=1),
        spec=make_spec(bake=60),
        status=make_status(current=2, stable=1, completed=T0 - timedelta(seconds=30)),
        art=2,
        reason="WaveBaking",
    ),
    "20 devices, canary healthy, bake 60s, completed 60s ago → wave 1 assigns 9": Example(
        with_rollout(20, healthy_on=1),
        spec=make_spec(bake=60),
        status=make_status(current=2, stable=1, completed=T0 - timedelta(seconds=60)),
        art=2,
        assigns=9,
    ),
    "4 devices, canary failed (1 of 1 > 10%) → abort, the canary rolls back": Example(
        with_rollout(4, healthy_on=0, failed_on=1),
        status=make_status(current=2, stable=1),
        art=2,
        rollbacks=1,
        phase="RollingBack",
        reason="RolloutAborted",
    ),
    "10 devices in the last wave, 1 of 10 failed, threshold 10% → not above it: continues": Example(
        with_rollout(10, healthy_on=9, failed_on=1),
        status=make_status(current=2, stable=1, wave=2),
        art=2,
        phase="Succeeded",
        reason="RolloutComplete",
    ),
    "10 devices in the last wave, 2 of 10 failed, threshold 10% → abort, all 10 roll back": Example(
        with_rollout(10, healthy_on=8, failed_on=2),
        status=make_status(current=2, stable=1, wave=2),
        art=2,
        rollbacks=10,
        phase="RollingBack",
    ),
    "threshold 0: 1 failure among 9 healthy aborts": Example(
        with_rollout(10, healthy_on=9, failed_on=1),
        spec=make_spec(threshold=0),
        status=make_status(current=2, stable=1, wave=2),
        art=2,
        rollbacks=10,
        phase="RollingBack",
    ),
    "threshold 100: even 5 of 5 failed never aborts (the deadline still applies)": Example(
        with_rollout(10, healthy_on=0, failed_on=5),
        spec=make_spec(threshold=100),
        status=make_status(current=2, stable=1, wave=1),
        art=2,
    ),
    "in flight counts as attempted: 1 failed, 9 in flight, threshold 10% → continues": Example(
        with_rollout(10, pending_on=9, failed_on=1),
        status=make_status(current=2, stable=1, wave=2),
        art=2,
    ),
    "first rollout, canary failed, no stable revision → Degraded, nothing moves": Example(
        [make_failed("cam-000", 1), *fleet_of(3)[1:]],
        status=make_status(current=1),
        phase="Degraded",
        reason="RolloutAborted",
    ),
    "automatic rollback off, canary failed → Degraded, the canary stays": Example(
        with_rollout(4, failed_on=1),
        spec=make_spec(automatic=False),
        status=make_status(current=2, stable=1),
        art=2,
        phase="Degraded",
    ),
    "betweenWaves, wave 0 complete, not promoted → Paused": Example(
        with_rollout(20, healthy_on=1),
        spec=make_spec(pause="betweenWaves"),
        status=make_status(current=2, stable=1),
        art=2,
        phase="Paused",
        reason="AwaitingPromotion",
    ),
    "betweenWaves, promoted 2/0 → wave 1 assigns 9": Example(
        with_rollout(20, healthy_on=1),
        spec=make_spec(pause="betweenWaves"),
        status=make_status(current=2, stable=1),
        art=2,
        annotations={PROMOTE_ANNOTATION: "2/0"},
        assigns=9,
    ),
    "betweenWaves, a leftover promotion 1/0 of revision 1 → still Paused": Example(
        with_rollout(20, healthy_on=1),
        spec=make_spec(pause="betweenWaves"),
        status=make_status(current=2, stable=1),
        art=2,
        annotations={PROMOTE_ANNOTATION: "1/0"},
        phase="Paused",
    ),
    "no pause after the last wave: 20 healthy on 2 in wave 2 → Succeeded": Example(
        with_rollout(20, healthy_on=20),
        spec=make_spec(pause="betweenWaves"),
        status=make_status(current=2, stable=1, wave=2),
        art=2,
        phase="Succeeded",
    ),
    "spec.paused → Paused, nothing assigned": Example(
        fleet_of(20), spec=make_spec(paused=True), phase="Paused", reason="DeploymentPaused"
    ),
    "no approved artifact, nothing rolled out yet → waits, nothing assigned": Example(
        fleet_of(20), art=None, reason="WaitingForArtifact"
    ),
    "no approved artifact mid-rollout → holds: nothing assigned, nothing rolled back": Example(
        with_rollout(20, healthy_on=1),
        status=make_status(current=2, stable=1),
        art=None,
        reason="WaitingForArtifact",
    ),
    "no approved artifact, yet the canary failed → still rolls back": Example(
        with_rollout(20, failed_on=1),
        status=make_status(current=2, stable=1),
        art=None,
        rollbacks=1,
        phase="RollingBack",
    ),
    "the selector matches nothing → waits for devices": Example(
        [make_view("cam-000", labels={"fleet": "other"})], reason="NoDevicesSelected"
    ),
    "3 of 10 devices offline, single wave, first rollout → assigns the 7 online": Example(
        fleet_of(7) + [make_view(n, online=False) for n in names(3, "away")],
        spec=make_spec(waves=["100%"]),
        assigns=7,
    ),
    "stable 1, 2 new devices → they get revision 1 at once": Example(
        [*fleet_of(5, 1), make_view("new-1"), make_view("new-2")],
        status=make_status(current=1, stable=1, wave=2),
        assigns=2,
        phase="Succeeded",
    ),
}


@pytest.mark.parametrize("example", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_worked_example(example: Example) -> None:
    p = example.run()
    current = p.status.current_revision
    moved = [a for a in p.actions if isinstance(a, AssignRevision) and a.revision == current]
    assert len(moved) == example.assigns, p.status.conditions[0].message
    assert len(rolled_back(p)) == example.rollbacks
    assert p.status.phase == example.phase
    if example.reason:
        progressing = get_condition(p.status.conditions, PROGRESSING)
        assert progressing is not None and progressing.reason == example.reason


def test_the_canary_is_the_first_device_in_hash_order_not_by_name() -> None:
    p = plan(fleet_of(20), art=make_artifact(1))
    (canary,) = assigned(p)
    assert canary != "cam-000"  # with this uid the hash puts another device first


def test_an_offline_canary_is_skipped_for_the_next_device() -> None:
    first = plan(fleet_of(20), art=make_artifact(1))
    (canary,) = assigned(first)
    devices = [make_view(n, online=n != canary) for n in names(20)]
    (replacement,) = assigned(plan(devices, art=make_artifact(1)))
    assert replacement != canary


def test_new_devices_on_stable_get_the_stable_artifact() -> None:
    p = plan(
        [*fleet_of(5, 1), make_view("new-1")],
        status=make_status(current=1, stable=1, wave=2),
        art=make_artifact(1),
    )
    (action,) = p.actions
    assert isinstance(action, AssignRevision) and action.device == "new-1"
    assert action.revision == 1 and action.artifact == make_artifact(1).ref


def test_during_a_rollout_a_new_device_gets_the_stable_artifact_as_recorded() -> None:
    p = plan(
        [*with_rollout(10, healthy_on=1, pending_on=1), make_view("new-1")],
        status=make_status(current=2, stable=1, wave=1),
        art=make_artifact(2),
    )
    catch_up = [a for a in p.actions if a.device == "new-1"]
    assert len(catch_up) == 1 and isinstance(catch_up[0], AssignRevision)
    assert catch_up[0].revision == 1
    assert catch_up[0].artifact.sha256 == make_artifact(1).sha256
    assert catch_up[0].artifact.size_bytes == 1000  # recorded in revision 1's history record


def test_a_device_another_deployment_holds_is_left_alone_and_named() -> None:
    devices = [*fleet_of(4), make_view("taken", revision=7, deployment="other-detector")]
    p = plan(devices, spec=make_spec(waves=["100%"]), art=make_artifact(1))
    assert "taken" not in {a.device for a in p.actions}
    conflict = get_condition(p.status.conditions, CONFLICT)
    assert conflict is not None and conflict.status == "True"
    assert "taken (other-detector)" in conflict.message
    assert p.status.counts.targeted == 4


def test_a_conflict_message_stays_short_on_a_big_fleet() -> None:
    devices = fleet_of(500)
    p = plan(devices, art=make_artifact(1), other_claims={n: ["other"] for n in names(500)})
    conflict = get_condition(p.status.conditions, CONFLICT)
    assert conflict is not None and "and 490 more" in conflict.message
    assert len(conflict.message) < 1000


def test_an_abort_message_names_failed_devices_and_what_happened() -> None:
    p = plan(
        with_rollout(40, healthy_on=0, failed_on=12),
        status=make_status(current=2, stable=1, wave=1),
        art=make_artifact(2),
    )
    progressing = get_condition(p.status.conditions, PROGRESSING)
    assert progressing is not None
    assert "12 of 12 attempted devices failed (threshold 10%)" in progressing.message
    assert "(ProbeMismatch)" in progressing.message and "and 2 more" in progressing.message
    assert "rolling back 12 devices to revision 1" in progressing.message
    assert p.status.history[-1].outcome == "RolledBack"
    assert p.status.history[-1].finished_at == format_time(T0)


def test_once_every_device_is_back_on_stable_the_phase_is_rolled_back() -> None:
    status = make_status(current=2, stable=1, phase="RollingBack")
    status.history[-1].outcome = "RolledBack"
    status.history[-1].finished_at = format_time(T0)
    p = plan(fleet_of(10, 1), status=status, art=make_artifact(2))
    assert p.status.phase == "RolledBack" and p.actions == ()


def test_a_deselected_device_is_released() -> None:
    devices = [*fleet_of(3, 1), make_healthy("moved-away", 1, labels={"fleet": "lab"})]
    p = plan(devices, status=make_status(current=1, stable=1, wave=2), art=make_artifact(1))
    assert p.actions == (ReleaseSlot("moved-away", "detector"),)
    assert p.status.counts.targeted == 3


def test_a_pending_device_whose_url_is_about_to_expire_gets_a_fresh_one() -> None:
    device = make_pending("cam-000", 2, previous=1)
    expiring = device.models["detector"].model_copy(
        update={"url_expires_at": format_time(T0 + timedelta(minutes=2))}
    )
    device = DeviceView(
        name=device.name,
        labels=device.labels,
        models={"detector": expiring},
        slots=device.slots,
        lease_renew_time=device.lease_renew_time,
    )
    p = plan([device], status=make_status(current=2, stable=1), art=make_artifact(2))
    assert p.actions == (RefreshUrl("cam-000", "detector", 2, make_artifact(2).ref),)


def test_requeue_after_covers_bake_and_device_timeouts() -> None:
    baking = plan(
        with_rollout(20, healthy_on=1),
        spec=make_spec(bake=60),
        status=make_status(current=2, stable=1, completed=T0 - timedelta(seconds=45)),
        art=make_artifact(2),
    )
    assert baking.requeue_after == pytest.approx(15)
    first = plan(fleet_of(20), spec=make_spec(timeout=120), art=make_artifact(1))
    assert first.requeue_after is not None and 0 < first.requeue_after <= 121


def test_a_device_view_reads_an_edge_device_and_its_metadata() -> None:
    device = EdgeDevice.model_validate(
        {
            "metadata": {
                "name": "cam-7",
                "labels": {"fleet": "cams", "site": "north"},
                "creationTimestamp": "2024-05-01T11:00:00Z",
            },
            "spec": {"models": {"detector": make_assignment(3).to_wire()}},
            "status": {"slots": {"detector": {"activeRevision": 3, "phase": "Healthy"}}},
        }
    )
    seen = DeviceView.of(device, lease_renew_time=T0)
    assert (seen.name, seen.labels["site"], seen.created_at) == (
        "cam-7",
        "north",
        T0 - timedelta(hours=1),
    )
    assert seen.models["detector"].revision == 3 and seen.slots["detector"].phase == "Healthy"
    assert DeviceView.of(device, lease_renew_time=None, name="other").name == "other"


def test_advancing_a_wave_clears_its_completion_time() -> None:
    """The handler must persist cleared fields (null in a merge patch), or the next wave would
    look complete since the last one and skip its bake."""
    p = plan(
        with_rollout(20, healthy_on=1),
        spec=make_spec(bake=60),
        status=make_status(current=2, stable=1, completed=T0 - timedelta(seconds=60)),
        art=make_artifact(2),
    )
    assert p.status.wave == 1
    assert p.status.wave_completed_at is None and p.status.wave_started_at == format_time(T0)
    assert "waveCompletedAt" not in p.status.to_wire()  # so a merge patch must send null
