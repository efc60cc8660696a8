"""An agent registers its EdgeDevice with labels and facts and keeps its Lease fresh."""

from __future__ import annotations

import platform
import time

from kubernetes import client

from modelfleet.api.base import GROUP, VERSION
from modelfleet.conditions import parse_time
from support.fleet import PLURAL, Fleet


def test_agent_registers_with_facts_and_renews_its_lease(fleet: Fleet) -> None:
    fleet.start_agent("edge-1", "--labels=site=berlin,hardware=x86")

    def registered() -> dict[str, object] | None:
        device = fleet.device("edge-1")
        facts = (device.get("status") or {}).get("facts") or {}
        return device if facts.get("runtime", {}).get("onnxruntime") else None

    device = fleet.wait("registration with facts", registered)
    assert device["metadata"]["labels"] == {"site": "berlin", "hardware": "x86"}
    facts = device["status"]["facts"]
    assert facts["arch"] == platform.machine()
    assert facts["os"].startswith(platform.system())
    assert "CPUExecutionProvider" in facts["runtime"]["executionProviders"]
    assert facts["freeDiskBytes"] > 0 and facts["agentVersion"]
    openvino_cpu = [
        a for a in facts["accelerators"] if (a["source"], a["id"]) == ("openvino", "CPU")
    ]
    assert len(openvino_cpu) == 1 and openvino_cpu[0]["name"]  # FULL_DEVICE_NAME, e.g. AMD EPYC
    assert device["spec"] == {} or device["spec"].get("models") in (None, {})

    leases = client.CoordinationV1Api(fleet.api)
    first = fleet.wait("lease", lambda: leases.read_namespaced_lease("edge-1", fleet.namespace))
    assert first.spec.holder_identity == "edge-1" and first.spec.lease_duration_seconds == 4
    time.sleep(2.5)
    second = leases.read_namespaced_lease("edge-1", fleet.namespace)
    assert second.spec.renew_time > first.spec.renew_time
    age = time.time() - parse_time(second.spec.renew_time.isoformat()).timestamp()
    assert age < second.spec.lease_duration_seconds


def test_a_deleted_edgedevice_is_registered_again(fleet: Fleet) -> None:
    fleet.start_agent("edge-1", "--labels=site=berlin")
    first = fleet.wait("registration", lambda: fleet.device("edge-1"))
    objects = client.CustomObjectsApi(fleet.api)
    objects.delete_namespaced_custom_object(GROUP, VERSION, fleet.namespace, PLURAL, "edge-1")

    def registered_again() -> dict[str, object] | None:
        device = fleet.device("edge-1")
        return device if device["metadata"]["uid"] != first["metadata"]["uid"] else None

    again = fleet.wait("registration again", registered_again)
    assert again["metadata"]["labels"] == {"site": "berlin"}
