"""Assigning a device's revision again: fresh URLs before the old ones expire, or another
variant's artifact after its labels changed.

The handler presigns each assignment's URLs for a limited time (controller.py `URL_TTL`); a
device that is slow to download, or offline for a while, would otherwise be left with URLs
that no longer work. Called by `plan_rollout` (planner.py) after the step's own actions, for
the devices those actions do not already touch.

A device's labels may change while it holds a revision (re-labelled hardware): it then takes
another variant, so it gets that variant's artifact of the same revision, as a new device
would; otherwise it would run, and be counted under, a variant it no longer belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from modelfleet.api.deployment import RevisionRecord
from modelfleet.conditions import parse_time
from modelfleet.operator.rollout.fleet import Device
from modelfleet.operator.rollout.passes import Context
from modelfleet.operator.rollout.plans import Action, ArtifactRef, AssignRevision, RefreshUrl
from modelfleet.operator.rollout.revisions import RolloutProgress, artifact_of

URL_REFRESH_MARGIN: Final = timedelta(minutes=5)


class _Targets:
    """`artifact_of` for one pass, once per revision where labels cannot matter (neither the
    record nor the resolved release has variants): both loops below visit every device."""

    def __init__(self, ctx: Context) -> None:
        self.resolved = ctx.artifact
        self.plain: dict[int, ArtifactRef] = {}

    def plain_only(self, progress: RolloutProgress) -> bool:
        """No release of the rollout has variants: every device runs its record's default."""
        resolved = self.resolved is not None and bool(self.resolved.variants)
        return not resolved and not any(r.variants for r in progress.history)

    def __call__(self, record: RevisionRecord, labels: Mapping[str, str]) -> ArtifactRef:
        if record.variants or (self.resolved is not None and self.resolved.variants):
            return artifact_of(record, labels, resolved=self.resolved)
        found = self.plain.get(record.revision)
        if found is None:
            found = self.plain[record.revision] = artifact_of(record, {}, resolved=self.resolved)
        return found


def refresh_urls(
    ctx: Context, progress: RolloutProgress, targeted: list[Device], busy: set[str]
) -> list[Action]:
    """Online devices still fetching their revision get new URLs before the old ones expire."""
    actions: list[Action] = []
    horizon = ctx.now + URL_REFRESH_MARGIN
    target_of = _Targets(ctx)
    for device in targeted:
        if device.state not in ("pending", "timed_out") or not device.online:
            continue  # first: most devices of a rollout are healthy or not yet assigned
        assignment = device.view.models.get(ctx.slot)
        record = progress.record(device.revision)
        expires = assignment.url_expires_at if assignment is not None else None
        if (
            device.name in busy
            or record is None
            or expires is None
            or parse_time(expires) > horizon
        ):
            continue
        target = target_of(record, device.view.labels)
        actions.append(RefreshUrl(device.name, ctx.slot, record.revision, target))
    return actions


def realign_variants(
    ctx: Context, progress: RolloutProgress, targeted: list[Device], busy: set[str]
) -> list[Action]:
    """Online devices whose labels now pick another variant of the revision they hold get
    that variant's artifact and runtime under the same revision (variants.py)."""
    actions: list[Action] = []
    target_of = _Targets(ctx)
    plain = target_of.plain_only(progress)
    for device in targeted:
        assignment = device.view.models.get(ctx.slot)
        if assignment is None or not device.online or device.name in busy:
            continue
        record = progress.record(device.revision)
        if record is None:
            continue
        if plain and assignment.variant is None and assignment.sha256 == record.sha256:
            continue  # already the record's default artifact: the common case, kept cheap
        target = target_of(record, device.view.labels)
        if (assignment.variant, assignment.sha256) != (target.variant, target.sha256):
            actions.append(AssignRevision(device.name, ctx.slot, record.revision, target))
    return actions
