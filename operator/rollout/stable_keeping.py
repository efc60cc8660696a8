"""Keeping devices outside the rollout on the stable revision; the stable phase itself.

Devices that join, come back online, or sit on an abandoned revision get the stable revision
at once (forward moves onto a stable revision that is also the current one share
`maxInFlight`). They join a rollout only once settled on stable (waves.py `eligible`). On the
first rollout there is no stable revision: new devices simply wait for their wave.

Called by every step of the planner that leaves devices outside the rollout: the wave steps
(wave_steps.py), an abort (aborts.py), waiting for an artifact and the stable phase.
"""

from __future__ import annotations

from modelfleet.operator.rollout.conditions import ROLLOUT_COMPLETE
from modelfleet.operator.rollout.fleet import Device
from modelfleet.operator.rollout.passes import Context, Decision, Verdict
from modelfleet.operator.rollout.plans import Action, AssignRevision, RollBack
from modelfleet.operator.rollout.revisions import RolloutProgress, artifact_of
from modelfleet.operator.rollout.waves import in_flight_limit


def steady(ctx: Context, progress: RolloutProgress, targeted: list[Device]) -> Decision:
    """The current revision is the stable one: keep every device on it."""
    healthy = sum(1 for d in targeted if d.revision == progress.stable and d.state == "healthy")
    message = f"revision {progress.stable} is stable: healthy on {healthy} of {len(targeted)}"
    verdict = Verdict("Succeeded", "True", ROLLOUT_COMPLETE, message)
    return Decision(progress, verdict, keep_to_stable(ctx, progress, targeted))


def keep_to_stable(
    ctx: Context,
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
        target = artifact_of(record, device.view.labels, resolved=ctx.artifact)
        if device.revision is not None and device.revision > stable:
            actions.append(RollBack(device.name, ctx.slot, device.revision, stable, target))
        elif room > 0:
            actions.append(AssignRevision(device.name, ctx.slot, stable, target))
            room -= 1
    return tuple(actions)
