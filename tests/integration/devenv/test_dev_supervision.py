"""`modelfleet dev up` supervises what it starts: MinIO and the operator killed with SIGKILL
come back on the same endpoints, each restart is logged, and `modelfleet dev status` (another
process, reading the state dir and the process table) shows the restart and the last exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from modelfleet.dev.commands import read_env_file
from support.processes import processes_mentioning

pytestmark = pytest.mark.integration

MODELFLEET = str(Path(sys.executable).with_name("modelfleet"))
COMPONENTS = {
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "minio",
    "job-runner",
    "operator",
}


def _eventually(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _status(run_dir: Path) -> dict[str, dict[str, Any]]:
    done = subprocess.run(
        [MODELFLEET, "dev", "status", "--run-dir", str(run_dir), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {row["name"]: row for row in json.loads(done.stdout)}


def _liveness_url(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return argv[argv.index(b"--liveness") + 1].decode()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _restart_logs(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and "component exited; restarting" in line:
            lines.append(json.loads(line))
    return lines


def test_dev_up_restarts_killed_components_and_dev_status_shows_it(tmp_path: Path) -> None:
    env_file, run_dir, log = tmp_path / "dev.env", tmp_path / "run", tmp_path / "up.log"
    with log.open("wb") as output:
        up = subprocess.Popen(
            [MODELFLEET, "dev", "up", "--env-file", str(env_file), "--run-dir", str(run_dir)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _eventually(lambda: env_file.exists() or up.poll() is not None, "dev up", timeout=180)
        assert up.poll() is None, log.read_text()
        values = read_env_file(env_file)
        before = _status(run_dir)
        assert set(before) == COMPONENTS
        assert {row["state"] for row in before.values()} == {"running"}
        assert {row["restarts"] for row in before.values()} == {0}
        liveness = _liveness_url(before["operator"]["pid"])

        for name in ("minio", "operator"):
            os.kill(before[name]["pid"], signal.SIGKILL)

        def restarted() -> dict[str, dict[str, Any]] | None:
            now = _status(run_dir)
            back = all(
                now[n]["state"] == "running" and now[n]["restarts"] == 1
                for n in ("minio", "operator")
            )
            return now if back else None

        after = _eventually(restarted, "minio and the operator to come back")
        for name in ("minio", "operator"):
            assert after[name]["pid"] != before[name]["pid"]
            assert after[name]["lastExit"].startswith("SIGKILL at ")
        assert {after[n]["restarts"] for n in COMPONENTS - {"minio", "operator"}} == {0}

        s3 = Minio(
            values["MODELFLEET_S3_ENDPOINT"].removeprefix("http://"),
            values["MODELFLEET_S3_ACCESS_KEY"],
            values["MODELFLEET_S3_SECRET_KEY"],
            secure=False,
        )
        _eventually(lambda: s3.bucket_exists(values["MODELFLEET_S3_BUCKET"]), "MinIO serving")
        _eventually(lambda: _answers(liveness), "the operator's liveness endpoint")

        logged = {entry["component"]: entry for entry in _restart_logs(log)}
        for name in ("minio", "operator"):
            assert logged[name]["exit_code"] == -signal.SIGKILL
            assert logged[name]["attempt"] == 1 and logged[name]["next_delay"] == 1.0

        down = subprocess.run(
            [MODELFLEET, "dev", "down", "--env-file", str(env_file)],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert down.returncode == 0, down.stdout + down.stderr
        assert up.wait(timeout=30) == 0
        assert {row["state"] for row in _status(run_dir).values()} == {"stopped"}
        assert processes_mentioning(str(run_dir)) == []
    finally:
        if up.poll() is None:
            up.kill()
