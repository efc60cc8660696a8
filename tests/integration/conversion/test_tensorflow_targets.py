"""Issue 15's done criterion on a real CNN: a ModelConversion with targets onnx, tf-savedmodel
and tflite reaches Ready through real Jobs (the dev job runner runs the worker, which runs
onnx2tf and the TensorFlow runtimes in `.venv-tf`), each artifact validated against Paddle
Inference with the same report; then an EdgeDeployment rolls the tflite artifact out to a real
agent, which probes it through LiteRT (`ai-edge-litert`, the agent extra). The ERNIE-like
encoder's case is in the zoo (`make zoo`): onnx2tf alone takes about a minute on it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from kubernetes import client

from modelfleet.api.base import GROUP, VERSION
from modelfleet.artifacts import Manifest
from modelfleet.dev.samples import SampleModel, build_cnn_classifier
from modelfleet.dev.servers import ApiServer
from modelfleet.reports import Report
from modelfleet.storage import Storage, parse_s3_uri
from support.fleet import Fleet
from support.operator import OperatorHandle, make_conversion_body, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.paddle]
FORMATS = ["onnx", "tf-savedmodel", "tflite"]
RUNTIMES = {"onnx": "onnxruntime", "tf-savedmodel": "tensorflow", "tflite": "ai-edge-litert"}


@pytest.fixture(scope="module")
def cnn_source(
    storage: Storage, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SampleModel, str]:
    """The trained conv+bn+relu classifier (BatchNorm with trained statistics) in MinIO."""
    sample = build_cnn_classifier(tmp_path_factory.mktemp("cnn"))
    prefix = f"models/cnn-tf-{hashlib.sha256(str(sample.model_dir).encode()).hexdigest()[:8]}/"
    for path in (sample.model_file, sample.params_file):
        storage.put_file(prefix + path.name, path)
    return sample, storage.uri(prefix)


def test_onnx_savedmodel_and_tflite_of_a_cnn_become_ready_validated(
    operator: OperatorHandle,
    kube_client: client.ApiClient,
    kube_apiserver: ApiServer,
    conversion_namespace: str,
    cnn_source: tuple[SampleModel, str],
    storage: Storage,
    tmp_path: Path,
) -> None:
    sample, uri = cnn_source
    objects = client.CustomObjectsApi(kube_client)
    body = make_conversion_body("cnn-tf", sample, uri, targets=[{"format": fmt} for fmt in FORMATS])
    objects.create_namespaced_custom_object(
        "modelfleet.io", "v1alpha1", conversion_namespace, "modelconversions", body
    )
    obj = wait_for(
        lambda: objects.get_namespaced_custom_object(
            "modelfleet.io", "v1alpha1", conversion_namespace, "modelconversions", "cnn-tf"
        ),
        lambda o: o.get("status", {}).get("phase") in ("Succeeded", "Failed"),
        timeout=900,
        what="cnn-tf finished",
    )
    status = obj["status"]
    assert status["phase"] == "Succeeded", status
    validations = {v["format"]: v for v in status["validation"]}
    assert sorted(validations) == sorted(FORMATS)
    for fmt, validation in validations.items():
        assert validation["passed"] is True, (fmt, validation)
        assert validation["targetLatency"]["p50Ms"] > 0
    artifacts = {a["format"]: a for a in status["artifacts"]}
    for fmt in FORMATS:
        bucket, key = parse_s3_uri(artifacts[fmt]["uri"])
        stored = storage.get_bytes(key, bucket=bucket)
        assert hashlib.sha256(stored).hexdigest() == artifacts[fmt]["sha256"]
        report = Report.model_validate_json(
            storage.get_bytes(parse_s3_uri(artifacts[fmt]["reportUri"])[1], bucket=bucket)
        )
        assert report.passed and report.validation is not None
        assert report.validation.candidate_runtime.startswith(RUNTIMES[fmt])
        assert report.validation.reference_runtime.startswith("paddle.inference")
        assert report.validation.cosine is not None and report.validation.cosine > 0.9999
    assert Path(parse_s3_uri(artifacts["tflite"]["uri"])[1]).name == "model.tflite"
    assert Path(parse_s3_uri(artifacts["tf-savedmodel"]["uri"])[1]).name == "model.savedmodel.tar"
    manifest = Manifest.model_validate_json(
        storage.get_bytes(parse_s3_uri(artifacts["tflite"]["manifestUri"])[1])
    )
    assert [(t.name, t.layout, t.shape) for t in manifest.inputs] == [
        ("image", "NHWC", [1, 32, 32, 3])
    ]

    fleet = Fleet(conversion_namespace, kube_client, kube_apiserver, storage, tmp_path)
    try:
        _roll_out_tflite(fleet, conversion_namespace)
    finally:
        for agent in fleet.agents:
            agent.stop()


def _roll_out_tflite(fleet: Fleet, namespace: str) -> None:
    """An EdgeDeployment of the conversion's tflite artifact; the agent asks for no runtime."""
    fleet.start_agent("edge-tflite", "--labels=hardware=arm")
    fleet.wait("registration", lambda: fleet.device("edge-tflite"))
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeDeployment",
        "metadata": {"name": "classifier"},
        "spec": {
            "model": {"conversion": "cnn-tf", "format": "tflite"},
            "selector": {"matchLabels": {"hardware": "arm"}},
        },
    }
    fleet.objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "edgedeployments", body
    )
    deployment = wait_for(
        lambda: fleet.objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "edgedeployments", "classifier"
        ),
        lambda d: (d.get("status") or {}).get("phase") in ("Succeeded", "Degraded", "RolledBack"),
        timeout=300,
        what="edgedeployment/classifier finished",
    )
    assert deployment["status"]["phase"] == "Succeeded", deployment["status"]
    slot = fleet.slot("edge-tflite", "classifier")
    assert slot is not None and slot["phase"] == "Healthy", slot
    assert slot["runtime"]["engine"] == "litert" and slot["runtime"]["used"] == ["CPU"]
    assert slot["probe"]["maxAbs"] < 1e-4
