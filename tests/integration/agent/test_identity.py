"""A device's credentials reach its own EdgeDevice and Lease, and nothing of another device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.agent.commands import device_command
from modelfleet.api.base import API_VERSION, GROUP, VERSION
from modelfleet.kube import api_client
from support.fleet import PLURAL, Fleet


def device_body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "EdgeDevice",
        "metadata": {"name": name},
        "spec": spec,
    }


def lease_body(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"holderIdentity": name}}


def status_of(call: Callable[[], Any]) -> int:
    try:
        call()
    except ApiException as err:
        return int(err.status)
    return 200


def test_device_a_gets_403_on_device_b(fleet: Fleet) -> None:
    ns = fleet.namespace
    result = CliRunner().invoke(
        device_command,
        [
            "provision",
            "device-a",
            f"--out={fleet.root / 'a.kubeconfig'}",
            f"--kubeconfig={fleet.apiserver.kubeconfig}",
            f"--namespace={ns}",
        ],
    )
    assert result.exit_code == 0, result.output
    fleet.provision("device-b")
    admin = client.CustomObjectsApi(fleet.api)
    admin.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, device_body("device-b"))
    client.CoordinationV1Api(fleet.api).create_namespaced_lease(ns, lease_body("device-b"))

    with api_client(fleet.root / "a.kubeconfig") as device_a:
        objects, leases = client.CustomObjectsApi(device_a), client.CoordinationV1Api(device_a)
        status_patch = {"status": {"facts": {"arch": "evil"}}}
        lease_patch = {"spec": {"holderIdentity": "device-a"}}
        merge = "application/merge-patch+json"

        own = {
            "create A": lambda: objects.create_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, device_body("device-a")
            ),
            "watch A": lambda: objects.list_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, field_selector="metadata.name=device-a"
            ),
            "patch A status": lambda: objects.patch_namespaced_custom_object_status(
                GROUP, VERSION, ns, PLURAL, "device-a", status_patch
            ),
            "create A lease": lambda: leases.create_namespaced_lease(ns, lease_body("device-a")),
            "patch A lease": lambda: leases.patch_namespaced_lease(
                "device-a", ns, lease_patch, _content_type=merge
            ),
        }
        assert {what: status_of(call) for what, call in own.items()} == dict.fromkeys(own, 200)

        denied = {
            "get B": lambda: objects.get_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, "device-b"
            ),
            "watch B": lambda: objects.list_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, field_selector="metadata.name=device-b"
            ),
            "list all": lambda: objects.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL),
            "patch B status": lambda: objects.patch_namespaced_custom_object_status(
                GROUP, VERSION, ns, PLURAL, "device-b", status_patch
            ),
            "patch B spec": lambda: objects.patch_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, "device-b", {"spec": {"models": {}}}
            ),
            "delete B": lambda: objects.delete_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, "device-b"
            ),
            "create C": lambda: objects.create_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, device_body("device-c")
            ),
            "get B lease": lambda: leases.read_namespaced_lease("device-b", ns),
            "patch B lease": lambda: leases.patch_namespaced_lease(
                "device-b", ns, lease_patch, _content_type=merge
            ),
            "create C lease": lambda: leases.create_namespaced_lease(ns, lease_body("device-c")),
            "patch own spec": lambda: objects.patch_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, "device-a", {"spec": {"models": {}}}
            ),
        }
        answers = {what: status_of(call) for what, call in denied.items()}
        assert answers == dict.fromkeys(denied, 403)

    b = admin.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "device-b")
    assert "status" not in b or b["status"].get("facts", {}).get("arch") != "evil"


def test_a_device_cannot_assign_itself_models(fleet: Fleet) -> None:
    kubeconfig = fleet.provision("device-a")
    models = {
        "slot": {
            "deployment": "d",
            "revision": 1,
            "format": "onnx",
            "url": "http://elsewhere/model.onnx",
            "sha256": "a" * 64,
            "sizeBytes": 1,
        }
    }
    with api_client(kubeconfig) as device_a:
        objects = client.CustomObjectsApi(device_a)
        with pytest.raises(ApiException) as denied:
            objects.create_namespaced_custom_object(
                GROUP, VERSION, fleet.namespace, PLURAL, device_body("device-a", models=models)
            )
    assert denied.value.status == 403 and "cannot assign models" in str(denied.value.body)
