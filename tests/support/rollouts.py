"""Rollout tests' view of a fleet: deployments, devices, and artifacts with tampered probes."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelfleet.api.base import GROUP, VERSION
from modelfleet.storage import Storage, parse_s3_uri
from support.fleet import Fleet
from support.operator import OperatorHandle, wait_for

SITES = ("north", "south", "east")
FLEET_SIZE = 20


def device_name(index: int) -> str:
    return f"dev-{index:02d}"


@dataclass
class Rollouts:
    """The fleet, its namespace and the conversions whose artifacts it deploys."""

    fleet: Fleet
    operator: OperatorHandle
    artifacts: dict[str, dict[str, Any]]

    @property
    def namespace(self) -> str:
        return self.fleet.namespace

    def start(self, index: int) -> None:
        labels = f"site={SITES[index % 3]},hardware=cpu,channel=stable"
        self.fleet.start_agent(device_name(index), f"--labels={labels}")

    def deploy(self, name: str, conversion: str, **spec: Any) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EdgeDeployment",
            "metadata": {"name": name},
            "spec": {
                "model": {"conversion": conversion, "format": "onnx"},
                "selector": {"matchLabels": {"hardware": "cpu"}},
                **spec,
            },
        }
        self.fleet.objects.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "edgedeployments", body
        )

    def patch(self, name: str, body: dict[str, Any]) -> None:
        self.fleet.objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "edgedeployments", name, body
        )

    def deployment(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.fleet.objects.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "edgedeployments", name
        )
        return found

    def wait_phase(self, name: str, phase: str, timeout: float = 120) -> dict[str, Any]:
        return wait_for(
            lambda: self.deployment(name),
            lambda d: (
                (d.get("status") or {}).get("phase") == phase
                and d["status"].get("observedGeneration") == d["metadata"]["generation"]
            ),
            timeout=timeout,
            what=f"edgedeployment/{name} {phase}",
        )

    def devices(self) -> list[dict[str, Any]]:
        listed = self.fleet.objects.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "edgedevices"
        )
        items: list[dict[str, Any]] = listed["items"]
        return items


def tamper_probe(storage: Storage, probe_uri: str) -> None:
    """Shift the reference outputs: the artifact is fine, but devices must see it disagree."""
    bucket, key = parse_s3_uri(probe_uri)
    with np.load(io.BytesIO(storage.get_bytes(key, bucket=bucket)), allow_pickle=False) as data:
        arrays = {
            name: data[name] + 1.0 if name.startswith(("output:", "candidate:")) else data[name]
            for name in data.files
        }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    storage.put_bytes(key, buffer.getvalue(), bucket=bucket)


def slot_of(device: dict[str, Any], slot: str) -> dict[str, Any]:
    found: dict[str, Any] = ((device.get("status") or {}).get("slots") or {}).get(slot) or {}
    return found


def assignment_of(device: dict[str, Any], slot: str) -> dict[str, Any]:
    found: dict[str, Any] = (device.get("spec") or {}).get("models", {}).get(slot) or {}
    return found
