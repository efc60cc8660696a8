"""A converter crash reaches the ModelConversion status as a named reason (issue 11): operator +
job runner + real worker + MinIO + Paddle, on the OCR recognizer whose fp16 model crashes ONNX
Runtime."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from modelfleet.storage import Storage
from support.hostile_models import ocr_recognizer
from support.operator import OperatorHandle, create_conversion, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.paddle]


def test_a_crash_is_a_permanent_named_failure(
    operator: OperatorHandle,
    kube_client: client.ApiClient,
    conversion_namespace: str,
    storage: Storage,
    tmp_path: Path,
) -> None:
    read = create_conversion(
        kube_client,
        storage,
        conversion_namespace,
        ocr_recognizer(tmp_path / "ocr"),
        inputs=[{"name": "x", "shape": [1, 3, 32, 64]}],
        targets=[{"format": "onnx-fp16"}],
    )
    obj = wait_for(read, lambda o: o.get("status", {}).get("phase") == "Failed", what="Failed")
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ConverterCrashed", ready
    assert (
        "ONNX Runtime session creation on the onnx-fp16 model was killed by SIGSEGV"
        in (ready["message"])
    )
    jobs = client.BatchV1Api(kube_client).list_namespaced_job(conversion_namespace).items
    assert len(jobs) == 1 and (jobs[0].status.failed or 0) == 1  # FailJob: no retry
