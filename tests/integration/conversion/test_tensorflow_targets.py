"""Issue 15's done criterion on a real CNN: a ModelConversion with targets onnx, tf-savedmodel
and tflite reaches Ready through real Jobs (the dev job runner runs the worker, which runs
onnx2tf and the TensorFlow runtimes in `.venv-tf`), each artifact validated against Paddle
Inference with the same report; then an EdgeDeployment rolls the tflite artifact out to a real
agent, which probes it through LiteRT (`ai-edge-litert`, the agent extra). The ERNIE-like
encoder's case is in the zoo (`make zoo`): onnx2tf alone takes about a minute on it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

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


@pytest.mark.zoo
def test_the_ernie_like_encoder_reaches_ready_in_onnx_savedmodel_and_tflite(
    operator: OperatorHandle,
    kube_client: client.ApiClient,
    conversion_namespace: str,
    storage: Storage,
    tmp_path: Path,
) -> None:
    """The zoo's ERNIE shape (int64 ids and mask, position embeddings, LayerNorm, GELU): onnx2tf
    alone takes about a minute on it, so `make zoo` runs it, not `make test`. GELU's Erf is
    not in LiteRT: the tflite target is made with onnx2tf's pseudo Erf and must still pass."""
    from zoo.builders import build
    from zoo.catalog import ARCHITECTURES

    model_file = build("ernie", tmp_path / "ernie")
    prefix = f"models/ernie-tf-{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]}/"
    for path in (model_file, model_file.with_suffix(".pdiparams")):
        storage.put_file(prefix + path.name, path)
    inputs = [
        {"name": i.name, "shape": list(i.run_shape), "dtype": i.dtype, "range": list(i.value_range)}
        for i in ARCHITECTURES["ernie"].inputs
    ]
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelConversion",
        "metadata": {"name": "ernie-tf"},
        "spec": {
            "source": {"uri": storage.uri(prefix)},
            "inputs": inputs,
            "targets": [{"format": fmt} for fmt in FORMATS],
            "validation": {"samples": 4, "benchmark": {"warmup": 1, "iterations": 5}},
        },
    }
    status = _converted(kube_client, conversion_namespace, body)
    assert status["phase"] == "Succeeded", status
    assert sorted(v["format"] for v in status["validation"] if v["passed"]) == sorted(FORMATS)


def _converted(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create the ModelConversion; its status once it succeeded or failed."""
    objects = client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "modelconversions", body)
    name = body["metadata"]["name"]
    obj = wait_for(
        lambda: objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "modelconversions", name
        ),
        lambda o: o.get("status", {}).get("phase") in ("Succeeded", "Failed"),
        timeout=1200,
        what=f"{name} finished",
    )
    status: dict[str, Any] = obj["status"]
    return status


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
    body = make_conversion_body("cnn-tf", sample, uri, targets=[{"format": fmt} for fmt in FORMATS])
    status = _converted(kube_client, conversion_namespace, body)
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
