"""Kubernetes client construction and small helpers shared by the CLI, agent and devenv."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelfleet.api.base import GROUP, VERSION
from modelfleet.api.crdgen import KINDS, custom_resource_definition

OPERATOR_FIELD_MANAGER = "modelfleet-operator"
AGENT_FIELD_MANAGER = "modelfleet-agent"
"""The `fieldManager` of every write a role makes: one stable name per writer, so an object's
managedFields say who owns what (an EdgeDevice's spec.models: the operator; its status and
labels: the agent) with one entry per writer. Unnamed, both roles were `OpenAPI-Generator`
(the client library's User-Agent) and the agent's labels and the operator's spec shared one
entry."""


def api_client(
    kubeconfig: Path | str | None = None,
    context: str | None = None,
    *,
    connections: int | None = None,
) -> client.ApiClient:
    """From a kubeconfig file, else $KUBECONFIG / ~/.kube/config, else in-cluster config.

    `connections`: the size of the client's connection pool, when more threads than the
    library's default (5 per CPU) share it; a thread beyond the pool opens and drops a
    connection of its own for every request."""
    configuration = client.Configuration()
    if connections is not None:
        configuration.connection_pool_maxsize = connections
    try:
        config.load_kube_config(
            config_file=str(kubeconfig) if kubeconfig is not None else None,
            context=context,
            client_configuration=configuration,
        )
    except config.ConfigException:
        if kubeconfig is not None:
            raise
        config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)


def install_crds(api: client.ApiClient, *, timeout: float = 60.0) -> None:
    """Create or update the CRDs generated from the models and wait until they are served."""
    extensions = client.ApiextensionsV1Api(api)
    names = []
    for model in KINDS:
        body: dict[str, Any] = custom_resource_definition(model)
        name = body["metadata"]["name"]
        names.append(name)
        try:
            extensions.create_custom_resource_definition(body)
        except ApiException as err:
            if err.status != 409:
                raise
            existing = extensions.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = existing.metadata.resource_version
            extensions.replace_custom_resource_definition(name, body)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = [n for n in names if not _established(extensions, n)]
        if not pending:
            return
        time.sleep(0.2)
    raise TimeoutError(f"CRDs not established after {timeout:.0f}s: {', '.join(pending)}")


def _established(extensions: client.ApiextensionsV1Api, name: str) -> bool:
    crd = extensions.read_custom_resource_definition(name)
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def read_live(
    api: client.ApiClient, plural: str, namespace: str, name: str
) -> dict[str, Any] | None:
    """A ModelFleet object as a controller should see it: None when it is gone or being
    deleted, and without kopf's bookkeeping in status."""
    try:
        raw: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name
        )
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    if raw["metadata"].get("deletionTimestamp"):
        return None
    (raw.get("status") or {}).pop("kopf", None)
    return raw
