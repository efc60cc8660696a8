"""The rendered chart and the GitOps kustomization are accepted by the real API server:
`kubectl apply --server-side --dry-run=server` runs admission, schema and strict field
validation (unknown or misplaced fields are errors) without persisting anything.

The test control plane has no prometheus-operator: the ServiceMonitor is checked against a
minimal ServiceMonitor CRD installed here, whose schema declares only the fields the chart
writes (so a typo there still fails), not against the real one."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from unit.chart.rendering import render, with_endpoint

from modelfleet.dev.servers import ApiServer
from support.kubectl import kubectl

pytestmark = pytest.mark.integration
SERVICE_MONITOR_CRD = "servicemonitors.monitoring.coreos.com"


def server_dry_run(apiserver: ApiServer, docs: list[dict[str, Any]]) -> list[str]:
    """Applies every object in a dry run; returns what kubectl reports, one line per object."""
    out = kubectl(
        apiserver,
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=chart-test",
        "--force-conflicts",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(docs),
    )
    return out.splitlines()


def _string(**kw: Any) -> dict[str, Any]:
    return {"type": "string", **kw}


@pytest.fixture(scope="module")
def service_monitor_crd(kube_client: client.ApiClient) -> Iterator[None]:
    """monitoring.coreos.com/v1 ServiceMonitor, cut down to the fields the chart uses."""
    labels = {"type": "object", "additionalProperties": {"type": "string"}}
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": {"type": "object", "properties": {"matchLabels": labels}},
                    "namespaceSelector": {
                        "type": "object",
                        "properties": {"matchNames": {"type": "array", "items": _string()}},
                    },
                    "endpoints": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "port": _string(),
                                "path": _string(),
                                "interval": _string(pattern="^(0|(([0-9]+)(ms|s|m|h))+)$"),
                                "scrapeTimeout": _string(pattern="^(0|(([0-9]+)(ms|s|m|h))+)$"),
                            },
                        },
                    },
                },
            }
        },
    }
    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": SERVICE_MONITOR_CRD},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": "ServiceMonitor", "plural": "servicemonitors"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }
    extensions = client.ApiextensionsV1Api(kube_client)
    extensions.create_custom_resource_definition(body)
    try:
        for _ in range(100):
            crd = extensions.read_custom_resource_definition(SERVICE_MONITOR_CRD)
            conditions = (crd.status.conditions if crd.status else None) or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            time.sleep(0.1)
        yield
    finally:
        try:
            extensions.delete_custom_resource_definition(SERVICE_MONITOR_CRD)
        except ApiException as err:
            if err.status != 404:
                raise


def test_every_combination_of_the_chart_is_accepted_by_the_api_server(
    kube_apiserver: ApiServer,
    namespace: str,
    second_namespace: str,
    service_monitor_crd: None,
    tmp_path: Path,
) -> None:
    combinations: dict[str, dict[str, Any]] = {
        "defaults": with_endpoint(),
        "watchNamespaces": with_endpoint({"watchNamespaces": [namespace, second_namespace]}),
        "minio": {"minio": {"enabled": True}},
        "agent": with_endpoint({"agent": {"enabled": True, "deviceLabels": {"site": "north"}}}),
        "serviceMonitor": with_endpoint({"serviceMonitor": {"enabled": True}}),
        "jobDefaults": with_endpoint(
            {"worker": {"jobDefaults": {"tolerations": [{"key": "gpu", "operator": "Exists"}]}}}
        ),
    }
    for label, values in combinations.items():
        docs = render(
            values,
            tmp_path=tmp_path,
            release=f"r{uuid.uuid4().hex[:6]}",
            namespace=namespace,
            include_crds=label == "defaults",
        )
        reported = server_dry_run(kube_apiserver, docs)
        assert len(reported) == len(docs), f"{label}: {reported}"
        assert all("(server dry run)" in line for line in reported), f"{label}: {reported}"


def test_the_gitops_kustomization_is_accepted_by_the_api_server(
    kube_apiserver: ApiServer, repo_root: Path
) -> None:
    built = kubectl(kube_apiserver, "kustomize", str(repo_root / "examples" / "gitops"))
    docs = [d for d in yaml.safe_load_all(built) if d]
    namespaced = [d for d in docs if d["kind"] not in ("Namespace", "CustomResourceDefinition")]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"modelfleet-demo"}
    # The namespace does not exist here; a dry run of objects inside it would be refused, so
    # they go into the dry run with the namespace created for real first.
    namespace = next(d for d in docs if d["kind"] == "Namespace")
    kubectl(kube_apiserver, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(namespace))
    try:
        reported = server_dry_run(kube_apiserver, docs)
        assert len(reported) == len(docs) and all("(server dry run)" in r for r in reported)
    finally:
        kubectl(kube_apiserver, "delete", "namespace", "modelfleet-demo", "--wait=false")
