"""The agent's decisions as pure functions: the next step for one slot, and what to report.

The runner calls `plan_slot` for every slot named in spec.models, on disk or in status, executes
the step it returns, and asks again until the step is `Keep`. Nothing here touches the disk,
the network or a clock: the local store is summarised in `LocalSlot`, the last failed attempt
in `Failure`, and `now` is passed in. Worked examples (sha `A` active as revision 1):

    assignment          local                           failure        step         phase
    none                nothing                         -              Keep         (dropped)
    none                current A                       -              Deactivate   (dropped)
    rev 1, sha A        current A rev 1                 -              Keep         Healthy
    rev 3, sha A        current A rev 1                 -              Adopt        Healthy
    rev 2, sha B        current A, B not stored         -              Download     Downloading
    rev 2, sha B        B staged, all bytes             -              Verify       Verifying
    rev 2, sha B        B stored (e.g. the previous)    -              Install      Verifying
    rev 2, sha A, other runtime   current A rev 1       -              Install      Verifying
    rev 2, sha B        current A                       ProbeFailed    Keep         Failed
    rev 2, sha B        current A                       DownloadFailed Keep(wake)   Failed,
                                                        retry at t     until t, then Download

A download that is retried within its step reports `retrying_status` (still Downloading, reason
DownloadRetrying, the attempt and its cause). `Install` runs load + probe (still Verifying),
reports `activating_status`, switches the
`current` link, and the next plan is `Keep` → Healthy. A failure keeps A active: every status
built here reports the installed artifact (`activeRevision`, `activeSha256`), never the target.
Failures other than DownloadFailed are final for that exact assignment (`assignment_key`):
only a new revision, sha256 or URL from the rollout controller retries them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from modelfleet.api.device import (
    DownloadRetry,
    ProbeResult,
    RuntimeRequest,
    SlotAssignment,
    SlotPhase,
    SlotRuntime,
    SlotStatus,
)
from modelfleet.backoff import Backoff
from modelfleet.conditions import format_time

REASON_PROBE_PASSED = "ProbePassed"
REASON_NO_PROBE = "NoProbe"
REASON_DOWNLOAD_RETRYING = "DownloadRetrying"
ASSIGNMENT_BACKOFF = Backoff(initial=10.0, max=600.0)
"""A failed download of one assignment is tried again after 10 s, doubling to 10 minutes."""


@dataclass(frozen=True)
class Installed:
    """An artifact linked into a slot (as current or previous) and what is known of it."""

    sha256: str
    revision: int | None = None
    probe: ProbeResult | None = None
    runtime: SlotRuntime | None = None
    """The backend the probe ran on."""
    request: RuntimeRequest | None = None
    """The runtime request it was installed for; None: the default (ONNX Runtime, CPU)."""


@dataclass(frozen=True)
class LocalSlot:
    """The slot on disk, seen from the assignment: `stored` and `staged_bytes` are about the
    assigned sha256 (in the verified store; bytes in staging, None when there is no file)."""

    current: Installed | None = None
    previous: Installed | None = None
    stored: bool = False
    staged_bytes: int | None = None


@dataclass(frozen=True)
class Failure:
    """The last failed attempt at one assignment; `retry_at` None: only a new one retries."""

    key: str
    reason: str
    message: str
    attempts: int = 1
    retry_at: datetime | None = None


@dataclass(frozen=True)
class Keep:
    """Nothing to do; `wake_at` asks the runner to plan again then (a retry is due)."""

    wake_at: datetime | None = None


@dataclass(frozen=True)
class Deactivate:
    """The slot left spec.models: remove its links and records."""


@dataclass(frozen=True)
class Adopt:
    """The active artifact is the assigned one under a new revision: record the revision."""

    assignment: SlotAssignment


@dataclass(frozen=True)
class Download:
    assignment: SlotAssignment
    offset: int = 0


@dataclass(frozen=True)
class Verify:
    """All bytes are staged: check size and sha256, then move them into the store."""

    assignment: SlotAssignment


@dataclass(frozen=True)
class Install:
    """The assigned artifact is stored: load it, probe it, switch `current` to it."""

    assignment: SlotAssignment


Step = Keep | Deactivate | Adopt | Download | Verify | Install


@dataclass(frozen=True)
class SlotPlan:
    step: Step
    status: SlotStatus | None
    """What to report before the step runs; None: the slot has no status entry."""


def assignment_key(assignment: SlotAssignment) -> str:
    """Identity of one assignment for failure bookkeeping (a refreshed URL is a new one)."""
    wire = json.dumps(assignment.to_wire(), sort_keys=True)
    return hashlib.sha256(wire.encode()).hexdigest()


def plan_slot(
    assignment: SlotAssignment | None,
    local: LocalSlot,
    failure: Failure | None,
    now: datetime,
) -> SlotPlan:
    if assignment is None:
        step: Step = Deactivate() if local.current or local.previous else Keep()
        return SlotPlan(step, None)
    current = local.current
    if (
        current is not None
        and current.sha256 == assignment.sha256
        and same_runtime(current.request, assignment.runtime)
    ):
        if current.revision != assignment.revision:
            return SlotPlan(Adopt(assignment), healthy_status(assignment, local, now))
        return SlotPlan(Keep(), healthy_status(assignment, local, now))
    if failure is not None and _holds(failure, assignment, now):
        return SlotPlan(
            Keep(wake_at=failure.retry_at),
            slot_status(
                "Failed", assignment, local, now, reason=failure.reason, message=failure.message
            ),
        )
    verifying = f"verifying revision {assignment.revision}, sha256 {_short(assignment.sha256)}"
    if local.stored:
        return SlotPlan(
            Install(assignment), slot_status("Verifying", assignment, local, now, message=verifying)
        )
    staged = local.staged_bytes or 0
    if local.staged_bytes is not None and staged >= assignment.size_bytes:
        return SlotPlan(
            Verify(assignment), slot_status("Verifying", assignment, local, now, message=verifying)
        )
    message = f"downloading revision {assignment.revision} ({assignment.size_bytes} bytes)"
    if staged:
        message += f", resuming at byte {staged}"
    return SlotPlan(
        Download(assignment, offset=staged),
        slot_status("Downloading", assignment, local, now, message=message),
    )


def same_runtime(installed: RuntimeRequest | None, assigned: RuntimeRequest | None) -> bool:
    """Whether an artifact installed for one runtime request serves another unchanged (absent
    means the default); otherwise it is installed, i.e. probed, again on the new backend."""
    return (installed or RuntimeRequest()) == (assigned or RuntimeRequest())


def failure_after(
    previous: Failure | None,
    *,
    key: str,
    reason: str,
    message: str,
    retryable: bool,
    now: datetime,
    backoff: Backoff = ASSIGNMENT_BACKOFF,
) -> Failure:
    """The failure record after one more failed attempt: retryable ones back off by `backoff`,
    counted per assignment."""
    attempts = previous.attempts + 1 if previous is not None and previous.key == key else 1
    retry_at = None
    if retryable:
        delay = timedelta(seconds=backoff.delay(attempts))
        retry_at = now + delay
        message = f"{message} (attempt {attempts}; retrying in {delay.total_seconds():.0f}s)"
    return Failure(key, reason, message, attempts, retry_at)


def healthy_status(assignment: SlotAssignment, local: LocalSlot, now: datetime) -> SlotStatus:
    current = local.current
    assert current is not None, "healthy means the assigned artifact is current"
    probe = current.probe
    message = f"revision {assignment.revision} active, sha256 {_short(current.sha256)}"
    if probe is None:
        message += ", no probe was assigned: loaded but not numerically checked"
    elif probe.max_abs is not None:
        message += f", probe max abs {probe.max_abs:.3g}"
    reason = REASON_NO_PROBE if probe is None else REASON_PROBE_PASSED
    return slot_status("Healthy", assignment, local, now, reason=reason, message=message)


def retrying_status(
    assignment: SlotAssignment,
    local: LocalSlot,
    now: datetime,
    *,
    attempt: int,
    cause: str,
    delay: float,
) -> SlotStatus:
    """Downloading, after attempt number `attempt` failed with `cause` (never a URL)."""
    message = (
        f"downloading revision {assignment.revision}: attempt {attempt} failed ({cause}), "
        f"retrying in {delay:.1f}s"
    )
    return slot_status(
        "Downloading",
        assignment,
        local,
        now,
        reason=REASON_DOWNLOAD_RETRYING,
        message=message,
        download_retry=DownloadRetry(attempt=attempt, last_error=cause[:1024]),
    )


def activating_status(assignment: SlotAssignment, local: LocalSlot, now: datetime) -> SlotStatus:
    message = f"switching to revision {assignment.revision}"
    return slot_status("Activating", assignment, local, now, message=message)


def slot_status(
    phase: SlotPhase,
    assignment: SlotAssignment,
    local: LocalSlot,
    now: datetime,
    *,
    reason: str = "",
    message: str = "",
    download_retry: DownloadRetry | None = None,
) -> SlotStatus:
    """The status of a slot: the target revision and what is really active on the device."""
    current, previous = local.current, local.previous
    return SlotStatus(
        target_revision=assignment.revision,
        active_revision=current.revision if current else None,
        active_sha256=current.sha256 if current else None,
        previous_revision=previous.revision if previous else None,
        phase=phase,
        reason=reason,
        message=message[:4096],
        probe=current.probe if current else None,
        runtime=current.runtime if current else None,
        download_retry=download_retry,
        last_update_time=format_time(now),
    )


def status_changed(reported: SlotStatus | None, desired: SlotStatus | None) -> bool:
    """Whether a write is needed: everything but `lastUpdateTime` is compared."""
    if reported is None or desired is None:
        return reported is not desired
    ignore = {"last_update_time"}
    return reported.model_dump(exclude=ignore) != desired.model_dump(exclude=ignore)


def _holds(failure: Failure, assignment: SlotAssignment, now: datetime) -> bool:
    """A failure stands for its own assignment until its retry time, if it has one."""
    if failure.key != assignment_key(assignment):
        return False
    return failure.retry_at is None or now < failure.retry_at


def _short(sha256: str) -> str:
    return sha256[:12]
