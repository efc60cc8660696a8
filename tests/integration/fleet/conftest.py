"""One fleet per module: 20 real agents with their own device identities on three sites, and
approved artifacts from real ModelConversions (one with a tampered probe)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from modelfleet.api.base import GROUP, VERSION
from modelfleet.dev.samples import SampleModel
from modelfleet.dev.servers import ApiServer, S3Server
from modelfleet.storage import Storage
from support.fleet import Fleet
from support.operator import OperatorHandle, make_conversion_body, wait_for
from support.rollouts import FLEET_SIZE, Rollouts, tamper_probe


@pytest.fixture(scope="module")
def rollouts(
    operator: OperatorHandle,
    kube_client: client.ApiClient,
    kube_apiserver: ApiServer,
    minio_storage: S3Server,
    storage: Storage,
    mlp_source: tuple[SampleModel, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Rollouts]:
    namespace = "fleet"
    fleet = Fleet.in_new_namespace(
        namespace,
        kube_client,
        kube_apiserver,
        minio_storage,
        storage,
        tmp_path_factory.mktemp("fleet"),
    )
    sample, uri = mlp_source
    opsets = {"v1": 17, "v2": 14, "bad": 13}
    conversions = client.CustomObjectsApi(kube_client)
    for name, opset in opsets.items():
        body = make_conversion_body(name, sample, uri, targets=[{"format": "onnx", "opset": opset}])
        conversions.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "modelconversions", body
        )
    artifacts = {}
    for name in opsets:
        done = wait_for(
            lambda n=name: conversions.get_namespaced_custom_object(  # type: ignore[misc]
                GROUP, VERSION, namespace, "modelconversions", n
            ),
            lambda o: (o.get("status") or {}).get("phase") == "Succeeded",
            timeout=300,
            what=f"conversion {name}",
        )
        artifacts[name] = done["status"]["artifacts"][0]
    tamper_probe(storage, artifacts["bad"]["probeUri"])
    result = Rollouts(fleet, operator, artifacts)
    for index in range(FLEET_SIZE):
        result.start(index)
    coordination = client.CoordinationV1Api(kube_client)
    wait_for(
        lambda: {
            "leases": len(coordination.list_namespaced_lease(namespace).items),
            "devices": len(result.devices()),
        },
        lambda seen: seen["leases"] >= FLEET_SIZE and seen["devices"] >= FLEET_SIZE,
        what=f"{FLEET_SIZE} agents online (EdgeDevice and Lease each)",
        timeout=120,
    )
    try:
        yield result
    finally:
        fleet.remove()
