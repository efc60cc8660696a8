"""The API server itself enforces the CRD schemas and CEL rules: bad objects never get stored,
and the error names the offending field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.api.base import GROUP, VERSION
from modelfleet.api.crdgen import KINDS

pytestmark = pytest.mark.integration

Body = dict[str, Any]
KINDS_BY_NAME = {model.KIND: model for model in KINDS}
PLURALS = {
    "ModelConversion": "modelconversions",
    "EdgeDeployment": "edgedeployments",
    "EdgeDevice": "edgedevices",
}


def _example_files(repo_root: Path) -> list[Body]:
    return [yaml.safe_load(p.read_text()) for p in sorted((repo_root / "examples").glob("*.yaml"))]


def _examples(repo_root: Path) -> dict[str, Body]:
    """One example per kind, `<kind>.yaml` (sorted last), for the cases to mutate."""
    return {doc["kind"]: doc for doc in _example_files(repo_root)}


def _create(api: client.ApiClient, namespace: str, body: Body) -> Body:
    body = copy.deepcopy(body)
    body["metadata"]["namespace"] = namespace
    objects = client.CustomObjectsApi(api)
    created: Body = objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[body["kind"]], body, field_validation="Strict"
    )
    return created


def _contains(stored: Any, given: Any) -> bool:
    """Everything the user wrote survived; the API server may only add defaults."""
    if isinstance(given, dict):
        return isinstance(stored, dict) and all(
            k in stored and _contains(stored[k], v) for k, v in given.items()
        )
    if isinstance(given, list):
        return (
            isinstance(stored, list)
            and len(stored) == len(given)
            and all(_contains(s, g) for s, g in zip(stored, given, strict=True))
        )
    return bool(stored == given)


def test_every_example_is_accepted(
    kube_client: client.ApiClient, namespace: str, repo_root: Path
) -> None:
    examples = _example_files(repo_root)
    assert {body["kind"] for body in examples} == set(PLURALS)
    for body in examples:
        created = _create(kube_client, namespace, body)
        assert _contains(created["spec"], body["spec"]), body["kind"]
        KINDS_BY_NAME[body["kind"]].model_validate(created)


def _mc(mutate: Callable[[Body], None]) -> Callable[[dict[str, Body]], Body]:
    return _mutated("ModelConversion", mutate)


def _edep(mutate: Callable[[Body], None]) -> Callable[[dict[str, Body]], Body]:
    return _mutated("EdgeDeployment", mutate)


def _mutated(kind: str, mutate: Callable[[Body], None]) -> Callable[[dict[str, Body]], Body]:
    def build(examples: dict[str, Body]) -> Body:
        body = copy.deepcopy(examples[kind])
        mutate(body["spec"])
        return body

    return build


def _set(path: str, value: Any) -> Callable[[Body], None]:
    """Set a dotted path (list indexes as numbers) inside spec."""

    def mutate(spec: Body) -> None:
        *parents, leaf = path.split(".")
        node: Any = spec
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(leaf) if leaf.isdigit() else leaf] = value

    return mutate


def _delete(key: str) -> Callable[[Body], None]:
    return lambda spec: spec.pop(key)


def _add_target(target: Body) -> Callable[[Body], None]:
    return lambda spec: spec["targets"].append(target)


def _device_with_bad_digest(examples: dict[str, Body]) -> Body:
    body = copy.deepcopy(examples["EdgeDevice"])
    body["spec"] = {
        "models": {
            "vision": {
                "deployment": "d",
                "revision": 1,
                "format": "onnx",
                "url": "http://x",
                "sha256": "not-a-digest",
                "sizeBytes": 1,
            }
        }
    }
    return body


def _device_with_bad_slot(examples: dict[str, Body]) -> Body:
    body = _device_with_bad_digest(examples)
    assignment = body["spec"]["models"].pop("vision")
    body["spec"]["models"]["../etc"] = {**assignment, "sha256": "a" * 64}
    return body


_VARIANT: Body = {
    "name": "intel",
    "selector": {"matchLabels": {"hardware": "intel-ipc"}},
    "format": "onnx",
    "runtime": {"engine": "openvino", "devices": ["CPU"]},
}

INVALID: list[tuple[str, Callable[[dict[str, Body]], Body], str]] = [
    ("source uri not s3", _mc(_set("source.uri", "http://x/model")), "spec.source.uri"),
    ("no inputs", _mc(_set("inputs", [])), "spec.inputs"),
    ("zero dimension", _mc(_set("inputs.0.shape", [1, 0, 64, 64])), "spec.inputs[0].shape"),
    ("inverted range", _mc(_set("inputs.0.range", [1.0, 0.0])), "spec.inputs[0].range"),
    (
        "duplicate input names",
        _mc(lambda s: s["inputs"].append(dict(s["inputs"][0]))),
        "spec.inputs",
    ),
    ("duplicate target format", _mc(_add_target({"format": "onnx"})), "spec.targets"),
    ("unknown target format", _mc(_set("targets.0.format", "tensorrt")), "spec.targets[0].format"),
    ("opset too old", _mc(_set("targets.0.opset", 3)), "spec.targets[0].opset"),
    (
        "calibration on fp32",
        _mc(_set("targets.0.calibration", {"uri": "s3://modelfleet/c.npz"})),
        "spec.targets[0].calibration",
    ),
    (
        "dynamic quantization with calibration",
        _mc(_set("targets.1.quantization", "dynamic")),
        "spec.targets[1].calibration",
    ),
    (
        "negative atol",
        _mc(_set("targets.0.tolerance.atol", -0.1)),
        "spec.targets[0].tolerance.atol",
    ),
    (
        "top-k agreement on fp32",
        _mc(_set("targets.0.tolerance.topKAgreement", 0.9)),
        "spec.targets[0].tolerance.topKAgreement",
    ),
    (
        "cosine above one",
        _mc(_set("targets.0.tolerance.minCosine", 1.5)),
        "spec.targets[0].tolerance.minCosine",
    ),
    (
        "keepFloat on fp32",
        _mc(_set("targets.0.keepFloat", {"opTypes": ["Resize"]})),
        "spec.targets[0].keepFloat",
    ),
    (
        "unknown remedies mode",
        _mc(_set("targets.0.remedies", "always")),
        "spec.targets[0].remedies",
    ),
    ("unknown approval", _mc(_set("approval", "maybe")), "spec.approval"),
    ("no targets", _mc(_delete("targets")), "spec.targets"),
    ("unknown spec field", _mc(_set("colour", "blue")), "spec.colour"),
    ("last wave not 100%", _edep(_set("strategy.waves", [1, "50%"])), "spec.strategy.waves"),
    (
        "decreasing waves",
        _edep(_set("strategy.waves", ["50%", "10%", "100%"])),
        "spec.strategy.waves",
    ),
    (
        "count after percent",
        _edep(_set("strategy.waves", ["10%", 5, "100%"])),
        "spec.strategy.waves",
    ),
    ("repeated wave", _edep(_set("strategy.waves", [2, 2, "100%"])), "spec.strategy.waves"),
    ("percent over 100", _edep(_set("strategy.maxInFlight", "150%")), "spec.strategy.maxInFlight"),
    (
        "failure threshold over 100",
        _edep(_set("strategy.failureThreshold", 150)),
        "spec.strategy.failureThreshold",
    ),
    ("empty selector", _edep(_set("selector", {})), "spec.selector"),
    ("no device in flight", _edep(_set("strategy.maxInFlight", 0)), "spec.strategy.maxInFlight"),
    (
        "no percent in flight",
        _edep(_set("strategy.maxInFlight", "0%")),
        "spec.strategy.maxInFlight",
    ),
    (
        "label value with a space",
        _edep(_set("selector.matchLabels.hardware", "jetson orin")),
        "spec.selector.matchLabels.hardware",
    ),
    (
        "label value ending in a dash",
        _edep(_set("selector.matchLabels.hardware", "jetson-")),
        "spec.selector.matchLabels.hardware",
    ),
    (
        "label key with a space",
        _edep(_set("selector.matchLabels", {"hard ware": "jetson"})),
        "spec.selector.matchLabels",
    ),
    (
        "label key with two slashes",
        _edep(_set("selector.matchLabels", {"a/b/c": "jetson"})),
        "spec.selector.matchLabels",
    ),
    (
        "expression key not a label key",
        _edep(_set("selector.matchExpressions.0.key", "chan nel")),
        "spec.selector.matchExpressions[0].key",
    ),
    (
        "expression value not a label value",
        _edep(_set("selector.matchExpressions.0.values", ["st able"])),
        "spec.selector.matchExpressions[0].values[0]",
    ),
    (
        "deadline shorter than device timeout",
        _edep(_set("strategy.progressDeadlineSeconds", 600)),
        "spec.strategy.progressDeadlineSeconds",
    ),
    (
        "conversion and uri both set",
        _edep(_set("model.uri", "s3://modelfleet/a/model.onnx")),
        "spec.model",
    ),
    (
        "pinned uri without digest",
        _edep(_set("model", {"uri": "s3://modelfleet/a/model.onnx"})),
        "spec.model.sha256",
    ),
    ("bad slot name", _edep(_set("slot", "Vision_1")), "spec.slot"),
    (
        "two variants of one name",
        _edep(_set("variants", [_VARIANT, {**_VARIANT, "format": "onnx-fp16"}])),
        "spec.variants",
    ),
    (
        "variant named default",
        _edep(_set("variants", [{**_VARIANT, "name": "default"}])),
        "spec.variants",
    ),
    (
        "variant name not a DNS label",
        _edep(_set("variants", [{**_VARIANT, "name": "Intel_PC"}])),
        "spec.variants[0].name",
    ),
    (
        "variant format unknown",
        _edep(_set("variants", [{**_VARIANT, "format": "tensorrt"}])),
        "spec.variants[0].format",
    ),
    (
        "variants of a pinned artifact",
        _edep(
            lambda s: s.update(
                model={"uri": "s3://modelfleet/a/model.onnx", "sha256": "a" * 64},
                variants=[_VARIANT],
            )
        ),
        "spec.variants",
    ),
    ("unknown pause mode", _edep(_set("strategy.pause", "always")), "spec.strategy.pause"),
    ("device assignment with bad digest", _device_with_bad_digest, "spec.models.vision.sha256"),
    ("slot name that is a path", _device_with_bad_slot, "spec.models"),
]


@pytest.mark.parametrize(("case", "build", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_object_is_rejected_naming_the_field(
    kube_client: client.ApiClient,
    namespace: str,
    repo_root: Path,
    case: str,
    build: Callable[[dict[str, Body]], Body],
    field: str,
) -> None:
    body = build(_examples(repo_root))
    with pytest.raises(ApiException) as rejected:
        _create(kube_client, namespace, body)
    assert rejected.value.status in (400, 422), rejected.value.body
    assert field in rejected.value.body, (
        f"{case}: error does not name {field}: {rejected.value.body}"
    )
    objects = client.CustomObjectsApi(kube_client)
    stored = objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[body["kind"]])
    assert stored["items"] == []


def test_label_keys_with_a_prefix_and_one_in_flight_are_accepted(
    kube_client: client.ApiClient, namespace: str, repo_root: Path
) -> None:
    body = copy.deepcopy(_examples(repo_root)["EdgeDeployment"])
    body["spec"]["selector"]["matchLabels"] = {"example.com/hardware": "jetson_orin.v2", "x": ""}
    body["spec"]["strategy"]["maxInFlight"] = "1%"
    created = _create(kube_client, namespace, body)
    assert created["spec"]["selector"]["matchLabels"]["example.com/hardware"] == "jetson_orin.v2"


def test_a_deployment_keeps_its_slot(
    kube_client: client.ApiClient, namespace: str, repo_root: Path
) -> None:
    created = _create(kube_client, namespace, _examples(repo_root)["EdgeDeployment"])
    name = created["metadata"]["name"]
    objects = client.CustomObjectsApi(kube_client)

    def patch(spec: Body) -> Body:
        patched: Body = objects.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "edgedeployments", name, {"spec": spec}
        )
        return patched

    for change in ({"slot": "audio"}, {"slot": None}):
        with pytest.raises(ApiException) as rejected:
            patch(change)
        assert rejected.value.status == 422, rejected.value.body
        assert "spec.slot" in rejected.value.body and "immutable" in rejected.value.body
    assert patch({"paused": True})["spec"]["slot"] == created["spec"]["slot"]
