"""Two shards on one real apiserver (audited): per shard a namespace, an operator watching only
it with an identity of its own, three real agents and a pinned artifact; both rollouts are
started together and have finished when the tests look."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from integration.sharding.builders import (
    DEPLOYMENT,
    DEVICES_PER_SHARD,
    IDENTITY_NAMESPACE,
    OPERATORS_GROUP,
    SHARDS,
    Shard,
    Shards,
    make_deployment_body,
    make_operator_kubeconfig,
    make_pinned_artifact,
    online_counts,
)
from kubernetes import client

from modelfleet.api.base import GROUP, VERSION
from modelfleet.dev.components import start_operator
from modelfleet.dev.environment import dev_environment
from modelfleet.dev.processes import ManagedProcess
from modelfleet.dev.servers import S3Server
from modelfleet.kube import api_client
from modelfleet.storage import Storage
from support.fleet import Fleet
from support.operator import wait_for


@pytest.fixture(scope="module")
def shards(
    minio_storage: S3Server, storage: Storage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shards]:
    root = tmp_path_factory.mktemp("shards")
    processes: list[ManagedProcess] = []
    fleets: list[Fleet] = []
    with (
        dev_environment(
            root / "control-plane", object_storage=False, audit_groups=(OPERATORS_GROUP,)
        ) as env,
        api_client(env.apiserver.kubeconfig) as api,  # type: ignore[union-attr]
    ):
        apiserver = env.apiserver
        assert apiserver is not None and apiserver.audit_log is not None
        core = client.CoreV1Api(api)
        for namespace in (IDENTITY_NAMESPACE, *SHARDS):
            core.create_namespace({"metadata": {"name": namespace}})
        built = []
        try:
            for index, namespace in enumerate(SHARDS):
                kubeconfig, user = make_operator_kubeconfig(
                    api, apiserver, f"operator-{namespace}", root / f"{namespace}.kubeconfig"
                )
                artifact = make_pinned_artifact(storage, root, weight_shift=0.1 * (index + 1))
                fleet = Fleet(namespace, api, apiserver, storage, root / namespace)
                fleets.append(fleet)
                for device in range(DEVICES_PER_SHARD):
                    fleet.start_agent(f"dev-{device:02d}", f"--labels=hardware=cpu,site={index}")
                env_vars = {
                    "KUBECONFIG": str(kubeconfig),
                    **minio_storage.env(),
                    "MODELFLEET_NAMESPACES": namespace,
                    "MODELFLEET_RESYNC_SECONDS": "5",
                    "POD_NAME": f"operator-{namespace}",
                }
                processes.append(start_operator(root, env_vars, name=f"operator-{namespace}"))
                built.append(Shard(namespace, user, f"operator-{namespace}", artifact, fleet))
            for namespace in SHARDS:
                wait_for(
                    lambda n=namespace: online_counts(api, n),  # type: ignore[misc]
                    lambda seen: min(seen.values()) >= DEVICES_PER_SHARD,
                    what=f"{DEVICES_PER_SHARD} agents online in {namespace}",
                    timeout=120,
                )
            objects = client.CustomObjectsApi(api)
            for shard in built:  # both rollouts start together
                objects.create_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    shard.namespace,
                    "edgedeployments",
                    make_deployment_body(DEPLOYMENT, shard.artifact),
                )
            for shard in built:
                wait_for(
                    lambda n=shard.namespace: objects.get_namespaced_custom_object(  # type: ignore[misc]
                        GROUP, VERSION, n, "edgedeployments", DEPLOYMENT
                    ),
                    lambda d: (d.get("status") or {}).get("phase") == "Succeeded",
                    what=f"the rollout in {shard.namespace}",
                    timeout=180,
                )
            yield Shards(api, apiserver.audit_log, tuple(built))
        finally:
            for fleet in fleets:
                for agent in fleet.agents:
                    agent.stop()
            for process in processes:
                process.stop()
