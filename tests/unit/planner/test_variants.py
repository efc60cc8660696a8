"""Variants: which variant a device takes, and whole rollouts of a mixed fleet as one revision
(the pure planner against the simulated fleet)."""

from __future__ import annotations

from datetime import datetime

from modelfleet.api.device import RuntimeRequest
from modelfleet.conditions import get_condition
from modelfleet.operator.rollout.conditions import READY, VARIANT_FORMAT_MISSING
from modelfleet.operator.rollout.planner import AssignRevision
from modelfleet.operator.rollout.revisions import RolloutProgress, track_artifact
from modelfleet.operator.rollout.variants import (
    MissingFormats,
    choose_variant,
    variant_artifacts,
)
from tests.unit.planner.builders import (
    LABELS,
    T0,
    format_sha,
    make_conversion_artifacts,
    make_release,
    make_spec,
    make_variant,
    make_view,
    names,
    plan,
    progressing,
)
from tests.unit.planner.simulated_fleet import Fleet

OPENVINO = {"engine": "openvino", "devices": ["CPU"]}
CUDA_FIRST = {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
VARIANTS = (
    make_variant("intel", {"hw": "intel"}, "onnx", runtime=OPENVINO),
    make_variant("jetson", {"hw": "jetson"}, "onnx-fp16", runtime=CUDA_FIRST),
)
HARDWARE = {"intel": "intel", "jetson": "jetson", "default": "arm"}


def mixed_fleet(per_kind: int = 4) -> Fleet:
    """`per_kind` devices each of intel, jetson and arm (no variant: the default)."""
    spec = make_spec(variants=VARIANTS, waves=[1, "50%", "100%"], threshold=0)
    fleet = Fleet(spec=spec, art=make_release(1, spec))
    for kind, hw in HARDWARE.items():
        fleet.add(*names(per_kind, prefix=kind), labels={**LABELS, "hw": hw})
    return fleet


def expected_sha(fleet: Fleet, device: str, revision: int) -> str:
    kind = device.split("-", maxsplit=1)[0]
    fmt = {"intel": "onnx", "jetson": "onnx-fp16", "default": "onnx"}[kind]
    return format_sha(revision, fmt)


def test_a_device_takes_the_first_variant_that_matches_else_the_default() -> None:
    spec = make_spec(
        variants=[
            make_variant("jetson-orin", {"hw": "jetson", "gen": "orin"}, "onnx-int8"),
            *VARIANTS,
        ]
    )
    orin = choose_variant(spec, {"hw": "jetson", "gen": "orin"})
    assert (orin.name, orin.format, orin.runtime) == ("jetson-orin", "onnx-int8", None)
    nano = choose_variant(spec, {"hw": "jetson", "gen": "nano"})
    assert (nano.name, nano.format) == ("jetson", "onnx-fp16")
    assert nano.runtime == RuntimeRequest.model_validate(CUDA_FIRST)
    arm = choose_variant(spec, {"hw": "arm"})
    assert arm.is_default and (arm.name, arm.format, arm.runtime) == ("default", "onnx", None)


def test_every_variant_whose_format_the_conversion_lacks_is_named() -> None:
    spec = make_spec(variants=[*VARIANTS, make_variant("small", {"hw": "mcu"}, "onnx-int8")])
    found = variant_artifacts(spec, make_conversion_artifacts(1, ["onnx"]), conversion="det")
    assert isinstance(found, MissingFormats)
    assert found.missing == (("jetson", "onnx-fp16"), ("small", "onnx-int8"))
    assert "variant jetson needs onnx-fp16, variant small needs onnx-int8" in found.message
    resolved = variant_artifacts(spec, make_conversion_artifacts(1), conversion="det")
    assert not isinstance(resolved, MissingFormats)
    assert [(v.name, v.sha256) for v in resolved] == [
        ("intel", format_sha(1, "onnx")),
        ("jetson", format_sha(1, "onnx-fp16")),
        ("small", format_sha(1, "onnx-int8")),
    ]


def test_a_mixed_fleet_rolls_out_one_revision_in_waves_each_device_on_its_variant() -> None:
    fleet = mixed_fleet()
    final = fleet.run()
    assert final.status.phase == "Succeeded"
    assert [r.revision for r in final.status.history] == [1]
    assert {p.status.wave for p in fleet.plans} == {0, 1, 2}
    for name, device in fleet.devices.items():
        assignment = device.models[fleet.slot]
        assert assignment.revision == 1
        assert assignment.sha256 == expected_sha(fleet, name, 1), name
        kind = name.split("-", maxsplit=1)[0]
        assert assignment.variant == (None if kind == "default" else kind)
        engine = assignment.runtime.engine if assignment.runtime else None
        assert engine == {"intel": "openvino", "jetson": "onnxruntime", "default": None}[kind]
    counts = {v.name: (v.format, v.sha256, v.counts) for v in final.status.variants}
    assert list(counts) == ["intel", "jetson", "default"]
    for fmt, sha256, per_variant in counts.values():
        assert sha256 == format_sha(1, fmt)
        assert per_variant.targeted == per_variant.healthy == per_variant.updated == 4
    assert final.status.counts.healthy == 12


def test_one_failing_variant_aborts_the_revision_and_every_variant_goes_back_to_its_own() -> None:
    fleet = mixed_fleet()
    assert fleet.run().status.phase == "Succeeded"
    fleet.art = make_release(2, fleet.spec)
    fleet.bad = {format_sha(2, "onnx-fp16")}
    final = fleet.run()
    assert final.status.phase == "RolledBack"
    assert [r.outcome for r in final.status.history] == ["Succeeded", "RolledBack"]
    assert set(fleet.revisions().values()) == {1}
    for name, device in fleet.devices.items():
        assert device.models[fleet.slot].sha256 == expected_sha(fleet, name, 1), name
    reason, message = progressing(final.status)
    assert reason == "RolloutAborted" and "jetson-" in message
    jetson = next(v for v in final.status.variants if v.name == "jetson")
    assert jetson.counts.failed == 0 and jetson.counts.healthy == 4


def test_a_missing_variant_format_blocks_before_any_device_moves() -> None:
    spec = make_spec(variants=VARIANTS)
    devices = [make_view(n, labels={**LABELS, "hw": "jetson"}) for n in names(3)]
    why = "ModelConversion detector-v1 has no approved artifact for variant jetson needs onnx-fp16"
    p = plan(devices, spec=spec, art=None, unresolved=(VARIANT_FORMAT_MISSING, why))
    assert p.actions == ()
    assert p.status.phase == "Degraded"
    assert progressing(p.status) == (VARIANT_FORMAT_MISSING, why)
    ready = get_condition(p.status.conditions, READY)
    assert ready is not None and (ready.status, ready.reason) == ("False", VARIANT_FORMAT_MISSING)
    jetson = next(v for v in p.status.variants if v.name == "jetson")
    assert (jetson.counts.targeted, jetson.counts.updated, jetson.sha256) == (3, 0, None)


def test_a_variant_that_changes_only_its_runtime_is_a_new_revision() -> None:
    spec = make_spec(variants=VARIANTS)
    first = track_artifact(
        RolloutProgress.of(plan([], spec=spec, art=make_release(1, spec)).status),
        make_release(1, spec),
        history_limit=10,
        last_wave=2,
        now=T0,
    )
    assert [r.revision for r in first.history] == [1]
    cpu_only = {**OPENVINO, "devices": ["GPU", "CPU"]}
    changed = make_spec(variants=[make_variant("intel", {"hw": "intel"}, runtime=cpu_only)])
    later = track_artifact(
        first,
        make_release(1, changed),
        history_limit=10,
        last_wave=2,
        now=datetime(2024, 5, 2, tzinfo=T0.tzinfo),
    )
    assert [r.revision for r in later.history] == [1, 2]
    assert later.history[1].sha256 == later.history[0].sha256
    assert later.history[1].variants[0].runtime is not None
    assert later.history[1].variants[0].runtime.devices == ["GPU", "CPU"]


def test_a_relabelled_device_gets_its_new_variant_of_the_revision_it_holds() -> None:
    fleet = mixed_fleet(per_kind=2)
    assert fleet.run().status.phase == "Succeeded"
    fleet.devices["default-000"].labels = {**LABELS, "hw": "jetson"}
    p = fleet.step()
    moved = [a for a in p.actions if isinstance(a, AssignRevision)]
    assert [(a.device, a.revision, a.artifact.variant) for a in moved] == [
        ("default-000", 1, "jetson")
    ]
    final = fleet.run()
    assert fleet.devices["default-000"].models[fleet.slot].sha256 == format_sha(1, "onnx-fp16")
    counts = {v.name: v.counts.healthy for v in final.status.variants}
    assert counts == {"intel": 2, "jetson": 3, "default": 1}
    assert [r.revision for r in final.status.history] == [1]
