"""`modelfleet rollback NAME` against the real API server: with no revision it returns to the
revision before the current one and says which; with nothing earlier it refuses in one line.

No operator runs here: the test writes the status an operator would have written, so what it
checks is the CLI's choice and its patch, as the API server stores them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelfleet.api.base import GROUP, VERSION
from modelfleet.dev.servers import ApiServer

MODELFLEET = str(Path(sys.executable).with_name("modelfleet"))
PLURAL = "edgedeployments"


def _record(revision: int, outcome: str = "Succeeded") -> dict[str, Any]:
    return {
        "revision": revision,
        "sha256": f"{revision}" * 64,
        "format": "onnx",
        "uri": f"s3://modelfleet/artifacts/d{revision}/onnx/model.onnx",
        "conversion": "cam",
        "outcome": outcome,
    }


@pytest.fixture
def objects(kube_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_client)


@pytest.fixture
def deployment(objects: client.CustomObjectsApi, namespace: str) -> Iterator[str]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeDeployment",
        "metadata": {"name": "cam"},
        "spec": {
            "model": {"conversion": "cam", "format": "onnx"},
            "selector": {"matchLabels": {"hardware": "cpu"}},
        },
    }
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    yield "cam"


def _set_status(
    objects: client.CustomObjectsApi, namespace: str, current: int, history: list[dict[str, Any]]
) -> None:
    status = {"phase": "Succeeded", "currentRevision": current, "stableRevision": current}
    objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "cam", {"status": {**status, "history": history}}
    )


def _rollback(kube_apiserver: ApiServer, namespace: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MODELFLEET, "rollback", "cam", "-n", namespace],
        env={**kube_apiserver.env(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_rollback_after_a_finished_rollout_returns_to_the_previous_revision(
    kube_apiserver: ApiServer, objects: client.CustomObjectsApi, namespace: str, deployment: str
) -> None:
    history = [_record(1), _record(2, "RolledBack"), _record(3)]
    _set_status(objects, namespace, current=3, history=history)
    done = _rollback(kube_apiserver, namespace)
    assert done.returncode == 0, done.stderr
    assert "rolled back from revision 3 to revision 1" in done.stdout
    stored = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, deployment)
    model = stored["spec"]["model"]
    assert "conversion" not in model
    assert (model["uri"], model["sha256"]) == (history[0]["uri"], history[0]["sha256"])


def test_rollback_with_nothing_earlier_refuses_and_changes_nothing(
    kube_apiserver: ApiServer, objects: client.CustomObjectsApi, namespace: str, deployment: str
) -> None:
    _set_status(objects, namespace, current=1, history=[_record(1)])
    before = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, deployment)
    done = _rollback(kube_apiserver, namespace)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: nothing to roll back to: revision 1 is the only one in history with a different "
        "artifact that was not rolled back"
    ]
    after = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, deployment)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
