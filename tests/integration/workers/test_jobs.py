"""The convert, validate and convert-validate Jobs against a real MinIO: layout, manifest last,
cache, one source download per process, failures reported per step, and convert-validate's one
Paddle import (in the paddle2onnx child) giving what a validate Job gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelfleet.api.conversion import Target, Tolerance, Validation
from modelfleet.artifacts import Manifest, is_artifact_complete
from modelfleet.dev import samples
from modelfleet.dev.ports import free_port
from modelfleet.dev.samples import SampleModel
from modelfleet.jobrequests import ConvertRequest, ValidateRequest
from modelfleet.reasons import EXIT_CODES
from modelfleet.reports import Report, read_probe
from modelfleet.storage import Storage
from modelfleet.workers.errors import UnsupportedOperator
from modelfleet.workers.jobs import run_convert, run_validate
from modelfleet.workers.objects import SourceCache
from modelfleet.workers.sources import file_sha256

pytestmark = [pytest.mark.integration, pytest.mark.paddle]

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
QUICK = Validation.model_validate({"samples": 4, "benchmark": {"warmup": 1, "iterations": 3}})


@pytest.fixture
def storage(minio_storage: Any) -> Storage:
    """A fresh bucket per test, so no test sees another's artifacts (or cache hits)."""
    base = Storage.from_env(minio_storage.env())
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    base.ensure_bucket(bucket)
    return Storage.from_env({**minio_storage.env(), "MODELFLEET_S3_BUCKET": bucket})


def upload(storage: Storage, sample: SampleModel) -> str:
    prefix = f"sources/{sample.name}/"
    for path in sample.model_dir.iterdir():
        storage.put_file(prefix + path.name, path)
    return storage.uri(prefix)


def request_json(sample: SampleModel, uri: str, target: Target) -> dict[str, Any]:
    return {
        "source": {"uri": uri},
        "inputs": [s.to_wire() for s in sample.input_specs()],
        "target": target.to_wire(),
        "validation": QUICK.to_wire(),
    }


def test_convert_validate_and_cache_hit(storage: Storage, cnn: SampleModel, tmp_path: Path) -> None:
    uri = upload(storage, cnn)
    body = request_json(cnn, uri, Target(format="onnx"))
    convert = ConvertRequest.model_validate(body)

    first = run_convert(convert, storage=storage, work_dir=tmp_path / "a", now=NOW)
    assert first.cached is False
    keys = first.keys
    assert keys.model == f"artifacts/{keys.digest}/onnx/model.onnx"
    assert is_artifact_complete(storage, keys)
    manifest = Manifest.model_validate_json(storage.get_bytes(keys.manifest))
    model = storage.get_file(keys.model, tmp_path / "model.onnx")
    assert manifest.sha256 == file_sha256(model) and manifest.size_bytes == model.stat().st_size
    assert manifest.source.uri == uri and manifest.versions["paddle2onnx"]
    assert manifest.inputs[0].name == "image" and manifest.opset == 17

    def must_not_convert(*args: object, **kwargs: object) -> Any:
        raise AssertionError("conversion invoked on a cache hit")

    again = run_convert(
        convert, storage=storage, work_dir=tmp_path / "b", now=NOW, converter=must_not_convert
    )
    assert again.cached is True and again.keys == keys
    known = convert.model_copy(update={"source_digest": manifest.source.digest})
    assert run_convert(
        known, storage=storage, work_dir=tmp_path / "c", now=NOW, converter=must_not_convert
    ).cached

    validated = run_validate(
        ValidateRequest.model_validate(body), storage=storage, work_dir=tmp_path / "v", now=NOW
    )
    summary = validated.summary()
    assert summary["ok"] is True and summary["maxAbs"] <= 1e-5
    report = Report.model_validate_json(storage.get_bytes(keys.report))
    assert report.passed is True and report.failure is None
    assert report.conversion is not None and report.conversion.sha256 == manifest.sha256
    assert report.validation is not None and report.validation.benchmark is not None
    arrays, meta = read_probe(storage.get_file(keys.probe, tmp_path / "probe.npz"))
    out = manifest.outputs[0].name
    assert set(arrays) == {"input:image", f"output:{out}", f"candidate:{out}"}
    assert arrays["input:image"].shape == (4, 1, 3, 32, 32)
    assert meta["digest"] == keys.digest and meta["outputs"] == [out]


def test_int8_with_synthetic_calibration_is_marked(
    storage: Storage, mlp: SampleModel, tmp_path: Path
) -> None:
    target = Target(format="onnx-int8", tolerance=Tolerance(min_cosine=0.9))
    body = request_json(mlp, upload(storage, mlp), target)
    outcome = run_convert(
        ConvertRequest.model_validate(body), storage=storage, work_dir=tmp_path / "c", now=NOW
    )
    assert outcome.manifest.quantization is not None
    assert outcome.manifest.quantization.calibration == "synthetic"
    report = Report.model_validate_json(storage.get_bytes(outcome.keys.report))
    assert report.conversion is not None and any(
        "synthetic" in w for w in report.conversion.warnings
    )
    validated = run_validate(
        ValidateRequest.model_validate(body), storage=storage, work_dir=tmp_path / "v", now=NOW
    )
    section = validated.report.validation
    assert section is not None and section.tolerance.elementwise is False
    assert section.outputs[0].top1_agreement is not None


def test_unsupported_operator_leaves_no_artifact(
    storage: Storage, unconvertible: SampleModel, tmp_path: Path
) -> None:
    body = request_json(unconvertible, upload(storage, unconvertible), Target(format="onnx"))
    with pytest.raises(UnsupportedOperator, match="cumprod"):
        run_convert(
            ConvertRequest.model_validate(body), storage=storage, work_dir=tmp_path, now=NOW
        )
    assert storage.list_keys("artifacts/") == []
    report_key, settings_key = sorted(storage.list_keys("reports/"))
    assert "/settings/" in settings_key  # the same report, under the request's settings
    assert storage.get_bytes(settings_key) == storage.get_bytes(report_key)
    report = Report.model_validate_json(storage.get_bytes(report_key))
    assert report.failure is not None and report.failure.reason == "UnsupportedOperator"
    assert report.failure.exit_code == EXIT_CODES["UnsupportedOperator"]


WORKER = "from modelfleet.workers.cli import main; main()"
WORKER_WITHOUT_PADDLE = """
import atexit, json, sys
tried = []
class NoPaddle:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("paddle", "paddle2onnx"):
            tried.append(name)
            raise ImportError(f"{name} must not be imported by the worker process")
sys.meta_path.insert(0, NoPaddle())
loaded = lambda: [m for m in sys.modules if m.partition(".")[0] in ("paddle", "paddle2onnx")]
atexit.register(lambda: print("paddle imports: " + json.dumps(tried + loaded()), file=sys.stderr))
from modelfleet.workers.cli import main
main()
"""


def paddle_imports(stderr: str) -> list[str]:
    """What the worker run with WORKER_WITHOUT_PADDLE tried to import of Paddle (at exit)."""
    [line] = [ln for ln in stderr.splitlines() if ln.startswith("paddle imports: ")]
    imports: list[str] = json.loads(line.removeprefix("paddle imports: "))
    return imports


def run_worker(
    stage: str,
    body: dict[str, Any],
    env: dict[str, str],
    tmp_path: Path,
    *,
    script: str = WORKER,
) -> tuple[int, dict[str, Any], str]:
    log = tmp_path / f"termination-{uuid.uuid4().hex[:6]}"
    completed = subprocess.run(
        [sys.executable, "-c", script,
         stage, "--request", json.dumps(body), "--termination-log", str(log)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    lines = log.read_text().splitlines() if log.exists() else []
    assert len(lines) == 1, (completed.stdout, completed.stderr)
    return completed.returncode, json.loads(lines[0]), completed.stderr


def test_worker_process_exit_codes_and_termination_log(
    storage: Storage, minio_storage: Any, mlp: SampleModel, tmp_path: Path
) -> None:
    env = {**minio_storage.env(), "MODELFLEET_S3_BUCKET": storage.bucket}
    body = request_json(mlp, upload(storage, mlp), Target(format="onnx"))

    code, line, stderr = run_worker("convert", body, env, tmp_path)
    assert code == 0, stderr
    assert line["ok"] is True and line["cached"] is False and len(line["digest"]) == 64
    assert minio_storage.secret_key not in stderr

    missing = {**body, "source": {"uri": f"s3://{storage.bucket}/sources/nothing-here/"}}
    code, line, _ = run_worker("convert", missing, env, tmp_path)
    assert (code, line["reason"]) == (EXIT_CODES["SourceNotFound"], "SourceNotFound")

    unreachable = {**env, "MODELFLEET_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    code, line, stderr = run_worker("validate", body, unreachable, tmp_path)
    assert (code, line["reason"]) == (EXIT_CODES["StorageError"], "StorageError")
    assert "127.0.0.1" in line["message"] and minio_storage.secret_key not in stderr


def test_validation_reuses_the_source_the_conversion_fetched(
    storage: Storage, mlp: SampleModel, tmp_path: Path
) -> None:
    uri = upload(storage, mlp)
    body = request_json(mlp, uri, Target(format="onnx"))
    sources: SourceCache = {}
    converted = run_convert(
        ConvertRequest.model_validate(body),
        storage=storage,
        work_dir=tmp_path,
        now=NOW,
        sources=sources,
    )
    for key in storage.list_keys("sources/"):
        storage.remove(key)  # a second download would now fail with SourceNotFound
    validated = run_validate(
        ValidateRequest.model_validate(body),
        storage=storage,
        work_dir=tmp_path,
        now=NOW,
        run_benchmark=False,
        sources=sources,
    )
    assert validated.keys == converted.keys and validated.report.passed is True


def test_convert_validate_process_publishes_artifact_report_and_probe(
    storage: Storage, minio_storage: Any, mlp: SampleModel, tmp_path: Path
) -> None:
    env = {**minio_storage.env(), "MODELFLEET_S3_BUCKET": storage.bucket}
    body = request_json(mlp, upload(storage, mlp), Target(format="onnx"))

    code, line, stderr = run_worker(
        "convert-validate", body, env, tmp_path, script=WORKER_WITHOUT_PADDLE
    )
    assert code == 0, stderr
    assert paddle_imports(stderr) == []  # Paddle ran in the paddle2onnx child only
    assert line["ok"] is True and line["stage"] == "convert-validate"
    assert line["cached"] is False and line["passed"] is True and line["maxAbs"] <= 1e-5
    digest = line["digest"]
    prefix = f"{storage.bucket}/artifacts/{digest}/onnx/"
    assert line["artifactUri"] == f"s3://{prefix}model.onnx"
    assert line["manifestUri"] == f"s3://{prefix}manifest.json"
    reports = f"reports/{digest}/onnx/"
    assert line["reportUri"] == f"s3://{storage.bucket}/{reports}report.json"
    assert sorted(storage.list_keys(f"artifacts/{digest}/")) == [
        f"artifacts/{digest}/onnx/manifest.json",
        f"artifacts/{digest}/onnx/model.onnx",
    ]
    keys = sorted(storage.list_keys(reports))
    [settings_key] = [k for k in keys if "/settings/" in k]
    assert [k for k in keys if k != settings_key] == [
        f"{reports}probe.npz",
        f"{reports}report.json",
    ]
    assert storage.get_bytes(settings_key) == storage.get_bytes(f"{reports}report.json")
    report = Report.model_validate_json(storage.get_bytes(f"{reports}report.json"))
    manifest = Manifest.model_validate_json(
        storage.get_bytes(f"artifacts/{digest}/onnx/manifest.json")
    )
    assert report.conversion is not None and report.conversion.sha256 == manifest.sha256
    assert report.validation is not None and report.passed is True
    assert minio_storage.secret_key not in stderr

    # An ONNX source: the child started first has nothing to convert and is ended.
    storage.put_file("sources/mlp-onnx/model.onnx", storage.get_file(
        f"artifacts/{digest}/onnx/model.onnx", tmp_path / "source.onnx"
    ))  # fmt: skip
    onnx_source = {**body, "source": {"uri": storage.uri("sources/mlp-onnx/model.onnx"),
                                      "format": "onnx"}}  # fmt: skip
    code, line, stderr = run_worker(
        "convert-validate", onnx_source, env, tmp_path, script=WORKER_WITHOUT_PADDLE
    )
    assert code == 0, stderr
    assert line["passed"] is True and line["maxAbs"] == 0.0 and paddle_imports(stderr) == []


def test_convert_validate_process_fails_as_the_failing_step_would(
    storage: Storage, minio_storage: Any, mlp: SampleModel, tmp_path: Path
) -> None:
    env = {**minio_storage.env(), "MODELFLEET_S3_BUCKET": storage.bucket}
    body = request_json(mlp, upload(storage, mlp), Target(format="onnx"))

    missing = {**body, "source": {"uri": f"s3://{storage.bucket}/sources/nothing-here/"}}
    code, line, _ = run_worker("convert-validate", missing, env, tmp_path)
    assert (code, line["reason"]) == (EXIT_CODES["SourceNotFound"], "SourceNotFound")
    assert (code, line) == run_worker("convert", missing, env, tmp_path)[:2]
    assert line["stage"] == "convert"

    strict = {**body, "target": {"format": "onnx-fp16", "tolerance": {"atol": 0.0, "rtol": 0.0}}}
    code, line, stderr = run_worker(
        "convert-validate", strict, env, tmp_path, script=WORKER_WITHOUT_PADDLE
    )
    assert paddle_imports(stderr) == []
    assert (code, line["reason"]) == (EXIT_CODES["ToleranceExceeded"], "ToleranceExceeded")
    assert line["stage"] == "validate"
    [report_key] = [k for k in storage.list_keys("reports/") if k.endswith("fp16/report.json")]
    report = Report.model_validate_json(storage.get_bytes(report_key))
    assert report.conversion is not None and report.conversion.ok  # converted, then refused
    assert report.failure is not None and report.failure.reason == "ToleranceExceeded"
    assert (code, line) == run_worker("validate", strict, env, tmp_path)[:2]


@pytest.mark.parametrize("data", ["seeded", "dataset"])
def test_convert_validate_reports_what_a_validate_job_reports(
    storage: Storage, minio_storage: Any, cnn: SampleModel, tmp_path: Path, data: str
) -> None:
    """The reference recorded by the paddle2onnx child gives the report and probe that a
    validate Job, running Paddle Inference in its own process, writes for the same artifact."""
    env = {**minio_storage.env(), "MODELFLEET_S3_BUCKET": storage.bucket}
    body = request_json(cnn, upload(storage, cnn), Target(format="onnx"))
    if data == "dataset":
        dataset = tmp_path / "dataset.npz"
        np.savez(dataset, **samples.classification_dataset(cnn, 6, seed=3))
        storage.put_file("datasets/cnn.npz", dataset)
        body["validation"] = {**body["validation"], "datasetUri": storage.uri("datasets/cnn.npz")}

    code, line, stderr = run_worker(
        "convert-validate", body, env, tmp_path, script=WORKER_WITHOUT_PADDLE
    )
    assert code == 0, stderr
    assert paddle_imports(stderr) == []
    reports = f"reports/{line['digest']}/onnx/"
    combined = Report.model_validate_json(storage.get_bytes(f"{reports}report.json"))
    combined_probe = read_probe(storage.get_file(f"{reports}probe.npz", tmp_path / "a.npz"))

    code, again, stderr = run_worker("validate", body, env, tmp_path)  # Paddle in-process
    assert code == 0, stderr
    alone = Report.model_validate_json(storage.get_bytes(f"{reports}report.json"))
    alone_probe = read_probe(storage.get_file(f"{reports}probe.npz", tmp_path / "b.npz"))

    assert combined.validation is not None and alone.validation is not None
    assert combined.validation.data == data and combined.validation.samples == 4
    timings = {"benchmark"}
    assert combined.validation.model_dump(exclude=timings) == alone.validation.model_dump(
        exclude=timings
    )
    assert combined.conversion == alone.conversion and combined.passed is alone.passed is True
    bench, bench_alone = combined.validation.benchmark, alone.validation.benchmark
    assert bench is not None and bench_alone is not None
    assert bench.source.runtime == bench_alone.source.runtime
    assert bench.source.runtime.startswith("paddle.inference")
    assert (bench.warmup, bench.iterations, bench.source.iterations) == (1, 3, 3)
    assert bench.source.p50_ms > 0 and bench.speedup > 0
    arrays, meta = combined_probe
    arrays_alone, meta_alone = alone_probe
    assert meta == meta_alone and set(arrays) == set(arrays_alone)
    for key, value in arrays.items():  # inputs, Paddle outputs, ORT outputs: bit for bit
        assert value.dtype == arrays_alone[key].dtype and np.array_equal(value, arrays_alone[key])
    assert (again["maxAbs"], again["passed"]) == (line["maxAbs"], line["passed"])

    # A validate Job records its reference in a stage child too (issue 11): no Paddle here.
    code, _, stderr = run_worker("validate", body, env, tmp_path, script=WORKER_WITHOUT_PADDLE)
    assert code == 0 and paddle_imports(stderr) == [], stderr
    # Control: the trap does see a Paddle import.
    importing = WORKER_WITHOUT_PADDLE.replace(
        "from modelfleet.workers.cli import main\nmain()", "import paddle"
    )
    trapped = subprocess.run(
        [sys.executable, "-c", importing], capture_output=True, text=True, check=False
    )
    assert trapped.returncode != 0 and "paddle" in paddle_imports(trapped.stderr)


def test_convert_validate_failures_keep_their_classification(
    storage: Storage,
    minio_storage: Any,
    mlp: SampleModel,
    unconvertible: SampleModel,
    tmp_path: Path,
) -> None:
    """Same exit code, stage, reason and message as the step's own Job, Paddle never
    imported by the worker process (the child names unsupported operators)."""
    env = {**minio_storage.env(), "MODELFLEET_S3_BUCKET": storage.bucket}

    def both(body: dict[str, Any], alone: str) -> tuple[int, dict[str, Any]]:
        code, line, stderr = run_worker(
            "convert-validate", body, env, tmp_path, script=WORKER_WITHOUT_PADDLE
        )
        assert paddle_imports(stderr) == []
        assert (code, line) == run_worker(alone, body, env, tmp_path)[:2]
        return code, line

    body = request_json(unconvertible, upload(storage, unconvertible), Target(format="onnx"))
    code, line = both(body, "convert")
    assert (code, line["reason"], line["stage"]) == (12, "UnsupportedOperator", "convert")
    assert "cumprod" in line["message"]

    mlp_body = request_json(mlp, upload(storage, mlp), Target(format="onnx"))
    wrong_rank = {**mlp_body, "inputs": [{"name": "features", "shape": [16]}]}
    code, line = both(wrong_rank, "convert")  # the child does not feed Paddle what is refused
    assert (code, line["reason"], line["stage"]) == (11, "InvalidModel", "convert")
    assert "inputs[0].shape [16] has rank 1" in line["message"]

    no_dataset = {
        **mlp_body,
        "validation": {**mlp_body["validation"], "datasetUri": storage.uri("datasets/none.npz")},
    }
    code, line = both(no_dataset, "validate")  # converted, then the dataset is missing
    assert (code, line["reason"], line["stage"]) == (10, "SourceNotFound", "validate")
