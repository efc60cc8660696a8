"""The plan a pass returns: its actions in rollout order, the new status and when to plan again.

Status holds aggregates only: counts (fleet-wide and per variant, variants.py), conditions
(Progressing, Ready, Available, Conflict; device names in messages are capped at
NAMES_IN_MESSAGES, conditions.py), the wave and the history. Counts are of the devices as
they will be once the actions are applied, so the status written before the actions already
says what they do. The requeue is the earliest timer: the step's own (bake, deadline, next
step) or a device the rollout waits on timing out. Called once per pass by `plan_rollout`
(planner.py) with the step's final decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from modelfleet.api.deployment import EdgeDeploymentStatus
from modelfleet.conditions import as_utc, first_pass_not_ready
from modelfleet.operator.rollout.conditions import rollout_conditions
from modelfleet.operator.rollout.fleet import Device, count, observe
from modelfleet.operator.rollout.ordering import order_key
from modelfleet.operator.rollout.passes import Context, Decision
from modelfleet.operator.rollout.plans import Action, AssignRevision, Plan, RollBack
from modelfleet.operator.rollout.variants import variant_counts


def assemble_plan(
    ctx: Context,
    decision: Decision,
    targeted: list[Device],
    conflicts: list[tuple[str, list[str]]],
) -> Plan:
    """The new status, from the devices as they will be once the actions are applied."""
    progress, verdict = decision.progress, decision.verdict
    actions = sorted(decision.actions, key=lambda a: (order_key(ctx.uid, a.device), a.slot))
    after = _after(ctx, targeted, actions)
    counts = count(after, progress.current)
    conditions = rollout_conditions(
        ctx.previous.conditions,
        progressing=(decision.verdict.status, decision.verdict.reason, decision.verdict.message),
        succeeded=verdict.phase == "Succeeded",
        stable=progress.stable,
        healthy=counts.healthy,
        slot=ctx.slot,
        conflicts=conflicts,
        now=ctx.now,
        generation=ctx.generation,
    )
    phase = verdict.phase
    held = first_pass_not_ready(
        conditions,
        observed_generation=ctx.previous.observed_generation,
        generation=ctx.generation,
        now=ctx.now,
    )
    if held is not None:
        phase, conditions = "Progressing", held
    status = EdgeDeploymentStatus(
        phase=phase,
        observed_generation=ctx.generation,
        slot=ctx.slot,
        current_revision=progress.current,
        stable_revision=progress.stable,
        wave=progress.wave if progress.current is not None else None,
        wave_progress=(
            f"{progress.wave + 1}/{len(ctx.spec.strategy.waves)}"
            if progress.current is not None
            else None
        ),
        wave_started_at=progress.wave_started_at,
        wave_completed_at=progress.wave_completed_at,
        promoted_wave=progress.promoted_wave,
        counts=counts,
        variants=variant_counts(ctx.spec, progress.record(progress.current), after),
        conditions=conditions,
        history=list(progress.history),
    )
    timers = [*decision.timers, *_device_timers(ctx, after)]
    requeue = max(0.0, min(timers)) if timers and not ctx.spec.paused else None
    return Plan(status=status, actions=tuple(actions), requeue_after=requeue)


def _after(ctx: Context, targeted: list[Device], actions: Iterable[Action]) -> list[Device]:
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


def _device_timers(ctx: Context, devices: list[Device]) -> list[float]:
    """When the first device the rollout waits on times out or goes offline: plan again then."""
    earliest = min(
        (
            moment
            for device in devices
            if device.online and device.state == "pending"
            for moment in (device.since, device.heartbeat)
            if moment is not None
        ),
        key=as_utc,
        default=None,
    )
    if earliest is None:
        return []
    return [(as_utc(earliest) + ctx.timeout - ctx.now).total_seconds() + 1]


PROGRESS_FIELDS = ("counts", "variants")


def progress_only(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """True when two wire statuses differ at most in progress: the counts (fleet-wide and per
    variant) and the conditions' messages, which quote them. Such a change may wait a moment
    (pacing.py); a new phase, wave, revision or condition status may not."""

    def skeleton(status: dict[str, Any]) -> dict[str, Any]:
        kept = {k: v for k, v in status.items() if k not in PROGRESS_FIELDS}
        kept["conditions"] = [
            {k: v for k, v in condition.items() if k != "message"}
            for condition in status.get("conditions") or []
        ]
        return kept

    return skeleton(current) == skeleton(desired)
