"""Injecting faults into the real processes of a test: pausing a server (SIGSTOP/SIGCONT, what
a GC pause, a hung disk or a partitioned node looks like to its clients), freezing a component
at an exact point before killing it, and finding the servers' processes by their flags."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client

from modelfleet.dev.jobrunner import JobRunner
from modelfleet.dev.processes import ManagedProcess
from modelfleet.dev.servers import ApiServer, S3Server
from support.processes import pid_of

TESTS_DIR = Path(__file__).resolve().parent.parent


def apiserver_pid(apiserver: ApiServer) -> int:
    return pid_of("kube-apiserver", f"--secure-port={urlsplit(apiserver.url).port}")


def minio_pid(s3: S3Server) -> int:
    return pid_of("minio", f"--address=127.0.0.1:{urlsplit(s3.endpoint).port}")


def is_stopped(pid: int) -> bool:
    """Whether the process is stopped by a signal (state T in /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """SIGSTOP the process for the block; SIGCONT whatever happens in it."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def freeze(process: ManagedProcess) -> None:
    """Stop the process where it is (its last action is the last one it takes)."""
    os.killpg(process.pid, signal.SIGSTOP)


@dataclass(frozen=True)
class Breakpoint:
    """Where a component started through support/breakpoints.py stops itself: the function
    (`module:qualname`), before or `after` the call, on the first call where `when` holds."""

    at: str
    after: bool = False
    when: str | None = None

    def argv(self, module: str) -> list[str]:
        """`python -m support.breakpoints ... -- module`; append the module's arguments."""
        argv = [sys.executable, "-m", "support.breakpoints", "--at", self.at]
        if self.after:
            argv.append("--after")
        if self.when:
            argv += ["--when", self.when]
        return [*argv, "--", module]

    @staticmethod
    def env(env: dict[str, str]) -> dict[str, str]:
        """`env` with the tests folder importable, for the launcher."""
        path = env.get("PYTHONPATH")
        return {**env, "PYTHONPATH": f"{TESTS_DIR}{os.pathsep}{path}" if path else str(TESTS_DIR)}


def wait_stopped(process: ManagedProcess, *, timeout: float = 60.0, what: str = "") -> None:
    """Until `process` stopped itself at its breakpoint; fails if it exits or never gets there."""
    process.wait_until(
        lambda: is_stopped(process.pid), timeout=timeout, what=f"stopped at {what or 'its point'}"
    )


def poll(what: str, check: Callable[[], object], *, timeout: float = 60.0) -> object:
    """Until `check` returns something truthy (every 50 ms: kill points need to be quick)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class GatedJobRunner(JobRunner):
    """The dev job runner with two handles for tests: while `hold` is set it starts no Job
    (the world stops at "Job created, not running yet"), and `stop_at` makes the next worker
    it starts run under a breakpoint (a worker stopped right before its upload)."""

    def __init__(self, api: client.ApiClient, log_dir: Path) -> None:
        super().__init__(api=api, log_dir=log_dir)
        self.hold = threading.Event()
        self.stop_at: Breakpoint | None = None

    def _maybe_start(self, key: tuple[str, str], job: Any) -> None:
        if self.hold.is_set():
            return
        stop_at = self.stop_at
        if stop_at is not None:  # the listed copy only: the Job in the API is unchanged
            container = job.spec.template.spec.containers[0]
            script, *step = container.command
            assert script == "modelfleet-worker", container.command
            container.command = [*stop_at.argv("modelfleet.workers.cli:main"), *step]
            path = client.V1EnvVar(name="PYTHONPATH", value=str(TESTS_DIR))
            container.env = [*(container.env or []), path]
        super()._maybe_start(key, job)
        if stop_at is not None and key in self._attempts:
            self.stop_at = None

    def worker(self, job: str) -> int | None:
        """The pid of the worker running `job` now, if any."""
        attempt = next((a for (_, name), a in list(self._attempts.items()) if name == job), None)
        return attempt.process.pid if attempt else None


@contextmanager
def running(runner: JobRunner) -> Iterator[JobRunner]:
    """The runner on its own thread for the block (as modelfleet.dev.components does)."""
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), name="job-runner", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        stop.set()
        thread.join(timeout=30)
