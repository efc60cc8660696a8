"""What people read: `kubectl get` printer columns (every target, a 1-based wave) and
`modelfleet status` off a terminal (full width) and as `-o wide|json|yaml`.

No operator runs: the test writes the status the operator writes (the planners' unit tests
check that they do), so what is checked is the CRDs' columns and the CLI, on the real API
server."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from modelfleet.api.base import GROUP, VERSION
from modelfleet.dev.servers import ApiServer
from support.kubectl import kubectl

MODELFLEET = str(Path(sys.executable).with_name("modelfleet"))
NAME = "a-conversion-with-a-name-long-enough-to-overflow-eighty-columns"
MESSAGE = "validate Job x failed: inputs[0].name 'image' is not an input of the model"


def _example(repo_root: Path, name: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((repo_root / "examples" / name).read_text())
    return copy.deepcopy(body)


@pytest.fixture
def objects(kube_client: client.ApiClient, namespace: str, repo_root: Path) -> str:
    api = client.CustomObjectsApi(kube_client)
    conversion = _example(repo_root, "modelconversion.yaml")
    conversion["metadata"] = {"name": NAME}
    deployment = _example(repo_root, "edgedeployment.yaml")
    deployment["metadata"] = {"name": "cam"}
    for plural, body, status in (
        (
            "modelconversions",
            conversion,
            {
                "phase": "Succeeded",
                "formats": "onnx,onnx-int8",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "InvalidModel",
                        "message": MESSAGE,
                        "lastTransitionTime": "2026-11-21T12:00:00Z",
                    }
                ],
            },
        ),
        ("edgedeployments", deployment, {"phase": "Succeeded", "wave": 2, "waveProgress": "3/3"}),
    ):
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, body["metadata"]["name"], {"status": status}
        )
    return namespace


def _status(kube_apiserver: ApiServer, namespace: str, *args: str) -> str:
    done = subprocess.run(
        [MODELFLEET, "status", "-n", namespace, *args],
        env={**kube_apiserver.env(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_kubectl_get_shows_every_target_and_a_wave_counted_from_one(
    kube_apiserver: ApiServer, objects: str
) -> None:
    conversions = kubectl(kube_apiserver, "get", "mc", "-n", objects).splitlines()
    assert "TARGETS" in conversions[0] and "onnx,onnx-int8" in conversions[1]
    deployments = kubectl(kube_apiserver, "get", "edep", "-n", objects).splitlines()
    wave = deployments[0].index("WAVE")  # columns align; empty cells are blanks
    assert deployments[1][wave:].split()[0] == "3/3"


def test_status_off_a_terminal_cuts_nothing(kube_apiserver: ApiServer, objects: str) -> None:
    table = _status(kube_apiserver, objects)
    assert NAME in table and "Succeeded" in table and "…" not in table
    assert "3/3" in table
    assert MESSAGE not in table
    assert MESSAGE in _status(kube_apiserver, objects, "-o", "wide")


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_status_prints_the_objects_as_one_list(
    kube_apiserver: ApiServer, objects: str, output: str
) -> None:
    text = _status(kube_apiserver, objects, "-o", output)
    listed = json.loads(text) if output == "json" else yaml.safe_load(text)
    assert listed["kind"] == "List"
    kinds = {(item["kind"], item["metadata"]["name"]) for item in listed["items"]}
    assert kinds == {("ModelConversion", NAME), ("EdgeDeployment", "cam")}
