"""The diverging layer reaches the user: a conversion with an injected fault (one weight of the
first conv nudged by 5% of its range) fails validation in `modelfleet validate` and in the
validate Job, and both name that conv: the CLI's one `ToleranceExceeded:` line, the report's
`validation.divergence` and failure message (which the operator puts into the condition)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from zoo.faults import nudge_weight

from modelfleet.api.conversion import Target
from modelfleet.artifacts import Manifest
from modelfleet.dev.samples import SampleModel
from modelfleet.jobrequests import ConvertRequest, ValidateRequest
from modelfleet.reasons import EXIT_CODES
from modelfleet.reports import Report
from modelfleet.storage import Storage
from modelfleet.workers.commands import convert_command, validate_command
from modelfleet.workers.errors import ToleranceExceeded
from modelfleet.workers.jobs import run_convert, run_validate
from modelfleet.workers.sources import file_sha256

pytestmark = pytest.mark.paddle

FIRST_CONV = "pd_op.conv2d #0"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _nudged(model_path: Path, out: Path) -> Path:
    broken, _ = nudge_weight(onnx.load(str(model_path)))
    onnx.save(broken, str(out))
    return out


def test_cli_validate_names_the_nudged_conv_in_one_line(cnn: SampleModel, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    converted = runner.invoke(
        convert_command, [str(cnn.model_dir), "--to", "onnx", "--out", str(out)]
    )
    assert converted.exit_code == 0, converted.output
    broken = _nudged(out / "model.onnx", tmp_path / "broken.onnx")
    report_path = tmp_path / "report.json"
    failed = runner.invoke(
        validate_command,
        ["--reference", str(cnn.model_dir), "--candidate", str(broken), "--samples", "2",
         "--no-benchmark", "--report", str(report_path)],
    )  # fmt: skip
    assert failed.exit_code == EXIT_CODES["ToleranceExceeded"], failed.output
    assert "FAILED" in failed.stdout
    [line] = failed.stderr.splitlines()
    assert line.startswith("ToleranceExceeded: onnx differs from the reference: ")
    assert "first diverging node " in line and f"(Conv from {FIRST_CONV})" in line
    report = Report.model_validate_json(report_path.read_text())
    assert report.validation is not None and report.validation.divergence is not None
    assert report.validation.divergence.source_op == FIRST_CONV
    assert report.failure is not None and report.failure.message == line.split(": ", 1)[1]


def test_validate_job_names_the_nudged_conv(
    storage: Storage, cnn: SampleModel, tmp_path: Path
) -> None:
    prefix = f"sources/{cnn.name}-divergence/"
    for path in cnn.model_dir.iterdir():
        storage.put_file(prefix + path.name, path)
    body = {
        "source": {"uri": storage.uri(prefix)},
        "inputs": [s.to_wire() for s in cnn.input_specs()],
        # no remedies: a fresh export at another opset is right, the injected fault is gone
        "target": Target(format="onnx", remedies="none").to_wire(),
        "validation": {"samples": 2, "benchmark": {"warmup": 1, "iterations": 2}},
    }
    keys = run_convert(
        ConvertRequest.model_validate(body), storage=storage, work_dir=tmp_path / "c", now=NOW
    ).keys
    broken = _nudged(storage.get_file(keys.model, tmp_path / "m.onnx"), tmp_path / "b.onnx")
    manifest = Manifest.model_validate_json(storage.get_bytes(keys.manifest))
    storage.put_file(keys.model, broken)
    fixed = manifest.model_copy(update={"sha256": file_sha256(broken)})
    storage.put_bytes(keys.manifest, fixed.to_json().encode())

    with pytest.raises(ToleranceExceeded) as raised:
        run_validate(
            ValidateRequest.model_validate(body), storage=storage, work_dir=tmp_path / "v", now=NOW
        )
    assert f"(Conv from {FIRST_CONV})" in raised.value.message
    report = Report.model_validate_json(storage.get_bytes(keys.report))
    assert report.validation is not None and report.validation.divergence is not None
    assert report.validation.divergence.source_op == FIRST_CONV
    assert report.failure is not None and report.failure.message == raised.value.message
