"""The engine seam: which backends a request gets, and both real engines on a tiny model.

This machine has no GPU: ONNX Runtime offers CPUExecutionProvider (CUDA is not available) and
OpenVINO offers CPU, whose BF16 capability is why the f32 precision default matters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from unit.agent.builders import make_model_file, make_probe_file

from modelfleet import engines
from modelfleet.agent.errors import LoadFailed, RuntimeFallback, RuntimeUnavailable
from modelfleet.agent.probe import load_session, read_probe, run_probe
from modelfleet.api.device import RuntimeRequest

CUDA_THEN_CPU = ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("requested", "used", "fallback"),
    [
        (["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"], True),
        (["CUDAExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"], False),
        (["GPU", "CPU"], ["GPU.0"], False),
        (["GPU", "CPU"], ["CPU"], True),
        ([], ["CPU"], False),
    ],
)
def test_fallback_means_the_first_choice_did_not_take_the_graph(
    requested: list[str], used: list[str], fallback: bool
) -> None:
    assert engines.is_fallback(requested, used) == fallback


def test_only_the_backends_the_device_has_are_tried_in_the_requested_order() -> None:
    assert engines.present(["NPU", "GPU", "CPU"], ["CPU", "GPU.0", "GPU.1"]) == ["GPU", "CPU"]
    assert engines.present(["CUDAExecutionProvider"], ["CPUExecutionProvider"]) == []


def test_device_priority_becomes_auto_only_for_more_than_one_device() -> None:
    assert engines.device_string(["GPU", "CPU"]) == "AUTO:GPU,CPU"
    assert engines.device_string(["CPU"]) == "CPU"


def test_the_default_request_is_onnx_runtime_on_the_cpu(tmp_path: Path) -> None:
    make_model_file(tmp_path / "m.onnx")
    description = load_session(tmp_path / "m.onnx").describe()
    assert description.engine == "onnxruntime"
    assert description.requested == description.used == ("CPUExecutionProvider",)
    assert not description.fallback
    assert (description.inputs, description.outputs) == (("x",), ("y",))


def test_cuda_then_cpu_falls_back_to_the_cpu_when_allowed(tmp_path: Path) -> None:
    make_model_file(tmp_path / "m.onnx")
    session = load_session(tmp_path / "m.onnx", RuntimeRequest(providers=CUDA_THEN_CPU))
    status = session.describe().status()
    assert status.used == ["CPUExecutionProvider"] and status.fallback
    assert status.requested == CUDA_THEN_CPU


def test_a_fallback_that_is_not_allowed_fails_the_load(tmp_path: Path) -> None:
    make_model_file(tmp_path / "m.onnx")
    request = RuntimeRequest(providers=CUDA_THEN_CPU, allow_fallback=False)
    with pytest.raises(RuntimeFallback, match="CUDAExecutionProvider did not take the graph"):
        load_session(tmp_path / "m.onnx", request)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (RuntimeRequest(providers=["CUDAExecutionProvider"]), "none of the requested execution"),
        (RuntimeRequest(engine="openvino", devices=["NPU"]), "none of the requested devices"),
        (RuntimeRequest(engine="tflite"), "no engine 'tflite'"),
    ],
    ids=["provider", "device", "engine"],
)
def test_what_the_device_lacks_is_unavailable(
    tmp_path: Path, request_: RuntimeRequest, message: str
) -> None:
    make_model_file(tmp_path / "m.onnx")
    with pytest.raises(RuntimeUnavailable, match=message):
        load_session(tmp_path / "m.onnx", request_)


def test_openvino_probes_on_the_cpu_at_f32_next_to_onnx_runtime(tmp_path: Path) -> None:
    make_model_file(tmp_path / "m.onnx")
    arrays, meta = read_probe(make_probe_file(tmp_path / "p.npz"))
    session = load_session(tmp_path / "m.onnx", RuntimeRequest(engine="openvino"))
    description = session.describe()
    assert description.used == ("CPU",)
    assert description.options["INFERENCE_PRECISION_HINT"] == "f32"
    openvino = run_probe(session, arrays, meta, "onnx")
    onnxruntime = run_probe(load_session(tmp_path / "m.onnx"), arrays, meta, "onnx")
    assert openvino and openvino.max_abs < 1e-5
    assert onnxruntime and onnxruntime.max_abs < 1e-5
    assert openvino.validated_max_abs == onnxruntime.validated_max_abs == 0.0


def test_openvino_names_inputs_and_outputs_as_the_onnx_graph_does(tmp_path: Path) -> None:
    # OpenVINO folds the Identity paddle2onnx ends graphs with: the compiled output then has
    # two names, and its "any name" was the inner one, so the probe found no output `y`.
    make_model_file(tmp_path / "m.onnx", renamed=True)
    make_probe_file(tmp_path / "probe.npz")
    session = load_session(tmp_path / "m.onnx", RuntimeRequest(engine="openvino"))
    assert (session.describe().inputs, session.describe().outputs) == (("x",), ("y",))
    arrays, meta = read_probe(tmp_path / "probe.npz")
    assert run_probe(session, arrays, meta, "onnx")


def test_openvino_gpu_then_cpu_falls_back_to_the_cpu(tmp_path: Path) -> None:
    make_model_file(tmp_path / "m.onnx")
    request = RuntimeRequest(engine="openvino", devices=["GPU", "CPU"])
    status = load_session(tmp_path / "m.onnx", request).describe().status()
    assert status.used == ["CPU"] and status.fallback
    request.allow_fallback = False
    with pytest.raises(RuntimeFallback, match="GPU did not take the graph"):
        load_session(tmp_path / "m.onnx", request)


def test_bf16_on_a_bf16_cpu_fails_a_probe_that_f32_passes(tmp_path: Path) -> None:
    import openvino as ov

    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU does not compute in bf16")
    make_model_file(tmp_path / "m.onnx")
    arrays, meta = read_probe(make_probe_file(tmp_path / "p.npz"))
    request = RuntimeRequest(engine="openvino", options={"INFERENCE_PRECISION_HINT": "bf16"})
    verdict = run_probe(load_session(tmp_path / "m.onnx", request), arrays, meta, "onnx")
    assert not verdict and verdict.max_abs > 1e-3


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_garbage_is_not_a_model_for_any_engine(tmp_path: Path, engine: str) -> None:
    (tmp_path / "m.onnx").write_bytes(b"\x08\x01garbage")
    with pytest.raises(LoadFailed, match="cannot"):
        load_session(tmp_path / "m.onnx", RuntimeRequest(engine=engine))


def test_both_engines_report_their_version_and_backends() -> None:
    installed = {facts.name: facts for facts in engines.installed()}
    assert "CPUExecutionProvider" in installed["onnxruntime"].backends
    assert installed["openvino"].backends[0] == "CPU" and installed["openvino"].version


def test_both_engines_compute_the_same_outputs(tmp_path: Path) -> None:
    make_model_file(tmp_path / "m.onnx")
    feeds = {"x": np.linspace(-1, 1, 4, dtype=np.float32).reshape(1, 4)}
    ort_out = engines.load(tmp_path / "m.onnx").run(feeds)["y"]
    ov_out = engines.load(tmp_path / "m.onnx", RuntimeRequest(engine="openvino")).run(feeds)["y"]
    np.testing.assert_allclose(ov_out, ort_out, atol=1e-6)


def test_an_observed_session_says_where_its_kernels_ran(tmp_path: Path) -> None:
    make_model_file(tmp_path / "m.onnx")
    session = engines.load(tmp_path / "m.onnx", observe=True)
    assert session.describe().placement == {}
    session.run({"x": np.zeros((1, 4), np.float32)})
    session.run({"x": np.zeros((1, 4), np.float32)})  # profiling ended with the first run
    assert session.describe().placement == {"CPUExecutionProvider": 1}  # MatMul+Add, fused
    assert session.describe().status().to_wire()["placement"] == [
        {"backend": "CPUExecutionProvider", "kernels": 1}
    ]


def test_kernel_placement_counts_kernel_runs_per_provider() -> None:
    events = [
        {"cat": "Session", "name": "model_run"},
        {"cat": "Node", "name": "Conv_kernel_time", "args": {"provider": "CUDAExecutionProvider"}},
        {"cat": "Node", "name": "Conv_fence_before", "args": {"provider": "CPUExecutionProvider"}},
        {"cat": "Node", "name": "Relu_kernel_time", "args": {"provider": "CUDAExecutionProvider"}},
        {"cat": "Node", "name": "NMS_kernel_time", "args": {"provider": "CPUExecutionProvider"}},
    ]
    assert engines.kernel_placement(events) == {
        "CUDAExecutionProvider": 2,
        "CPUExecutionProvider": 1,
    }


def test_a_tflite_flatbuffer_is_recognised_by_its_file_identifier(tmp_path: Path) -> None:
    tflite = tmp_path / "model.tflite"
    tflite.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(32))
    assert engines.is_tflite(tflite)
    make_model_file(tmp_path / "model.onnx")
    assert not engines.is_tflite(tmp_path / "model.onnx")
    assert not engines.is_tflite(tmp_path / "missing")
    assert engines.requested_backends(RuntimeRequest(engine="litert")) == ["CPU"]


def test_a_request_less_tflite_gets_litert_which_refuses_a_file_it_cannot_read(
    tmp_path: Path,
) -> None:
    pytest.importorskip("ai_edge_litert", reason="the agent extra's LiteRT runtime")
    broken = tmp_path / "model.tflite"
    broken.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(32))
    with pytest.raises(LoadFailed, match="LiteRT cannot load the artifact"):
        load_session(broken)
