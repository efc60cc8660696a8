"""Whole rollouts, pass by pass, against the simulated fleet (simulated_fleet.py)."""

from __future__ import annotations

from modelfleet.conditions import get_condition, parse_time
from modelfleet.operator.rollout.conditions import (
    AWAITING_PROMOTION,
    CONFLICT,
    PROGRESS_DEADLINE_EXCEEDED,
    PROGRESSING,
    READY,
    ROLLOUT_ABORTED,
)
from modelfleet.operator.rollout.planner import AssignRevision, RollBack
from tests.unit.planner.builders import (
    make_artifact,
    make_healthy,
    make_spec,
    make_status,
    names,
    plan,
    progressing,
)
from tests.unit.planner.simulated_fleet import Fleet


def rollout_to_stable(fleet: Fleet, n: int = 1) -> None:
    fleet.art = make_artifact(n)
    final = fleet.run()
    assert final.status.phase == "Succeeded", final.status


def test_a_good_revision_reaches_every_device_wave_by_wave(fleet: Fleet) -> None:
    fleet.add(*names(20))
    final = fleet.run()
    assert final.status.phase == "Succeeded"
    assert final.status.current_revision == final.status.stable_revision == 1
    assert set(fleet.active().values()) == {1}
    assert final.status.counts.healthy == final.status.counts.updated == 20
    assert final.status.history[0].outcome == "Succeeded"
    waves_seen = [p.status.wave for p in fleet.plans]
    assert waves_seen == sorted(waves_seen) and set(waves_seen) == {0, 1, 2}
    first_assignments = [
        len([a for a in p.actions if isinstance(a, AssignRevision)]) for p in fleet.plans
    ]
    assert first_assignments[0] == 1  # the canary wave is one device


def test_a_second_revision_rolls_out_from_stable(fleet: Fleet) -> None:
    fleet.add(*names(10))
    rollout_to_stable(fleet, 1)
    rollout_to_stable(fleet, 2)
    assert fleet.status is not None
    assert fleet.status.current_revision == fleet.status.stable_revision == 2
    assert [r.outcome for r in fleet.status.history] == ["Succeeded", "Succeeded"]
    assert set(fleet.active().values()) == {2}


def test_a_failing_revision_aborts_in_the_first_wave_and_returns_the_moved_devices(
    fleet: Fleet,
) -> None:
    fleet.add(*names(20))
    rollout_to_stable(fleet, 1)
    fleet.art = make_artifact(2)
    fleet.bad.add(make_artifact(2).sha256)
    final = fleet.run(until={"RolledBack"})
    assert final.status.current_revision == 2 and final.status.stable_revision == 1
    moved = {
        a.device
        for p in fleet.plans
        for a in p.actions
        if isinstance(a, AssignRevision) and a.revision == 2
    }
    returned = {a.device for p in fleet.plans for a in p.actions if isinstance(a, RollBack)}
    assert len(moved) == 1 and returned == moved
    assert set(fleet.revisions().values()) == {1}
    assert final.status.history[-1].outcome == "RolledBack"
    progressing = get_condition(final.status.conditions, PROGRESSING)
    assert progressing is not None and progressing.reason == ROLLOUT_ABORTED
    assert next(iter(moved)) in progressing.message and "ProbeMismatch" in progressing.message
    # re-planning the same spec does not start the bad revision again
    again = fleet.step()
    assert again.actions == () and again.status.phase == "RolledBack"


def test_a_failing_first_revision_has_nothing_to_roll_back_to(fleet: Fleet) -> None:
    fleet.add(*names(10))
    fleet.bad.add(make_artifact(1).sha256)
    final = fleet.run(until={"Degraded"})
    assert final.status.stable_revision is None
    assert sorted(v for v in fleet.revisions().values() if v) == [1]
    assert "no stable revision" in final.status.conditions[0].message


def test_without_automatic_rollback_an_abort_leaves_devices_where_they_are() -> None:
    fleet = Fleet(spec=make_spec(automatic=False, waves=[2, "100%"]), art=make_artifact(1))
    fleet.add(*names(10))
    rollout_to_stable(fleet, 1)
    fleet.art = make_artifact(2)
    fleet.bad.add(make_artifact(2).sha256)
    final = fleet.run(until={"Degraded"})
    assert sorted(fleet.revisions().values()) == [1] * 8 + [2] * 2
    assert "automatic rollback is off" in final.status.conditions[0].message


def test_failures_under_the_threshold_do_not_stop_the_rollout() -> None:
    fleet = Fleet(spec=make_spec(waves=["50%", "100%"], threshold=20), art=make_artifact(1))
    fleet.add(*names(10))
    fleet.bad_on.add(names(10)[3])
    final = fleet.run()
    assert final.status.phase == "Succeeded"
    assert final.status.counts.failed == 1 and final.status.counts.healthy == 9


def test_offline_devices_do_not_block_and_catch_up_when_they_return(fleet: Fleet) -> None:
    fleet.add(*names(10))
    away = names(10)[:3]
    for name in away:
        fleet.devices[name].online = False
    fleet.tick(601)  # their leases expire
    final = fleet.run()
    assert final.status.phase == "Succeeded"
    assert final.status.counts.offline == 3
    assert all(fleet.revisions()[n] is None for n in away)
    for name in away:
        fleet.devices[name].online = True
    fleet.tick()
    back = fleet.step()
    assert {a.device: a.revision for a in back.actions} == dict.fromkeys(away, 1)
    fleet.run()
    assert set(fleet.active().values()) == {1}


def test_a_late_joiner_gets_the_stable_revision_at_once(fleet: Fleet) -> None:
    fleet.add(*names(10))
    rollout_to_stable(fleet, 1)
    fleet.art = make_artifact(2)
    fleet.step()  # revision 2 starts: its canary wave
    fleet.add("late-joiner")
    p = fleet.step()
    assert [(a.device, a.revision) for a in p.actions if a.device == "late-joiner"] == [
        ("late-joiner", 1)
    ]


def test_on_the_first_rollout_new_devices_join_the_waves() -> None:
    fleet = Fleet(spec=make_spec(waves=[1, "100%"], bake=60), art=make_artifact(1))
    fleet.add(*names(5))
    fleet.step()
    fleet.add("late-joiner")
    p = fleet.step()
    assert "late-joiner" not in {a.device for a in p.actions}  # no stable to give it yet
    fleet.run()
    assert fleet.active()["late-joiner"] == 1


def test_pause_between_waves_waits_for_promotion() -> None:
    fleet = Fleet(spec=make_spec(pause="betweenWaves"), art=make_artifact(1))
    fleet.add(*names(20))
    p = fleet.run(until={"Paused"})
    assert p.status.wave == 0 and p.status.counts.updated == 1
    assert progressing(p.status)[0] == AWAITING_PROMOTION
    for _ in range(5):
        assert fleet.step().status.counts.updated == 1  # nothing moves until promoted
    fleet.promote()
    p = fleet.run(until={"Paused"})
    assert p.status.wave == 1 and p.status.counts.updated == 10
    fleet.promote()
    assert fleet.run().status.phase == "Succeeded"


def test_a_leftover_promotion_does_not_promote_the_next_revision() -> None:
    fleet = Fleet(spec=make_spec(pause="betweenWaves", waves=[1, "100%"]), art=make_artifact(1))
    fleet.add(*names(4))
    fleet.run(until={"Paused"})
    fleet.promote()
    fleet.run()
    fleet.art = make_artifact(2)
    p = fleet.run(until={"Paused"})
    assert p.status.current_revision == 2 and p.status.wave == 0


def test_spec_paused_freezes_the_deployment(fleet: Fleet) -> None:
    fleet.add(*names(20))
    fleet.step()
    fleet.spec = make_spec(paused=True)
    for _ in range(3):
        p = fleet.step()
        assert p.actions == () and p.status.phase == "Paused"
    fleet.spec = make_spec()
    assert fleet.run().status.phase == "Succeeded"


def test_max_in_flight_limits_each_batch() -> None:
    fleet = Fleet(spec=make_spec(waves=["100%"], max_in_flight=3), art=make_artifact(1))
    fleet.add(*names(10))
    for d in fleet.devices.values():
        d.slow = 2
    fleet.run()
    batches = [len([a for a in p.actions if isinstance(a, AssignRevision)]) for p in fleet.plans]
    assert max(batches) == 3 and sum(batches) == 10
    assert max(p.status.counts.in_flight for p in fleet.plans) == 3


def test_bake_holds_each_wave() -> None:
    fleet = Fleet(spec=make_spec(waves=[1, "100%"], bake=30), art=make_artifact(1))
    fleet.add(*names(4))
    fleet.run(seconds=5)
    wave1_started = next(p for p in fleet.plans if p.status.wave == 1).status.wave_started_at
    wave0_completed = next(
        p for p in fleet.plans if p.status.wave_completed_at
    ).status.wave_completed_at
    assert wave0_completed is not None and wave1_started is not None
    assert (parse_time(wave1_started) - parse_time(wave0_completed)).total_seconds() >= 30


def test_a_stuck_wave_passes_the_progress_deadline() -> None:
    fleet = Fleet(spec=make_spec(waves=[1, "100%"], deadline=60, timeout=600), art=make_artifact(1))
    fleet.add(*names(4))
    for d in fleet.devices.values():
        d.slow = 10_000  # downloads forever, heartbeating
    p = fleet.step()
    for _ in range(70):
        p = fleet.step()
    assert p.status.phase == "Degraded"
    assert progressing(p.status)[0] == PROGRESS_DEADLINE_EXCEEDED


def test_a_device_that_never_reports_times_out_as_failed() -> None:
    fleet = Fleet(spec=make_spec(waves=[1, "100%"], timeout=60), art=make_artifact(1))
    fleet.add(*names(4))
    rollout_to_stable(fleet, 1)
    for d in fleet.devices.values():
        d.slow = 10_000
    fleet.art = make_artifact(2)
    p = fleet.run(until={"RolledBack"}, seconds=10)
    assert "Timeout" in p.status.conditions[0].message


def test_reverting_the_spec_to_the_stable_artifact_returns_devices_without_a_new_revision(
    fleet: Fleet,
) -> None:
    fleet.add(*names(20))
    rollout_to_stable(fleet, 1)
    fleet.art = make_artifact(2)
    fleet.step()
    fleet.step()
    assert 2 in fleet.revisions().values()
    fleet.art = make_artifact(1)  # git revert
    p = fleet.run()
    assert p.status.current_revision == p.status.stable_revision == 1
    assert [r.outcome for r in p.status.history] == ["Succeeded", "RolledBack"]
    assert set(fleet.revisions().values()) == {1}


def test_reverting_to_an_older_artifact_is_a_new_revision(fleet: Fleet) -> None:
    fleet.add(*names(6))
    rollout_to_stable(fleet, 1)
    rollout_to_stable(fleet, 2)
    rollout_to_stable(fleet, 1)
    assert fleet.status is not None
    assert fleet.status.current_revision == 3
    assert fleet.status.history[-1].sha256 == make_artifact(1).sha256


def test_a_new_artifact_mid_rollout_supersedes_the_current_one(fleet: Fleet) -> None:
    fleet.add(*names(20))
    rollout_to_stable(fleet, 1)
    fleet.art = make_artifact(2)
    fleet.step()
    fleet.art = make_artifact(3)
    final = fleet.run()
    assert final.status.current_revision == final.status.stable_revision == 3
    assert [r.outcome for r in final.status.history] == ["Succeeded", "Superseded", "Succeeded"]
    assert set(fleet.revisions().values()) == {3}


def test_devices_claimed_by_another_deployment_are_skipped_and_reported(fleet: Fleet) -> None:
    fleet.add(*names(5))
    fleet.other_claims = {"cam-002": ["other-detector"]}
    final = fleet.run()
    assert fleet.revisions()["cam-002"] is None
    conflict = get_condition(final.status.conditions, CONFLICT)
    assert conflict is not None and conflict.status == "True"
    assert "cam-002 (other-detector)" in conflict.message
    assert final.status.counts.targeted == 4


def test_a_deselected_device_is_released(fleet: Fleet) -> None:
    fleet.add(*names(5))
    rollout_to_stable(fleet, 1)
    fleet.devices["cam-001"].labels = {"fleet": "other"}
    fleet.step()
    assert fleet.revisions()["cam-001"] is None


def test_no_approved_artifact_holds_the_rollout(fleet: Fleet) -> None:
    fleet.add(*names(20))
    fleet.step()
    fleet.art = None
    for _ in range(5):
        p = fleet.step()
        assert not [a for a in p.actions if isinstance(a, AssignRevision)]
    fleet.art = make_artifact(1)
    assert fleet.run().status.phase == "Succeeded"


def test_a_regression_during_bake_aborts() -> None:
    fleet = Fleet(spec=make_spec(waves=[2, "100%"]), art=make_artifact(1))
    fleet.add(*names(10))
    rollout_to_stable(fleet, 1)
    fleet.spec = make_spec(waves=[2, "100%"], bake=300)
    fleet.art = make_artifact(2)
    p = fleet.step()
    while not p.status.wave_completed_at:
        p = fleet.step()
    canary = next(n for n, r in fleet.revisions().items() if r == 2)
    slot = fleet.devices[canary].slots["detector"]
    fleet.devices[canary].slots["detector"] = slot.model_copy(
        update={"phase": "Failed", "reason": "Crashed", "active_revision": 1}
    )
    p = fleet.step()
    assert (
        p.status.phase == "RollingBack" and f"{canary} (Crashed)" in p.status.conditions[0].message
    )


def test_a_canary_that_goes_offline_is_replaced_by_the_next_device(fleet: Fleet) -> None:
    fleet.spec = make_spec(waves=[1, "100%"], timeout=60, deadline=600)
    fleet.add(*names(6))
    rollout_to_stable(fleet, 1)
    fleet.art = make_artifact(2)
    first = fleet.plan()
    (canary,) = [a.device for a in first.actions]
    fleet.apply(first)
    fleet.devices[canary].online = False
    final = fleet.run(seconds=10)
    assert final.status.phase == "Succeeded"
    assert final.status.counts.offline == 1
    assert {r for n, r in fleet.revisions().items() if n != canary} == {2}


def test_a_lost_status_resumes_without_reusing_revision_numbers(fleet: Fleet) -> None:
    fleet.add(*names(6))
    rollout_to_stable(fleet, 1)
    rollout_to_stable(fleet, 2)
    fleet.status = None  # e.g. the resource was restored from a backup without status
    fleet.art = make_artifact(3)
    final = fleet.run()
    assert final.status.current_revision == final.status.stable_revision == 3
    assert set(fleet.revisions().values()) == {3}


def test_a_spec_change_is_not_ready_in_the_pass_that_first_observes_it() -> None:
    devices = [make_healthy(name, 1) for name in names(3)]
    stable = make_status(current=1, stable=1, wave=2, phase="Succeeded")
    settled = plan(devices, status=stable, art=make_artifact(1), generation=1)
    assert settled.status.phase == "Succeeded"
    assert (settled.status.wave, settled.status.wave_progress) == (2, "3/3")
    changed = plan(devices, status=settled.status, art=make_artifact(1), generation=2)
    ready = get_condition(changed.status.conditions, READY)
    assert ready is not None
    assert (ready.status, ready.reason, ready.observed_generation) == ("False", "Reconciling", 2)
    assert changed.status.phase == "Progressing" and changed.status.observed_generation == 2
    again = plan(devices, status=changed.status, art=make_artifact(1), generation=2)
    ready = get_condition(again.status.conditions, READY)
    assert ready is not None and ready.status == "True"
    assert again.status.phase == "Succeeded"
