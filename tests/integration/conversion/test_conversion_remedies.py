"""An automatic remedy reaches the ModelConversion status (issue 11): operator + job runner +
real worker + MinIO + Paddle, on the GroupNorm + GELU net whose paddle2onnx export fails a
strict element rule (docs/remedies.md) until its norm epsilon is repaired."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from modelfleet.artifacts import Manifest
from modelfleet.storage import Storage, parse_s3_uri
from support.hostile_models import groupnorm_gelu
from support.operator import OperatorHandle, create_conversion, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.paddle]


def test_the_groupnorm_net_succeeds_through_a_recorded_remedy(
    operator: OperatorHandle,
    kube_client: client.ApiClient,
    conversion_namespace: str,
    storage: Storage,
    tmp_path: Path,
) -> None:
    strict = {"format": "onnx", "opset": 17, "tolerance": {"atol": 1e-5, "rtol": 1e-5}}
    model = groupnorm_gelu(tmp_path / "groupnorm")
    read = create_conversion(kube_client, storage, conversion_namespace, model, targets=[strict])
    obj = wait_for(
        read,
        lambda o: o.get("status", {}).get("phase") in ("Succeeded", "Failed"),
        what="Succeeded or Failed",
    )
    assert obj["status"]["phase"] == "Succeeded", obj["status"]
    validation = obj["status"]["validation"][0]
    assert validation["passed"] is True and validation["maxAbs"] <= 1e-5
    assert validation["remedies"] == ["repair norm-epsilon: passed"]
    artifact = obj["status"]["artifacts"][0]
    bucket, key = parse_s3_uri(artifact["manifestUri"])
    manifest = Manifest.model_validate_json(storage.get_bytes(key, bucket=bucket))
    assert manifest.sha256 == artifact["sha256"]
    assert manifest.settings is not None and manifest.settings["repairs"] == ["norm-epsilon"]
