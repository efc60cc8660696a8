"""`modelfleet convert` / `modelfleet validate` at a terminal (click commands, real models)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from modelfleet.artifacts import Manifest
from modelfleet.comparison import effective_rule
from modelfleet.dev.samples import SampleModel
from modelfleet.reasons import EXIT_CODES
from modelfleet.reports import Report, read_probe
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
    failed_report, probe = tmp_path / "failed.json", tmp_path / "probe.npz"
    failed = runner.invoke(
        validate_command,
        ["--reference", str(mlp.model_dir), "--candidate", str(broken), "--samples", "3",
         "--no-benchmark", "--report", str(failed_report), "--probe", str(probe)],
    )  # fmt: skip
    assert failed.exit_code == EXIT_CODES["ToleranceExceeded"], failed.output
    assert "FAIL" in failed.output
    written = Report.model_validate_json(failed_report.read_text())  # as a Job writes it
    assert written.passed is False and written.failure is not None
    assert written.failure.reason == "ToleranceExceeded"
    assert written.failure.exit_code == EXIT_CODES["ToleranceExceeded"]
    assert written.validation is not None and not written.validation.outputs[0]
    arrays, meta = read_probe(probe)
    assert meta["format"] == "onnx" and meta["tolerance"]["atol"] == 1e-5 and meta["semantics"]
    assert arrays["input:features"].shape[0] == meta["samples"] == 3


def test_convert_reports_unsupported_operator(unconvertible: SampleModel, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        convert_command,
        [str(unconvertible.model_dir), "--to", "onnx", "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == EXIT_CODES["UnsupportedOperator"]
    assert "cumprod" in result.output
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_int8_calibrates_and_validates_on_local_datasets(mlp: SampleModel, tmp_path: Path) -> None:
    rows = tmp_path / "rows.npz"
    np.savez(rows, features=np.random.default_rng(0).uniform(-1, 1, (12, 16)).astype(np.float32))
    runner, out = CliRunner(), tmp_path / "int8"
    converted = runner.invoke(
        convert_command,
        [str(mlp.model_dir), "--to", "onnx-int8", "--out", str(out), "--calibration", str(rows)],
    )
    assert converted.exit_code == 0, converted.output
    quantization = Manifest.model_validate_json((out / "manifest.json").read_text()).quantization
    assert quantization is not None and quantization.mode == "static"
    assert quantization.calibration == "dataset" and quantization.calibration_uri == str(rows)
    assert quantization.samples == 12  # one sample per row at batch size 1

    report = tmp_path / "report.json"
    validated = runner.invoke(
        validate_command,
        ["--reference", str(mlp.model_dir), "--candidate", str(out / "model.onnx"),
         "--dataset", str(rows), "--samples", "5", "--no-benchmark", "--report", str(report)],
    )  # fmt: skip
    assert validated.exit_code == 0, validated.output
    section = Report.model_validate_json(report.read_text()).validation
    assert section is not None and section.data == "dataset" and section.samples == 5
    assert section.dataset_uri == str(rows)
    # int8's defaults: the format comes from the manifest
    assert section.tolerance == effective_rule("onnx-int8", None)
    assert section.outputs[0].top1_agreement is not None


def test_failure_is_one_line_on_a_narrow_terminal(mlp: SampleModel, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    assert CliRunner().invoke(
        convert_command, [str(mlp.model_dir), "--to", "onnx", "--out", str(tmp_path)]
    ).exit_code == 0  # fmt: skip
    result = CliRunner().invoke(
        validate_command,
        ["--reference", str(mlp.model_dir), "--candidate", str(model),
         "--inputs", "an_input_name_long_enough_to_wrap_an_eighty_column_line:1x16"],
    )  # fmt: skip
    assert result.exit_code == EXIT_CODES["InvalidModel"]
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("InvalidModel: inputs[0].name"), lines
    assert lines[0].endswith("(model inputs: features)")
