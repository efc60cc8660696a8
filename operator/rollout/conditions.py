"""EdgeDeployment conditions: their types, reasons and how the planner's verdict becomes them.

Pure, like the planner that calls it. Messages name at most NAMES_IN_MESSAGES devices, so the
status stays the same size however large the fleet is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from modelfleet.api.base import Condition, ConditionStatus
from modelfleet.conditions import set_condition

# Condition types.
PROGRESSING: Final = "Progressing"
READY: Final = "Ready"
"""True once the current revision is stable everywhere: `kubectl wait --for=condition=Ready`."""
AVAILABLE: Final = "Available"
CONFLICT: Final = "Conflict"

# Progressing reasons; Ready has the same reason while it is False.
WAVE_PROGRESSING: Final = "WaveProgressing"
WAVE_BAKING: Final = "WaveBaking"
AWAITING_PROMOTION: Final = "AwaitingPromotion"
ROLLOUT_COMPLETE: Final = "RolloutComplete"
ROLLOUT_ABORTED: Final = "RolloutAborted"
PROGRESS_DEADLINE_EXCEEDED: Final = "ProgressDeadlineExceeded"
DEPLOYMENT_PAUSED: Final = "DeploymentPaused"
WAITING_FOR_ARTIFACT: Final = "WaitingForArtifact"
VARIANT_FORMAT_MISSING: Final = "VariantFormatMissing"
"""A variant's format has no approved artifact in the conversion: nothing moves (Degraded)."""
NO_DEVICES_SELECTED: Final = "NoDevicesSelected"
# Available and Conflict reasons.
STABLE_REVISION_AVAILABLE: Final = "StableRevisionAvailable"
NO_STABLE_REVISION: Final = "NoStableRevision"
SLOT_CONFLICT: Final = "SlotConflict"
NO_CONFLICT: Final = "NoConflict"

NAMES_IN_MESSAGES: Final = 10
"""Device names a condition message lists before it counts the rest: status stays small."""


def rollout_conditions(
    previous: Sequence[Condition],
    *,
    progressing: tuple[ConditionStatus, str, str],
    succeeded: bool,
    stable: int | None,
    healthy: int,
    slot: str,
    conflicts: list[tuple[str, list[str]]],
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """Progressing (status, reason, message) as decided; Ready, Available, Conflict follow."""
    conditions = list(previous)

    def put(type: str, status: ConditionStatus, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions,
            type=type,
            status=status,
            reason=reason,
            message=message,
            now=now,
            observed_generation=generation,
        )

    status, reason, message = progressing
    put(PROGRESSING, status, reason, message)
    put(READY, "True" if succeeded else "False", reason, message)
    if stable is not None:
        put(
            AVAILABLE,
            "True",
            STABLE_REVISION_AVAILABLE,
            f"revision {stable} is stable; {healthy} devices healthy",
        )
    else:
        put(AVAILABLE, "False", NO_STABLE_REVISION, "no revision has completed a rollout yet")
    if conflicts:
        claimed = [f"{name} ({', '.join(others)})" for name, others in conflicts]
        text = (
            f"slot {slot} of {len(conflicts)} selected devices is claimed by another "
            f"deployment too; they are skipped: {names(claimed)}"
        )
        put(CONFLICT, "True", SLOT_CONFLICT, text)
    else:
        put(CONFLICT, "False", NO_CONFLICT, "")
    return conditions


def names(names: Sequence[str]) -> str:
    """At most NAMES_IN_MESSAGES names, then how many more: messages don't grow with fleets."""
    if not names:
        return "none"
    shown = ", ".join(names[:NAMES_IN_MESSAGES])
    hidden = len(names) - NAMES_IN_MESSAGES
    return f"{shown} and {hidden} more" if hidden > 0 else shown
