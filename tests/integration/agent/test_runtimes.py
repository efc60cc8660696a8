"""The probe on the backend the application will use: a real agent builds the session its slot's
runtime asks for, reports which backend took the graph, and hands the same session to the
application through runtime.json. This machine has no GPU, so CUDA and GPU fall back to the CPU.
"""

from __future__ import annotations

import json

import numpy as np
from unit.agent.builders import BIAS, WEIGHT

from modelfleet.device import open_session
from support.fleet import Fleet

SLOT = "detector"
CUDA_THEN_CPU = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_cuda_then_cpu_falls_back_and_a_forbidden_fallback_keeps_the_active_session(
    fleet: Fleet,
) -> None:
    artifact = fleet.publish("good")
    fleet.start_agent("edge-1")
    fleet.wait("registration", lambda: fleet.device("edge-1"))
    runtime = {"engine": "onnxruntime", "providers": CUDA_THEN_CPU, "allowFallback": True}
    fleet.assign("edge-1", SLOT, fleet.assignment(artifact, 1, runtime=runtime))

    status = fleet.wait_phase("edge-1", SLOT, "Healthy", 1)
    assert status["runtime"] == {
        "engine": "onnxruntime",
        "requested": CUDA_THEN_CPU,
        "used": ["CPUExecutionProvider"],
        "fallback": True,
        # MatMul + Add, fused into one kernel
        "placement": [{"backend": "CPUExecutionProvider", "kernels": 1}],
    }
    slot_dir = fleet.current("edge-1", SLOT).parent
    document = json.loads((slot_dir / "runtime.json").read_text())
    assert document["providers"] == ["CPUExecutionProvider"] and document["fallback"] is True
    x = np.array([[0.5, -1.0, 0.25, 2.0]], dtype=np.float32)
    np.testing.assert_allclose(open_session(slot_dir).run({"x": x})["y"], x @ WEIGHT + BIAS, 1e-6)

    strict = {**runtime, "allowFallback": False}
    fleet.assign("edge-1", SLOT, fleet.assignment(artifact, 2, runtime=strict))
    status = fleet.wait_phase("edge-1", SLOT, "Failed", 2)
    assert status["reason"] == "RuntimeFallback"
    assert "CUDAExecutionProvider did not take the graph" in status["message"]
    assert (status["activeRevision"], status["runtime"]["fallback"]) == (1, True)
    assert json.loads((slot_dir / "runtime.json").read_text()) == document


def test_openvino_probes_next_to_onnx_runtime_and_a_missing_engine_is_unavailable(
    fleet: Fleet,
) -> None:
    artifact = fleet.publish("good")
    fleet.start_agent("edge-2")
    fleet.wait("registration", lambda: fleet.device("edge-2"))
    fleet.assign("edge-2", SLOT, fleet.assignment(artifact, 1))
    on_ort = fleet.wait_phase("edge-2", SLOT, "Healthy", 1)
    assert on_ort["runtime"]["used"] == ["CPUExecutionProvider"]

    openvino = {"engine": "openvino", "devices": ["GPU", "CPU"]}
    fleet.assign("edge-2", SLOT, fleet.assignment(artifact, 2, runtime=openvino))
    on_ov = fleet.wait_phase("edge-2", SLOT, "Healthy", 2)
    assert on_ov["runtime"] == {
        "engine": "openvino",
        "requested": ["GPU", "CPU"],
        "used": ["CPU"],
        "fallback": True,
        "placement": [],
    }
    assert on_ov["probe"]["maxAbs"] < 1e-5 and on_ort["probe"]["maxAbs"] < 1e-5
    assert on_ov["probe"]["validatedMaxAbs"] == on_ort["probe"]["validatedMaxAbs"] == 0.0
    slot_dir = fleet.current("edge-2", SLOT).parent
    assert open_session(slot_dir).describe().used == ("CPU",)

    engines = {
        e["name"]: e for e in fleet.device("edge-2")["status"]["facts"]["runtime"]["engines"]
    }
    assert engines["openvino"]["backends"][0] == "CPU"
    assert "CPUExecutionProvider" in engines["onnxruntime"]["backends"]

    fleet.assign("edge-2", SLOT, fleet.assignment(artifact, 3, runtime={"engine": "tflite"}))
    status = fleet.wait_phase("edge-2", SLOT, "Failed", 3)
    assert status["reason"] == "RuntimeUnavailable" and "no engine 'tflite'" in status["message"]
    assert status["runtime"]["engine"] == "openvino"
