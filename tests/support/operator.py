"""Running the operator in tests, and waiting for what it does."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from modelfleet.api.base import GROUP, VERSION
from modelfleet.dev.components import start_operator
from modelfleet.dev.processes import ManagedProcess
from modelfleet.dev.samples import SampleModel
from modelfleet.storage import Storage

PLURAL = "modelconversions"


def create_conversion(
    kube_client: Any, storage: Storage, namespace: str, sample: SampleModel, **spec: Any
) -> Callable[[], dict[str, Any]]:
    """Upload `sample`'s files, create a ModelConversion named after it with `spec`, and
    return a reader of the object."""
    from kubernetes import client

    prefix = f"models/{sample.name}-{namespace}/"
    for path in (sample.model_file, sample.params_file):
        assert path is not None
        storage.put_file(prefix + path.name, path)
    body = make_conversion_body(sample.name, sample, storage.uri(prefix), **spec)
    objects = client.CustomObjectsApi(kube_client)
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    def read() -> dict[str, Any]:
        found: dict[str, Any] = objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, sample.name
        )
        return found

    return read


@dataclass
class OperatorHandle:
    """The operator process; tests may kill it and start a new one."""

    run_dir: Path
    env: dict[str, str]
    process: ManagedProcess

    def restart(self) -> None:
        self.process = start_operator(self.run_dir, self.env, name=f"operator-{time.time_ns()}")


def make_conversion_body(name: str, sample: SampleModel, uri: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelConversion",
        "metadata": {"name": name},
        "spec": {
            "source": {"uri": uri},
            "inputs": [i.to_wire() for i in sample.inputs],
            "targets": [{"format": "onnx"}],
            "validation": {"samples": 4, "benchmark": {"warmup": 1, "iterations": 5}},
            **spec,
        },
    }


def wait_for(
    read: Callable[[], dict[str, Any]],
    done: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 240,
    what: str = "condition",
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    current: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            current = read()
        except ApiException:
            current = {}
        if current and done(current):
            return current
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last status: {current.get('status')}")
