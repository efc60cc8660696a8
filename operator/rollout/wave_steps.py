"""One step of a rollout in waves: fill the wave, bake it, await promotion, advance or finish.

Wave w is the first `size[w]` targeted devices (cumulative sizes, waves.py): devices already
assigned the current revision count towards it and the next eligible devices in order fill
it, never more than `maxInFlight` pending on the revision at once. A complete wave bakes for
`bakeSeconds`; with `pause: betweenWaves` it then waits for promotion (`PROMOTE_ANNOTATION`);
then the next wave starts. When the last wave has baked, the revision becomes stable. One step
per pass: a pass makes at most one such transition, plus the assignments of the wave it is
in; when the next step is due at once, its timer is 0.

Deadline. A wave that makes no progress for `progressDeadlineSeconds` makes the phase Degraded
with reason ProgressDeadlineExceeded. Progress is the wave starting (or resuming after a hold)
and devices being assigned the revision or reporting Healthy or Failed on it; bake and
promotion waits do not count. The rollout goes on: devices that report later count.

Called by `plan_rollout` (planner.py) while a revision is rolling out and has devices.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from modelfleet.api.annotations import PROMOTE_ANNOTATION, promotion_value
from modelfleet.conditions import format_time, get_condition, parse_time
from modelfleet.operator.integrity import ARTIFACT_CORRUPTED
from modelfleet.operator.rollout.conditions import (
    AWAITING_PROMOTION,
    DEPLOYMENT_PAUSED,
    PROGRESS_DEADLINE_EXCEEDED,
    PROGRESSING,
    VARIANT_FORMAT_MISSING,
    WAITING_FOR_ARTIFACT,
    WAVE_BAKING,
    WAVE_PROGRESSING,
    names,
)
from modelfleet.operator.rollout.fleet import Device, assigned_at
from modelfleet.operator.rollout.passes import Context, Decision, Verdict
from modelfleet.operator.rollout.plans import Action, AssignRevision
from modelfleet.operator.rollout.revisions import RolloutProgress
from modelfleet.operator.rollout.stable_keeping import keep_to_stable, steady
from modelfleet.operator.rollout.variants import artifact_for
from modelfleet.operator.rollout.waves import fill_wave, wave_sizes

HOLDS = (
    DEPLOYMENT_PAUSED,
    AWAITING_PROMOTION,
    WAITING_FOR_ARTIFACT,
    ARTIFACT_CORRUPTED,
    VARIANT_FORMAT_MISSING,
)
"""Progressing reasons of a rollout held on purpose: the deadline clock restarts after one."""


def parse_promotion(value: str | None) -> tuple[int, int] | None:
    """`(revision, wave)` from a promote annotation; None when absent or malformed."""
    revision, _, wave = (value or "").partition("/")
    if not (revision.isdigit() and wave.isdigit()):
        return None
    return int(revision), int(wave)


def step_wave(ctx: Context, progress: RolloutProgress, targeted: list[Device]) -> Decision:
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
        if held is not None and held.reason in HOLDS:  # held time is not the wave's fault
            progress = replace(progress, wave_started_at=now)
        progress = replace(progress, wave_completed_at=None)
        verdict, timers = _wave_verdict(ctx, progress, targeted, moving, sizes)
        return Decision(progress, verdict, _assign(ctx, progress, targeted, moving), timers)

    completed = progress.wave_completed_at or now
    progress = replace(progress, wave_completed_at=completed)
    baked = (ctx.now - parse_time(completed)).total_seconds()
    if baked < strategy.bake_seconds:
        left = strategy.bake_seconds - baked
        until = format_time(parse_time(completed) + timedelta(seconds=strategy.bake_seconds))
        message = f"revision {revision} wave {wave} is complete; baking until {until}"
        verdict = Verdict("Progressing", "True", WAVE_BAKING, message)
        return Decision(progress, verdict, _assign(ctx, progress, targeted, []), (left,))

    if wave == len(sizes) - 1:
        progress = progress.with_record(revision, outcome="Succeeded", finished_at=now)
        return steady(ctx, replace(progress, stable=revision), targeted)

    promotion = parse_promotion(ctx.annotations.get(PROMOTE_ANNOTATION))
    if strategy.pause == "betweenWaves" and promotion != (revision, wave):
        message = (
            f"revision {revision} wave {wave} is complete; promote it with `modelfleet "
            f"promote {ctx.name}` ({PROMOTE_ANNOTATION}={promotion_value(revision, wave)})"
        )
        verdict = Verdict("Paused", "Unknown", AWAITING_PROMOTION, message)
        return Decision(progress, verdict, _assign(ctx, progress, targeted, []))

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
    return Decision(progress, verdict, actions, (*timers, *next_step))


def _wave_verdict(
    ctx: Context,
    progress: RolloutProgress,
    targeted: list[Device],
    moving: list[Device],
    sizes: tuple[int, ...],
) -> tuple[Verdict, tuple[float, ...]]:
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
        return Verdict("Degraded", "False", PROGRESS_DEADLINE_EXCEEDED, message), ()
    message = (
        f"revision {revision} wave {wave} (last {len(sizes) - 1}), {sizes[wave]} of "
        f"{len(targeted)} devices: {healthy} healthy, {len(waiting)} in flight, "
        f"{failed} failed, assigning {len(moving)}"
    )
    return Verdict("Progressing", "True", WAVE_PROGRESSING, message), (left,)


def _last_progress(ctx: Context, progress: RolloutProgress, targeted: list[Device]) -> datetime:
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
    ctx: Context, progress: RolloutProgress, targeted: list[Device], moving: list[Device]
) -> tuple[Action, ...]:
    """The wave's new devices get the current revision; the others are kept to stable."""
    revision = progress.current
    assert ctx.artifact is not None and revision is not None  # mode "rolling"
    assign = tuple(
        AssignRevision(d.name, ctx.slot, revision, artifact_for(ctx.artifact, d.view.labels))
        for d in moving
    )
    new = {d.name for d in moving}
    rest = [d for d in targeted if d.name not in new]
    return (*assign, *keep_to_stable(ctx, progress, rest, leave=revision))
