"""Devices failing a probe show up as one aggregated Event on their EdgeDeployment, in
`kubectl describe` too: two real agents, a pinned artifact whose probe belongs to another
model, one wave."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from unit.agent.builders import BIAS, WEIGHT, make_model_bytes, make_probe_file

from modelfleet.api.base import GROUP, VERSION
from modelfleet.artifacts import ArtifactKeys
from modelfleet.dev.servers import ApiServer
from modelfleet.storage import Storage
from support.fleet import Fleet
from support.kubectl import kubectl
from support.operator import OperatorHandle, wait_for

pytestmark = [pytest.mark.integration]
DEVICES = ("dev-1", "dev-2")


@pytest.fixture
def fleet(
    namespace: str,
    kube_client: client.ApiClient,
    kube_apiserver: ApiServer,
    storage: Storage,
    tmp_path: Path,
) -> Iterator[Fleet]:
    fleet = Fleet(namespace, kube_client, kube_apiserver, storage, tmp_path)
    try:
        yield fleet
    finally:
        for agent in fleet.agents:
            agent.stop()


def make_mismatched_artifact(storage: Storage, root: Path) -> tuple[str, str]:
    """A model in the artifact layout whose probe holds another model's outputs: every device
    fails it with ProbeFailed. Returns (uri, sha256)."""
    keys = ArtifactKeys.for_target(uuid.uuid4().hex * 2, "onnx")
    data = make_model_bytes()
    storage.put_bytes(keys.model, data)
    storage.put_file(keys.probe, make_probe_file(root / "probe.npz", WEIGHT + 1.0, BIAS))
    return storage.uri(keys.model), hashlib.sha256(data).hexdigest()


def test_devices_failing_a_probe_become_one_aggregated_event(
    operator: OperatorHandle,
    fleet: Fleet,
    storage: Storage,
    kube_apiserver: ApiServer,
    tmp_path: Path,
) -> None:
    uri, sha256 = make_mismatched_artifact(storage, tmp_path)
    for device in DEVICES:
        fleet.start_agent(device, "--labels=hardware=cpu")
    fleet.objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        fleet.namespace,
        "edgedeployments",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EdgeDeployment",
            "metadata": {"name": "cam"},
            "spec": {
                "model": {"uri": uri, "sha256": sha256, "format": "onnx"},
                "selector": {"matchLabels": {"hardware": "cpu"}},
                "strategy": {"waves": ["100%"], "maxInFlight": "100%"},
            },
        },
    )
    events = client.EventsV1Api(fleet.api)

    def failures() -> dict[str, Any]:
        listed = events.list_namespaced_event(fleet.namespace, field_selector="regarding.name=cam")
        found = [e for e in listed.items if e.reason == "DeviceFailed"]
        return {"events": found, "count": [e.series.count if e.series else 1 for e in found]}

    seen = wait_for(
        failures,
        lambda f: f["count"] == [len(DEVICES)],
        timeout=120,
        what="one DeviceFailed event counting both devices",
    )
    [event] = seen["events"]
    assert event.type == "Warning"
    assert event.note.startswith("2 devices failed ProbeFailed on revision 1: dev-1, dev-2; ")
    described = kubectl(kube_apiserver, "describe", "edep", "cam", "-n", fleet.namespace)
    assert "DeviceFailed" in described and "2 devices failed ProbeFailed" in described
