"""ModelConversion end to end: operator + job runner + real workers + MinIO + Paddle."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from modelfleet.api.base import GROUP, VERSION
from modelfleet.dev.samples import SampleModel
from modelfleet.dev.servers import ApiServer
from modelfleet.operator.conversion.jobs import CONVERSION_LABEL, STEP_LABEL
from modelfleet.storage import Storage, parse_s3_uri
from support.operator import PLURAL, OperatorHandle, make_conversion_body, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.paddle]
BIN = Path(sys.executable).parent


class Conversions:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.objects = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.namespace = namespace

    def create(self, body: dict[str, Any]) -> None:
        self.objects.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return found

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}
        )

    def wait_phase(self, name: str, *phases: str, timeout: float = 300) -> dict[str, Any]:
        return wait_for(
            lambda: self.get(name),
            lambda o: (
                o.get("status", {}).get("phase") in phases
                and o["status"].get("observedGeneration") == o["metadata"]["generation"]
            ),
            timeout=timeout,
            what=f"{name} phase in {phases}",
        )

    def events(self, name: str) -> list[Any]:
        """events.k8s.io/v1 Events about the conversion `name`."""
        listed = client.EventsV1Api(self.objects.api_client).list_namespaced_event(
            self.namespace, field_selector=f"regarding.name={name}"
        )
        return list(listed.items)

    def jobs(self, name: str, step: str) -> list[str]:
        listed = self.batch.list_namespaced_job(
            self.namespace, label_selector=f"{CONVERSION_LABEL}={name},{STEP_LABEL}={step}"
        )
        return sorted(j.metadata.name for j in listed.items)


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


@pytest.fixture
def conversions(kube_client: client.ApiClient, conversion_namespace: str) -> Conversions:
    return Conversions(kube_client, conversion_namespace)


def test_conversion_becomes_ready_with_stored_artifact(
    operator: OperatorHandle,
    conversions: Conversions,
    mlp_source: tuple[SampleModel, str],
    storage: Storage,
    kube_apiserver: ApiServer,
    tmp_path: Path,
) -> None:
    sample, uri = mlp_source
    conversions.create(make_conversion_body("mlp", sample, uri))
    waited = subprocess.run(
        [
            str(BIN / "kubectl"),
            "wait",
            "--for=condition=Ready",
            "modelconversion/mlp",
            "-n",
            conversions.namespace,
            "--timeout=300s",
        ],
        env={**kube_apiserver.env(), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    obj = conversions.get("mlp")
    assert waited.returncode == 0, f"{waited.stderr} status={obj.get('status')}"
    assert obj["status"]["phase"] == "Succeeded"
    artifact = obj["status"]["artifacts"][0]
    bucket, key = parse_s3_uri(artifact["uri"])
    stored = storage.get_bytes(key, bucket=bucket)
    assert hashlib.sha256(stored).hexdigest() == artifact["sha256"]
    assert artifact["sizeBytes"] == len(stored)
    validation = obj["status"]["validation"][0]
    assert validation["passed"] is True and validation["maxAbs"] <= 1e-5
    assert len(conversions.jobs("mlp", "convert-validate")) == 1
    assert conversions.jobs("mlp", "convert") == conversions.jobs("mlp", "validate") == []
    assert list(obj["status"]["jobs"]) == ["convert-validate-onnx"]
    assert "kopf.zalando.org/last-handled-configuration" not in obj["metadata"].get(
        "annotations", {}
    )
    assert not obj["metadata"].get("finalizers")


def test_missing_source_fails_with_source_not_found(
    operator: OperatorHandle, conversions: Conversions, mlp_source: tuple[SampleModel, str]
) -> None:
    sample, uri = mlp_source
    conversions.create(make_conversion_body("ghost", sample, uri.rstrip("/") + "-missing/"))
    obj = conversions.wait_phase("ghost", "Failed", timeout=60)
    assert _condition(obj, "Ready")["reason"] == "SourceNotFound"
    assert "-missing/" in _condition(obj, "Ready")["message"]
    assert conversions.jobs("ghost", "convert-validate") == []


def test_a_source_without_a_model_fails_with_the_workers_own_message(
    operator: OperatorHandle,
    conversions: Conversions,
    mlp_source: tuple[SampleModel, str],
    storage: Storage,
) -> None:
    """The Job's condition only says "exit code 11"; the worker's termination message, read
    from the Job's Pod, says which file is missing."""
    sample, _ = mlp_source
    storage.put_bytes("models/readme-only/README.md", b"# weights to follow\n")
    body = make_conversion_body("readme", sample, storage.uri("models/readme-only/"))
    conversions.create(body)
    obj = conversions.wait_phase("readme", "Failed")
    ready = _condition(obj, "Ready")
    assert ready["reason"] == "SourceNotFound"
    assert "no Paddle model file (*.json or *.pdmodel)" in ready["message"], ready
    assert "(found: README.md)" in ready["message"]
    assert "exit code" not in ready["message"]
    events = wait_for(
        lambda: conversions.events("readme"),
        lambda found: any(e.reason == "SourceNotFound" for e in found),
        what="a SourceNotFound event",
    )
    failed = next(e for e in events if e.reason == "SourceNotFound")
    assert failed.type == "Warning" and "(found: README.md)" in failed.note
    assert failed.regarding.kind == "ModelConversion"


def test_tolerance_exceeded_fails_validation(
    operator: OperatorHandle, conversions: Conversions, mlp_source: tuple[SampleModel, str]
) -> None:
    sample, uri = mlp_source
    strict_fp16 = [{"format": "onnx-fp16", "tolerance": {"atol": 0.0, "rtol": 0.0}}]
    conversions.create(make_conversion_body("strict", sample, uri, targets=strict_fp16))
    obj = conversions.wait_phase("strict", "Failed")
    assert _condition(obj, "Converted")["status"] == "True"
    assert _condition(obj, "Validated")["reason"] == "ToleranceExceeded"
    assert obj["status"]["validation"][0]["passed"] is False


def test_job_deadline_fails_the_conversion(
    operator: OperatorHandle, conversions: Conversions, mlp_source: tuple[SampleModel, str]
) -> None:
    sample, uri = mlp_source
    # The most work the schema allows (~12 s here), so that even a fast convert-validate Job
    # cannot finish inside the 1 s deadline between two passes of the job runner.
    most_work = {"samples": 10000, "benchmark": {"warmup": 10000, "iterations": 100000}}
    body = make_conversion_body(
        "hurried",
        sample,
        uri,
        targets=[{"format": "onnx", "opset": 13}],
        validation=most_work,
        jobTemplate={"activeDeadlineSeconds": 1, "backoffLimit": 0},
    )
    conversions.create(body)
    obj = conversions.wait_phase("hurried", "Failed")
    assert _condition(obj, "Ready")["reason"] == "DeadlineExceeded"


def test_manual_approval_holds_until_approved(
    operator: OperatorHandle,
    conversions: Conversions,
    mlp_source: tuple[SampleModel, str],
    kube_apiserver: ApiServer,
) -> None:
    sample, uri = mlp_source
    conversions.create(make_conversion_body("gated", sample, uri, approval="manual"))
    obj = conversions.wait_phase("gated", "AwaitingApproval")
    assert _condition(obj, "Ready")["status"] == "False"
    approved = subprocess.run(
        [
            str(BIN / "modelfleet"),
            "approve",
            "gated",
            "-n",
            conversions.namespace,
            "--kubeconfig",
            str(kube_apiserver.kubeconfig),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert approved.returncode == 0, approved.stderr
    obj = conversions.wait_phase("gated", "Succeeded", timeout=60)
    assert _condition(obj, "Approved")["reason"] == "ManuallyApproved"


def test_operator_killed_mid_conversion_finishes_with_one_conversion_job(
    operator: OperatorHandle, conversions: Conversions, mlp_source: tuple[SampleModel, str]
) -> None:
    sample, uri = mlp_source
    conversions.create(
        make_conversion_body("survivor", sample, uri, targets=[{"format": "onnx", "opset": 15}])
    )
    wait_for(
        lambda: {"jobs": conversions.jobs("survivor", "convert-validate")},
        lambda found: bool(found["jobs"]),
        what="the convert-validate Job",
    )
    operator.process.kill()
    operator.restart()
    conversions.wait_phase("survivor", "Succeeded")
    assert len(conversions.jobs("survivor", "convert-validate")) == 1
    assert conversions.jobs("survivor", "convert") == conversions.jobs("survivor", "validate") == []


def test_spec_changes_reconvert_only_when_the_artifact_changes(
    operator: OperatorHandle, conversions: Conversions, mlp_source: tuple[SampleModel, str]
) -> None:
    sample, uri = mlp_source
    conversions.create(
        make_conversion_body("evolving", sample, uri, targets=[{"format": "onnx", "opset": 14}])
    )
    first = conversions.wait_phase("evolving", "Succeeded")

    conversions.patch_spec("evolving", {"approval": "auto"})
    same = conversions.get("evolving")
    assert same["metadata"]["generation"] == first["metadata"]["generation"]

    conversions.patch_spec("evolving", {"validation": {"seed": 99}})
    revalidated = conversions.wait_phase("evolving", "Succeeded")
    assert revalidated["metadata"]["generation"] == first["metadata"]["generation"] + 1
    assert len(conversions.jobs("evolving", "convert-validate")) == 1
    assert len(conversions.jobs("evolving", "validate")) == 1  # new settings: validation only

    conversions.patch_spec("evolving", {"targets": [{"format": "onnx", "opset": 16}]})
    reconverted = conversions.wait_phase("evolving", "Succeeded")
    assert len(conversions.jobs("evolving", "convert-validate")) == 2
    assert len(conversions.jobs("evolving", "validate")) == 1
    assert reconverted["status"]["artifacts"][0]["uri"] != first["status"]["artifacts"][0]["uri"]


def test_kubectl_wait_blocks_until_the_new_generation_is_ready(
    operator: OperatorHandle,
    conversions: Conversions,
    mlp_source: tuple[SampleModel, str],
    kube_apiserver: ApiServer,
    tmp_path: Path,
) -> None:
    """A spec change makes the stored Ready=True stale: `kubectl wait` must not return on it,
    only once the new generation itself is validated and approved."""
    sample, uri = mlp_source
    conversions.create(
        make_conversion_body("waited", sample, uri, targets=[{"format": "onnx", "opset": 13}])
    )
    first = conversions.wait_phase("waited", "Succeeded")
    conversions.patch_spec("waited", {"validation": {"seed": 7}})
    generation = first["metadata"]["generation"] + 1
    waiting = subprocess.Popen(
        [
            str(BIN / "kubectl"),
            "wait",
            "--for=condition=Ready",
            "modelconversion/waited",
            "-n",
            conversions.namespace,
            "--timeout=300s",
        ],
        env={**kube_apiserver.env(), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        observed = wait_for(
            lambda: conversions.get("waited"),
            lambda o: o["status"].get("observedGeneration") == generation,
            what="generation observed",
        )
        assert _condition(observed, "Ready")["status"] == "False"
        assert waiting.poll() is None, "kubectl wait returned on a stale Ready"
        _, stderr = waiting.communicate(timeout=300)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, stderr
    ready = conversions.get("waited")
    assert _condition(ready, "Ready")["status"] == "True"
    assert _condition(ready, "Ready")["observedGeneration"] == generation
    assert len(conversions.jobs("waited", "validate")) == 1

    # A change the stored evidence still covers: the pass that observes it is not Ready yet.
    version = ready["metadata"]["resourceVersion"]
    conversions.patch_spec("waited", {"jobTemplate": {"ttlSecondsAfterFinished": 600}})
    seen = [
        (c["status"], c["reason"])
        for obj in _versions(conversions, "waited", version, until_generation=generation + 1)
        for c in obj["status"]["conditions"]
        if c["type"] == "Ready" and c.get("observedGeneration") == generation + 1
    ]
    assert seen[0] == ("False", "Reconciling") and seen[-1] == ("True", "Approved"), seen
    reasons = {e.reason: e for e in conversions.events("waited")}
    assert {"Converting", "Validating", "Approved", "Reconciling"} <= set(reasons), reasons
    assert reasons["Approved"].series is not None and reasons["Approved"].series.count >= 2


def _versions(
    conversions: Conversions, name: str, resource_version: str, *, until_generation: int
) -> list[dict[str, Any]]:
    """Every version of the object after `resource_version`, until one is Ready at
    `until_generation`, as a watch delivers them."""
    found: list[dict[str, Any]] = []
    stream = watch.Watch()
    for event in stream.stream(
        conversions.objects.list_namespaced_custom_object,
        GROUP,
        VERSION,
        conversions.namespace,
        PLURAL,
        field_selector=f"metadata.name={name}",
        resource_version=resource_version,
        timeout_seconds=120,
    ):
        obj = event["object"]
        found.append(obj)
        ready = _condition(obj, "Ready") if obj.get("status") else {}
        if ready.get("observedGeneration") == until_generation and ready["status"] == "True":
            stream.stop()
    return found


def test_metrics_report_conversions_by_phase_and_job_durations(
    operator: OperatorHandle, conversions: Conversions, mlp_source: tuple[SampleModel, str]
) -> None:
    sample, uri = mlp_source
    body = make_conversion_body("measured", sample, uri, targets=[{"format": "onnx", "opset": 12}])
    conversions.create(body)
    conversions.wait_phase("measured", "Succeeded")
    port = operator.env["MODELFLEET_METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    phase = f'name="measured",namespace="{conversions.namespace}",phase="Succeeded"'
    assert f"modelfleet_conversions{{{phase}}} 1.0" in text
    convert_jobs = 'format="onnx",outcome="Succeeded",step="convert-validate"'
    assert f"modelfleet_job_duration_seconds_count{{{convert_jobs}}}" in text


def test_stored_evidence_counts_only_for_the_same_input_specs(
    operator: OperatorHandle, conversions: Conversions, mlp_source: tuple[SampleModel, str]
) -> None:
    """Two conversions of one source share the artifact, but a report is evidence only for
    the input specs it was produced with: a renamed or re-ranged input validates anew."""
    sample, uri = mlp_source
    conversions.create(make_conversion_body("original", sample, uri))
    conversions.wait_phase("original", "Succeeded")
    first, *rest = (spec.to_wire() for spec in sample.inputs)

    renamed = [{**first, "name": "image"}, *rest]
    conversions.create(make_conversion_body("renamed", sample, uri, inputs=renamed))
    failed = conversions.wait_phase("renamed", "Failed")
    assert _condition(failed, "Ready")["reason"] == "InvalidModel"
    message = _condition(failed, "Ready")["message"]
    assert "inputs[0].name 'image' is not an input of the model" in message, message
    assert len(conversions.jobs("renamed", "validate")) == 1

    ranged = [{**first, "range": [-3.0, 3.0]}, *rest]
    conversions.create(make_conversion_body("ranged", sample, uri, inputs=ranged))
    conversions.wait_phase("ranged", "Succeeded")
    assert len(conversions.jobs("ranged", "validate")) == 1
    assert conversions.jobs("ranged", "convert-validate") == []
