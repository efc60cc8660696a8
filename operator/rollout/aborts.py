"""Aborting a failing revision, and the automatic rollback that follows.

On every pass (a regression during bake counts too), when failed (incl. timed out) devices
exceed `failureThreshold` percent of the online devices assigned the current revision, its
rollout ends: the record gets `finishedAt`. With `rollback.automatic` and a stable revision,
its outcome is RolledBack and every device assigned the revision, online or not, is rolled
back; nothing is assigned in that pass. The phase is RollingBack, then RolledBack once nothing
is pending on the stable revision. Otherwise the phase is Degraded and devices stay where they
are. A finished record that did not succeed marks the revision aborted between passes
(revisions.py): planning the same spec again does not restart it; a new artifact does.

Called by `plan_rollout` (planner.py) before any other step while a revision is rolling out,
and on every pass while it stays aborted.
"""

from __future__ import annotations

from modelfleet.api.deployment import DeploymentPhase
from modelfleet.conditions import format_time, get_condition
from modelfleet.operator.rollout.conditions import PROGRESSING, ROLLOUT_ABORTED, names
from modelfleet.operator.rollout.fleet import Device
from modelfleet.operator.rollout.passes import Context, Decision, Verdict
from modelfleet.operator.rollout.plans import RollBack
from modelfleet.operator.rollout.revisions import RolloutProgress, artifact_of
from modelfleet.operator.rollout.stable_keeping import keep_to_stable


def check_failures(
    ctx: Context, progress: RolloutProgress, targeted: list[Device]
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


def abort_message(ctx: Context, progress: RolloutProgress) -> str:
    """The message of the pass that aborted: it names the devices, which later passes can't."""
    condition = get_condition(ctx.previous.conditions, PROGRESSING)
    if condition is not None and condition.reason == ROLLOUT_ABORTED:
        return condition.message
    return f"revision {progress.current} was aborted"


def aborted(
    ctx: Context,
    progress: RolloutProgress,
    targeted: list[Device],
    message: str,
    *,
    first: bool,
) -> Decision:
    """Every device that moved to the aborted revision goes back to stable, online or not."""
    revision, stable = progress.current, progress.stable
    stable_record = progress.record(stable)
    # The pass that aborts only rolls back; the next one, right after, keeps the rest to stable.
    others = () if first else keep_to_stable(ctx, progress, targeted, leave=revision)
    next_step = (0.0,) if first else ()
    automatic = ctx.spec.rollback.automatic
    if not automatic or revision is None or stable is None or stable_record is None:
        verdict = Verdict("Degraded", "False", ROLLOUT_ABORTED, message)
        return Decision(progress, verdict, others, next_step)

    progress = progress.with_record(revision, outcome="RolledBack")
    rollbacks = tuple(
        RollBack(
            d.name,
            ctx.slot,
            revision,
            stable,
            artifact_of(stable_record, d.view.labels, resolved=ctx.artifact),
        )
        for d in targeted
        if d.revision == revision
    )
    settling = any(d.online and d.revision == stable and d.state == "pending" for d in targeted)
    phase: DeploymentPhase = "RollingBack" if rollbacks or settling else "RolledBack"
    verdict = Verdict(phase, "False", ROLLOUT_ABORTED, message)
    return Decision(progress, verdict, (*rollbacks, *others), next_step)
