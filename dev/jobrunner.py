"""The dev environment's stand-in for the Job controller and a kubelet.

Without a kubelet nothing runs Pods, so this runner watches batch/v1 Jobs and runs each Job's
container command as a local process with the Job's env (secretKeyRef/configMapKeyRef resolved
from the API), honours activeDeadlineSeconds, backoffLimit and podFailurePolicy, and writes
Job status (startTime, active/succeeded/failed, conditions, completionTime) as the Job
controller does. The image is ignored: the command runs from this Python environment.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.backoff import Backoff
from modelfleet.dev.joboutcomes import Outcome, attempt_outcome
from modelfleet.errors import describe
from modelfleet.logs import get_logger

log = get_logger(__name__)
POD_BACKOFF = Backoff(initial=1.0, max=32.0)
"""Before the next pod of a retried Job: 1 s after an ignored failure, then 2 s after the first
counted one, doubling to 32 s (the Job controller waits 10 s doubling to 6 min: a dev loop
wants its retries sooner)."""
_PASSED_ENV = ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
_LOG_FALLBACK_LINES, _LOG_FALLBACK_BYTES = 80, 2048
"""What the kubelet takes from the log's tail for FallbackToLogsOnError."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _timestamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _finished(job: Any) -> bool:
    conditions = (job.status.conditions if job.status else None) or []
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in conditions)


@dataclass
class Attempt:
    """One running process for one Job; `failed` counts this Job's failed attempts so far."""

    process: subprocess.Popen[bytes]
    started: dt.datetime
    failed: int
    pod_name: str
    log_path: Path
    termination_path: Path


@dataclass
class JobRunner:
    api: client.ApiClient
    log_dir: Path
    max_parallel: int = 2
    poll_interval_s: float = 0.5
    _attempts: dict[tuple[str, str], Attempt] = field(default_factory=dict)
    _failures: dict[tuple[str, str], int] = field(default_factory=dict)
    _retry_at: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def _batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    def run(self, stop: threading.Event) -> None:
        log.info("job runner started", log_dir=str(self.log_dir))
        try:
            while not stop.is_set():
                try:
                    self.reconcile_once()
                except (ApiException, OSError) as err:
                    log.warning("job runner pass failed", error=describe(err))
                stop.wait(self.poll_interval_s)
        finally:
            for attempt in self._attempts.values():
                self._kill(attempt)

    def reconcile_once(self) -> None:
        jobs = {
            (j.metadata.namespace, j.metadata.name): j
            for j in self._batch.list_job_for_all_namespaces().items
        }
        for key in list(self._attempts):
            if key not in jobs or jobs[key].metadata.deletion_timestamp:
                self._kill(self._attempts.pop(key))
        for key, job in jobs.items():
            if key in self._attempts:
                self._check_running(key, job)
            elif (
                not _finished(job) and not job.spec.suspend and not job.metadata.deletion_timestamp
            ):
                self._maybe_start(key, job)

    def _maybe_start(self, key: tuple[str, str], job: Any) -> None:
        if len(self._attempts) >= self.max_parallel or time.monotonic() < self._retry_at.get(
            key, 0
        ):
            return
        started = job.status.start_time if job.status and job.status.start_time else _now()
        if self._deadline_passed(job, started):
            self._finish(
                key, job, Outcome("Failed", "DeadlineExceeded", _DEADLINE_MESSAGE), started
            )
            return
        container = job.spec.template.spec.containers[0]
        failed = self._failures.get(key, (job.status.failed or 0) if job.status else 0)
        pod_name = f"{job.metadata.name}-{secrets.token_hex(3)}"
        log_path = self.log_dir / f"{key[0]}_{job.metadata.name}_{failed}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        termination_path = log_path.with_suffix(".termination")
        termination_path.write_bytes(b"")
        argv = [
            *(container.command or []),
            *(container.args or []),
            "--termination-log",
            str(termination_path),
        ]
        self._create_pod(job, pod_name, started)
        with log_path.open("wb") as output:
            process = subprocess.Popen(
                argv,
                env=self._environment(key[0], container),
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=container.working_dir or None,
                start_new_session=True,
            )
        self._attempts[key] = Attempt(
            process, started, failed, pod_name, log_path, termination_path
        )
        self._patch_status(
            job, {"startTime": _timestamp(started), "active": 1, "ready": 1, "failed": failed}
        )
        log.info("job started", namespace=key[0], job=key[1], attempt=failed, pid=process.pid)

    def _check_running(self, key: tuple[str, str], job: Any) -> None:
        attempt = self._attempts[key]
        if self._deadline_passed(job, attempt.started):
            # The Job controller checks the deadline before counting succeeded pods, so a pod
            # that exits after the deadline but before the next sync still fails the Job.
            self._kill(self._attempts.pop(key))
            self._pod_terminated(job, attempt, job.spec.template.spec.containers[0], 137)
            self._finish(
                key,
                job,
                Outcome("Failed", "DeadlineExceeded", _DEADLINE_MESSAGE),
                attempt.started,
                failed=attempt.failed + 1,
            )
            return
        exit_code = attempt.process.poll()
        if exit_code is None:
            return
        del self._attempts[key]
        container = job.spec.template.spec.containers[0]
        self._pod_terminated(job, attempt, container, exit_code)
        outcome = attempt_outcome(
            exit_code=exit_code,
            failed_so_far=attempt.failed,
            backoff_limit=job.spec.backoff_limit if job.spec.backoff_limit is not None else 6,
            pod_failure_policy=self.api.sanitize_for_serialization(job.spec.pod_failure_policy),
            container=container.name,
            pod_name=f"{key[0]}/{attempt.pod_name}",
        )
        failed = attempt.failed + (1 if outcome.counts_as_failure else 0)
        log.info(
            "job attempt exited",
            namespace=key[0],
            job=key[1],
            exit_code=exit_code,
            verdict=outcome.verdict,
        )
        if outcome.verdict == "Retry":
            self._failures[key] = failed
            self._retry_at[key] = time.monotonic() + POD_BACKOFF.delay(failed + 1)
            self._patch_status(job, {"active": 0, "ready": 0, "failed": failed})
            return
        self._finish(
            key,
            job,
            outcome,
            attempt.started,
            failed=failed,
            succeeded=int(outcome.verdict == "Complete"),
        )

    def _finish(
        self,
        key: tuple[str, str],
        job: Any,
        outcome: Outcome,
        started: dt.datetime,
        *,
        failed: int = 0,
        succeeded: int = 0,
    ) -> None:
        now = _timestamp(_now())
        interim = "SuccessCriteriaMet" if outcome.verdict == "Complete" else "FailureTarget"
        conditions = [
            {
                "type": kind,
                "status": "True",
                "reason": outcome.reason,
                "message": outcome.message,
                "lastProbeTime": now,
                "lastTransitionTime": now,
            }
            for kind in (interim, outcome.verdict)
        ]
        status: dict[str, Any] = {
            "startTime": _timestamp(started),
            "active": 0,
            "ready": 0,
            "failed": failed,
            "succeeded": succeeded,
            "conditions": conditions,
        }
        if outcome.verdict == "Complete":
            status["completionTime"] = now
        self._patch_status(job, status)
        self._failures.pop(key, None)
        self._retry_at.pop(key, None)
        log.info(
            "job finished",
            namespace=key[0],
            job=key[1],
            verdict=outcome.verdict,
            reason=outcome.reason,
        )

    def _create_pod(self, job: Any, name: str, started: dt.datetime) -> None:
        """The attempt's Pod, as the Job controller creates it; Running, as the kubelet says."""
        template = self.api.sanitize_for_serialization(job.spec.template)
        labels = {
            **(template.get("metadata") or {}).get("labels", {}),
            JOB_NAME_LABEL: job.metadata.name,
        }
        owner = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": job.metadata.name,
            "uid": job.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        body = {
            "metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
            "spec": template["spec"],
        }
        core = client.CoreV1Api(self.api)
        core.create_namespaced_pod(job.metadata.namespace, body)
        container = template["spec"]["containers"][0]["name"]
        running = {"running": {"startedAt": _timestamp(started)}}
        status: dict[str, Any] = {
            "phase": "Running",
            "startTime": _timestamp(started),
            "containerStatuses": [_container_status(container, running, job)],
        }
        core.patch_namespaced_pod_status(name, job.metadata.namespace, {"status": status})

    def _pod_terminated(self, job: Any, attempt: Attempt, container: Any, exit_code: int) -> None:
        """The kubelet's last word on the attempt: exit code, times and termination message."""
        message = attempt.termination_path.read_text(errors="replace").strip()
        if (
            not message
            and exit_code != 0
            and container.termination_message_policy == ("FallbackToLogsOnError")
        ):
            message = _log_tail(attempt.log_path)
        terminated = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "message": message,
            "startedAt": _timestamp(attempt.started),
            "finishedAt": _timestamp(_now()),
        }
        status = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [
                _container_status(container.name, {"terminated": terminated}, job)
            ],
        }
        try:
            client.CoreV1Api(self.api).patch_namespaced_pod_status(
                attempt.pod_name, job.metadata.namespace, {"status": status}
            )
        except ApiException as err:  # never lose the attempt's outcome over its Pod
            log.warning("pod status not written", pod=attempt.pod_name, error=describe(err))

    def _patch_status(self, job: Any, status: dict[str, Any]) -> None:
        self._batch.patch_namespaced_job_status(
            job.metadata.name, job.metadata.namespace, {"status": status}
        )

    @staticmethod
    def _deadline_passed(job: Any, started: dt.datetime) -> bool:
        deadline = job.spec.active_deadline_seconds
        return deadline is not None and (_now() - started).total_seconds() > deadline

    @staticmethod
    def _kill(attempt: Attempt) -> None:
        if attempt.process.poll() is None:
            os.killpg(attempt.process.pid, signal.SIGKILL)
            attempt.process.wait()

    def _environment(self, namespace: str, container: Any) -> dict[str, str]:
        """Only what a container would see: the Job's env on top of a minimal base."""
        bin_dir = str(Path(sys.executable).parent)
        env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
        env["PATH"] = f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"
        for var in container.env or []:
            env[var.name] = self._value_of(namespace, var)
        return env

    def _value_of(self, namespace: str, var: Any) -> str:
        if var.value_from is None:
            return str(var.value or "")
        core = client.CoreV1Api(self.api)
        if var.value_from.secret_key_ref is not None:
            ref = var.value_from.secret_key_ref
            secret = core.read_namespaced_secret(ref.name, namespace)
            return base64.b64decode((secret.data or {})[ref.key]).decode()
        if var.value_from.config_map_key_ref is not None:
            ref = var.value_from.config_map_key_ref
            return str((core.read_namespaced_config_map(ref.name, namespace).data or {})[ref.key])
        raise ValueError(
            f"env {var.name}: only value, secretKeyRef and configMapKeyRef are supported"
        )


_DEADLINE_MESSAGE = "Job was active longer than specified deadline"


def _container_status(name: str, state: dict[str, Any], job: Any) -> dict[str, Any]:
    image = job.spec.template.spec.containers[0].image
    ready = "running" in state
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": ready,
        "restartCount": 0,
        "state": state,
    }


def _log_tail(path: Path) -> str:
    lines = path.read_bytes()[-_LOG_FALLBACK_BYTES:].decode(errors="replace").splitlines()
    return "\n".join(lines[-_LOG_FALLBACK_LINES:])
