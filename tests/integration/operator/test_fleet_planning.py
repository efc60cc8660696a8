"""The operator plans from its fleet cache: devices in the first LIST after a restart, and a
device that registers while it runs."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from kubernetes import client

from modelfleet.api.base import GROUP, VERSION
from modelfleet.storage import Storage
from support.operator import OperatorHandle, wait_for

SLOT = "detector"


def _register(kube_client: client.ApiClient, namespace: str, name: str) -> None:
    """What an agent does first: its EdgeDevice and a freshly renewed Lease."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeDevice",
        "metadata": {"name": name, "labels": {"hardware": "cpu"}},
        "spec": {},
    }
    client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "edgedevices", body
    )
    now = dt.datetime.now(dt.UTC)
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1LeaseSpec(
            holder_identity=name, lease_duration_seconds=240, renew_time=now, acquire_time=now
        ),
    )
    client.CoordinationV1Api(kube_client).create_namespaced_lease(namespace, lease)


def _assigned(kube_client: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    device: dict[str, Any] = client.CustomObjectsApi(kube_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "edgedevices", name
    )
    return ((device.get("spec") or {}).get("models") or {}).get(SLOT) or {}


def test_the_operator_plans_listed_devices_and_sees_a_device_registered_later(
    operator: OperatorHandle, kube_client: client.ApiClient, storage: Storage, namespace: str
) -> None:
    payload = b"fleet-cache model"
    key = f"bench/{namespace}/model.onnx"
    storage.put_bytes(key, payload)
    listed = [f"listed-{i}" for i in range(3)]
    for name in listed:
        _register(kube_client, namespace, name)
    operator.process.stop()
    operator.restart()  # the three devices reach the new operator through its first LIST

    deployment = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeDeployment",
        "metadata": {"name": SLOT},
        "spec": {
            "model": {
                "uri": storage.uri(key),
                "sha256": hashlib.sha256(payload).hexdigest(),
                "format": "onnx",
            },
            "selector": {"matchLabels": {"hardware": "cpu"}},
            "strategy": {"waves": ["100%"], "maxInFlight": "100%", "bakeSeconds": 0},
        },
    }
    client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "edgedeployments", deployment
    )
    for name in listed:
        found = wait_for(
            lambda n=name: _assigned(kube_client, namespace, n),  # type: ignore[misc]
            lambda assignment: assignment.get("revision") == 1,
            timeout=60,
            what=f"{name} assigned revision 1",
        )
        assert found["deployment"] == SLOT

    _register(kube_client, namespace, "late")
    wait_for(
        lambda: _assigned(kube_client, namespace, "late"),
        lambda assignment: assignment.get("revision") == 1,
        timeout=60,
        what="the device registered after start-up assigned revision 1",
    )
