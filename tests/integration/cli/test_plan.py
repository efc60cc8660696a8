"""`modelfleet plan -f deployment.yaml` against the real API server: the live EdgeDevices,
their Leases, a rival deployment and a Ready ModelConversion give the plan it prints, and not
one object changes (every resourceVersion stays, the deployment is not created).

No operator runs: the test writes the objects agents and the operator would have written, so
what is checked is what the command reads and prints."""

from __future__ import annotations

import datetime as dt
import hashlib
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
from modelfleet.operator.rollout.ordering import rollout_order

BIN = Path(sys.executable).parent
SHA = hashlib.sha256(b"detector int8").hexdigest()
URI = "s3://modelfleet/artifacts/d1/onnx-int8/model.onnx"
ONLINE = [f"cam-{i}" for i in range(6)]
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "EdgeDeployment",
    "metadata": {"name": "detector"},
    "spec": {
        "model": {"conversion": "detector", "format": "onnx-int8"},
        "slot": "vision",
        "selector": {"matchLabels": {"fleet": "cams"}},
        "strategy": {"waves": [1, "50%", "100%"], "deviceTimeoutSeconds": 300},
    },
}


def _create(objects: client.CustomObjectsApi, namespace: str, plural: str, body: Any) -> None:
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def _device(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EdgeDevice",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
    }


def _lease(name: str, renewed: dt.datetime) -> client.V1Lease:
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1LeaseSpec(holder_identity=name, renew_time=renewed),
    )


@pytest.fixture
def fleet(kube_client: client.ApiClient, namespace: str) -> str:
    """Six online cameras, one offline, one a rival deployment also claims, one kiosk."""
    objects = client.CustomObjectsApi(kube_client)
    leases = client.CoordinationV1Api(kube_client)
    now = dt.datetime.now(dt.UTC)
    for name in ONLINE:
        _create(objects, namespace, "edgedevices", _device(name, fleet="cams"))
        leases.create_namespaced_lease(namespace, _lease(name, now))
    _create(objects, namespace, "edgedevices", _device("cam-off", fleet="cams"))
    leases.create_namespaced_lease(namespace, _lease("cam-off", now - dt.timedelta(hours=2)))
    _create(objects, namespace, "edgedevices", _device("cam-rival", fleet="cams", zone="x"))
    leases.create_namespaced_lease(namespace, _lease("cam-rival", now))
    _create(objects, namespace, "edgedevices", _device("kiosk-0", fleet="kiosks"))
    leases.create_namespaced_lease(namespace, _lease("kiosk-0", now))
    rival = {
        **DEPLOYMENT,
        "metadata": {"name": "rival"},
        "spec": {**DEPLOYMENT["spec"], "selector": {"matchLabels": {"zone": "x"}}},
    }
    _create(objects, namespace, "edgedeployments", rival)
    conversion = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelConversion",
        "metadata": {"name": "detector"},
        "spec": {
            "source": {"uri": "s3://modelfleet/models/detector/"},
            "inputs": [{"name": "x", "shape": [1, 3, 8, 8], "dtype": "float32"}],
            "targets": [{"format": "onnx-int8"}],
        },
    }
    _create(objects, namespace, "modelconversions", conversion)
    status = {
        "phase": "Succeeded",
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Succeeded",
                "message": "approved",
                "lastTransitionTime": "2026-11-21T12:00:00Z",
            }
        ],
        "artifacts": [
            {
                "format": "onnx-int8",
                "uri": URI,
                "sha256": SHA,
                "sizeBytes": 4096,
                "manifestUri": URI.replace("model.onnx", "manifest.json"),
            }
        ],
    }
    objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "modelconversions", "detector", {"status": status}
    )
    return namespace


def _versions(kube_client: client.ApiClient, namespace: str) -> dict[tuple[str, str], str]:
    """resourceVersion of every object the command could touch."""
    objects = client.CustomObjectsApi(kube_client)
    found = {}
    for plural in ("edgedevices", "edgedeployments", "modelconversions"):
        for item in objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)[
            "items"
        ]:
            found[(plural, item["metadata"]["name"])] = item["metadata"]["resourceVersion"]
    for lease in client.CoordinationV1Api(kube_client).list_namespaced_lease(namespace).items:
        found[("leases", lease.metadata.name)] = lease.metadata.resource_version
    return found


def _plan(
    apiserver: ApiServer, tmp_path: Path, namespace: str, *args: str, text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`modelfleet plan -f FILE` where FILE holds DEPLOYMENT, or `text`, or (None) nothing."""
    path = tmp_path / "deployment.yaml"
    if text != "":
        path.write_text(yaml.safe_dump(DEPLOYMENT) if text is None else text)
    return subprocess.run(
        [str(BIN / "modelfleet"), "plan", "-f", str(path), "-n", namespace, *args],
        env={**apiserver.env(), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _rows(output: str) -> dict[str, dict[str, Any]]:
    listed = json.loads(output)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["detector"]
    return {row["name"]: row for row in listed["items"][0]["devices"]}


def test_plan_prints_waves_artifacts_and_skipped_devices_and_writes_nothing(
    kube_apiserver: ApiServer, kube_client: client.ApiClient, fleet: str, tmp_path: Path
) -> None:
    before = _versions(kube_client, fleet)
    done = _plan(kube_apiserver, tmp_path, fleet, "-o", "json")
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    plan = json.loads(done.stdout)["items"][0]
    assert plan["waveSizes"] == [1, 4, 7]  # 6 online + 1 offline targeted
    waves: dict[int, list[str]] = {}
    for name, row in rows.items():
        if row["action"] == "rollout":
            waves.setdefault(row["wave"], []).append(name)
            assert row["artifact"] == {"format": "onnx-int8", "sha256": SHA, "uri": URI}
            assert row["variant"] == "default" and row["revision"] == 1
    assert {w: len(names) for w, names in waves.items()} == {1: 1, 2: 3, 3: 2}
    assert sorted(n for names in waves.values() for n in names) == ONLINE
    skipped = {n: r["reason"] for n, r in rows.items() if r["action"] == "skipped"}
    assert skipped == {"cam-off": "Offline", "cam-rival": "Conflict", "kiosk-0": "NotSelected"}
    assert "rival" in rows["cam-rival"]["message"]
    assert plan["orderKnown"] is False and plan["outcome"] == "Succeeded"

    table = _plan(kube_apiserver, tmp_path, fleet)
    assert table.returncode == 0, table.stderr
    assert "edgedeployment/detector" in table.stdout and "ends Succeeded" in table.stdout
    for name in (*ONLINE, "cam-off", "cam-rival", "kiosk-0"):
        assert name in table.stdout
    assert "Offline" in table.stdout and SHA[:12] in table.stdout

    assert _versions(kube_client, fleet) == before
    assert ("edgedeployments", "detector") not in before


def test_plan_of_an_existing_deployment_follows_its_uid_order(
    kube_apiserver: ApiServer, kube_client: client.ApiClient, fleet: str, tmp_path: Path
) -> None:
    objects = client.CustomObjectsApi(kube_client)
    created = objects.create_namespaced_custom_object(
        GROUP, VERSION, fleet, "edgedeployments", DEPLOYMENT
    )
    before = _versions(kube_client, fleet)
    done = _plan(kube_apiserver, tmp_path, fleet, "-o", "yaml")
    assert done.returncode == 0, done.stderr
    plan = yaml.safe_load(done.stdout)["items"][0]
    assert plan["orderKnown"] is True

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

    order = [d.name for d in rollout_order(created["metadata"]["uid"], map(Named, ONLINE))]
    by_wave = {row["name"]: row["wave"] for row in plan["devices"] if row["action"] == "rollout"}
    assert [by_wave[name] for name in order] == [1, 2, 2, 2, 3, 3]
    assert _versions(kube_client, fleet) == before


BAD_SCHEMA = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "strategy": {"bakeSeconds": -1}}}


def test_kubectl_modelfleet_plan_prints_the_same_plan(
    kube_apiserver: ApiServer, kube_client: client.ApiClient, fleet: str, tmp_path: Path
) -> None:
    """kubectl finds kubectl-modelfleet on PATH and hands it the arguments as they are."""
    direct = _plan(kube_apiserver, tmp_path, fleet, "-o", "json")
    path = tmp_path / "deployment.yaml"
    plugin = subprocess.run(
        [str(BIN / "kubectl"), "modelfleet", "plan", "-f", str(path), "-n", fleet, "-o", "json"],
        env={**kube_apiserver.env(), "PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert plugin.returncode == 0, plugin.stderr
    assert _rows(plugin.stdout) == _rows(direct.stdout)
    assert {r["action"] for r in _rows(plugin.stdout).values()} == {"rollout", "skipped"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("", "FileNotFound", id="missing-file"),
        pytest.param("kind: EdgeDeployment\nspec: [unclosed\n", "InvalidYAML", id="bad-yaml"),
        pytest.param(yaml.safe_dump(BAD_SCHEMA), "InvalidSpec", id="bad-schema"),
        pytest.param(None, "ConversionNotFound", id="no-conversion"),
        pytest.param(None, "ClusterUnreachable", id="no-cluster"),
    ],
)
def test_plan_failures_are_one_line_with_a_reason(
    kube_apiserver: ApiServer, namespace: str, tmp_path: Path, text: str | None, reason: str
) -> None:
    args: list[str] = []
    if reason == "ClusterUnreachable":
        config = yaml.safe_load(kube_apiserver.kubeconfig.read_text())
        config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
        unreachable = tmp_path / "kubeconfig"
        unreachable.write_text(yaml.safe_dump(config))
        args = ["--kubeconfig", str(unreachable)]
    done = _plan(kube_apiserver, tmp_path, namespace, *args, text=text)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{reason}: "), done.stderr
    assert done.stdout == ""
