"""The demo's story, step by step; `modelfleet.dev.demo` runs it and reports the outcome."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
from kubernetes import client
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from modelfleet.agent.identity import provision_device
from modelfleet.api.annotations import APPROVED_GENERATION_ANNOTATION
from modelfleet.api.base import GROUP, VERSION
from modelfleet.dev.demo import DEVICES, SITES, WAVES, DemoError, Step, wait_until
from modelfleet.dev.environment import DevEnvironment, dev_environment
from modelfleet.dev.processes import ManagedProcess
from modelfleet.dev.samples import build_cnn_classifier, classification_dataset
from modelfleet.kube import api_client
from modelfleet.status import render_conversions
from modelfleet.storage import Storage, parse_s3_uri

NAMESPACE = "default"
FORMAT = "onnx-int8"
INTEL_SITE = "east"
VARIANTS = [
    {
        "name": "intel",
        "selector": {"matchLabels": {"cpu": "intel"}},
        "format": "onnx",
        "runtime": {"engine": "openvino", "devices": ["CPU"]},
    }
]
"""The east site's Intel PCs run fp32 on OpenVINO; every other device the int8 default on
ONNX Runtime's CPU: one revision, one rollout."""


class Cluster:
    """The few API calls the story makes, against the demo's own control plane."""

    def __init__(self, api: client.ApiClient) -> None:
        self.objects = client.CustomObjectsApi(api)

    def create(self, plural: str, body: dict[str, Any]) -> None:
        self.objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, body)

    def get(self, plural: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, plural, name
        )
        return found

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> None:
        self.objects.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name, body)

    def devices(self) -> list[dict[str, Any]]:
        listed = self.objects.list_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "edgedevices"
        )
        items: list[dict[str, Any]] = listed["items"]
        return sorted(items, key=lambda d: d["metadata"]["name"])


def _npz(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _publish_model(root: Path, storage: Storage) -> dict[str, Any]:
    """Build and upload the classifier, a calibration set and a validation set."""
    sample = build_cnn_classifier(root / "model", seed=0)
    for path in (sample.model_file, sample.params_file):
        storage.put_file(f"models/classifier/{path.name}", path)
    storage.put_bytes(
        "datasets/classifier-calibration.npz", _npz(classification_dataset(sample, 64, seed=1))
    )
    storage.put_bytes(
        "datasets/classifier-validation.npz", _npz(classification_dataset(sample, 64, seed=2))
    )
    bucket = storage.bucket
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelConversion",
        "metadata": {"name": "classifier"},
        "spec": {
            "source": {"uri": f"s3://{bucket}/models/classifier/"},
            "inputs": [i.to_wire() for i in sample.inputs],
            "targets": [
                {"format": "onnx", "tolerance": {"atol": 1e-4, "rtol": 1e-3, "minCosine": 0.9999}},
                {
                    "format": FORMAT,
                    "quantization": "static",
                    "calibration": {"uri": f"s3://{bucket}/datasets/classifier-calibration.npz"},
                    "tolerance": {
                        "atol": 0.2,
                        "rtol": 0.2,
                        "minCosine": 0.98,
                        "topKAgreement": 0.95,
                    },
                },
            ],
            "validation": {
                "datasetUri": f"s3://{bucket}/datasets/classifier-validation.npz",
                "samples": 64,
                "benchmark": {"warmup": 3, "iterations": 30},
            },
        },
    }


def _approve_slower(console: Console, cluster: Cluster, conversion: dict[str, Any]) -> None:
    """On this tiny classifier int8 can be slower than fp32 (SlowerThanFloat holds back
    auto-approval): show why, then approve the generation as `modelfleet approve` does."""
    generation = str(conversion["metadata"]["generation"])
    annotations = conversion["metadata"].get("annotations") or {}
    if annotations.get(APPROVED_GENERATION_ANNOTATION) == generation:
        return
    ready = next(c for c in conversion["status"]["conditions"] if c["type"] == "Ready")
    console.print(f"  {ready['reason']}: {ready['message']}")
    console.print("  approving it here, as `modelfleet approve classifier` would")
    body = {"metadata": {"annotations": {APPROVED_GENERATION_ANNOTATION: generation}}}
    cluster.patch("modelconversions", "classifier", body)


def _start_agents(env: DevEnvironment, root: Path, stack: ExitStack) -> None:
    assert env.apiserver is not None
    with api_client(env.apiserver.kubeconfig) as api:
        for index in range(DEVICES):
            name = f"{SITES[index % 3]}-cam-{index // 3 + 1:02d}"
            kubeconfig = provision_device(
                api,
                namespace=NAMESPACE,
                device_name=name,
                server=env.apiserver.url,
                ca_cert=env.apiserver.pki.ca_cert,
                kubeconfig_path=root / "devices" / name / "kubeconfig",
            )
            agent = ManagedProcess(
                f"agent-{name}",
                [
                    str(Path(sys.executable).with_name("modelfleet")),
                    "agent",
                    f"--device-name={name}",
                    f"--data-dir={root / 'devices' / name / 'data'}",
                    f"--kubeconfig={kubeconfig}",
                    f"--labels={_labels(SITES[index % 3])}",
                    "--heartbeat-seconds=2",
                    "--lease-duration-seconds=10",
                ],
                log_path=root / "devices" / name / "agent.log",
                env={"PATH": "/usr/bin:/bin", "HOME": str(root)},
            )
            stack.callback(agent.stop)


def _labels(site: str) -> str:
    intel = ",cpu=intel" if site == INTEL_SITE else ""
    return f"site={site},hardware=cpu{intel}"


def _fleet_view(cluster: Cluster, deployment: str) -> Group:
    status = cluster.get("edgedeployments", deployment).get("status") or {}
    counts = status.get("counts", {})
    wave = status.get("wave")
    headline = (
        f"[bold]{deployment}[/] phase={status.get('phase', 'Pending')} "
        f"revision={status.get('currentRevision', '-')} stable={status.get('stableRevision', '-')} "
        f"wave={'-' if wave is None else f'{wave + 1}/{len(WAVES)}'} "
        f"healthy={counts.get('healthy', 0)}/{counts.get('targeted', 0)} "
        f"failed={counts.get('failed', 0)} "
        + " ".join(
            f"{v['name']}={v['counts']['healthy']}/{v['counts']['targeted']}"
            for v in status.get("variants", [])
        )
    )
    table = Table(show_header=True, header_style="bold")
    for column in ("device", "site", "variant/runs on", "assigned", "active", "phase", "reason"):
        table.add_column(column, no_wrap=True)
    for device in cluster.devices():
        slot = ((device.get("status") or {}).get("slots") or {}).get("vision") or {}
        assigned = ((device.get("spec") or {}).get("models") or {}).get("vision") or {}
        phase = slot.get("phase", "-")
        style = {"Healthy": "green", "Failed": "red"}.get(phase, "yellow")
        table.add_row(
            device["metadata"]["name"],
            device["metadata"].get("labels", {}).get("site", ""),
            _variant_cell(assigned, slot),
            str(assigned.get("revision", "-")),
            str(slot.get("activeRevision", "-")),
            f"[{style}]{phase}[/]",
            slot.get("reason", ""),
        )
    return Group(headline, table)


def _watch(
    console: Console, cluster: Cluster, deployment: str, phase: str, timeout: float
) -> dict[str, Any]:
    """Show the fleet live until the deployment reaches `phase` for its current generation."""

    def reached() -> dict[str, Any] | None:
        found = cluster.get("edgedeployments", deployment)
        status = found.get("status") or {}
        current = status.get("observedGeneration") == found["metadata"]["generation"]
        return found if current and status.get("phase") == phase else None

    with Live(_fleet_view(cluster, deployment), console=console, refresh_per_second=2) as live:
        done: dict[str, Any] = wait_until(
            f"edgedeployment/{deployment} {phase}",
            reached,
            timeout=timeout,
            tick=lambda: live.update(_fleet_view(cluster, deployment)),
        )
        live.update(_fleet_view(cluster, deployment))
    return done


def _variant_cell(assigned: dict[str, Any], slot: dict[str, Any]) -> str:
    """`intel/ov:CPU`: the variant, then the engine and backend that really run it."""
    if not assigned:
        return "-"
    runtime = slot.get("runtime") or {}
    engine = {"openvino": "ov", "onnxruntime": "ort"}.get(runtime.get("engine", ""), "?")
    used = ",".join(u.removesuffix("ExecutionProvider") for u in runtime.get("used", []))
    return f"{assigned.get('variant', 'default')}/{engine}:{used or '-'}"


def _active_by_device(cluster: Cluster) -> dict[str, tuple[str, str | None]]:
    """device → (its variant, the sha256 it runs in the slot)."""
    found: dict[str, tuple[str, str | None]] = {}
    for device in cluster.devices():
        assigned = ((device.get("spec") or {}).get("models") or {}).get("vision") or {}
        slot = ((device.get("status") or {}).get("slots") or {}).get("vision") or {}
        found[device["metadata"]["name"]] = (
            assigned.get("variant", "default"),
            slot.get("activeSha256"),
        )
    return found


def _broken_artifact(storage: Storage, good: dict[str, Any]) -> tuple[str, str]:
    """The good model with its float tensors (in an int8 QDQ model: the quantization scales)
    scaled by 1.5, published beside the good probe: it loads fine and its checksum is right,
    but its outputs no longer match the validated ones."""
    import onnx
    from onnx import numpy_helper

    bucket, key = parse_s3_uri(good["uri"])
    model = onnx.load_from_string(storage.get_bytes(key, bucket=bucket))
    for index, tensor in enumerate(model.graph.initializer):
        values = numpy_helper.to_array(tensor)
        if values.dtype == np.float32:
            scaled = numpy_helper.from_array(values * np.float32(1.5), tensor.name)
            model.graph.initializer[index].CopyFrom(scaled)
    data = model.SerializeToString()
    digest = hashlib.sha256(data).hexdigest()
    if digest == good["sha256"]:
        raise DemoError("could not build a broken artifact: the model has no float tensors")
    storage.put_bytes(f"artifacts/{digest}/{FORMAT}/model.onnx", data)
    probe_bucket, probe_key = parse_s3_uri(good["probeUri"])
    probe = storage.get_bytes(probe_key, bucket=probe_bucket)
    storage.put_bytes(f"reports/{digest}/{FORMAT}/probe.npz", probe)
    return storage.uri(f"artifacts/{digest}/{FORMAT}/model.onnx"), digest


def run_story(root: Path, console: Console, step: Step) -> str:
    with dev_environment(root / "run", modelfleet=True) as env, ExitStack() as stack:
        assert env.apiserver is not None and env.s3 is not None
        api = stack.enter_context(api_client(env.apiserver.kubeconfig))
        cluster = Cluster(api)
        storage = Storage.from_env(env.s3.env())
        console.print(f"control plane up: {env.apiserver.url}, MinIO {env.s3.endpoint}")

        step("1/5  A PaddlePaddle image classifier (trained a few steps on synthetic data)")
        conversion = _publish_model(root, storage)
        cluster.create("modelconversions", conversion)
        console.print("applied modelconversion/classifier: targets onnx, onnx-int8 (static QDQ)")

        step("2/5  Conversion Jobs, then validation against Paddle Inference")
        last: list[str] = []

        def ready() -> dict[str, Any] | None:
            found = cluster.get("modelconversions", "classifier")
            phase = (found.get("status") or {}).get("phase", "Pending")
            if not last or last[-1] != phase:
                last.append(phase)
                console.print(f"  phase: {phase}")
            if phase == "Failed":
                reason = found["status"]["conditions"][-1]
                raise DemoError(f"conversion failed: {reason['reason']}: {reason['message']}")
            if phase == "AwaitingApproval":
                _approve_slower(console, cluster, found)
            return found if phase == "Succeeded" else None

        converted = wait_until("modelconversion/classifier Succeeded", ready, timeout=420)
        console.print(render_conversions([converted], dt.datetime.now(dt.UTC)))
        good = next(a for a in converted["status"]["artifacts"] if a["format"] == FORMAT)

        step(f"3/5  {DEVICES} edge devices on three sites, each with its own identity")
        _start_agents(env, root, stack)
        wait_until(
            f"{DEVICES} devices registered",
            lambda: len(cluster.devices()) >= DEVICES,
            timeout=120,
        )
        console.print(f"{DEVICES} agents registered (logs in {root / 'devices'})")

        step(
            "4/5  EdgeDeployment: int8 on ONNX Runtime, fp32 on OpenVINO for the Intel PCs "
            f"({INTEL_SITE}); one revision in waves 1 device, 50%, 100%; each wave bakes 2 s"
        )
        cluster.create(
            "edgedeployments",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "EdgeDeployment",
                "metadata": {"name": "classifier"},
                "spec": {
                    "model": {"conversion": "classifier", "format": FORMAT},
                    "slot": "vision",
                    "selector": {"matchLabels": {"hardware": "cpu"}},
                    "variants": VARIANTS,
                    "strategy": {"waves": WAVES, "bakeSeconds": 2, "maxInFlight": "100%"},
                },
            },
        )
        rolled_out = _watch(console, cluster, "classifier", "Succeeded", timeout=180)
        stable = _active_by_device(cluster)
        expected = {v["name"]: v["sha256"] for v in rolled_out["status"]["variants"]}
        for name, (variant, sha256) in stable.items():
            if sha256 != expected.get(variant):
                raise DemoError(f"{name} ({variant}) runs {sha256}, not its variant's artifact")

        step("5/5  A broken artifact: outputs no longer match the validated probe")
        uri, digest = _broken_artifact(storage, good)
        cluster.patch(
            "edgedeployments",
            "classifier",
            {
                "spec": {
                    "model": {"conversion": None, "uri": uri, "sha256": digest, "format": FORMAT},
                    "variants": None,  # a pinned artifact is one file for every device
                }
            },
        )
        rolled = _watch(console, cluster, "classifier", "RolledBack", timeout=180)
        if _active_by_device(cluster) != stable:
            raise DemoError("devices do not all run their variant's artifact after the rollback")
        progressing = next(c for c in rolled["status"]["conditions"] if c["type"] == "Progressing")
        console.print(f"rollback: {progressing['message']}")
        validation = next(v for v in converted["status"]["validation"] if v["format"] == FORMAT)
        return (
            f"int8 cosine {validation.get('cosine', 0):.4f}, top-1 agreement "
            f"{validation.get('topKAgreement', 0):.2%}; {DEVICES} devices (two variants) "
            f"updated in {len(WAVES)} waves; broken revision rolled back automatically"
        )
