"""Builders for the sharding tests: pinned artifacts, deployments, operator identities and the
apiserver's audit log read back per user."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from unit.agent.builders import BIAS, WEIGHT, make_model_bytes, make_probe_file

from modelfleet.api.base import GROUP, VERSION
from modelfleet.artifacts import ArtifactKeys
from modelfleet.dev.servers import ApiServer
from modelfleet.kubeconfigs import token_user, write_kubeconfig
from modelfleet.storage import Storage
from support.fleet import Fleet

IDENTITY_NAMESPACE = "modelfleet-shards"
OPERATORS_GROUP = f"system:serviceaccounts:{IDENTITY_NAMESPACE}"
"""Every operator's ServiceAccount lives in one namespace, so the audit policy can name them."""
WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class PinnedArtifact:
    uri: str
    sha256: str


SHARDS = ("shard-a", "shard-b")
DEVICES_PER_SHARD = 3
DEPLOYMENT = "detector"


@dataclass(frozen=True)
class Shard:
    namespace: str
    operator_user: str
    """The operator's user name in the audit log."""
    instance: str
    """The operator's POD_NAME: its Events' reportingInstance."""
    artifact: PinnedArtifact
    fleet: Fleet


@dataclass(frozen=True)
class Shards:
    api: client.ApiClient
    audit_log: Path
    shards: tuple[Shard, ...]

    def devices(self, namespace: str) -> list[dict[str, object]]:
        listed = client.CustomObjectsApi(self.api).list_namespaced_custom_object(
            GROUP, VERSION, namespace, "edgedevices"
        )
        items: list[dict[str, object]] = listed["items"]
        return items


def online_counts(api: client.ApiClient, namespace: str) -> dict[str, int]:
    leases = client.CoordinationV1Api(api).list_namespaced_lease(namespace).items
    devices = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "edgedevices"
    )["items"]
    return {"leases": len(leases), "devices": len(devices)}


def make_pinned_artifact(storage: Storage, root: Path, weight_shift: float) -> PinnedArtifact:
    """A model and its probe in the content-addressed layout, so the operator presigns both
    URLs as it does for a converted artifact."""
    data = make_model_bytes(WEIGHT + weight_shift, BIAS)
    sha = hashlib.sha256(data).hexdigest()
    keys = ArtifactKeys.for_target(sha, "onnx")
    storage.put_bytes(keys.model, data)
    storage.put_file(keys.probe, make_probe_file(root / f"{sha}.npz", WEIGHT + weight_shift, BIAS))
    return PinnedArtifact(storage.uri(keys.model), sha)


def make_deployment_body(name: str, artifact: PinnedArtifact) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": artifact.uri, "sha256": artifact.sha256, "format": "onnx"},
            "selector": {"matchLabels": {"hardware": "cpu"}},
            "strategy": {"waves": [1, "100%"], "maxInFlight": "100%", "bakeSeconds": 0},
        },
    }


def make_operator_kubeconfig(
    api: client.ApiClient, apiserver: ApiServer, name: str, path: Path
) -> tuple[Path, str]:
    """A ServiceAccount bound to cluster-admin, so nothing but the operator's own settings
    keeps it in its shard; returns its kubeconfig and the user name the audit log gives it."""
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(IDENTITY_NAMESPACE, {"metadata": {"name": name}})
    client.RbacAuthorizationV1Api(api).create_cluster_role_binding(
        {
            "metadata": {"name": f"{IDENTITY_NAMESPACE}-{name}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": IDENTITY_NAMESPACE}],
        }
    )
    request = {"spec": {"expirationSeconds": 3600}}
    token = core.create_namespaced_service_account_token(name, IDENTITY_NAMESPACE, request)
    kubeconfig = write_kubeconfig(
        path,
        server=apiserver.url,
        ca_cert=apiserver.pki.ca_cert,
        user=token_user(token.status.token),
    )
    return kubeconfig, f"system:serviceaccount:{IDENTITY_NAMESPACE}:{name}"


def audited_requests(audit_log: Path, user: str) -> list[dict[str, Any]]:
    """The user's requests as the apiserver recorded them (verb, objectRef, responseStatus)."""
    events = (json.loads(line) for line in audit_log.read_text().splitlines() if line.strip())
    return [e for e in events if e.get("user", {}).get("username") == user]


def describe_request(event: dict[str, Any]) -> str:
    ref = event.get("objectRef") or {}
    where = ref.get("namespace") or "<cluster-wide>"
    what = "/".join(p for p in (ref.get("resource"), ref.get("name"), ref.get("subresource")) if p)
    return f"{event.get('verb')} {where} {what}"
