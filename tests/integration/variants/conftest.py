"""One small mixed fleet per module: four real agents labelled by hardware, and one real
ModelConversion with an fp32 and an fp16 artifact, for EdgeDeployment variants."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from modelfleet.api.annotations import APPROVED_GENERATION_ANNOTATION
from modelfleet.api.base import GROUP, VERSION
from modelfleet.dev.samples import SampleModel
from modelfleet.dev.servers import ApiServer, S3Server
from modelfleet.storage import Storage
from support.fleet import Fleet
from support.operator import OperatorHandle, make_conversion_body, wait_for
from support.rollouts import Rollouts

HARDWARE = {"cpu-0": "arm", "ort-0": "x86", "ov-0": "intel", "fp16-0": "jetson"}
"""device → its `hardware` label; arm matches no variant (the default)."""
TARGETS = [{"format": "onnx"}, {"format": "onnx-fp16"}]


@pytest.fixture(scope="module")
def mixed(
    operator: OperatorHandle,
    kube_client: client.ApiClient,
    kube_apiserver: ApiServer,
    minio_storage: S3Server,
    storage: Storage,
    mlp_source: tuple[SampleModel, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Rollouts]:
    namespace = "variants"
    fleet = Fleet.in_new_namespace(
        namespace,
        kube_client,
        kube_apiserver,
        minio_storage,
        storage,
        tmp_path_factory.mktemp("mix"),
    )
    sample, uri = mlp_source
    conversions = client.CustomObjectsApi(kube_client)
    body = make_conversion_body("mlp", sample, uri, targets=TARGETS)
    # fp16 may time slower than fp32 on this tiny model (SlowerThanFloat): approved up front.
    body["metadata"]["annotations"] = {APPROVED_GENERATION_ANNOTATION: "1"}
    conversions.create_namespaced_custom_object(GROUP, VERSION, namespace, "modelconversions", body)
    for device, hardware in HARDWARE.items():
        fleet.start_agent(device, f"--labels=site=lab,hardware={hardware}")
    done = wait_for(
        lambda: conversions.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "modelconversions", "mlp"
        ),
        lambda o: (o.get("status") or {}).get("phase") == "Succeeded",
        timeout=300,
        what="conversion mlp",
    )
    artifacts = {a["format"]: a for a in done["status"]["artifacts"]}
    result = Rollouts(fleet, operator, artifacts)
    coordination = client.CoordinationV1Api(kube_client)
    wait_for(
        lambda: {"leases": len(coordination.list_namespaced_lease(namespace).items)},
        lambda seen: seen["leases"] >= len(HARDWARE),
        what=f"{len(HARDWARE)} agents online",
        timeout=120,
    )
    try:
        yield result
    finally:
        fleet.remove()
