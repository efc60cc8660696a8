"""The ModelFleet side of the dev environment: the job runner thread, the operator process and
the storage Secret that Jobs read their credentials from."""

from __future__ import annotations

import os
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.dev.jobrunner import JobRunner
from modelfleet.dev.ports import free_port
from modelfleet.dev.processes import ManagedProcess
from modelfleet.dev.servers import S3Server
from modelfleet.dev.supervision import SupervisedThread, Supervisor

STORAGE_SECRET = "modelfleet-storage"


def ensure_storage_secret(api: client.ApiClient, namespace: str, s3: S3Server) -> None:
    """The Secret (keys accessKey, secretKey) that conversion Jobs read via secretKeyRef."""
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=STORAGE_SECRET, namespace=namespace),
        string_data={"accessKey": s3.access_key, "secretKey": s3.secret_key},
    )
    core = client.CoreV1Api(api)
    try:
        core.create_namespaced_secret(namespace, body)
    except ApiException as err:
        if err.status != 409:
            raise
        core.replace_namespaced_secret(STORAGE_SECRET, namespace, body)


@contextmanager
def run_job_runner(
    api: client.ApiClient, log_dir: Path, supervisor: Supervisor | None = None
) -> Iterator[JobRunner]:
    runner = JobRunner(api=api, log_dir=log_dir)
    stop = threading.Event()
    thread = SupervisedThread("job-runner", lambda: runner.run(stop))
    if supervisor is not None:
        supervisor.watch(thread)
    try:
        yield runner
    finally:
        stop.set()
        thread.join(timeout=30)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_operator(run_dir: Path, env: dict[str, str], *, name: str = "operator") -> ManagedProcess:
    """`modelfleet operator run` as a child process, returned once its liveness probe answers."""
    port = free_port()
    executable = str(Path(sys.executable).with_name("modelfleet"))
    process_env = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "PATH", "TMPDIR")}
    metrics_port = {"MODELFLEET_METRICS_PORT": str(free_port())}
    process = ManagedProcess(
        name,
        [executable, "operator", "run", "--liveness", f"http://127.0.0.1:{port}/healthz"],
        log_path=run_dir / "logs" / f"{name}.log",
        env={**process_env, **metrics_port, **env},
    )
    process.wait_until(
        lambda: _healthy(f"http://127.0.0.1:{port}/healthz"), timeout=60, what="live"
    )
    return process


@contextmanager
def run_operator(
    run_dir: Path, env: dict[str, str], supervisor: Supervisor | None = None
) -> Iterator[ManagedProcess]:
    process = start_operator(run_dir, env)
    if supervisor is not None:
        supervisor.watch(process)
    try:
        yield process
    finally:
        process.stop()
