"""Rendering charts/modelfleet with the real helm binary, for the chart's unit and integration
tests (integration tests import it as `unit.chart.rendering`)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelfleet.dev.errors import DevEnvError
from modelfleet.dev.tools import find_tool

CHART = Path(__file__).resolve().parents[3] / "charts" / "modelfleet"
# helm built from source by `make tools` defaults to Kubernetes v1.20 for `helm template`; the
# chart needs 1.30+, and the test control plane is 1.36.
KUBE_VERSION = "1.36.0"
ENDPOINT = "http://minio.storage.svc:9000"

Doc = dict[str, Any]


def helm() -> Path:
    try:
        return find_tool("helm")
    except DevEnvError as err:
        pytest.skip(str(err))


def run_helm(args: list[str], *, values: Doc | None = None, tmp_path: Path) -> str:
    """helm's stdout; a failing helm raises HelmError carrying its stderr."""
    command = [str(helm()), *args]
    if values is not None:
        values_file = tmp_path / f"values-{len(list(tmp_path.glob('values-*')))}.yaml"
        values_file.write_text(yaml.safe_dump(values))
        command += ["--values", str(values_file)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise HelmError(done.stderr.strip() or done.stdout.strip())
    return done.stdout


class HelmError(Exception):
    pass


def render(
    values: Doc,
    *,
    tmp_path: Path,
    release: str = "mf",
    namespace: str = "modelfleet-system",
    include_crds: bool = False,
) -> list[Doc]:
    """`helm template` of the chart with these values, as a list of objects."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    args += ["--kube-version", KUBE_VERSION]
    if include_crds:
        args.append("--include-crds")
    text = run_helm(args, values=values, tmp_path=tmp_path)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def with_endpoint(values: Doc | None = None) -> Doc:
    """The values every render needs: an S3 endpoint (the chart's one required value)."""
    merged: Doc = {"storage": {"endpoint": ENDPOINT}}
    for key, value in (values or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def find(docs: Iterable[Doc], kind: str, name: str | None = None) -> Doc:
    matches = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def kinds(docs: Iterable[Doc]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def containers(pod_spec: Doc) -> list[Doc]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"]["template"]["spec"]
    return spec
