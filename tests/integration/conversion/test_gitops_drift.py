"""The operator never writes user-owned spec: after it has done its work, a GitOps tool that
applied the manifests sees no drift (`kubectl diff --server-side` is empty)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client

from modelfleet.api.base import GROUP, VERSION
from modelfleet.dev.samples import SampleModel
from modelfleet.dev.servers import ApiServer
from support.kubectl import run_kubectl
from support.operator import OperatorHandle, make_conversion_body, wait_for

pytestmark = pytest.mark.paddle


def test_reconciled_objects_show_no_drift(
    operator: OperatorHandle,
    kube_apiserver: ApiServer,
    kube_client: client.ApiClient,
    conversion_namespace: str,
    mlp_source: tuple[SampleModel, str],
    tmp_path: Path,
) -> None:
    sample, uri = mlp_source
    conversion = make_conversion_body(
        "gitops", sample, uri, targets=[{"format": "onnx", "opset": 11}]
    )
    deployment = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeDeployment",
        "metadata": {"name": "gitops"},
        "spec": {
            "model": {"conversion": "gitops", "format": "onnx"},
            "selector": {"matchLabels": {"fleet": "nobody-yet"}},
            "strategy": {"waves": [1, "100%"], "bakeSeconds": 0},
        },
    }
    manifest = tmp_path / "app.yaml"
    manifest.write_text(yaml.safe_dump_all([conversion, deployment]))
    common = [
        "-n",
        conversion_namespace,
        "--server-side",
        "--field-manager=argocd",
        "-f",
        str(manifest),
    ]
    applied = run_kubectl(kube_apiserver, "apply", *common)
    assert applied.returncode == 0, applied.stderr

    objects = client.CustomObjectsApi(kube_client)
    done = {
        "modelconversions": lambda status: status.get("phase") == "Succeeded",
        "edgedeployments": lambda status: status.get("currentRevision") == 1,
    }
    for plural, reached in done.items():
        wait_for(
            lambda p=plural: objects.get_namespaced_custom_object(  # type: ignore[misc]
                GROUP, VERSION, conversion_namespace, p, "gitops"
            ),
            lambda o, check=reached: check(o.get("status") or {}),
            what=f"{plural}/gitops reconciled",
            timeout=300,
        )

    diff = run_kubectl(kube_apiserver, "diff", *common)
    assert diff.returncode == 0, f"drift after reconcile:\n{diff.stdout}{diff.stderr}"

    # The story is told as events.k8s.io/v1 Events, one per transition of each resource.
    listed = client.EventsV1Api(kube_client).list_namespaced_event(conversion_namespace)
    told = {(e.regarding.kind, e.reason) for e in listed.items}
    assert ("ModelConversion", "Approved") in told, told
    assert ("EdgeDeployment", "NoDevicesSelected") in told, told
    described = run_kubectl(
        kube_apiserver, "describe", "edep", "gitops", "-n", conversion_namespace
    )
    assert "NoDevicesSelected" in described.stdout.split("Events:")[-1], described.stdout
