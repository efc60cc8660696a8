"""examples/gitops: the Argo CD health scripts run in a real Lua 5.1 (the language level of
gopher-lua, which Argo CD embeds) against objects as the operator and agents write them; the
argocd-cm snippet carries exactly those scripts; the kustomization lists what is there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

GITOPS = Path(__file__).resolve().parents[3] / "examples" / "gitops"
KINDS = ("ModelConversion", "EdgeDeployment", "EdgeDevice")
Obj = dict[str, Any]


def health(kind: str, obj: Obj) -> tuple[str, str]:
    """Runs the kind's health.lua as Argo CD does: `obj` global in, the `hs` table out."""
    lua51 = pytest.importorskip("lupa.lua51", reason="lupa (dev extra) runs the Lua scripts")
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute((GITOPS / "argocd" / "health" / f"{kind}.lua").read_text())
    return str(result["status"]), str(result["message"])


def condition(kind: str, status: str, reason: str = "R", message: str = "") -> Obj:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def conversion(generation: int = 2, **status: Any) -> Obj:
    obj: Obj = {"metadata": {"name": "mlp", "generation": generation}, "spec": {}}
    if status:
        obj["status"] = status
    return obj


@pytest.mark.parametrize(
    ("obj", "expected", "says"),
    [
        (conversion(), "Progressing", "observe generation 2"),
        (
            conversion(
                observedGeneration=1, phase="Succeeded", conditions=[condition("Ready", "True")]
            ),
            "Progressing",
            "generation 2",
        ),
        (
            conversion(
                observedGeneration=2,
                phase="Converting",
                conditions=[condition("Ready", "False", message="converting onnx")],
            ),
            "Progressing",
            "Converting: converting onnx",
        ),
        (conversion(observedGeneration=2, phase="Validating"), "Progressing", "Validating"),
        (
            conversion(
                observedGeneration=2,
                phase="Succeeded",
                conditions=[
                    condition("Converted", "True"),
                    condition("Ready", "True", message="approved automatically"),
                ],
            ),
            "Healthy",
            "approved automatically",
        ),
        (
            conversion(
                observedGeneration=2,
                phase="AwaitingApproval",
                conditions=[condition("Ready", "False", "AwaitingApproval")],
            ),
            "Suspended",
            "modelfleet approve mlp",
        ),
        (
            conversion(
                observedGeneration=2,
                phase="Failed",
                conditions=[
                    condition("Ready", "False", "ToleranceExceeded", "onnx: max abs 0.3 > atol")
                ],
            ),
            "Degraded",
            "max abs 0.3",
        ),
    ],
    ids=["no-status", "stale", "converting", "validating", "ready", "awaiting", "failed"],
)
def test_model_conversion_health(obj: Obj, expected: str, says: str) -> None:
    status, message = health("ModelConversion", obj)
    assert status == expected
    assert says in message


def deployment(phase: str | None, ready: str = "False", observed: int = 3, **extra: Any) -> Obj:
    status: Obj = {
        "observedGeneration": observed,
        "counts": {"targeted": 10, "updated": 4, "healthy": 3, "failed": 1},
        "conditions": [condition("Ready", ready, message=f"{phase} message")],
        **extra,
    }
    if phase:
        status["phase"] = phase
    return {"metadata": {"name": "rollout", "generation": 3}, "status": status}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"metadata": {"name": "r", "generation": 1}}, "Progressing"),
        (deployment("Succeeded", observed=2, ready="True"), "Progressing"),
        (deployment("Progressing"), "Progressing"),
        (deployment("Succeeded", ready="True"), "Healthy"),
        (deployment("Paused"), "Suspended"),
        (deployment("Degraded"), "Degraded"),
        (deployment("RollingBack"), "Degraded"),
        (deployment("RolledBack"), "Degraded"),
        (deployment(None), "Progressing"),
    ],
    ids=[
        "no-status",
        "stale",
        "progressing",
        "succeeded",
        "paused",
        "degraded",
        "rolling-back",
        "rolled-back",
        "no-phase",
    ],
)
def test_edge_deployment_health(obj: Obj, expected: str) -> None:
    status, message = health("EdgeDeployment", obj)
    assert status == expected
    if obj.get("status", {}).get("observedGeneration") == 3:
        assert "(4/10 updated, 3 healthy, 1 failed)" in message


def device(models: Obj, slots: Obj | None = None) -> Obj:
    obj: Obj = {"metadata": {"name": "cam07", "generation": 5}, "spec": {"models": models}}
    if slots is not None:
        obj["status"] = {"slots": slots, "facts": {"arch": "aarch64"}}
    return obj


def slot(phase: str, active: int | None, target: int | None = None, **extra: Any) -> Obj:
    return {"phase": phase, "activeRevision": active, "targetRevision": target, **extra}


ASSIGNED = {"vision": {"revision": 2, "sha256": "a" * 64}, "audio": {"revision": 7}}


@pytest.mark.parametrize(
    ("obj", "expected", "says"),
    [
        (device({}), "Healthy", "No models assigned"),
        (device(ASSIGNED), "Progressing", "slot audio: waiting for the agent"),
        (
            device(ASSIGNED, {"audio": slot("Healthy", 7, 7), "vision": slot("Healthy", 1, 1)}),
            "Progressing",
            "slot vision: waiting for the agent to take revision 2",
        ),
        (
            device(ASSIGNED, {"audio": slot("Healthy", 7, 7), "vision": slot("Downloading", 1, 2)}),
            "Progressing",
            "slot vision: Downloading revision 2",
        ),
        (
            device(ASSIGNED, {"audio": slot("Healthy", 7, 7), "vision": slot("Healthy", 2, 2)}),
            "Healthy",
            "2 slot(s) healthy",
        ),
        (
            device(
                ASSIGNED,
                {
                    "audio": slot("Healthy", 7, 7),
                    "vision": slot("Failed", 1, 2, reason="ProbeMismatch", message="max abs 0.2"),
                },
            ),
            "Degraded",
            "slot vision revision 2: ProbeMismatch: max abs 0.2",
        ),
        (
            device(
                ASSIGNED,
                {
                    "audio": slot("Downloading", 6, 7),
                    "vision": slot("Failed", 1, 2, reason="ChecksumMismatch"),
                },
            ),
            "Degraded",
            "ChecksumMismatch",
        ),
    ],
    ids=[
        "unassigned",
        "no-status",
        "agent-behind",
        "downloading",
        "healthy",
        "failed",
        "failed-wins",
    ],
)
def test_edge_device_health(obj: Obj, expected: str, says: str) -> None:
    status, message = health("EdgeDevice", obj)
    assert status == expected
    assert says in message


def test_argocd_cm_snippet_carries_exactly_the_script_files() -> None:
    config = yaml.safe_load((GITOPS / "argocd" / "argocd-cm-health.yaml").read_text())
    assert (config["kind"], config["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    expected = {
        f"resource.customizations.health.modelfleet.io_{kind}": (
            GITOPS / "argocd" / "health" / f"{kind}.lua"
        ).read_text()
        for kind in KINDS
    }
    assert config["data"] == expected


def test_health_scripts_keep_to_lua_5_1() -> None:
    """gopher-lua has no goto, integer division or bit operators (Lua 5.2+/5.3+ syntax)."""
    for kind in KINDS:
        text = (GITOPS / "argocd" / "health" / f"{kind}.lua").read_text()
        code = "\n".join(line.split("--")[0] for line in text.splitlines())
        for newer in ("goto ", "//", "::", "<<", ">>", "&", "~ ", "utf8.", "table.unpack"):
            assert newer not in code, f"{kind}.lua uses {newer!r}"
        assert code.rstrip().endswith("return hs")


def test_kustomization_lists_the_namespace_crds_and_resources() -> None:
    kustomization = yaml.safe_load((GITOPS / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    assert all((GITOPS / path).is_file() for path in listed)
    assert "namespace.yaml" in listed
    assert sorted(p for p in listed if p.startswith("crds/")) == sorted(
        f"crds/{p.name}" for p in (GITOPS / "crds").glob("*.yaml")
    )
    kinds = {yaml.safe_load((GITOPS / p).read_text())["kind"] for p in listed}
    assert kinds == {"Namespace", "CustomResourceDefinition", *KINDS}
    namespace = yaml.safe_load((GITOPS / "namespace.yaml").read_text())["metadata"]["name"]
    assert kustomization["namespace"] == namespace


def test_argocd_application_leaves_the_operators_fields_alone() -> None:
    app = yaml.safe_load((GITOPS / "argocd" / "application.yaml").read_text())
    spec = app["spec"]
    assert spec["source"]["path"] == "examples/gitops"
    assert (
        spec["destination"]["namespace"]
        == yaml.safe_load((GITOPS / "namespace.yaml").read_text())["metadata"]["name"]
    )
    assert "ServerSideApply=true" in spec["syncPolicy"]["syncOptions"]
    assert "RespectIgnoreDifferences=true" in spec["syncPolicy"]["syncOptions"]
    assert {"group": "modelfleet.io", "kind": "EdgeDevice", "jsonPointers": ["/spec/models"]} in (
        spec["ignoreDifferences"]
    )
    chart_app = yaml.safe_load((GITOPS / "argocd" / "operator-application.yaml").read_text())
    chart_path = GITOPS.parents[1] / chart_app["spec"]["source"]["path"]
    assert (chart_path / "Chart.yaml").is_file()
