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

from datetime import timedelta
from typing import Final

from modelfleet.conditions import parse_time
from modelfleet.operator.rollout.fleet import Device
from modelfleet.operator.rollout.passes import Context
from modelfleet.operator.rollout.plans import Action, AssignRevision, RefreshUrl
from modelfleet.operator.rollout.revisions import RolloutProgress, artifact_of

URL_REFRESH_MARGIN: Final = timedelta(minutes=5)


def refresh_urls(
    ctx: Context, progress: RolloutProgress, targeted: list[Device], busy: set[str]
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
        target = artifact_of(record, device.view.labels, resolved=ctx.artifact)
        actions.append(RefreshUrl(device.name, ctx.slot, record.revision, target))
    return actions


def realign_variants(
    ctx: Context, progress: RolloutProgress, targeted: list[Device], busy: set[str]
) -> list[Action]:
    """Online devices whose labels now pick another variant of the revision they hold get
    that variant's artifact and runtime under the same revision (variants.py)."""
    actions: list[Action] = []
    for device in targeted:
        assignment = device.view.models.get(ctx.slot)
        record = progress.record(device.revision)
        if device.name in busy or not device.online or assignment is None or record is None:
            continue
        target = artifact_of(record, device.view.labels, resolved=ctx.artifact)
        if (assignment.variant, assignment.sha256) != (target.variant, target.sha256):
            actions.append(AssignRevision(device.name, ctx.slot, record.revision, target))
    return actions
