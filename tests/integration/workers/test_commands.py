"""`modelfleet convert` / `modelfleet validate` at a terminal (click commands, real models)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

from modelfleet.artifacts import Manifest
from modelfleet.dev.samples import SampleModel
from modelfleet.reasons import EXIT_CODES
from modelfleet.workers.commands import convert_command, validate_command

pytestmark = pytest.mark.paddle


def test_convert_then_validate(mlp: SampleModel, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    converted = runner.invoke(
        convert_command, [str(mlp.model_dir), "--to", "onnx", "--out", str(out)]
    )
    assert converted.exit_code == 0, converted.output
    manifest = Manifest.model_validate_json((out / "manifest.json").read_text())
    assert manifest.format == "onnx" and manifest.inputs[0].name == "features"
    assert manifest.size_bytes == (out / "model.onnx").stat().st_size

    report = tmp_path / "report.json"
    validated = runner.invoke(
        validate_command,
        ["--reference", str(mlp.model_dir), "--candidate", str(out / "model.onnx"),
         "--samples", "3", "--iterations", "3", "--warmup", "1", "--report", str(report)],
    )  # fmt: skip
    assert validated.exit_code == 0, validated.output
    assert "PASSED" in validated.output and "speedup" in validated.output
    data = json.loads(report.read_text())
    assert data["passed"] is True and data["validation"]["outputs"][0]["maxAbs"] <= 1e-5

    model = onnx.load(str(out / "model.onnx"))
    for node in model.graph.node:
        if node.op_type == "Relu":
            node.op_type = "Abs"  # a plausible-looking but wrong conversion
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    failed = runner.invoke(
        validate_command,
        ["--reference", str(mlp.model_dir), "--candidate", str(broken), "--samples", "3",
         "--no-benchmark"],
    )  # fmt: skip
    assert failed.exit_code == EXIT_CODES["ToleranceExceeded"], failed.output
    assert "FAIL" in failed.output


def test_convert_reports_unsupported_operator(unconvertible: SampleModel, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        convert_command,
        [str(unconvertible.model_dir), "--to", "onnx", "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == EXIT_CODES["UnsupportedOperator"]
    assert "cumprod" in result.output
    assert not (tmp_path / "o" / "manifest.json").exists()
