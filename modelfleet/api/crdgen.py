"""Generates the CustomResourceDefinitions in `crds/` from the pydantic models (`make crds`).

pydantic's JSON Schema is close to what the API server wants; this module makes it structural:
references inlined, optionals unwrapped, int-or-string marked, free-form maps preserved.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from modelfleet.api.base import GROUP, VERSION, ResourceModel
from modelfleet.api.conversion import ModelConversion
from modelfleet.api.deployment import EdgeDeployment
from modelfleet.api.device import EdgeDevice

Schema = dict[str, Any]
CATEGORY = "modelfleet"
_DROPPED_KEYS = {"title", "$defs"}
_RULES = "x-kubernetes-validations"

_CONDITION = '.status.conditions[?(@.type=="{}")].status'
PRINTER_COLUMNS: dict[str, list[Schema]] = {
    "ModelConversion": [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Ready", "type": "string", "jsonPath": _CONDITION.format("Ready")},
        {"name": "Targets", "type": "string", "jsonPath": ".status.formats"},
        {"name": "Approval", "type": "string", "jsonPath": ".spec.approval", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    "EdgeDeployment": [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Revision", "type": "integer", "jsonPath": ".status.currentRevision"},
        {"name": "Stable", "type": "integer", "jsonPath": ".status.stableRevision"},
        {"name": "Wave", "type": "string", "jsonPath": ".status.waveProgress"},
        {"name": "Targeted", "type": "integer", "jsonPath": ".status.counts.targeted"},
        {"name": "Healthy", "type": "integer", "jsonPath": ".status.counts.healthy"},
        {"name": "Failed", "type": "integer", "jsonPath": ".status.counts.failed"},
        {"name": "Offline", "type": "integer", "jsonPath": ".status.counts.offline", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    "EdgeDevice": [
        {"name": "Site", "type": "string", "jsonPath": ".metadata.labels.site"},
        {"name": "Hardware", "type": "string", "jsonPath": ".metadata.labels.hardware"},
        {"name": "Arch", "type": "string", "jsonPath": ".status.facts.arch"},
        {"name": "Runtime", "type": "string", "jsonPath": ".status.facts.runtime.onnxruntime"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
}
KINDS: tuple[type[ResourceModel], ...] = (ModelConversion, EdgeDeployment, EdgeDevice)


def _resolve(node: Any, defs: Schema) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        rules = [*target.get(_RULES, []), *node.get(_RULES, [])]
        if rules:  # a field's own rules add to its model's, never hide them
            merged[_RULES] = rules
        return _resolve(merged, defs)
    return _structural({k: _resolve(v, defs) for k, v in node.items() if k not in _DROPPED_KEYS})


def _structural(node: Schema) -> Schema:
    """Rewrite one already-resolved schema node into the API server's structural dialect."""
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if node.get("x-kubernetes-int-or-string"):
            pass
        elif len(options) == 1:
            node = {**options[0], **node}
        else:
            raise ValueError(f"cannot express union {options} in a structural schema")
        if node.get("default", "") is None:
            del node["default"]
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    if node.get("type") == "object" and node.get("additionalProperties") in (True, {}):
        del node["additionalProperties"]
        node["x-kubernetes-preserve-unknown-fields"] = True
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node[bound], bool):
            node[flag] = node[bound]
            node[bound] = True
    properties = node.get("properties", {})
    conditions = properties.get("conditions")
    if conditions and conditions.get("type") == "array":
        conditions["x-kubernetes-list-type"] = "map"
        conditions["x-kubernetes-list-map-keys"] = ["type"]
    return node


def openapi_schema(model: type[ResourceModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: Schema = _resolve(raw, raw.get("$defs", {}))
    schema.pop("description", None)
    properties = schema["properties"]
    properties["apiVersion"] = {"type": "string"}
    properties["kind"] = {"type": "string"}
    properties["metadata"] = {"type": "object"}
    if "status" in properties:
        properties["status"]["properties"]["kopf"] = {
            "type": "object",
            "description": "Handler progress kept by the operator framework.",
            "x-kubernetes-preserve-unknown-fields": True,
        }
    schema["required"] = [r for r in schema.get("required", []) if r != "status"]
    return schema


def custom_resource_definition(model: type[ResourceModel]) -> Schema:
    kind: str = model.KIND
    plural: str = model.PLURAL
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": list(model.SHORT_NAMES),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS[kind],
                    "schema": {"openAPIV3Schema": openapi_schema(model)},
                }
            ],
        },
    }


def render_all() -> dict[str, str]:
    """File name → YAML text for every CRD."""
    header = "# Generated by `make crds` from modelfleet/api; do not edit.\n"
    return {
        f"{GROUP}_{model.PLURAL}.yaml": header
        + yaml.safe_dump(custom_resource_definition(model), sort_keys=False, width=100)
        for model in KINDS
    }


def main(argv: list[str]) -> None:
    out = Path(argv[0] if argv else "crds")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (out / name).write_text(text)


if __name__ == "__main__":
    main(sys.argv[1:])
