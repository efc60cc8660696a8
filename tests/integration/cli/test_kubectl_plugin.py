"""`kubectl modelfleet ...` works as a kubectl plugin (kubectl finds kubectl-modelfleet on PATH)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from modelfleet.dev.servers import ApiServer

BIN = Path(sys.executable).parent


def test_kubectl_runs_modelfleet_as_a_plugin(kube_apiserver: ApiServer, tmp_path: Path) -> None:
    env = {**kube_apiserver.env(), "HOME": str(tmp_path), "PATH": f"{BIN}:/usr/bin:/bin"}
    plugins = subprocess.run(
        [str(BIN / "kubectl"), "plugin", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert str(BIN / "kubectl-modelfleet") in plugins.stdout
    status = subprocess.run(
        [
            str(BIN / "kubectl"),
            "modelfleet",
            "status",
            "--kubeconfig",
            str(kube_apiserver.kubeconfig),
        ],
        env={**env, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    assert "ModelConversions" in status.stdout and "EdgeDeployments" in status.stdout
