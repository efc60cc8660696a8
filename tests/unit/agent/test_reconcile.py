"""The pure core: the worked examples of `reconcile`'s docstring, one named case each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modelfleet.agent.reconcile import (
    Adopt,
    Deactivate,
    Download,
    Failure,
    Install,
    Installed,
    Keep,
    LocalSlot,
    Verify,
    assignment_key,
    failure_after,
    plan_slot,
    status_changed,
)
from modelfleet.api.device import ProbeResult, RuntimeRequest, SlotAssignment, SlotRuntime

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
A, B = "a" * 64, "b" * 64
PROBE = ProbeResult(max_abs=1e-6, latency_ms=0.2)


def assign(revision: int, sha: str, url: str = "http://s3/x?sig=secret") -> SlotAssignment:
    return SlotAssignment(
        deployment="d", revision=revision, format="onnx", url=url, sha256=sha, size_bytes=100
    )


ACTIVE_A = Installed(A, 1, PROBE)
OPENVINO = RuntimeRequest(engine="openvino")
ON_OPENVINO = SlotRuntime(engine="openvino", requested=["CPU"], used=["CPU"])
ACTIVE_A_OPENVINO = Installed(A, 1, PROBE, ON_OPENVINO, OPENVINO)
REV2_B = assign(2, B)
PROBE_FAILED = Failure(assignment_key(REV2_B), "ProbeFailed", "differs")
RETRY_LATER = Failure(
    assignment_key(REV2_B), "DownloadFailed", "HTTP 503", retry_at=NOW + timedelta(seconds=30)
)
RETRY_DUE = Failure(
    assignment_key(REV2_B), "DownloadFailed", "HTTP 503", retry_at=NOW - timedelta(seconds=1)
)

CASES = [
    # id, assignment, local, failure, step type, phase (None: no status entry)
    ("nothing anywhere", None, LocalSlot(), None, Keep, None),
    ("slot removed from spec", None, LocalSlot(current=ACTIVE_A), None, Deactivate, None),
    ("only previous left", None, LocalSlot(previous=ACTIVE_A), None, Deactivate, None),
    ("steady", assign(1, A), LocalSlot(current=ACTIVE_A), None, Keep, "Healthy"),
    ("same bytes, new revision", assign(3, A), LocalSlot(current=ACTIVE_A), None, Adopt, "Healthy"),
    (
        "same bytes, other runtime",
        assign(1, A).model_copy(update={"runtime": OPENVINO}),
        LocalSlot(current=ACTIVE_A, stored=True),
        None,
        Install,
        "Verifying",
    ),
    (
        "default spelled out",
        assign(1, A).model_copy(update={"runtime": RuntimeRequest()}),
        LocalSlot(current=ACTIVE_A, stored=True),
        None,
        Keep,
        "Healthy",
    ),
    (
        "back to the default runtime",
        assign(1, A),
        LocalSlot(current=ACTIVE_A_OPENVINO, stored=True),
        None,
        Install,
        "Verifying",
    ),
    ("new artifact", REV2_B, LocalSlot(current=ACTIVE_A), None, Download, "Downloading"),
    ("first ever", REV2_B, LocalSlot(), None, Download, "Downloading"),
    ("partly staged", REV2_B, LocalSlot(ACTIVE_A, staged_bytes=40), None, Download, "Downloading"),
    ("fully staged", REV2_B, LocalSlot(ACTIVE_A, staged_bytes=100), None, Verify, "Verifying"),
    ("over-long staged", REV2_B, LocalSlot(ACTIVE_A, staged_bytes=101), None, Verify, "Verifying"),
    ("stored (rollback)", REV2_B, LocalSlot(ACTIVE_A, stored=True), None, Install, "Verifying"),
    ("failed for good", REV2_B, LocalSlot(current=ACTIVE_A), PROBE_FAILED, Keep, "Failed"),
    ("backing off", REV2_B, LocalSlot(current=ACTIVE_A), RETRY_LATER, Keep, "Failed"),
    ("retry due", REV2_B, LocalSlot(current=ACTIVE_A), RETRY_DUE, Download, "Downloading"),
    (
        "failure of another assignment",
        assign(2, B, url="http://s3/x?sig=refreshed"),
        LocalSlot(current=ACTIVE_A),
        PROBE_FAILED,
        Download,
        "Downloading",
    ),
    (
        "failure irrelevant once active",
        assign(1, A),
        LocalSlot(ACTIVE_A),
        PROBE_FAILED,
        Keep,
        "Healthy",
    ),
]


@pytest.mark.parametrize(
    ("assignment", "local", "failure", "step", "phase"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_plan(
    assignment: SlotAssignment | None,
    local: LocalSlot,
    failure: Failure | None,
    step: type,
    phase: str | None,
) -> None:
    plan = plan_slot(assignment, local, failure, NOW)
    assert isinstance(plan.step, step)
    assert (plan.status.phase if plan.status else None) == phase


def test_every_status_reports_what_is_really_active() -> None:
    local = LocalSlot(current=ACTIVE_A, previous=Installed(B, 7))
    for failure in (None, PROBE_FAILED, RETRY_LATER):
        status = plan_slot(assign(5, "c" * 64), local, failure, NOW).status
        assert status is not None
        assert (status.target_revision, status.active_revision, status.active_sha256) == (5, 1, A)
        assert status.previous_revision == 7
        assert status.probe == PROBE


def test_failed_status_carries_reason_and_message_and_no_url() -> None:
    status = plan_slot(REV2_B, LocalSlot(current=ACTIVE_A), PROBE_FAILED, NOW).status
    assert status is not None
    assert (status.reason, status.message) == ("ProbeFailed", "differs")
    assert "sig=" not in status.model_dump_json()


def test_download_resumes_at_the_staged_offset() -> None:
    plan = plan_slot(REV2_B, LocalSlot(staged_bytes=40), None, NOW)
    assert plan.step == Download(REV2_B, offset=40)
    assert plan.status is not None and "resuming at byte 40" in plan.status.message


def test_backing_off_wakes_at_the_retry_time() -> None:
    plan = plan_slot(REV2_B, LocalSlot(), RETRY_LATER, NOW)
    assert plan.step == Keep(wake_at=RETRY_LATER.retry_at)


def test_healthy_without_probe_says_so() -> None:
    status = plan_slot(assign(1, A), LocalSlot(current=Installed(A, 1)), None, NOW).status
    assert status is not None and status.reason == "NoProbe" and status.probe is None


def test_download_failures_back_off_exponentially_and_cap() -> None:
    key = assignment_key(REV2_B)
    failure = None
    delays = []
    for _ in range(8):
        failure = failure_after(
            failure, key=key, reason="DownloadFailed", message="HTTP 503", retryable=True, now=NOW
        )
        assert failure.retry_at is not None
        delays.append((failure.retry_at - NOW).total_seconds())
    assert delays == [10, 20, 40, 80, 160, 320, 600, 600]
    assert failure is not None and "attempt 8" in failure.message


def test_final_failures_never_retry_and_a_new_assignment_starts_counting_again() -> None:
    first = failure_after(
        None, key="k1", reason="ChecksumMismatch", message="m", retryable=False, now=NOW
    )
    assert first.retry_at is None
    other = failure_after(
        first, key="k2", reason="DownloadFailed", message="m", retryable=True, now=NOW
    )
    assert other.attempts == 1


def test_status_compare_ignores_only_the_update_time() -> None:
    local = LocalSlot(current=ACTIVE_A)
    now = plan_slot(assign(1, A), local, None, NOW).status
    later = plan_slot(assign(1, A), local, None, NOW + timedelta(hours=1)).status
    assert not status_changed(now, later)
    assert status_changed(now, plan_slot(assign(2, A), local, None, NOW).status)
    assert status_changed(None, now) and status_changed(now, None)
    assert not status_changed(None, None)


def test_a_refreshed_url_is_a_new_assignment() -> None:
    assert assignment_key(assign(2, B)) != assignment_key(assign(2, B, url="http://other"))
    assert assignment_key(assign(2, B)) == assignment_key(assign(2, B))


def test_status_reports_the_backend_the_active_artifact_runs_on() -> None:
    assignment = assign(1, A).model_copy(update={"runtime": OPENVINO})
    status = plan_slot(assignment, LocalSlot(current=ACTIVE_A_OPENVINO), None, NOW).status
    assert status is not None and status.phase == "Healthy" and status.runtime == ON_OPENVINO
