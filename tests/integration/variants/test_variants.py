"""EdgeDeployment variants on real agents: one revision for a mixed fleet, each device on its
variant's artifact and backend; a forbidden runtime fallback aborts the wave and rolls back.

This machine has no GPU: CUDA falls back to the CPU, as it does on a device without its
libraries. The tests share the module's fleet and run in file order.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelfleet.conditions import parse_time
from support.operator import wait_for
from support.rollouts import Rollouts, assignment_of, slot_of

pytestmark = [pytest.mark.paddle, pytest.mark.xdist_group("variants")]
QUICK = {"waves": [1, "50%", "100%"], "maxInFlight": "100%", "bakeSeconds": 2}
CUDA_THEN_CPU = ["CUDAExecutionProvider", "CPUExecutionProvider"]
MIXED = [
    {
        "name": "ort",
        "selector": {"matchLabels": {"hardware": "x86"}},
        "format": "onnx",
        "runtime": {"engine": "onnxruntime", "providers": ["CPUExecutionProvider"]},
    },
    {
        "name": "openvino",
        "selector": {"matchLabels": {"hardware": "intel"}},
        "format": "onnx",
        "runtime": {"engine": "openvino", "devices": ["CPU"]},
        "tolerance": {"atol": 1e-4, "rtol": 1e-4},
    },
    {
        "name": "fp16",
        "selector": {"matchLabels": {"hardware": "jetson"}},
        "format": "onnx-fp16",
        "runtime": {"engine": "onnxruntime"},
    },
]
USED = {"cpu-0": ["CPUExecutionProvider"], "ort-0": ["CPUExecutionProvider"], "ov-0": ["CPU"]}
USED["fp16-0"] = ["CPUExecutionProvider"]
VARIANT_OF = {"cpu-0": "default", "ort-0": "ort", "ov-0": "openvino", "fp16-0": "fp16"}


def _devices(mixed: Rollouts) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in mixed.devices()}


def test_a_mixed_fleet_rolls_out_one_revision_each_device_on_its_variant(mixed: Rollouts) -> None:
    mixed.deploy("mixed", "mlp", selector={"matchLabels": {"site": "lab"}}, variants=MIXED,
                 strategy=QUICK)  # fmt: skip
    status = mixed.wait_phase("mixed", "Succeeded")["status"]
    assert [r["revision"] for r in status["history"]] == [1]
    assert [v["name"] for v in status["history"][0]["variants"]] == ["ort", "openvino", "fp16"]
    devices = _devices(mixed)
    fp32, fp16 = mixed.artifacts["onnx"]["sha256"], mixed.artifacts["onnx-fp16"]["sha256"]
    for name, device in devices.items():
        slot = slot_of(device, "mixed")
        assert slot["phase"] == "Healthy" and slot["activeRevision"] == 1, (name, slot)
        assert slot["activeSha256"] == (fp16 if name == "fp16-0" else fp32), name
        assert slot["runtime"]["used"] == USED[name], (name, slot["runtime"])
        assert slot["runtime"]["engine"] == ("openvino" if name == "ov-0" else "onnxruntime")
        assert assignment_of(device, "mixed").get("variant", "default") == VARIANT_OF[name]
    assert devices["ov-0"]["spec"]["models"]["mixed"]["tolerance"]["atol"] == 1e-4
    # The probe on OpenVINO records its max abs against the reference next to what ONNX
    # Runtime computed at validation (and on the fp32 device here).
    on_ov, on_ort = (slot_of(devices[d], "mixed")["probe"] for d in ("ov-0", "ort-0"))
    assert on_ov["maxAbs"] < 1e-4 and on_ort["maxAbs"] < 1e-4
    assert on_ov["validatedMaxAbs"] == on_ort["validatedMaxAbs"] is not None
    counts = {v["name"]: v for v in status["variants"]}
    assert list(counts) == ["ort", "openvino", "fp16", "default"]
    for name, variant in counts.items():
        assert variant["counts"]["healthy"] == variant["counts"]["targeted"] == 1, variant
        assert variant["sha256"] == (fp16 if name == "fp16" else fp32)
    assert status["counts"]["healthy"] == 4
    assigned = sorted(parse_time(assignment_of(d, "mixed")["assignedAt"]) for d in devices.values())
    assert (assigned[-1] - assigned[0]).total_seconds() >= QUICK["bakeSeconds"]  # in waves


def test_a_device_that_leaves_its_variant_keeps_nothing_of_its_assignment(
    mixed: Rollouts,
) -> None:
    # The assignment is a merge patch: without explicit nulls the OpenVINO device would keep
    # the variant's runtime and tolerance under the default artifact.
    mixed.patch("mixed", {"spec": {"variants": None}})
    status = mixed.wait_phase("mixed", "Succeeded")["status"]
    assert status["currentRevision"] == 2
    ov = _devices(mixed)["ov-0"]
    assignment = assignment_of(ov, "mixed")
    assert assignment["revision"] == 2
    assert {"runtime", "tolerance", "variant"}.isdisjoint(assignment), assignment
    slot = wait_for(
        lambda: slot_of(_devices(mixed)["ov-0"], "mixed"),
        lambda s: s.get("activeRevision") == 2,
        what="ov-0 on revision 2",
    )
    assert slot["runtime"]["engine"] == "onnxruntime", slot["runtime"]


def test_a_cuda_variant_falls_back_to_the_cpu_and_a_forbidden_fallback_rolls_back(
    mixed: Rollouts,
) -> None:
    cuda = {"name": "cuda", "selector": {}, "format": "onnx"}
    allowed = {"engine": "onnxruntime", "providers": CUDA_THEN_CPU, "allowFallback": True}
    spec = {"waves": [1, "100%"], "maxInFlight": "100%", "bakeSeconds": 1, "failureThreshold": 0}
    mixed.deploy("gpu", "mlp", selector={"matchLabels": {"hardware": "x86"}},
                 variants=[{**cuda, "runtime": allowed}], strategy=spec)  # fmt: skip
    mixed.wait_phase("gpu", "Succeeded")
    slot = slot_of(_devices(mixed)["ort-0"], "gpu")
    assert (slot["phase"], slot["runtime"]["used"]) == ("Healthy", ["CPUExecutionProvider"])
    assert slot["runtime"]["fallback"] is True and slot["runtime"]["requested"] == CUDA_THEN_CPU

    strict = {**allowed, "allowFallback": False}
    mixed.patch("gpu", {"spec": {"variants": [{**cuda, "runtime": strict}]}})
    rolled = mixed.wait_phase("gpu", "RolledBack")["status"]
    assert [(r["revision"], r["outcome"]) for r in rolled["history"]] == [
        (1, "Succeeded"),
        (2, "RolledBack"),
    ]
    progressing = next(c for c in rolled["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "RolloutAborted"
    assert "ort-0 (RuntimeFallback)" in progressing["message"]
    back = wait_for(
        lambda: _devices(mixed)["ort-0"],
        lambda d: (
            slot_of(d, "gpu").get("phase") == "Healthy"
            and slot_of(d, "gpu").get("targetRevision") == 1
        ),
        what="ort-0 healthy on revision 1 again",
    )
    assert assignment_of(back, "gpu")["runtime"]["allowFallback"] is True


def test_a_variant_format_the_conversion_lacks_blocks_before_any_device_moves(
    mixed: Rollouts,
) -> None:
    int8 = {"name": "tiny", "selector": {"matchLabels": {"hardware": "arm"}}, "format": "onnx-int8"}
    mixed.deploy("blocked", "mlp", selector={"matchLabels": {"site": "lab"}},
                 variants=[*MIXED, int8], strategy=QUICK)  # fmt: skip
    status = mixed.wait_phase("blocked", "Degraded")["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "VariantFormatMissing")
    assert "variant tiny needs onnx-int8" in ready["message"]
    assert all("blocked" not in (d["spec"].get("models") or {}) for d in mixed.devices())
