"""`modelfleet dev up` really starts the servers and `modelfleet dev down` leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client
from minio import Minio

from modelfleet.dev.commands import read_env_file
from modelfleet.kube import api_client
from support.processes import processes_mentioning

pytestmark = pytest.mark.integration

MODELFLEET = str(Path(sys.executable).with_name("modelfleet"))


def _wait_for(path: Path, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"dev up exited early with {process.returncode}"
        assert time.monotonic() < deadline, "dev up did not write its env file"
        time.sleep(0.3)


def test_dev_up_serves_kubernetes_and_s3_then_down_stops_everything(tmp_path: Path) -> None:
    env_file, run_dir = tmp_path / "dev.env", tmp_path / "run"
    up = subprocess.Popen(
        [MODELFLEET, "dev", "up", "--env-file", str(env_file), "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(env_file, up)
        values = read_env_file(env_file)
        assert set(values) >= {
            "KUBECONFIG",
            "MODELFLEET_S3_ENDPOINT",
            "MODELFLEET_S3_ACCESS_KEY",
            "MODELFLEET_S3_SECRET_KEY",
            "MODELFLEET_S3_BUCKET",
        }
        with api_client(values["KUBECONFIG"]) as api:
            crds = client.ApiextensionsV1Api(api).list_custom_resource_definition()
            names = {crd.metadata.name for crd in crds.items}
            assert {"modelconversions.modelfleet.io", "edgedevices.modelfleet.io"} <= names
        endpoint = values["MODELFLEET_S3_ENDPOINT"].removeprefix("http://")
        s3 = Minio(
            endpoint,
            values["MODELFLEET_S3_ACCESS_KEY"],
            values["MODELFLEET_S3_SECRET_KEY"],
            secure=False,
        )
        assert s3.bucket_exists(values["MODELFLEET_S3_BUCKET"])
        assert len(processes_mentioning(str(run_dir))) >= 4
        logs = {p.name for p in (run_dir / "logs").iterdir()}
        assert {"etcd.log", "kube-apiserver.log", "minio.log", "operator.log"} <= logs
        assert (run_dir / "logs" / "kube-apiserver.log").stat().st_size > 0

        down = subprocess.run(
            [MODELFLEET, "dev", "down", "--env-file", str(env_file)],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert down.returncode == 0, down.stdout + down.stderr
        assert up.wait(timeout=30) == 0
        assert processes_mentioning(str(run_dir)) == []
        assert not env_file.exists()
    finally:
        if up.poll() is None:
            up.kill()


def test_dev_down_without_a_running_environment_explains(tmp_path: Path) -> None:
    result = subprocess.run(
        [MODELFLEET, "dev", "down", "--env-file", str(tmp_path / "missing.env")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "missing.env" in result.stderr
    assert "dev up" in result.stderr
