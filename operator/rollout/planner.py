"""The rollout planner: what one EdgeDeployment should do next, computed as data.

`plan_rollout` is a pure function of the deployment, the artifact its spec resolves to, the
devices and `now`; it returns a `Plan` (plans.py): the new status and the actions that move
devices. No client, no clock, no I/O. The EdgeDeployment handler calls it on every event and
timer, writes `plan.status`, then applies `plan.actions`, and plans again after
`plan.requeue_after` seconds or on the next event.

The rules (device states are defined in fleet.py, revisions in revisions.py):

Targeting. The deployment targets the devices its selector matches, in a stable hash order
(ordering.py). A device whose slot another deployment also claims is skipped and named in the
`Conflict` condition; a device that holds our assignment but is no longer selected is
released. Offline devices never block: nothing is assigned to them and nobody waits for them.

Waves. Wave w is the first `size[w]` targeted devices (cumulative sizes, waves.py): devices
already assigned the current revision count towards it and the next eligible devices in
order fill it, never more than `maxInFlight` pending on the revision at once. A complete wave
bakes for `bakeSeconds`; with `pause: betweenWaves` it then waits for promotion
(`PROMOTE_ANNOTATION`); then the next wave starts. When the last wave has baked, the revision
becomes stable. One step per pass: a pass makes at most one such transition, plus the
assignments of the wave it is in; when the next step is due at once, `requeue_after` is 0.

Stable. Devices outside the rollout are kept on the stable revision: devices that join, come
back online, or sit on an abandoned revision get it at once (forward moves onto a stable
revision that is also the current one share `maxInFlight`). They join a rollout only once
settled on stable. On the first rollout there is no stable revision: new devices simply wait
for their wave.

Abort. On every pass (a regression during bake counts too), when failed (incl. timed out)
devices exceed `failureThreshold` percent of the online devices assigned the current
revision, its rollout ends: the record gets `finishedAt`. With `rollback.automatic` and a
stable revision, its outcome is RolledBack and every device assigned the revision, online or
not, is rolled back; nothing is assigned in that pass. The phase is RollingBack, then
RolledBack once nothing is pending on the stable revision. Otherwise the phase is Degraded
and devices stay where they are. A finished record that did not succeed marks the revision
aborted between passes: planning the same spec again does not restart it; a new artifact does.

Manual rollback is declarative: spec.model changed back. Back to the stable revision's
artifact is not a rollout (the fleet runs it): the stable revision becomes current again
with no new number, and devices on the abandoned revision go back at once. Back to any other
older artifact gets a new revision number and rolls out in waves, as Deployments and Argo do;
agents that kept that artifact need no download. revisions.py has the details.

Deadline. A wave that makes no progress for `progressDeadlineSeconds` makes the phase
Degraded with reason ProgressDeadlineExceeded. Progress is the wave starting (or resuming
after a hold) and devices being assigned the revision or reporting Healthy or Failed on it;
bake and promotion waits do not count. The rollout goes on: devices that report later count.

Holding. `spec.paused` freezes the deployment: no actions at all; the status still counts.
While the spec resolves to no approved artifact (`artifact=None`) nothing is assigned; only
rolling a failing revision back to stable still happens.

Status holds aggregates only: counts, conditions (Progressing, Ready, Available, Conflict;
device names in messages are capped at NAMES_IN_MESSAGES), the wave and the history.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from modelfleet.api.annotations import PROMOTE_ANNOTATION, promotion_value
from modelfleet.api.base import ConditionStatus
from modelfleet.api.deployment import (
    DeploymentPhase,
    EdgeDeploymentSpec,
    EdgeDeploymentStatus,
)
from modelfleet.conditions import as_utc, format_time, get_condition, parse_time
from modelfleet.operator.rollout.conditions import (
    AVAILABLE,
    AWAITING_PROMOTION,
    CONFLICT,
    DEPLOYMENT_PAUSED,
    NO_DEVICES_SELECTED,
    PROGRESS_DEADLINE_EXCEEDED,
    PROGRESSING,
    READY,
    ROLLOUT_ABORTED,
    ROLLOUT_COMPLETE,
    WAITING_FOR_ARTIFACT,
    WAVE_BAKING,
    WAVE_PROGRESSING,
    names,
    rollout_conditions,
)
from modelfleet.operator.rollout.fleet import (
    TIMEOUT,
    Device,
    DeviceView,
    assigned_at,
    count,
    observe,
    survey,
)
from modelfleet.operator.rollout.ordering import order_key
from modelfleet.operator.rollout.plans import (
    Action,
    ArtifactRef,
    AssignRevision,
    Plan,
    RefreshUrl,
    ReleaseSlot,
    RollBack,
)
from modelfleet.operator.rollout.revisions import (
    ResolvedArtifact,
    RolloutProgress,
    artifact_of,
    track_artifact,
)
from modelfleet.operator.rollout.waves import fill_wave, in_flight_limit, wave_sizes

__all__ = [
    "AVAILABLE",
    "CONFLICT",
    "PROGRESSING",
    "PROMOTE_ANNOTATION",
    "READY",
    "TIMEOUT",
    "Action",
    "ArtifactRef",
    "AssignRevision",
    "DeviceView",
    "Plan",
    "RefreshUrl",
    "ReleaseSlot",
    "ResolvedArtifact",
    "RollBack",
    "parse_promotion",
    "plan_rollout",
    "promotion_value",
]

_HOLDS = (DEPLOYMENT_PAUSED, AWAITING_PROMOTION, WAITING_FOR_ARTIFACT)
"""Progressing reasons of a rollout held on purpose: the deadline clock restarts after one."""

URL_REFRESH_MARGIN: Final = timedelta(minutes=5)


def parse_promotion(value: str | None) -> tuple[int, int] | None:
    """`(revision, wave)` from a promote annotation; None when absent or malformed."""
    revision, _, wave = (value or "").partition("/")
    if not (revision.isdigit() and wave.isdigit()):
        return None
    return int(revision), int(wave)


def plan_rollout(
    *,
    deployment_name: str,
    deployment_uid: str,
    generation: int | None,
    spec: EdgeDeploymentSpec,
    status: EdgeDeploymentStatus | None,
    annotations: Mapping[str, str],
    artifact: ResolvedArtifact | None,
    devices: Sequence[DeviceView],
    other_claims: Mapping[str, Collection[str]],
    now: datetime,
    unresolved_message: str = "",
) -> Plan:
    """The next step of one EdgeDeployment's rollout; the module docstring has the rules.

    `devices`: every EdgeDevice that matches `spec.selector` or holds an assignment of this
    deployment; the planner applies the selector itself and releases the others.
    `other_claims`: device name → other deployments whose selector and slot also claim it.
    `unresolved_message`: why `artifact` is None, for the condition (e.g. "ModelConversion
    detector is Failed: ToleranceExceeded").
    """
    ctx = _Context(
        name=deployment_name,
        uid=deployment_uid,
        generation=generation,
        spec=spec,
        previous=status or EdgeDeploymentStatus(),
        slot=spec.slot or deployment_name,
        artifact=artifact,
        annotations=annotations,
        now=as_utc(now),
    )
    fleet = survey(
        devices,
        deployment=ctx.name,
        uid=ctx.uid,
        selector=spec.selector,
        slot=ctx.slot,
        other_claims=other_claims,
        timeout=ctx.timeout,
        now=ctx.now,
    )
    progress = RolloutProgress.of(ctx.previous)
    if spec.paused:
        paused = _Verdict("Paused", "Unknown", DEPLOYMENT_PAUSED, "spec.paused is true")
        return _finish(ctx, _Decision(progress, paused), fleet.targeted, fleet.conflicts)

    progress = track_artifact(
        progress,
        artifact,
        history_limit=spec.revision_history_limit,
        last_wave=len(spec.strategy.waves) - 1,
        highest_seen=fleet.highest_revision,
        now=ctx.now,
    )
    decision = _decide(ctx, progress, fleet.targeted, unresolved_message)
    actions = [*decision.actions, *(ReleaseSlot(d, s) for d, s in fleet.releases)]
    busy = {a.device for a in actions}
    actions += _refresh_urls(ctx, decision.progress, fleet.targeted, busy)
    if artifact is None:
        actions = [a for a in actions if not isinstance(a, AssignRevision)]
    decision = replace(decision, actions=tuple(actions))
    return _finish(ctx, decision, fleet.targeted, fleet.conflicts)


@dataclass(frozen=True)
class _Context:
    """The inputs of one pass, read by every step; never changed within the pass."""

    name: str
    uid: str
    generation: int | None
    spec: EdgeDeploymentSpec
    previous: EdgeDeploymentStatus
    slot: str
    artifact: ResolvedArtifact | None
    annotations: Mapping[str, str]
    now: datetime

    @property
    def timeout(self) -> timedelta:
        return timedelta(seconds=self.spec.strategy.device_timeout_seconds)


@dataclass(frozen=True)
class _Verdict:
    """The phase and the Progressing condition."""

    phase: DeploymentPhase
    status: ConditionStatus
    reason: str
    message: str


@dataclass(frozen=True)
class _Decision:
    progress: RolloutProgress
    verdict: _Verdict
    actions: tuple[Action, ...] = ()
    timers: tuple[float, ...] = ()
    """Seconds until something the decision waits for is due (bake, deadline, next step)."""


# Deciding.


def _decide(
    ctx: _Context,
    progress: RolloutProgress,
    targeted: list[Device],
    unresolved_message: str,
) -> _Decision:
    if progress.mode == "rolling":
        progress, abort_message = _check_failures(ctx, progress, targeted)
        if abort_message:
            return _aborted(ctx, progress, targeted, abort_message, first=True)
    if progress.mode == "aborted":
        return _aborted(ctx, progress, targeted, _abort_message(ctx, progress), first=False)
    if ctx.artifact is None or progress.mode == "waiting":
        message = unresolved_message or "spec.model resolves to no approved artifact"
        waiting = _Verdict("Progressing", "Unknown", WAITING_FOR_ARTIFACT, message)
        held = _keep_to_stable(ctx, progress, targeted, leave=progress.current)
        return _Decision(progress, waiting, held)
    if progress.mode == "stable":
        return _steady(ctx, progress, targeted)
    if not targeted:
        message = "no device to roll out to: the selector matches none, or only ones in conflict"
        return _Decision(progress, _Verdict("Progressing", "True", NO_DEVICES_SELECTED, message))
    return _step_wave(ctx, progress, targeted)


def _check_failures(
    ctx: _Context, progress: RolloutProgress, targeted: list[Device]
) -> tuple[RolloutProgress, str]:
    """Abort the current revision when too many of the devices it reached failed on it."""
    revision, stable = progress.current, progress.stable
    threshold = ctx.spec.strategy.failure_threshold
    attempted = [d for d in targeted if d.revision == revision and d.online]
    failed = [d for d in attempted if d.failed]
    if not failed or len(failed) * 100 <= threshold * len(attempted):
        return progress, ""
    moved = [d.name for d in targeted if d.revision == revision]
    rolls_back = ctx.spec.rollback.automatic and progress.record(stable) is not None
    if rolls_back:
        consequence = f"rolling back {len(moved)} devices to revision {stable}: {names(moved)}"
    else:
        why = "automatic rollback is off" if stable is not None else "no stable revision"
        consequence = f"{why}, so {len(moved)} devices stay on revision {revision}"
    message = (
        f"revision {revision} aborted in wave {progress.wave}: {len(failed)} of "
        f"{len(attempted)} attempted devices failed (threshold {threshold}%): "
        f"{names([f'{d.name} ({d.reason})' for d in failed])}; {consequence}"
    )
    finished = format_time(ctx.now)
    if rolls_back:
        return progress.with_record(revision, finished_at=finished, outcome="RolledBack"), message
    return progress.with_record(revision, finished_at=finished), message


def _abort_message(ctx: _Context, progress: RolloutProgress) -> str:
    """The message of the pass that aborted: it names the devices, which later passes can't."""
    condition = get_condition(ctx.previous.conditions, PROGRESSING)
    if condition is not None and condition.reason == ROLLOUT_ABORTED:
        return condition.message
    return f"revision {progress.current} was aborted"


def _aborted(
    ctx: _Context,
    progress: RolloutProgress,
    targeted: list[Device],
    message: str,
    *,
    first: bool,
) -> _Decision:
    """Every device that moved to the aborted revision goes back to stable, online or not."""
    revision, stable = progress.current, progress.stable
    stable_record = progress.record(stable)
    # The pass that aborts only rolls back; the next one, right after, keeps the rest to stable.
    others = () if first else _keep_to_stable(ctx, progress, targeted, leave=revision)
    next_step = (0.0,) if first else ()
    automatic = ctx.spec.rollback.automatic
    if not automatic or revision is None or stable is None or stable_record is None:
        verdict = _Verdict("Degraded", "False", ROLLOUT_ABORTED, message)
        return _Decision(progress, verdict, others, next_step)

    progress = progress.with_record(revision, outcome="RolledBack")
    target = artifact_of(stable_record, resolved=ctx.artifact, sizes=_sizes(ctx, targeted))
    rollbacks = tuple(
        RollBack(d.name, ctx.slot, revision, stable, target)
        for d in targeted
        if d.revision == revision
    )
    settling = any(d.online and d.revision == stable and d.state == "pending" for d in targeted)
    phase: DeploymentPhase = "RollingBack" if rollbacks or settling else "RolledBack"
    verdict = _Verdict(phase, "False", ROLLOUT_ABORTED, message)
    return _Decision(progress, verdict, (*rollbacks, *others), next_step)


def _steady(ctx: _Context, progress: RolloutProgress, targeted: list[Device]) -> _Decision:
    """The current revision is the stable one: keep every device on it."""
    healthy = sum(1 for d in targeted if d.revision == progress.stable and d.state == "healthy")
    message = f"revision {progress.stable} is stable: healthy on {healthy} of {len(targeted)}"
    verdict = _Verdict("Succeeded", "True", ROLLOUT_COMPLETE, message)
    return _Decision(progress, verdict, _keep_to_stable(ctx, progress, targeted))


def _step_wave(ctx: _Context, progress: RolloutProgress, targeted: list[Device]) -> _Decision:
    """Fill the current wave; once it is complete: bake, await promotion, advance or finish."""
    strategy = ctx.spec.strategy
    revision = progress.current
    assert revision is not None  # mode "rolling"
    sizes = wave_sizes(strategy.waves, len(targeted))
    wave = min(progress.wave, len(sizes) - 1)
    now = format_time(ctx.now)
    progress = replace(progress, wave=wave, wave_started_at=progress.wave_started_at or now)

    def fill(size: int) -> tuple[list[Device], bool]:
        return fill_wave(
            targeted,
            revision=revision,
            stable=progress.stable,
            size=size,
            max_in_flight=strategy.max_in_flight,
        )

    moving, complete = fill(sizes[wave])
    if not complete:
        held = get_condition(ctx.previous.conditions, PROGRESSING)
        if held is not None and held.reason in _HOLDS:  # held time is not the wave's fault
            progress = replace(progress, wave_started_at=now)
        progress = replace(progress, wave_completed_at=None)
        verdict, timers = _wave_verdict(ctx, progress, targeted, moving, sizes)
        return _Decision(progress, verdict, _assign(ctx, progress, targeted, moving), timers)

    completed = progress.wave_completed_at or now
    progress = replace(progress, wave_completed_at=completed)
    baked = (ctx.now - parse_time(completed)).total_seconds()
    if baked < strategy.bake_seconds:
        left = strategy.bake_seconds - baked
        until = format_time(parse_time(completed) + timedelta(seconds=strategy.bake_seconds))
        message = f"revision {revision} wave {wave} is complete; baking until {until}"
        verdict = _Verdict("Progressing", "True", WAVE_BAKING, message)
        return _Decision(progress, verdict, _assign(ctx, progress, targeted, []), (left,))

    if wave == len(sizes) - 1:
        progress = progress.with_record(revision, outcome="Succeeded", finished_at=now)
        return _steady(ctx, replace(progress, stable=revision), targeted)

    promotion = parse_promotion(ctx.annotations.get(PROMOTE_ANNOTATION))
    if strategy.pause == "betweenWaves" and promotion != (revision, wave):
        message = (
            f"revision {revision} wave {wave} is complete; promote it with `modelfleet "
            f"promote {ctx.name}` ({PROMOTE_ANNOTATION}={promotion_value(revision, wave)})"
        )
        verdict = _Verdict("Paused", "Unknown", AWAITING_PROMOTION, message)
        return _Decision(progress, verdict, _assign(ctx, progress, targeted, []))

    progress = replace(
        progress,
        wave=wave + 1,
        wave_started_at=now,
        wave_completed_at=None,
        promoted_wave=wave if strategy.pause == "betweenWaves" else progress.promoted_wave,
    )
    moving, _ = fill(sizes[wave + 1])
    verdict, timers = _wave_verdict(ctx, progress, targeted, moving, sizes)
    next_step = () if moving else (0.0,)  # the new wave needs no device: take its step now
    actions = _assign(ctx, progress, targeted, moving)
    return _Decision(progress, verdict, actions, (*timers, *next_step))


def _wave_verdict(
    ctx: _Context,
    progress: RolloutProgress,
    targeted: list[Device],
    moving: list[Device],
    sizes: tuple[int, ...],
) -> tuple[_Verdict, tuple[float, ...]]:
    revision, wave = progress.current, progress.wave
    moved = [d for d in targeted if d.revision == revision and d.online]
    waiting = [d.name for d in moved if d.state == "pending"]
    healthy = sum(1 for d in moved if d.state == "healthy")
    failed = sum(1 for d in moved if d.failed)
    deadline = ctx.spec.strategy.progress_deadline_seconds
    left = deadline - (ctx.now - _last_progress(ctx, progress, targeted)).total_seconds()
    if left < 0:
        message = f"revision {revision} wave {wave} has made no progress for {deadline}s; " + (
            f"waiting on {names(waiting)}" if waiting else "no device is healthy on it"
        )
        return _Verdict("Degraded", "False", PROGRESS_DEADLINE_EXCEEDED, message), ()
    message = (
        f"revision {revision} wave {wave} (last {len(sizes) - 1}), {sizes[wave]} of "
        f"{len(targeted)} devices: {healthy} healthy, {len(waiting)} in flight, "
        f"{failed} failed, assigning {len(moving)}"
    )
    return _Verdict("Progressing", "True", WAVE_PROGRESSING, message), (left,)


def _last_progress(ctx: _Context, progress: RolloutProgress, targeted: list[Device]) -> datetime:
    """When the rollout last moved: the wave started (or resumed), or a device was assigned
    the revision or reported Healthy or Failed on it. Device clocks are trusted no further
    than `now`."""
    moments = [parse_time(progress.wave_started_at or format_time(ctx.now))]
    for device in targeted:
        if device.revision != progress.current:
            continue
        status = device.view.slots.get(ctx.slot)
        if device.state in ("healthy", "failed") and status and status.last_update_time:
            moments.append(min(parse_time(status.last_update_time), ctx.now))
        assigned = assigned_at(device.view, ctx.slot)
        if assigned is not None:
            moments.append(min(assigned, ctx.now))
    return max(moments)


def _assign(
    ctx: _Context, progress: RolloutProgress, targeted: list[Device], moving: list[Device]
) -> tuple[Action, ...]:
    """The wave's new devices get the current revision; the others are kept to stable."""
    revision = progress.current
    assert ctx.artifact is not None and revision is not None  # mode "rolling"
    assign = tuple(AssignRevision(d.name, ctx.slot, revision, ctx.artifact.ref) for d in moving)
    names = {d.name for d in moving}
    rest = [d for d in targeted if d.name not in names]
    return (*assign, *_keep_to_stable(ctx, progress, rest, leave=revision))


def _keep_to_stable(
    ctx: _Context,
    progress: RolloutProgress,
    targeted: list[Device],
    *,
    leave: int | None = None,
) -> tuple[Action, ...]:
    """Online devices not on stable go to it: forward (joined, came back) or back (abandoned
    revision). Devices on `leave` are the rollout's own. No stable revision: nothing moves.

    When the stable revision is also the current one, moving forward onto it is in flight on
    the current revision, so it shares `maxInFlight`; rolling back is never held up.
    """
    stable = progress.stable
    record = progress.record(stable)
    if stable is None or record is None:
        return ()
    target = artifact_of(record, resolved=ctx.artifact, sizes=_sizes(ctx, targeted))
    room = len(targeted)
    if stable == progress.current:
        pending = sum(
            1 for d in targeted if d.online and d.revision == stable and d.state == "pending"
        )
        room = in_flight_limit(ctx.spec.strategy.max_in_flight, len(targeted)) - pending
    actions: list[Action] = []
    for device in targeted:
        if (
            not device.online
            or device.revision == stable
            or (leave is not None and device.revision == leave)
        ):
            continue
        if device.revision is not None and device.revision > stable:
            actions.append(RollBack(device.name, ctx.slot, device.revision, stable, target))
        elif room > 0:
            actions.append(AssignRevision(device.name, ctx.slot, stable, target))
            room -= 1
    return tuple(actions)


def _refresh_urls(
    ctx: _Context, progress: RolloutProgress, targeted: list[Device], busy: set[str]
) -> list[Action]:
    """Online devices still fetching their revision get new URLs before the old ones expire."""
    actions: list[Action] = []
    horizon = ctx.now + URL_REFRESH_MARGIN
    for device in targeted:
        assignment = device.view.models.get(ctx.slot)
        record = progress.record(device.revision)
        expires = assignment.url_expires_at if assignment is not None else None
        if (
            device.name in busy
            or not device.online
            or device.state not in ("pending", "timed_out")
            or record is None
            or expires is None
            or parse_time(expires) > horizon
        ):
            continue
        target = artifact_of(record, resolved=ctx.artifact, sizes=_sizes(ctx, targeted))
        actions.append(RefreshUrl(device.name, ctx.slot, record.revision, target))
    return actions


def _sizes(ctx: _Context, targeted: Iterable[Device]) -> dict[str, int]:
    """sha256 → size, from the assignments devices hold, for records that lack the size."""
    assignments = (d.view.models.get(ctx.slot) for d in targeted)
    return {a.sha256: a.size_bytes for a in assignments if a is not None}


# Writing the result.


def _finish(
    ctx: _Context,
    decision: _Decision,
    targeted: list[Device],
    conflicts: list[tuple[str, list[str]]],
) -> Plan:
    """The new status, from the devices as they will be once the actions are applied."""
    progress, verdict = decision.progress, decision.verdict
    actions = sorted(decision.actions, key=lambda a: (order_key(ctx.uid, a.device), a.slot))
    after = _after(ctx, targeted, actions)
    counts = count(after, progress.current)
    status = EdgeDeploymentStatus(
        phase=decision.verdict.phase,
        observed_generation=ctx.generation,
        slot=ctx.slot,
        current_revision=progress.current,
        stable_revision=progress.stable,
        wave=progress.wave if progress.current is not None else None,
        wave_started_at=progress.wave_started_at,
        wave_completed_at=progress.wave_completed_at,
        promoted_wave=progress.promoted_wave,
        counts=counts,
        conditions=rollout_conditions(
            ctx.previous.conditions,
            progressing=(
                decision.verdict.status,
                decision.verdict.reason,
                decision.verdict.message,
            ),
            succeeded=verdict.phase == "Succeeded",
            stable=progress.stable,
            healthy=counts.healthy,
            slot=ctx.slot,
            conflicts=conflicts,
            now=ctx.now,
            generation=ctx.generation,
        ),
        history=list(progress.history),
    )
    timers = [*decision.timers, *_device_timers(ctx, after)]
    requeue = max(0.0, min(timers)) if timers and not ctx.spec.paused else None
    return Plan(status=status, actions=tuple(actions), requeue_after=requeue)


def _after(ctx: _Context, targeted: list[Device], actions: Iterable[Action]) -> list[Device]:
    """The targeted devices once `actions` are applied, before their agents have reacted."""
    moves: dict[str, int] = {}
    for action in actions:
        if isinstance(action, AssignRevision):
            moves[action.device] = action.revision
        elif isinstance(action, RollBack):
            moves[action.device] = action.to_revision
    return [
        observe(
            d.view, ctx.slot, moves[d.name], timeout=ctx.timeout, now=ctx.now, assigned_now=True
        )
        if d.name in moves
        else d
        for d in targeted
    ]


def _device_timers(ctx: _Context, devices: list[Device]) -> list[float]:
    """When a device the rollout waits on next times out or goes offline: plan again then."""
    timers: list[float] = []
    for device in devices:
        if device.online and device.state == "pending":
            for moment in (device.since, device.heartbeat):
                if moment is not None:
                    due = as_utc(moment) + ctx.timeout - ctx.now
                    timers.append(due.total_seconds() + 1)
    return timers
