"""`modelfleet demo` (what `make demo` runs) tells its story, ends DEMO OK, leaves nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.processes import processes_mentioning

pytestmark = pytest.mark.paddle


def test_demo_converts_rolls_out_and_rolls_back(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("modelfleet")), "demo", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    last = [line for line in result.stdout.splitlines() if line.strip()][-1]
    assert last.startswith("DEMO OK"), last
    assert "ProbeFailed" in output
    assert "phase=RolledBack" in output
    assert processes_mentioning(str(workdir)) == []
