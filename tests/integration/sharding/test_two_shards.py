"""Two operators, each watching its own namespace (`watchNamespaces`), roll out at the same
time on one apiserver and never touch each other's objects.

The apiserver's audit log says who did what: each operator has its own identity, bound to
cluster-admin, so only the operator's own settings keep it in its shard. The same rollouts
show what an EdgeDevice costs as stored once the operator and a real agent have both written
it (docs/scale.md states the budget).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from integration.sharding.builders import (
    DEPLOYMENT,
    DEVICES_PER_SHARD,
    WRITES,
    Shards,
    audited_requests,
    describe_request,
)
from kubernetes import client

pytestmark = [pytest.mark.integration]
NAMESPACED = frozenset(
    {"edgedevices", "edgedeployments", "modelconversions", "leases", "jobs", "pods", "events"}
)
EDGE_DEVICE_BUDGET_BYTES = 4096
"""One slot, as stored (GET JSON, managedFields included); docs/scale.md."""
MANAGED_FIELDS_BUDGET_BYTES = 1024


def _slot(device: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = ((device.get("status") or {}).get("slots") or {}).get(DEPLOYMENT, {})
    return found


def test_both_rollouts_finish_on_their_own_artifacts(shards: Shards) -> None:
    for shard in shards.shards:
        devices = shards.devices(shard.namespace)
        assert len(devices) == DEVICES_PER_SHARD
        for device in devices:
            slot = _slot(device)
            assert (slot.get("phase"), slot.get("activeSha256")) == (
                "Healthy",
                shard.artifact.sha256,
            ), device["metadata"]["name"]
    assert shards.shards[0].artifact.sha256 != shards.shards[1].artifact.sha256


def test_each_operator_reads_and_writes_only_its_own_namespace(shards: Shards) -> None:
    for shard in shards.shards:
        requests = audited_requests(shards.audit_log, shard.operator_user)
        writes = [r for r in requests if r["verb"] in WRITES]
        device_writes = [
            r for r in writes if (r.get("objectRef") or {}).get("resource") == "edgedevices"
        ]
        assert len(device_writes) >= DEVICES_PER_SHARD, [describe_request(r) for r in writes]
        elsewhere = [
            describe_request(r)
            for r in requests
            if (r.get("objectRef") or {}).get("namespace") not in (None, shard.namespace)
        ]
        assert elsewhere == [], f"{shard.operator_user} outside {shard.namespace}"
        cluster_wide = [
            describe_request(r)
            for r in requests
            if not (r.get("objectRef") or {}).get("namespace")
            and (r.get("objectRef") or {}).get("resource") in NAMESPACED
        ]
        assert cluster_wide == [], f"{shard.operator_user} listed or watched other shards"


def test_events_name_the_operator_of_their_shard(shards: Shards) -> None:
    events = client.EventsV1Api(shards.api)
    for shard in shards.shards:
        items = events.list_namespaced_event(shard.namespace).items
        ours = [e for e in items if e.reporting_controller == "modelfleet.io/operator"]
        assert ours, f"no operator Event in {shard.namespace}"
        assert {e.reporting_instance for e in ours} == {shard.instance}


def test_edge_devices_stay_within_budget_after_a_rollout(shards: Shards) -> None:
    """The operator owns spec.models, the agent status and labels: one managedFields entry per
    writer and operation, each slot owned whole (x-kubernetes-map-type: atomic)."""
    for shard in shards.shards:
        for device in shards.devices(shard.namespace):
            name = device["metadata"]["name"]
            managed = device["metadata"]["managedFields"]
            owners = {(m["manager"], m.get("subresource", "")) for m in managed}
            assert owners == {
                ("modelfleet-agent", ""),
                ("modelfleet-agent", "status"),
                ("modelfleet-operator", ""),
            }, name
            operator = next(m for m in managed if m["manager"] == "modelfleet-operator")
            assert operator["fieldsV1"]["f:spec"]["f:models"] == {".": {}, f"f:{DEPLOYMENT}": {}}
            managed_bytes = len(json.dumps(managed, separators=(",", ":")))
            stored_bytes = len(json.dumps(device, separators=(",", ":")))
            assert managed_bytes <= MANAGED_FIELDS_BUDGET_BYTES, (name, managed_bytes)
            assert stored_bytes <= EDGE_DEVICE_BUDGET_BYTES, (name, stored_bytes)
