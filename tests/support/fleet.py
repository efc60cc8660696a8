"""A fleet of real agent processes for tests: provisioned device identities, artifacts in
MinIO, and waiting for what devices report."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from unit.agent.builders import BIAS, WEIGHT, make_model_bytes, make_probe_file

from modelfleet.agent.identity import provision_device
from modelfleet.api.base import GROUP, VERSION
from modelfleet.artifacts import ArtifactKeys
from modelfleet.dev.components import ensure_storage_secret
from modelfleet.dev.processes import ManagedProcess
from modelfleet.dev.servers import ApiServer, S3Server
from modelfleet.storage import Storage
from support.faults import Breakpoint

PLURAL = "edgedevices"
FAST = [
    "--heartbeat-seconds=1",
    "--lease-duration-seconds=4",
    "--resync-seconds=5",
    "--retry-seconds=1",
    "--download-attempts=2",
]


@dataclass(frozen=True)
class Artifact:
    """A model and its probe in MinIO."""

    key: str
    probe_key: str
    sha256: str
    size: int


@dataclass
class Fleet:
    namespace: str
    api: client.ApiClient
    apiserver: ApiServer
    storage: Storage
    root: Path

    def __post_init__(self) -> None:
        self.objects = client.CustomObjectsApi(self.api)
        self.agents: list[ManagedProcess] = []

    @classmethod
    def in_new_namespace(
        cls,
        namespace: str,
        api: client.ApiClient,
        apiserver: ApiServer,
        object_storage: S3Server,
        storage: Storage,
        root: Path,
    ) -> Fleet:
        """A fleet in a namespace created for it, holding the storage Secret conversions use."""
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        ensure_storage_secret(api, namespace, object_storage)
        return cls(namespace, api, apiserver, storage, root)

    def remove(self) -> None:
        """Stops the agents and deletes the namespace `in_new_namespace` created."""
        for agent in self.agents:
            agent.stop()
        client.CoreV1Api(self.api).delete_namespace(self.namespace)

    def provision(self, device: str) -> Path:
        return provision_device(
            self.api,
            namespace=self.namespace,
            device_name=device,
            server=self.apiserver.url,
            ca_cert=self.apiserver.pki.ca_cert,
            kubeconfig_path=self.root / device / "kubeconfig",
        )

    def data_dir(self, device: str) -> Path:
        return self.root / device / "data"

    def start_agent(
        self, device: str, *extra: str, stop_at: Breakpoint | None = None
    ) -> ManagedProcess:
        """A real agent process; with `stop_at`, one that stops itself there (faults.py)."""
        kubeconfig = self.root / device / "kubeconfig"
        if not kubeconfig.exists():
            self.provision(device)
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "MODELFLEET_S3"))
        }
        launcher = [sys.executable, "-m", "modelfleet.agent"]
        if stop_at is not None:
            launcher, env = stop_at.argv("modelfleet.agent"), stop_at.env(env)
        agent = ManagedProcess(
            f"agent-{device}",
            [
                *launcher,
                f"--device-name={device}",
                f"--data-dir={self.data_dir(device)}",
                f"--kubeconfig={kubeconfig}",
                *FAST,
                *extra,
            ],
            log_path=self.root / device / f"agent-{len(self.agents)}.log",
            env=env,
        )
        self.agents.append(agent)
        return agent

    def publish(
        self,
        name: str,
        *,
        weight_shift: float = 0.0,
        padding: int = 0,
        probe_shift: float = 0.0,
        layout: bool = False,
    ) -> Artifact:
        """Upload a model whose weights are shifted by `weight_shift` and the probe of a model
        shifted by `probe_shift` (different shifts: the probe fails). With `layout`, under the
        keys a conversion uses, so that an EdgeDeployment pinning its uri finds the probe."""
        data = make_model_bytes(WEIGHT + weight_shift, BIAS, padding=padding)
        probe = make_probe_file(self.root / f"{name}.npz", WEIGHT + probe_shift, BIAS)
        prefix = f"{self.namespace}/{name}"
        model_key, probe_key = f"{prefix}/model.onnx", f"{prefix}/probe.npz"
        if layout:
            keys = ArtifactKeys.for_target(hashlib.sha256(prefix.encode()).hexdigest(), "onnx")
            model_key, probe_key = keys.model, keys.probe
        self.storage.put_bytes(model_key, data)
        self.storage.put_file(probe_key, probe)
        return Artifact(model_key, probe_key, hashlib.sha256(data).hexdigest(), len(data))

    def publish_files(self, name: str, model: Path, probe: Path) -> Artifact:
        """Upload a model file as it is (a .tflite, say) with its probe."""
        prefix = f"{self.namespace}/{name}"
        self.storage.put_file(f"{prefix}/{model.name}", model)
        self.storage.put_file(f"{prefix}/probe.npz", probe)
        data = model.read_bytes()
        return Artifact(
            f"{prefix}/{model.name}",
            f"{prefix}/probe.npz",
            hashlib.sha256(data).hexdigest(),
            len(data),
        )

    def assignment(self, artifact: Artifact, revision: int, **override: Any) -> dict[str, Any]:
        return {
            "deployment": "detector",
            "revision": revision,
            "format": "onnx",
            "url": self.storage.presigned_get_url(artifact.key),
            "sha256": artifact.sha256,
            "sizeBytes": artifact.size,
            "probeUrl": self.storage.presigned_get_url(artifact.probe_key),
            **override,
        }

    def assign(self, device: str, slot: str, assignment: dict[str, Any] | None) -> None:
        self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, device, {"spec": {"models": {slot: assignment}}}
        )

    def device(self, device: str) -> dict[str, Any]:
        body: dict[str, Any] = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, device
        )
        return body

    def slot(self, device: str, slot: str) -> dict[str, Any] | None:
        slots = (self.device(device).get("status") or {}).get("slots") or {}
        found: dict[str, Any] | None = slots.get(slot)
        return found

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                value = check()
            except ApiException as err:
                if err.status != 404:
                    raise
                value, last = None, "not found"
            if value:
                return value
            last = value if value is not None else last
            time.sleep(0.2)
        logs = "\n".join(agent.log_tail(15) for agent in self.agents)
        raise AssertionError(f"timed out waiting for {what}; last: {last}\n{logs}")

    def wait_phase(self, device: str, slot: str, phase: str, revision: int) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.slot(device, slot)
            if status and status.get("phase") == phase and status.get("targetRevision") == revision:
                return status
            return None

        found: dict[str, Any] = self.wait(
            f"{device}/{slot} {phase} at revision {revision}", reached
        )
        return found

    def phases_written(self, device: str, slot: str) -> list[str]:
        """The slot phases the device's agents wrote, one status patch each: an agent logs each
        patch just after making it, so the log is read once it shows the write of the phase
        the device has now."""
        final = (self.slot(device, slot) or {}).get("phase")

        def logged() -> list[str] | None:
            events = [
                json.loads(line)
                for agent in self.agents
                if agent.name == f"agent-{device}"
                for line in agent.log_path.read_text().splitlines()
                if line.startswith("{")
            ]
            phases = [
                e["phase"] for e in events if e["event"] == "slot status" and e["slot"] == slot
            ]
            return phases if phases and phases[-1] == final else None

        found: list[str] = self.wait(f"the agent's log of its {final} write", logged, timeout=10)
        return found

    def current(self, device: str, slot: str) -> Path:
        return self.data_dir(device) / "slots" / slot / "current"

    def active_sha(self, device: str, slot: str) -> str:
        return hashlib.sha256(self.current(device, slot).read_bytes()).hexdigest()


def status_json(status: dict[str, Any] | None) -> str:
    return json.dumps(status, sort_keys=True)
