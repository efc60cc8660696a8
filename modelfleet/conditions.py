"""Status conditions shared by the operator's reconcilers.

The conversion reconciler and the rollout planner both compute a resource's conditions from
scratch on every pass and write them once. `set_condition` is the one place that decides what
a condition's `lastTransitionTime` is: it moves only when the condition's status changes, as
in the Kubernetes and Argo Rollouts `conditions` utilities, so `kubectl` shows how long a
resource has been Ready (or not) rather than when the operator last looked at it.

Reason constants live with the code that sets them; this module holds only what is generic,
plus the RFC 3339 timestamps Kubernetes uses in status (`metav1.Time`, second precision, UTC).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from modelfleet.api.base import Condition, ConditionStatus

READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
"""Ready's reason in the pass that first observes a generation whose verdict would be Ready."""

MESSAGE_LIMIT = 4096
"""`Condition.message` is capped by the CRD schema; longer messages are cut, never rejected."""


def format_time(moment: datetime) -> str:
    """`2024-05-01T12:00:00Z`: what `metav1.Time` serialises to. Naive datetimes are UTC."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=4096)
def parse_time(value: str) -> datetime:
    """The inverse of `format_time`; also accepts fractions and offsets (`metav1.MicroTime`).

    Cached: a planning pass parses a timestamp per device, and a wave's assignments share
    theirs (one `assignedAt` and URL expiry per pass that wrote them)."""
    return as_utc(datetime.fromisoformat(value))


def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def get_condition(conditions: Sequence[Condition], type: str) -> Condition | None:
    return next((c for c in conditions if c.type == type), None)


def set_condition(
    conditions: Sequence[Condition],
    *,
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """A new list with condition `type` set; the others are kept as they are, in order.

    `lastTransitionTime` is kept when `status` is unchanged (reason and message may change
    freely), and set to `now` otherwise or when the condition is new.
    """
    previous = get_condition(conditions, type)
    transition = (
        previous.last_transition_time
        if previous is not None and previous.status == status and previous.last_transition_time
        else format_time(now)
    )
    condition = Condition(
        type=type,
        status=status,
        reason=reason,
        message=_cut(message),
        last_transition_time=transition,
        observed_generation=observed_generation,
    )
    if previous is None:
        return [*conditions, condition]
    return [condition if c.type == type else c for c in conditions]


def first_pass_not_ready(
    conditions: Sequence[Condition],
    *,
    observed_generation: int | None,
    generation: int | None,
    now: datetime,
) -> list[Condition] | None:
    """Conditions with Ready=False (reason Reconciling) when this pass is the first to observe
    `generation` after an earlier one and would say Ready=True; None when the conditions stand
    as they are (a new object has nothing to inherit: its first verdict stands).

    A fresh generation is never Ready by inheritance: `kubectl wait --for=condition=Ready`
    and GitOps health checks read Ready together with its observedGeneration, so the pass that
    first stamps the new generation must not carry a Ready=True decided from evidence an
    earlier generation left. The status write wakes the reconciler again, and that pass (the
    generation now observed) says Ready=True if the evidence still holds.
    """
    ready = get_condition(conditions, READY)
    fresh = observed_generation is not None and observed_generation != generation
    if not fresh or ready is None or ready.status != "True":
        return None
    return set_condition(
        conditions,
        type=READY,
        status="False",
        reason=RECONCILING,
        message=f"generation {generation} observed; checking it before it is Ready",
        now=now,
        observed_generation=generation,
    )


def remove_condition(conditions: Sequence[Condition], type: str) -> list[Condition]:
    return [c for c in conditions if c.type != type]


def _cut(message: str) -> str:
    if len(message) <= MESSAGE_LIMIT:
        return message
    return message[: MESSAGE_LIMIT - 1] + "…"
