"""No crash and no traceback reaches the user (issue 11): real models that crash a converter,
that paddle2onnx refuses, or that Paddle Inference cannot run with its defaults, through the
real `modelfleet` command in a subprocess. Each model is tiny and built here from code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelfleet.api.conversion import Target, Validation
from modelfleet.dev.samples import SampleModel
from modelfleet.reasons import EXIT_CODES
from modelfleet.reports import Report
from modelfleet.storage import Storage
from support.hostile_models import ocr_recognizer, unet, unrunnable, upsampler

pytestmark = pytest.mark.paddle

CLI = str(Path(sys.executable).with_name("modelfleet"))
WORKER = str(Path(sys.executable).with_name("modelfleet-worker"))
QUICK = Validation.model_validate({"samples": 2, "benchmark": {"warmup": 1, "iterations": 2}})


def modelfleet(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it; never a traceback, a failure is one `Reason: message` line."""
    done = subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=600, check=False, cwd=cwd
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def failure_line(done: subprocess.CompletedProcess[str], reason: str) -> str:
    assert done.returncode == EXIT_CODES[reason], done.stdout + done.stderr  # type: ignore[index]
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith(f"{reason}: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_converter_crash_is_named(tmp_path: Path) -> None:
    model = ocr_recognizer(tmp_path / "ocr")
    done = modelfleet(
        "convert", str(model.model_dir), "--to", "onnx-fp16", "--out", str(tmp_path / "o"),
        "--inputs", "x:1x3x32x64",
    )  # fmt: skip
    line = failure_line(done, "ConverterCrashed")
    assert line.startswith(
        "ConverterCrashed: ONNX Runtime session creation on the onnx-fp16 model was killed by "
        "SIGSEGV"
    )
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_a_refused_upsample_names_the_op_and_the_workaround(tmp_path: Path) -> None:
    model = upsampler(tmp_path / "nearest", scale_factor=2, mode="nearest")
    done = modelfleet("convert", str(model.model_dir), "--to", "onnx", "--out", str(tmp_path / "o"))
    line = failure_line(done, "UnsupportedOperator")
    assert line.startswith(
        "UnsupportedOperator: paddle2onnx cannot convert operator pd_op.nearest_interp: the 0th "
        "elementwise MUST be ir::FloatAttribute. Workaround: "
    )
    assert "size=[h * 2, w * 2]" in line


def test_the_workaround_converts_faithfully(tmp_path: Path) -> None:
    """`size=` instead of `scale_factor=`; paths relative to where the user is (each child
    runs in a directory of its own)."""
    upsampler(tmp_path / "sized", size=[16, 16], mode="nearest")
    converted = modelfleet("convert", "sized", "--to", "onnx", "--out", "o", cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    validated = modelfleet(
        "validate", "--reference", "sized", "--candidate", "o/model.onnx", "--samples", "2",
        "--no-benchmark", cwd=tmp_path,
    )  # fmt: skip
    assert validated.returncode == 0 and "PASSED" in validated.stdout, validated.stdout


def test_a_reference_that_fails_with_onednn_runs_without_it(tmp_path: Path) -> None:
    model = unet(tmp_path / "unet")
    out, report = tmp_path / "o", tmp_path / "report.json"
    converted = modelfleet("convert", str(model.model_dir), "--to", "onnx", "--out", str(out))
    assert converted.returncode == 0, converted.stderr
    validated = modelfleet(
        "validate", "--reference", str(model.model_dir), "--candidate", str(out / "model.onnx"),
        "--samples", "2", "--warmup", "1", "--iterations", "2", "--report", str(report),
    )  # fmt: skip
    assert validated.returncode == 0 and "PASSED" in validated.stdout, validated.stdout
    assert "reference ran with oneDNN off, IR optimisation on" in validated.stdout
    reference = json.loads(report.read_text())["validation"]["reference"]
    assert reference["config"] == {"mkldnn": False, "irOptim": True}
    assert "ConvertPirAttribute2RuntimeAttribute not support" in reference["fallbackFrom"]


def test_an_fp16_model_onnx_runtime_rejects_names_the_op(tmp_path: Path) -> None:
    model = unet(tmp_path / "unet")
    done = modelfleet(
        "convert", str(model.model_dir), "--to", "onnx-fp16", "--out", str(tmp_path / "o")
    )
    line = failure_line(done, "UnsupportedOperator")
    assert line.startswith(
        "UnsupportedOperator: the fp16 conversion cannot handle operator Resize: ONNX Runtime "
        "rejects node"
    )


def test_a_reference_that_fails_everywhere_is_reference_failed(tmp_path: Path) -> None:
    source = unrunnable(tmp_path / "bad")
    out = tmp_path / "o"
    converted = modelfleet(
        "convert", str(source), "--to", "onnx", "--out", str(out), "--inputs", "x:1x3"
    )
    assert converted.returncode == 0, converted.stderr
    done = modelfleet(
        "validate", "--reference", str(source), "--candidate", str(out / "model.onnx"),
        "--inputs", "x:1x3", "--samples", "2", "--no-benchmark",
    )  # fmt: skip
    line = failure_line(done, "ReferenceFailed")
    assert line.startswith(
        "ReferenceFailed: Paddle Inference failed to run the source model (oneDNN on, IR "
        "optimisation on): "
    )
    assert line.endswith("oneDNN off, IR optimisation off too)")


@pytest.fixture
def bucket_env(minio_storage: Any) -> dict[str, str]:
    """The worker's storage environment, on a fresh bucket: its only report is this test's."""
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    Storage.from_env(minio_storage.env()).ensure_bucket(bucket)
    return {**minio_storage.env(), "MODELFLEET_S3_BUCKET": bucket}


def convert_validate_job(
    env: dict[str, str], model: SampleModel, target: Target, inputs: str, tmp_path: Path
) -> tuple[int, dict[str, Any], Report]:
    """The convert-validate Job's worker as the Job runs it: its exit code, its termination
    line and the report it left in storage."""
    storage = Storage.from_env(env)
    for path in model.model_dir.iterdir():
        storage.put_file(f"sources/{model.name}/{path.name}", path)
    name, shape = inputs.split(":")
    body = {
        "source": {"uri": storage.uri(f"sources/{model.name}/")},
        "inputs": [{"name": name, "shape": [int(d) for d in shape.split("x")]}],
        "target": target.to_wire(),
        "validation": QUICK.to_wire(),
    }
    log = tmp_path / "termination-log"
    done = subprocess.run(
        [WORKER, "convert-validate", "--request", json.dumps(body), "--termination-log", str(log)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    [line] = log.read_text().splitlines()
    [key] = [
        k
        for k in storage.list_keys("reports/")
        if k.endswith("report.json") and "/settings/" not in k
    ]
    return done.returncode, json.loads(line), Report.model_validate_json(storage.get_bytes(key))


def test_a_job_reports_the_crash(bucket_env: dict[str, str], tmp_path: Path) -> None:
    model = ocr_recognizer(tmp_path / "ocr")
    target = Target(format="onnx-fp16")
    code, line, report = convert_validate_job(bucket_env, model, target, "x:1x3x32x64", tmp_path)
    assert (code, line["reason"], line["stage"]) == (15, "ConverterCrashed", "convert")
    assert line["message"].startswith(
        "ONNX Runtime session creation on the onnx-fp16 model was killed by SIGSEGV"
    )
    assert report.failure is not None and report.failure.reason == "ConverterCrashed"
    assert report.failure.exit_code == 15


def test_a_job_records_the_reference_configuration(
    bucket_env: dict[str, str], tmp_path: Path
) -> None:
    model = unet(tmp_path / "unet")
    target = Target(format="onnx")
    code, line, report = convert_validate_job(bucket_env, model, target, "x:1x3x16x16", tmp_path)
    assert code == 0 and line["passed"] is True, line
    assert report.validation is not None and report.validation.reference is not None
    reference = report.validation.reference.model_dump(by_alias=True)
    assert reference["config"] == {"mkldnn": False, "irOptim": True}
    assert "ConvertPirAttribute2RuntimeAttribute" in reference["fallbackFrom"]
