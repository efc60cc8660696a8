"""The worker's own reason and message, read back from a failed Job's Pod."""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.operator.conversion.pods import JOB_NAME_LABEL, worker_failure
from modelfleet.reports import read_termination_failure, termination_line

FAILURE = {
    "ok": False,
    "stage": "validate",
    "reason": "InvalidModel",
    "exitCode": 11,
    "message": "inputs[0].name 'image' is not an input of the model (model inputs: x)",
}


def make_pod(job: str, message: str, finished: str, container: str = "worker") -> dict[str, Any]:
    terminated = {"exitCode": 11, "message": message, "finishedAt": finished}
    return {
        "metadata": {"labels": {JOB_NAME_LABEL: job}},
        "status": {"containerStatuses": [{"name": container, "state": {"terminated": terminated}}]},
    }


def test_a_failure_line_reads_back_as_reason_and_message() -> None:
    assert read_termination_failure(termination_line(FAILURE) + "\n") == (
        "InvalidModel",
        FAILURE["message"],
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        termination_line({"ok": True, "stage": "validate"}),
        "Traceback (most recent call last):\n  File ...\nMemoryError",
        '{"ok": false, "message": "no reason"}',
    ],
    ids=["empty", "success", "log tail", "no reason"],
)
def test_anything_else_is_no_worker_failure(text: str) -> None:
    assert read_termination_failure(text) is None


def test_the_newest_pod_of_the_job_speaks() -> None:
    older = make_pod("j", termination_line({**FAILURE, "message": "older"}), "2026-01-01T00:00:00Z")
    newer = make_pod("j", termination_line(FAILURE), "2026-01-01T00:01:00Z")
    other = make_pod("k", termination_line({**FAILURE, "message": "k"}), "2026-01-01T00:02:00Z")
    assert worker_failure([older, newer, other], "j", "worker") == (
        "InvalidModel",
        FAILURE["message"],
    )


def test_a_killed_last_attempt_does_not_borrow_an_earlier_reason() -> None:
    earlier = make_pod("j", termination_line(FAILURE), "2026-01-01T00:00:00Z")
    killed = make_pod("j", "", "2026-01-01T00:01:00Z")
    assert worker_failure([earlier, killed], "j", "worker") is None
    assert worker_failure([], "j", "worker") is None
    assert (
        worker_failure([make_pod("j", termination_line(FAILURE), "t", "sidecar")], "j", "worker")
        is None
    )
