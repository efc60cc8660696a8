"""Conversion never pip-installs anything (paddle2onnx's Polygraphy optimizer would)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelfleet.dev.samples import SampleModel
from modelfleet.workers.convert import paddle_to_onnx
from modelfleet.workers.sources import locate_source

pytestmark = pytest.mark.paddle


@pytest.fixture
def pip_trap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `pip` package first on PYTHONPATH: `python -m pip ...` records its arguments and fails."""
    marker = tmp_path / "pip-called"
    package = tmp_path / "trap" / "pip"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        textwrap.dedent(
            f"""
            import sys
            with open({str(marker)!r}, "a") as f:
                f.write(" ".join(sys.argv[1:]) + "\\n")
            sys.exit(3)
            """
        )
    )
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(filter(None, [str(package.parent), os.environ.get("PYTHONPATH")])),
    )
    return marker


def test_the_trap_catches_polygraphys_autoinstall(
    mlp: SampleModel, pip_trap: Path, tmp_path: Path
) -> None:
    """Control: paddle2onnx's default optimizer does try to pip-install (and the trap sees it).

    Polygraphy installs only what is missing (onnx_graphsurgeon here): once something has
    installed it into this environment, the control has nothing left to show.
    """
    if importlib.util.find_spec("onnx_graphsurgeon") is not None:
        pytest.skip("onnx_graphsurgeon is installed: an earlier run's autoinstall left it here")
    script = (
        "import paddle2onnx, sys; "
        "paddle2onnx.export(sys.argv[1], sys.argv[2], sys.argv[3], opset_version=17)"
    )
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(mlp.model_file),
            str(mlp.params_file),
            str(tmp_path / "p.onnx"),
        ],
        capture_output=True,
        check=False,
        timeout=300,
    )
    assert pip_trap.exists(), "paddle2onnx no longer tries to install; the trap proves nothing"
    assert "install" in pip_trap.read_text()


def test_worker_conversion_installs_nothing(
    mlp: SampleModel, pip_trap: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model.onnx"
    paddle_to_onnx(locate_source(mlp.model_dir), out, opset=17, log_path=tmp_path / "p2o.log")
    assert out.stat().st_size > 0
    assert not pip_trap.exists(), pip_trap.read_text()
