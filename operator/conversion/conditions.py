"""ModelConversion conditions: their types and reasons, in one place.

The conversion planner (planner.py) sets them, the observations (observations.py) carry the
worker reasons they take over, the controller counts outcomes by the Ready reason, and the
rollout controller reads Ready to decide whether an artifact is approved. A condition that
fails takes the failing step's reason: a worker reason (modelfleet.reasons, e.g.
InvalidModel, read from the Job's exit code or the report) or the Job's own condition reason
(e.g. DeadlineExceeded); those are not listed here, except the two the planner sets itself.
"""

from __future__ import annotations

from typing import Final

from modelfleet.reasons import Reason

# Condition types. A condition that is True has its own type as reason (Converted, Validated),
# except Approved (AUTO_APPROVED, MANUALLY_APPROVED) and Ready (APPROVED).
CONVERTED: Final = "Converted"
VALIDATED: Final = "Validated"
APPROVED: Final = "Approved"
READY: Final = "Ready"
"""True once the artifacts are validated and approved: what an EdgeDeployment waits for."""

# Reasons while work is under way or waits.
CONVERTING: Final = "Converting"
VALIDATING: Final = "Validating"
NOT_CONVERTED: Final = "NotConverted"
NOT_VALIDATED: Final = "NotValidated"
AWAITING_APPROVAL: Final = "AwaitingApproval"
SLOWER_THAN_FLOAT: Final = "SlowerThanFloat"
"""Condition type and reason: an fp16 or int8 artifact's median latency is above the fp32
artifact's on the validation machine; `approval: auto` then waits for `modelfleet approve`."""
# Approved reasons.
AUTO_APPROVED: Final = "AutoApproved"
MANUALLY_APPROVED: Final = "ManuallyApproved"
# Failure reasons the operator sets itself.
JOB_FAILED: Final = "JobFailed"
"""A Job failed without a worker reason or a condition reason of its own."""
ARTIFACT_MISSING: Final = "ArtifactMissing"
"""A conversion Job succeeded, yet no manifest is stored."""
SOURCE_NOT_FOUND: Final[Reason] = "SourceNotFound"
"""The source listing is empty: no Job is started (the worker reports the same reason)."""
TOLERANCE_EXCEEDED: Final[Reason] = "ToleranceExceeded"
"""A report outside tolerance that names no failure of its own."""
