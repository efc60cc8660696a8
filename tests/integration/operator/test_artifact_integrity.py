"""Integrity at rest against the real servers: an approved artifact overwritten in MinIO makes
its conversion ArtifactCorrupted, blocks a deployment of it (with an Event on both) and is
deployable again once the object is restored."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from kubernetes import client

from modelfleet.api.base import GROUP, VERSION
from modelfleet.dev.samples import SampleModel
from modelfleet.storage import Storage, parse_s3_uri
from support.operator import PLURAL, OperatorHandle, make_conversion_body, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.paddle]
DEVICE = "edge-1"
SLOT = "vision"


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    found: dict[str, Any] = next((c for c in conditions if c["type"] == "Ready"), {})
    return found


def _reasons(api: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    listed = client.EventsV1Api(api).list_namespaced_event(
        namespace, field_selector=f"regarding.name={name}"
    )
    return {e.reason: e.note for e in listed.items}


def make_online_device(api: client.ApiClient, namespace: str) -> None:
    """An EdgeDevice with a fresh Lease, as a just-started agent leaves them (no agent runs:
    the test asserts what the operator assigns, not what a device does with it)."""
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "edgedevices",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EdgeDevice",
            "metadata": {"name": DEVICE, "labels": {"hardware": "cpu"}},
            "spec": {},
        },
    )
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name=DEVICE),
        spec=client.V1LeaseSpec(
            holder_identity=DEVICE, lease_duration_seconds=600, renew_time=dt.datetime.now(dt.UTC)
        ),
    )
    client.CoordinationV1Api(api).create_namespaced_lease(namespace, lease)


def test_an_overwritten_artifact_blocks_new_assignments_until_restored(
    operator: OperatorHandle,
    conversion_namespace: str,
    kube_client: client.ApiClient,
    storage: Storage,
    mlp_source: tuple[SampleModel, str],
) -> None:
    namespace, objects = conversion_namespace, client.CustomObjectsApi(kube_client)
    sample, _ = mlp_source
    # A source of its own (a nonce file beside the model) gives an artifact of its own: no
    # other test deploys the artifact this one corrupts.
    prefix = f"models/integrity-{uuid.uuid4().hex[:8]}/"
    for path in (sample.model_file, sample.params_file):
        assert path is not None
        storage.put_file(prefix + path.name, path)
    storage.put_bytes(prefix + "NONCE.txt", prefix.encode())
    body = make_conversion_body("guarded", sample, storage.uri(prefix))
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    def conversion() -> dict[str, Any]:
        found: dict[str, Any] = objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "guarded"
        )
        return found

    done = wait_for(conversion, lambda o: o.get("status", {}).get("phase") == "Succeeded")
    artifact = done["status"]["artifacts"][0]
    _, key = parse_s3_uri(artifact["uri"])
    original = storage.get_bytes(key)
    make_online_device(kube_client, namespace)

    storage.put_bytes(key, original + b"tampered")
    corrupted = wait_for(
        conversion,
        lambda o: o["status"]["phase"] == "ArtifactCorrupted",
        timeout=60,
        what="ArtifactCorrupted",
    )
    message = _ready(corrupted)["message"]
    assert _ready(corrupted)["reason"] == "ArtifactCorrupted"
    assert f"onnx: {artifact['uri']}: expected {len(original)} bytes, sha256 " in message
    assert f"found {len(original) + 8} bytes" in message and artifact["sha256"] in message

    objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "edgedeployments",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EdgeDeployment",
            "metadata": {"name": "cam"},
            "spec": {
                "model": {"conversion": "guarded", "format": "onnx"},
                "slot": SLOT,
                "selector": {"matchLabels": {"hardware": "cpu"}},
                "strategy": {"waves": ["100%"], "maxInFlight": "100%"},
            },
        },
    )

    def deployment() -> dict[str, Any]:
        found: dict[str, Any] = objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "edgedeployments", "cam"
        )
        return found

    def device() -> dict[str, Any]:
        found: dict[str, Any] = objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "edgedevices", DEVICE
        )
        return found

    try:
        blocked = wait_for(
            deployment,
            lambda d: _ready(d).get("reason") == "ArtifactCorrupted",
            timeout=60,
            what="the deployment blocked",
        )
        assert artifact["uri"] in _ready(blocked)["message"]
        assert blocked["status"]["phase"] == "Degraded"
        assert SLOT not in (device().get("spec") or {}).get("models", {})
        events = wait_for(
            lambda: {
                "conversion": _reasons(kube_client, namespace, "guarded"),
                "deployment": _reasons(kube_client, namespace, "cam"),
            },
            lambda e: (
                "ArtifactCorrupted" in e["conversion"] and "ArtifactCorrupted" in e["deployment"]
            ),
            timeout=30,
            what="ArtifactCorrupted events",
        )
        assert key in events["conversion"]["ArtifactCorrupted"]
    finally:
        storage.put_bytes(key, original)

    wait_for(conversion, lambda o: o["status"]["phase"] == "Succeeded", timeout=60)
    assigned = wait_for(
        device,
        lambda d: SLOT in (d.get("spec") or {}).get("models", {}),
        timeout=60,
        what="the restored artifact assigned",
    )
    assert assigned["spec"]["models"][SLOT]["sha256"] == artifact["sha256"]
