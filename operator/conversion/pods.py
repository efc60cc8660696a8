"""The worker's own words about a failed Job: the termination message of its last Pod.

A worker that fails writes one JSON line (modelfleet.reports `termination_line`) to its
termination log; the kubelet puts it in the Pod's
`status.containerStatuses[].state.terminated.message`. The Job's Failed condition only says
"exit code 11 matching FailJob rule", so the operator reads the Pod for what went wrong
(`inputs[0].name 'image' is not an input of the model`). Pods carry the Job template's labels
(CONVERSION_LABEL among them) and the Job controller's `batch.kubernetes.io/job-name`, so one
list per pass finds every Job's Pods. The dev job runner (modelfleet.dev.jobrunner) creates
the same Pods with the same status, so this code is the same in both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from modelfleet.reports import read_termination_failure

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def _terminated(pod: Mapping[str, Any], container: str) -> Mapping[str, Any] | None:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == container:
            found: Mapping[str, Any] | None = (status.get("state") or {}).get("terminated")
            return found
    return None


def worker_failure(
    pods: Iterable[Mapping[str, Any]], job: str, container: str
) -> tuple[str, str] | None:
    """(reason, message) from the termination message of the newest terminated Pod of `job`;
    None when it holds no worker failure line (killed at the deadline, OOM-killed, gone): the
    Job's own condition then says why, not an earlier attempt."""
    ended = [
        terminated
        for pod in pods
        if ((pod.get("metadata") or {}).get("labels") or {}).get(JOB_NAME_LABEL) == job
        and (terminated := _terminated(pod, container)) is not None
    ]
    if not ended:
        return None
    newest = max(ended, key=lambda terminated: str(terminated.get("finishedAt") or ""))
    return read_termination_failure(str(newest.get("message") or ""))
