"""Bytes per EdgeDevice as the apiserver stores it, and what they are made of.

    python -m bench.device_size [--slots 1 3]

Not part of `make bench` (about 20 s). On a real etcd + kube-apiserver, one device is written
the way a rollout writes it, by the product's own code: the agent registers it and writes its
facts (agent/devices.py, agent/facts.py: this machine's real facts), the rollout controller
assigns each slot with freshly presigned URLs (operator/rollout/controller.py, an S3 endpoint
with a region so presigning needs no server), then the agent reports each slot Healthy with a
probe and runtime as an ONNX Runtime activation does. The object is read back with GET (JSON,
managedFields included: what etcd holds, plus resourceVersion) and its bytes split by part.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

NAMESPACE = "fleet"
DEVICE = "dev-00001"


def _bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def breakdown(body: dict[str, Any]) -> dict[str, int]:
    """Bytes of the whole object and of its parts (compact JSON)."""
    metadata = dict(body["metadata"])
    managed = metadata.pop("managedFields", [])
    models = (body.get("spec") or {}).get("models") or {}
    urls = sum(len(a.get("url", "")) + len(a.get("probeUrl") or "") for a in models.values())
    status = body.get("status") or {}
    return {
        "total": _bytes(body),
        "metadata without managedFields": _bytes(metadata),
        "managedFields": _bytes(managed),
        "spec": _bytes(body.get("spec")),
        "of which presigned URLs": urls,
        "status.facts": _bytes(status.get("facts")),
        "status.slots": _bytes(status.get("slots")),
    }


def _write_device(api: Any, run: Path, slots: int) -> dict[str, Any]:
    from kubernetes import client

    from modelfleet.agent.devices import DeviceApi
    from modelfleet.agent.facts import collect_facts
    from modelfleet.api.base import GROUP, VERSION
    from modelfleet.api.device import KernelPlacement, ProbeResult, SlotRuntime, SlotStatus
    from modelfleet.operator.rollout.controller import DeploymentController
    from modelfleet.operator.rollout.plans import ArtifactRef, AssignRevision
    from modelfleet.storage import S3Settings, Storage

    device = DeviceApi(api, namespace=NAMESPACE, name=DEVICE)
    device.register({"site": "north", "hardware": "cpu", "channel": "stable"})
    device.write_facts(collect_facts(run))
    storage = Storage(
        S3Settings(
            endpoint="https://s3.eu-central-1.amazonaws.com",
            access_key="AKIAIOSFODNN7EXAMPLE",
            secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            bucket="modelfleet-artifacts",
            region="eu-central-1",
        )
    )
    controller = DeploymentController(storage=storage, api=api, writers=1)
    now = dt.datetime.now(dt.UTC)
    for index in range(slots):
        slot = f"model-{index}"
        digest = f"{index:x}" * 64
        artifact = ArtifactRef(
            sha256=f"{index + 10:x}"[-1] * 64,
            uri=f"s3://modelfleet-artifacts/artifacts/{digest}/onnx/model.onnx",
            format="onnx",
            size_bytes=14_123_456,
            probe_uri=f"s3://modelfleet-artifacts/reports/{digest}/onnx/probe.npz",
        )
        action = AssignRevision(DEVICE, slot, 3, artifact)
        controller._apply(NAMESPACE, slot, action, now, None)  # the controller's write path
        device.write_slot(
            slot,
            SlotStatus(
                target_revision=3,
                active_revision=3,
                active_sha256=artifact.sha256,
                previous_revision=2,
                phase="Healthy",
                reason="ProbePassed",
                message="revision 3 active; probe max abs 1.2e-06 (validated 1.1e-06)",
                probe=ProbeResult(max_abs=1.2e-6, latency_ms=0.41, validated_max_abs=1.1e-6),
                runtime=SlotRuntime(
                    engine="onnxruntime",
                    requested=["CPUExecutionProvider"],
                    used=["CPUExecutionProvider"],
                    placement=[KernelPlacement(backend="CPUExecutionProvider", kernels=57)],
                ),
                last_update_time=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            ),
        )
    body: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "edgedevices", DEVICE
    )
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, "edgedevices", DEVICE
    )
    return body


def main() -> int:
    from kubernetes import client

    from modelfleet.dev.servers import run_apiserver, run_etcd
    from modelfleet.kube import api_client, install_crds

    parser = argparse.ArgumentParser(prog="python -m bench.device_size", description=__doc__)
    parser.add_argument("--slots", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--show", action="store_true", help="print the last object too")
    args = parser.parse_args()
    print(f"Command: `python -m bench.device_size {' '.join(sys.argv[1:])}`\n")
    rows: dict[int, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-") as tmp:
        run = Path(tmp)
        with (
            run_etcd(run) as etcd,
            run_apiserver(run, etcd) as server,
            api_client(server.kubeconfig) as api,
        ):
            install_crds(api)
            namespace = client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
            client.CoreV1Api(api).create_namespace(namespace)
            for slots in args.slots:
                body = _write_device(api, run, slots)
                rows[slots] = breakdown(body)
    print("| part | " + " | ".join(f"{s} slot(s), bytes" for s in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for part in next(iter(rows.values())):
        print(f"| {part} | " + " | ".join(f"{r[part]:,}" for r in rows.values()) + " |")
    if args.show:
        print(json.dumps(body, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
