"""The rollout planner: what one EdgeDeployment should do next, computed as data.

`plan_rollout` is the single entry point, a pure function of the deployment, the artifact its
spec resolves to, the devices and `now`; it returns a `Plan` (plans.py): the new status and
the actions that move devices. No client, no clock, no I/O. The EdgeDeployment handler calls
it on every event and timer, writes `plan.status`, then applies `plan.actions`, and plans
again after `plan.requeue_after` seconds or on the next event.

The rules, each in the module that applies it (device states are defined in fleet.py):

Targeting (fleet.py). The deployment targets the devices its selector matches, in a stable
hash order (ordering.py). A device whose slot another deployment also claims is skipped and
named in the `Conflict` condition; a device that holds our assignment but is no longer
selected is released. Offline devices never block: nothing is assigned to them and nobody
waits for them.

Waves and the progress deadline (wave_steps.py, with the arithmetic in waves.py): one wave
transition per pass: fill, bake, await promotion, advance, or finish as the new stable.

Stable (stable_keeping.py): devices outside the rollout are kept on the stable revision.

Abort (aborts.py): too many failed devices end the revision's rollout; with automatic
rollback every device on it goes back to stable.

Manual rollback (revisions.py) is declarative: spec.model changed back. Back to the stable
revision's artifact is not a rollout; back to any other older artifact is a new revision.

URLs (url_refreshes.py): devices still fetching get new URLs before the old ones expire; a
device whose labels now pick another variant gets that variant's artifact of its revision.

Holding. `spec.paused` freezes the deployment: no actions at all; the status still counts.
While the spec resolves to no approved artifact (`artifact=None`) nothing is assigned; only
rolling a failing revision back to stable still happens. Two such cases are shown as
Degraded: an artifact whose stored bytes no longer match (`unresolved_reason`
ArtifactCorrupted, operator/integrity.py: devices running it keep it, none moves to it) and a
variant whose format the conversion lacks (VariantFormatMissing: the check covers every
variant before any device moves).

Variants (variants.py): every assignment carries the artifact, runtime and tolerance of the
variant the device takes in that revision; the revision, its waves, bake, abort and rollback
span the whole fleet.

Status (status_assembly.py) holds aggregates only: counts, conditions (conditions.py), the
wave and the history.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from modelfleet.api.annotations import PROMOTE_ANNOTATION, promotion_value
from modelfleet.api.deployment import EdgeDeploymentSpec, EdgeDeploymentStatus
from modelfleet.conditions import as_utc
from modelfleet.operator.integrity import ARTIFACT_CORRUPTED
from modelfleet.operator.rollout.aborts import abort_message, aborted, check_failures
from modelfleet.operator.rollout.conditions import (
    AVAILABLE,
    CONFLICT,
    DEPLOYMENT_PAUSED,
    NO_DEVICES_SELECTED,
    PROGRESSING,
    READY,
    VARIANT_FORMAT_MISSING,
    WAITING_FOR_ARTIFACT,
)
from modelfleet.operator.rollout.fleet import TIMEOUT, Device, DeviceView, survey
from modelfleet.operator.rollout.passes import Context, Decision, Verdict
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
    track_artifact,
)
from modelfleet.operator.rollout.stable_keeping import keep_to_stable, steady
from modelfleet.operator.rollout.status_assembly import assemble_plan
from modelfleet.operator.rollout.url_refreshes import realign_variants, refresh_urls
from modelfleet.operator.rollout.wave_steps import parse_promotion, step_wave

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
    unresolved_reason: str = WAITING_FOR_ARTIFACT,
) -> Plan:
    """The next step of one EdgeDeployment's rollout; the module docstring has the rules.

    `devices`: every EdgeDevice that matches `spec.selector` or holds an assignment of this
    deployment; the planner applies the selector itself and releases the others.
    `other_claims`: device name → other deployments whose selector and slot also claim it.
    `unresolved_message`: why `artifact` is None, for the condition (e.g. "ModelConversion
    detector is Failed: ToleranceExceeded"); `unresolved_reason`: its condition reason,
    WaitingForArtifact (the conversion may still get there), ArtifactCorrupted or
    VariantFormatMissing.
    """
    ctx = Context(
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
        paused = Verdict("Paused", "Unknown", DEPLOYMENT_PAUSED, "spec.paused is true")
        return assemble_plan(ctx, Decision(progress, paused), fleet.targeted, fleet.conflicts)

    progress = track_artifact(
        progress,
        artifact,
        history_limit=spec.revision_history_limit,
        last_wave=len(spec.strategy.waves) - 1,
        highest_seen=fleet.highest_revision,
        now=ctx.now,
    )
    unresolved = (unresolved_reason, unresolved_message)
    decision = _decide(ctx, progress, fleet.targeted, unresolved)
    actions = [*decision.actions, *(ReleaseSlot(d, s) for d, s in fleet.releases)]
    busy = {a.device for a in actions}
    actions += refresh_urls(ctx, decision.progress, fleet.targeted, busy)
    busy = {a.device for a in actions}
    actions += realign_variants(ctx, decision.progress, fleet.targeted, busy)
    if artifact is None:
        actions = [a for a in actions if not isinstance(a, AssignRevision)]
    decision = replace(decision, actions=tuple(actions))
    return assemble_plan(ctx, decision, fleet.targeted, fleet.conflicts)


def _decide(
    ctx: Context,
    progress: RolloutProgress,
    targeted: list[Device],
    unresolved: tuple[str, str],
) -> Decision:
    """Which step this pass takes: abort, stay aborted, wait for an artifact, stay stable, or
    step the wave."""
    if progress.mode == "rolling":
        progress, failure = check_failures(ctx, progress, targeted)
        if failure:
            return aborted(ctx, progress, targeted, failure, first=True)
    if progress.mode == "aborted":
        return aborted(ctx, progress, targeted, abort_message(ctx, progress), first=False)
    if ctx.artifact is None or progress.mode == "waiting":
        reason, message = unresolved
        message = message or "spec.model resolves to no approved artifact"
        waiting = (
            Verdict("Degraded", "False", reason, message)
            if reason in (ARTIFACT_CORRUPTED, VARIANT_FORMAT_MISSING)
            else Verdict("Progressing", "Unknown", WAITING_FOR_ARTIFACT, message)
        )
        held = keep_to_stable(ctx, progress, targeted, leave=progress.current)
        return Decision(progress, waiting, held)
    if progress.mode == "stable":
        return steady(ctx, progress, targeted)
    if not targeted:
        message = "no device to roll out to: the selector matches none, or only ones in conflict"
        return Decision(progress, Verdict("Progressing", "True", NO_DEVICES_SELECTED, message))
    return step_wave(ctx, progress, targeted)
