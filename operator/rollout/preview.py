"""A rollout before it happens: which devices each wave takes, and who is left out and why.

`preview_rollout` is pure, like the planner it runs: the deployment's spec (from a file), its
live status if it exists, the EdgeDevices with their Lease renewTimes, the other deployments'
slot claims, the artifact the referenced ModelConversion offers, and `now`. `modelfleet plan`
(preview_commands.py) gathers those from the cluster and prints the result; nothing is written.

How. It runs `plan_rollout` pass after pass on an optimistic copy of the fleet: every online
device that is assigned a revision reports Healthy on it before the next pass; offline devices
stay silent. `maxInFlight`, `bakeSeconds` and `pause: betweenWaves` change when a device moves,
never which wave it belongs to, so the copy runs without them and a whole rollout takes a few
passes. The rows are what the planner did to each device, in rollout order:

    rollout    gets the new revision in wave N (1-based, as `modelfleet status` counts)
    stable     goes to the stable revision (joined, came back, or before joining the rollout)
    rollback   goes back from an abandoned revision to the stable one
    release    loses this deployment's assignment: no longer selected
    unchanged  already on the revision the rollout ends on
    skipped    never moves: Offline, Conflict (another deployment claims the slot),
               NotSelected (spec.selector does not match), NoMatchingVariant, or NotReached
               (the rollout stops before it, as `message` says)

Variants: `variant_of` names the variant a device takes (variants.py `choose_variant`: the
first whose selector matches, else "default").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from modelfleet.api.deployment import EdgeDeploymentSpec, EdgeDeploymentStatus, RevisionRecord
from modelfleet.api.device import SlotAssignment, SlotStatus
from modelfleet.conditions import as_utc, format_time, get_condition
from modelfleet.operator.rollout.conditions import PROGRESSING
from modelfleet.operator.rollout.fleet import DeviceView, observe
from modelfleet.operator.rollout.ordering import rollout_order, selector_matches
from modelfleet.operator.rollout.planner import (
    Action,
    ArtifactRef,
    AssignRevision,
    Plan,
    ReleaseSlot,
    ResolvedArtifact,
    RollBack,
    plan_rollout,
)
from modelfleet.operator.rollout.revisions import artifact_of
from modelfleet.operator.rollout.variants import choose_variant
from modelfleet.operator.rollout.waves import wave_sizes

Disposition = Literal["rollout", "stable", "rollback", "release", "unchanged", "skipped"]
DEFAULT_VARIANT = "default"
_UNTARGETED = ("NotSelected", "Conflict", "NoMatchingVariant")
MAX_PASSES = 200
"""A rollout in passes without bake or in-flight limits takes about two per wave; more means
the planner waits for something the optimistic fleet never does."""


@dataclass(frozen=True)
class PreviewRow:
    """What happens to one device; `reason` only for skipped devices."""

    device: str
    disposition: Disposition
    wave: int | None = None
    revision: int | None = None
    variant: str | None = None
    artifact: ArtifactRef | None = None
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class Preview:
    deployment: str
    revision: int | None
    """The revision the rollout ends on (the current one when the spec changes nothing)."""
    wave_sizes: tuple[int, ...]
    """Cumulative devices per wave, of the targeted devices (offline ones included)."""
    rows: tuple[PreviewRow, ...]
    outcome: str
    """The phase the rollout ends in: Succeeded, or where it stops."""
    message: str
    """The planner's Progressing message where the rollout ends."""
    order_known: bool
    """False for a deployment that does not exist yet: its uid, made at creation, picks the
    order, so which device lands in which wave is one possible order."""


def variant_of(spec: EdgeDeploymentSpec, labels: Mapping[str, str]) -> str | None:
    """The variant a selected device takes; None: no variant matches it (every selected device
    takes one today: unmatched devices take the default)."""
    return choose_variant(spec, labels).name


def preview_rollout(
    *,
    deployment_name: str,
    deployment_uid: str | None,
    generation: int | None,
    spec: EdgeDeploymentSpec,
    status: EdgeDeploymentStatus | None,
    annotations: Mapping[str, str],
    artifact: ResolvedArtifact,
    devices: Sequence[DeviceView],
    other_claims: Mapping[str, Collection[str]],
    now: datetime,
) -> Preview:
    """The rollout `spec` would make from here; the module docstring says how it is run.

    `deployment_uid` None: the deployment does not exist yet (its name stands in for the uid).
    The other arguments are those of `plan_rollout`."""
    uid = deployment_uid or deployment_name
    slot = spec.slot or deployment_name
    now = as_utc(now)
    fast = spec.model_copy(
        update={
            "paused": False,
            "strategy": spec.strategy.model_copy(
                update={"max_in_flight": "100%", "bake_seconds": 0, "pause": "none"}
            ),
        }
    )
    timeout = timedelta(seconds=spec.strategy.device_timeout_seconds)
    views = {view.name: view for view in devices}
    touched: dict[str, PreviewRow] = {}
    current = status
    plan: Plan | None = None
    for _ in range(MAX_PASSES):
        plan = plan_rollout(
            deployment_name=deployment_name,
            deployment_uid=uid,
            generation=generation,
            spec=fast,
            status=current,
            annotations=annotations,
            artifact=artifact,
            devices=list(views.values()),
            other_claims=other_claims,
            now=now,
        )
        for action in plan.actions:
            row = _row(action, plan.status, touched.get(action.device))
            if row is not None:
                touched[action.device] = row
                views[action.device] = _apply(views[action.device], action, deployment_name, now)
        views = {
            name: _settle(view, slot, deployment_name, timeout=timeout, now=now)
            for name, view in views.items()
        }
        settled = not plan.actions and plan.status == current
        current = plan.status
        if settled:
            break
    assert plan is not None  # MAX_PASSES > 0
    end = plan.status
    progressing = get_condition(end.conditions, PROGRESSING)
    message = progressing.message if progressing else ""
    if spec.paused:
        message = f"spec.paused is true: nothing moves until it is resumed; then: {message}"
    rows = _rows(
        devices,
        touched,
        uid=uid,
        spec=spec,
        slot=slot,
        deployment=deployment_name,
        revision=end.current_revision,
        record=_record(end, end.current_revision),
        resolved=artifact,
        claims=other_claims,
        timeout=timeout,
        now=now,
        message=message,
    )
    targeted = sum(1 for r in rows if r.disposition != "release" and r.reason not in _UNTARGETED)
    return Preview(
        deployment=deployment_name,
        revision=end.current_revision,
        wave_sizes=wave_sizes(spec.strategy.waves, targeted),
        rows=rows,
        outcome=end.phase or "Progressing",
        message=message,
        order_known=deployment_uid is not None,
    )


def _row(
    action: Action, status: EdgeDeploymentStatus, earlier: PreviewRow | None
) -> PreviewRow | None:
    """The row for one action of a pass; a device keeps the row of the latest move, which
    mentions a stable catch-up that came before it."""
    before = f"after catching up to stable revision {earlier.revision}" if earlier else ""
    if isinstance(action, AssignRevision):
        rolling = action.revision == status.current_revision != status.stable_revision
        if rolling:
            wave = (status.wave or 0) + 1
            return PreviewRow(
                action.device,
                "rollout",
                wave,
                action.revision,
                artifact=action.artifact,
                message=before,
            )
        return PreviewRow(action.device, "stable", None, action.revision, artifact=action.artifact)
    if isinstance(action, RollBack):
        message = f"back from revision {action.from_revision}"
        return PreviewRow(
            action.device,
            "rollback",
            None,
            action.to_revision,
            artifact=action.artifact,
            message=message,
        )
    if isinstance(action, ReleaseSlot):
        return PreviewRow(action.device, "release", message="no longer matches spec.selector")
    return None  # RefreshUrl: new URLs for the same assignment move nothing


def _apply(view: DeviceView, action: Action, deployment: str, now: datetime) -> DeviceView:
    """The device as the planner will see it once the action is written."""
    models = dict(view.models)
    if isinstance(action, ReleaseSlot):
        models.pop(action.slot, None)
        return replace(view, models=models)
    assert isinstance(action, AssignRevision | RollBack)
    revision = action.to_revision if isinstance(action, RollBack) else action.revision
    artifact = action.artifact
    models[action.slot] = SlotAssignment(
        deployment=deployment,
        revision=revision,
        format=artifact.format,
        url=artifact.uri,
        sha256=artifact.sha256,
        size_bytes=artifact.size_bytes or 0,
        assigned_at=format_time(now),
    )
    return replace(view, models=models)


def _settle(
    view: DeviceView, slot: str, deployment: str, *, timeout: timedelta, now: datetime
) -> DeviceView:
    """The optimistic fleet: an online device runs what it is assigned, Healthy, unless it
    already failed on it."""
    assignment = view.models.get(slot)
    if assignment is None or assignment.deployment != deployment:
        return view
    device = observe(view, slot, assignment.revision, timeout=timeout, now=now)
    if not device.online or device.state in ("healthy", "failed"):
        return view
    revision = assignment.revision
    healthy = SlotStatus(
        target_revision=revision,
        active_revision=revision,
        active_sha256=assignment.sha256,
        phase="Healthy",
        last_update_time=format_time(now),
    )
    return replace(view, slots={**view.slots, slot: healthy})


def _rows(
    devices: Sequence[DeviceView],
    touched: Mapping[str, PreviewRow],
    *,
    uid: str,
    spec: EdgeDeploymentSpec,
    slot: str,
    deployment: str,
    revision: int | None,
    record: RevisionRecord | None,
    resolved: ResolvedArtifact,
    claims: Mapping[str, Collection[str]],
    timeout: timedelta,
    now: datetime,
    message: str,
) -> tuple[PreviewRow, ...]:
    """Every device once, in rollout order: the moved ones by wave, then the rest."""
    rows: list[PreviewRow] = []
    for view in rollout_order(uid, devices):
        variant = variant_of(spec, view.labels)
        if view.name in touched:
            row = touched[view.name]
            rows.append(replace(row, variant=variant if row.disposition != "release" else None))
            continue
        skip = _skip(view, spec, slot, deployment, claims, timeout=timeout, now=now)
        if skip is not None:
            chosen = variant if skip[0] != "NotSelected" else None
            rows.append(PreviewRow(view.name, "skipped", None, None, chosen, None, *skip))
        elif variant is None:
            message = "no variant's selector matches its labels"
            rows.append(
                PreviewRow(view.name, "skipped", reason="NoMatchingVariant", message=message)
            )
        else:
            recorded = (
                artifact_of(record, view.labels, resolved=resolved) if record is not None else None
            )
            rows.append(_untouched(view, slot, revision, recorded, variant, message))
    order = {"rollout": 0, "unchanged": 1, "stable": 2, "rollback": 2, "release": 3, "skipped": 4}
    return tuple(sorted(rows, key=lambda r: (order[r.disposition], r.wave or 0)))


def _skip(
    view: DeviceView,
    spec: EdgeDeploymentSpec,
    slot: str,
    deployment: str,
    claims: Mapping[str, Collection[str]],
    *,
    timeout: timedelta,
    now: datetime,
) -> tuple[str, str] | None:
    """Why the planner leaves a device alone for good: (reason, message), or None."""
    if not selector_matches(spec.selector, view.labels):
        return "NotSelected", "its labels do not match spec.selector"
    rivals = set(claims.get(view.name, ())) - {deployment}
    held = view.models.get(slot)
    if held is not None and held.deployment != deployment:
        rivals.add(held.deployment)
    if rivals:
        return "Conflict", f"slot {slot} is also claimed by {', '.join(sorted(rivals))}"
    if not observe(view, slot, None, timeout=timeout, now=now).online:
        heartbeat = view.lease_renew_time
        seen = f"Lease last renewed {format_time(heartbeat)}" if heartbeat else "no Lease renewal"
        return (
            "Offline",
            f"{seen}: more than deviceTimeoutSeconds ({int(timeout.total_seconds())}s) ago",
        )
    return None


def _record(status: EdgeDeploymentStatus, revision: int | None) -> RevisionRecord | None:
    """`revision` as the history records it: its artifacts per variant, never a device's
    presigned URL."""
    return next((r for r in status.history if r.revision == revision), None)


def _untouched(
    view: DeviceView,
    slot: str,
    revision: int | None,
    artifact: ArtifactRef | None,
    variant: str,
    message: str,
) -> PreviewRow:
    held = view.models.get(slot)
    if held is not None and revision is not None and held.revision == revision:
        return PreviewRow(
            view.name,
            "unchanged",
            None,
            revision,
            variant,
            artifact,
            message=f"already assigned revision {revision}",
        )
    return PreviewRow(view.name, "skipped", variant=variant, reason="NotReached", message=message)
