"""Properties of the planner over generated fleets, specs and rollout states."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from modelfleet.api.deployment import EdgeDeploymentSpec, EdgeDeploymentStatus
from modelfleet.conditions import get_condition
from modelfleet.operator.rollout.conditions import (
    PROGRESS_DEADLINE_EXCEEDED,
    PROGRESSING,
    ROLLOUT_ABORTED,
)
from modelfleet.operator.rollout.planner import (
    AssignRevision,
    DeviceView,
    Plan,
    ReleaseSlot,
    RollBack,
)
from modelfleet.operator.rollout.waves import in_flight_limit
from tests.unit.planner.builders import (
    NAME,
    T0,
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
)
from tests.unit.planner.simulated_fleet import Fleet

KINDS = ["new", "stable", "pending", "healthy", "failed", "away-stable", "away-pending", "stuck"]


def device(name: str, kind: str) -> DeviceView:
    """One device of a fleet on stable revision 1 that is rolling out revision 2."""
    match kind:
        case "new":
            return make_view(name)
        case "stable":
            return make_healthy(name, 1)
        case "pending":
            return make_pending(name, 2, previous=1)
        case "healthy":
            return make_healthy(name, 2)
        case "failed":
            return make_failed(name, 2, previous=1)
        case "away-stable":
            return make_healthy(name, 1, online=False)
        case "away-pending":
            return make_pending(name, 2, previous=1, online=False)
        case _:  # heartbeating, but silent on its revision for a long time
            stuck = make_pending(name, 2, previous=1)
            status = stuck.slots[NAME].model_copy(
                update={"last_update_time": (T0 - timedelta(hours=2)).isoformat()}
            )
            return DeviceView(
                name=name,
                labels=stuck.labels,
                models=stuck.models,
                slots={NAME: status},
                lease_renew_time=stuck.lease_renew_time,
            )


@st.composite
def wave_lists(draw: st.DrawFn) -> list[int | str]:
    counts = sorted(draw(st.sets(st.integers(1, 12), max_size=2)))
    percents = sorted(draw(st.sets(st.integers(1, 99), max_size=2)))
    return [*counts, *(f"{p}%" for p in percents), "100%"]


@st.composite
def specs(draw: st.DrawFn) -> EdgeDeploymentSpec:
    return make_spec(
        waves=draw(wave_lists()),
        max_in_flight=draw(
            st.one_of(st.integers(0, 8), st.sampled_from(["1%", "10%", "25%", "50%", "100%"]))
        ),
        bake=draw(st.sampled_from([0, 0, 30])),
        pause=draw(st.sampled_from(["none", "betweenWaves"])),
        threshold=draw(st.sampled_from([0, 10, 50, 100])),
        automatic=draw(st.booleans()),
        timeout=120,
        deadline=300,  # above the device timeout, so a silent device is let go first
    )


@st.composite
def rollouts(
    draw: st.DrawFn,
) -> tuple[list[DeviceView], EdgeDeploymentSpec, EdgeDeploymentStatus]:
    """Revision 2 mid-rollout over stable revision 1, devices in every state."""
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=40))
    devices = [device(name, kind) for name, kind in zip(names(len(kinds)), kinds, strict=True)]
    spec = draw(specs())
    wave = draw(st.integers(0, len(spec.strategy.waves) - 1))
    return devices, spec, make_status(current=2, stable=1, wave=wave)


def applied(devices: list[DeviceView], p: Plan) -> list[DeviceView]:
    """The devices after the handler applied the plan's actions (agents not yet reacted)."""
    by_name = {d.name: d for d in devices}
    for action in p.actions:
        d = by_name[action.device]
        models = dict(d.models)
        if isinstance(action, AssignRevision):
            models[action.slot] = make_assignment(action.revision)
        elif isinstance(action, RollBack):
            models[action.slot] = make_assignment(action.to_revision)
        elif isinstance(action, ReleaseSlot):
            models.pop(action.slot)
        by_name[d.name] = DeviceView(
            name=d.name,
            labels=d.labels,
            models=models,
            slots=d.slots,
            lease_renew_time=d.lease_renew_time,
        )
    return list(by_name.values())


def in_flight(devices: list[DeviceView], revision: int) -> int:
    """Online devices assigned `revision` that reported neither Healthy nor Failed on it."""
    count = 0
    for d in devices:
        a, s = d.models.get(NAME), d.slots.get(NAME)
        online = d.lease_renew_time is not None and T0 - d.lease_renew_time < timedelta(minutes=10)
        if a is None or a.revision != revision or not online:
            continue
        settled = s is not None and (
            (s.active_revision == revision and s.phase == "Healthy")
            or (s.target_revision == revision and s.phase == "Failed")
        )
        stuck = s is not None and s.last_update_time is not None
        count += not settled and not stuck
    return count


@given(rollouts())
def test_never_more_than_max_in_flight(
    case: tuple[list[DeviceView], EdgeDeploymentSpec, EdgeDeploymentStatus],
) -> None:
    devices, spec, status = case
    p = plan(devices, spec=spec, status=status, art=make_artifact(2))
    targeted = p.status.counts.targeted
    limit = in_flight_limit(spec.strategy.max_in_flight, targeted)
    before, after = in_flight(devices, 2), in_flight(applied(devices, p), 2)
    assert after <= max(limit, before)
    assert p.status.counts.in_flight == after


@given(rollouts(), st.booleans())
def test_never_assigns_without_an_approved_artifact(
    case: tuple[list[DeviceView], EdgeDeploymentSpec, EdgeDeploymentStatus], fresh: bool
) -> None:
    devices, spec, status = case
    p = plan(devices, spec=spec, status=None if fresh else status, art=None)
    assert not [a for a in p.actions if isinstance(a, AssignRevision)]


@given(rollouts())
def test_an_abort_rolls_back_exactly_the_devices_that_moved(
    case: tuple[list[DeviceView], EdgeDeploymentSpec, EdgeDeploymentStatus],
) -> None:
    devices, spec, status = case
    p = plan(devices, spec=spec, status=status, art=make_artifact(2))
    record = p.status.history[-1]
    assume(record.finished_at is not None and record.outcome != "Succeeded")  # aborted now
    moved = {d.name for d in devices if d.models.get(NAME) and d.models[NAME].revision == 2}
    rollbacks = {a.device for a in p.actions if isinstance(a, RollBack)}
    if spec.rollback.automatic:
        assert rollbacks == moved
        assert all(a.to_revision == 1 for a in p.actions if isinstance(a, RollBack))
        assert {a.device for a in p.actions} == moved  # and nothing else in that pass
    else:
        assert p.actions == ()


@given(rollouts(), st.randoms(use_true_random=False))
def test_the_plan_does_not_depend_on_the_order_devices_are_listed_in(
    case: tuple[list[DeviceView], EdgeDeploymentSpec, EdgeDeploymentStatus],
    shuffler: random.Random,
) -> None:
    devices, spec, status = case
    shuffled = list(devices)
    shuffler.shuffle(shuffled)
    first = plan(devices, spec=spec, status=status, art=make_artifact(2))
    again = plan(shuffled, spec=spec, status=status, art=make_artifact(2))
    assert first == again


@given(rollouts(), st.booleans())
def test_planning_again_after_applying_never_assigns_twice(
    case: tuple[list[DeviceView], EdgeDeploymentSpec, EdgeDeploymentStatus], new_artifact: bool
) -> None:
    """A restart re-plans from its own status and the devices as the actions left them."""
    devices, spec, status = case
    art = make_artifact(3 if new_artifact else 2)
    first = plan(devices, spec=spec, status=status, art=art)
    after = {d.name: d for d in applied(devices, first)}
    second = plan(list(after.values()), spec=spec, status=first.status, art=art)
    for action in second.actions:
        held = after[action.device].models.get(NAME)
        if isinstance(action, AssignRevision):
            assert held is None or held.revision != action.revision
        if isinstance(action, RollBack):
            assert held is not None and held.revision == action.from_revision
    same_revisions = (first.status.current_revision, first.status.stable_revision) == (
        second.status.current_revision,
        second.status.stable_revision,
    )
    if same_revisions:  # without a transition in between, nobody moves twice
        moved_first = {a.device for a in first.actions if isinstance(a, AssignRevision | RollBack)}
        moved = {a.device for a in second.actions if isinstance(a, AssignRevision | RollBack)}
        assert not moved_first & moved


@given(rollouts(), st.booleans())
def test_once_nothing_is_left_to_do_planning_again_changes_nothing(
    case: tuple[list[DeviceView], EdgeDeploymentSpec, EdgeDeploymentStatus], new_artifact: bool
) -> None:
    """No status churn: without device or clock changes the planner reaches a fixed point."""
    devices, spec, status = case
    art = make_artifact(3 if new_artifact else 2)
    for _ in range(10):
        p = plan(devices, spec=spec, status=status, art=art)
        devices, status = applied(devices, p), p.status
        if not p.actions and p.requeue_after != 0:
            break
    again = plan(devices, spec=spec, status=status, art=art)
    assert again.actions == ()
    assert again.status == status


@given(
    size=st.integers(1, 30),
    spec=specs(),
    bad_share=st.sampled_from([0.0, 0.0, 0.1, 1.0]),
    away_share=st.sampled_from([0.0, 0.2]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_whole_rollouts_end_succeeded_or_rolled_back_and_respect_max_in_flight(
    size: int, spec: EdgeDeploymentSpec, bad_share: float, away_share: float, seed: int
) -> None:
    rng = random.Random(seed)
    fleet = Fleet(spec=spec, art=make_artifact(1))
    fleet.add(*names(size))
    fleet.run(promote=True)  # revision 1 with nothing failing: the stable base
    fleet.art = make_artifact(2)
    for name, d in fleet.devices.items():
        d.slow = rng.randint(0, 2)
        if rng.random() < bad_share:
            fleet.bad_on.add(name)
        if rng.random() < away_share:
            d.online = False
    limit = in_flight_limit(spec.strategy.max_in_flight, size)
    final = None
    for _ in range(400):
        p = fleet.step(seconds=10)
        assert p.status.counts.in_flight <= limit
        if p.status.phase == "Paused":
            fleet.promote()
        settled = not p.actions and p.requeue_after != 0
        if p.status.phase in ("Succeeded", "RolledBack", "Degraded") and settled:
            final = p
            break
    assert final is not None, fleet.status
    online = [n for n, d in fleet.devices.items() if d.online]
    progressing = get_condition(final.status.conditions, PROGRESSING)
    assert progressing is not None
    if final.status.phase == "Succeeded":
        assert final.status.stable_revision == 2
        assert {fleet.revisions()[n] for n in online} == {2}
    elif final.status.phase == "RolledBack":
        assert 2 not in fleet.revisions().values()
    elif progressing.reason == ROLLOUT_ABORTED:
        assert not spec.rollback.automatic
    else:  # nothing online could prove the revision: failing below the threshold, or away
        assert progressing.reason == PROGRESS_DEADLINE_EXCEEDED
        assert fleet.bad_on or len(online) < size
