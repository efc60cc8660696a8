"""Fresh download URLs for devices still fetching their revision, before the old ones expire.

The handler presigns each assignment's URLs for a limited time (controller.py `URL_TTL`); a
device that is slow to download, or offline for a while, would otherwise be left with URLs
that no longer work. Called by `plan_rollout` (planner.py) after the step's own actions, for
the devices those actions do not already touch.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from modelfleet.conditions import parse_time
from modelfleet.operator.rollout.fleet import Device
from modelfleet.operator.rollout.passes import Context
from modelfleet.operator.rollout.plans import Action, RefreshUrl
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
