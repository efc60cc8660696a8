"""Automatic remedies in the validate step of a Job (real Paddle, paddle2onnx, ONNX Runtime and
MinIO): the GroupNorm + GELU net's fp32 export fails the strict element rule (paddle2onnx's
uninitialised epsilon, docs/remedies.md); the step repairs it, publishes the repaired file
under the request's keys and records what it tried; `remedies: none` leaves the failure."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import onnx
import pytest

from modelfleet.artifacts import Manifest
from modelfleet.dev.samples import SampleModel
from modelfleet.jobrequests import ConvertRequest, ValidateRequest
from modelfleet.reports import Report
from modelfleet.storage import Storage
from modelfleet.workers.errors import ToleranceExceeded
from modelfleet.workers.jobs import run_convert, run_validate
from modelfleet.workers.sources import file_sha256
from support.hostile_models import groupnorm_gelu

pytestmark = pytest.mark.paddle

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GARBAGE_EPSILON = -1.0212997428897924e26  # written by one paddle2onnx 2.1.0 export
STRICT = {"format": "onnx", "opset": 17, "tolerance": {"atol": 1e-5, "rtol": 1e-5}}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return groupnorm_gelu(tmp_path_factory.mktemp("groupnorm"))


def _body(storage: Storage, net: SampleModel, **target: Any) -> dict[str, Any]:
    prefix = f"sources/groupnorm-gelu-{net.seed}/"
    for path in net.model_dir.iterdir():
        storage.put_file(prefix + path.name, path)
    return {
        "source": {"uri": storage.uri(prefix)},
        "inputs": [s.to_wire() for s in net.input_specs()],
        "target": {**STRICT, **target},
        "validation": {"samples": 4, "benchmark": {"warmup": 1, "iterations": 3}},
    }


def test_the_validate_step_publishes_the_repaired_export(
    storage: Storage, net: SampleModel, tmp_path: Path
) -> None:
    body = _body(storage, net)
    converted = run_convert(
        ConvertRequest.model_validate(body), storage=storage, work_dir=tmp_path, now=NOW
    )
    keys = converted.keys
    began = time.monotonic()
    validated = run_validate(
        ValidateRequest.model_validate(body), storage=storage, work_dir=tmp_path, now=NOW
    )
    print(f"validate step with localization and remedies: {time.monotonic() - began:.1f}s")
    assert validated.keys == keys  # the request's digest: what the operator computes
    report = Report.model_validate_json(storage.get_bytes(keys.report))
    assert report.passed is True and report.failure is None
    remedies = report.remedies
    assert remedies is not None and remedies.applied_change == "repair norm-epsilon"
    assert remedies.trigger.reason == "ToleranceExceeded" and not remedies.trigger.passed
    assert remedies.status_lines() == ["repair norm-epsilon: passed"]
    print(f"remedies took {remedies.seconds:.1f}s: {remedies.status_lines()}")
    manifest = Manifest.model_validate_json(storage.get_bytes(keys.manifest))
    assert manifest.settings is not None and manifest.settings["repairs"] == ["norm-epsilon"]
    model = storage.get_file(keys.model, tmp_path / "published.onnx")
    assert file_sha256(model) == manifest.sha256 != converted.manifest.sha256
    assert report.conversion is not None and report.conversion.sha256 == manifest.sha256
    assert report.validation is not None and report.validation.max_abs is not None
    assert report.validation.max_abs <= 1e-5


def test_remedies_none_leaves_the_failure_with_the_layer_named(
    storage: Storage, tmp_path: Path
) -> None:
    """Another seed: the repaired artifact above is stored under the digest a `remedies: none`
    spec of the same source computes (the mode is not part of it). The stored export gets one
    of the epsilons paddle2onnx was seen writing (-1e26): a denormal one, as likely, is off by
    only 5e-5, which a layer-wise bound need not name."""
    net = groupnorm_gelu(tmp_path / "src", seed=1)
    body = _body(storage, net, remedies="none")
    keys = run_convert(
        ConvertRequest.model_validate(body), storage=storage, work_dir=tmp_path, now=NOW
    ).keys
    model = onnx.load(str(storage.get_file(keys.model, tmp_path / "stored.onnx")))
    norm = next(n for n in model.graph.node if n.op_type == "InstanceNormalization")
    next(a for a in norm.attribute if a.name == "epsilon").f = GARBAGE_EPSILON
    onnx.save(model, str(tmp_path / "garbage.onnx"))
    storage.put_file(keys.model, tmp_path / "garbage.onnx")
    manifest = Manifest.model_validate_json(storage.get_bytes(keys.manifest))
    fixed = manifest.model_copy(update={"sha256": file_sha256(tmp_path / "garbage.onnx")})
    storage.put_bytes(keys.manifest, fixed.to_json().encode())
    with pytest.raises(ToleranceExceeded) as raised:
        run_validate(
            ValidateRequest.model_validate(body), storage=storage, work_dir=tmp_path, now=NOW
        )
    print(raised.value.message)
    assert "first diverging node" in raised.value.message
    assert "pd_op.group_norm" in raised.value.message
