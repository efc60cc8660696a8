"""Conversion and validation on local files with real Paddle, paddle2onnx and ONNX Runtime."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from modelfleet.api.conversion import InputSpec, Target, Tolerance, Validation
from modelfleet.comparison import effective_rule
from modelfleet.dev import samples
from modelfleet.dev.samples import SampleModel
from modelfleet.workers.convert import Calibration, convert_model
from modelfleet.workers.datasets import dataset_samples
from modelfleet.workers.errors import InvalidModel, SourceNotFound, UnsupportedOperator
from modelfleet.workers.paddle2onnx_child import early_child
from modelfleet.workers.runtimes import OrtRunner, reference_runner
from modelfleet.workers.sources import locate_source
from modelfleet.workers.validate import ValidationOutcome, validate_model

pytestmark = pytest.mark.paddle

QUICK = Validation.model_validate({"samples": 4, "benchmark": {"warmup": 1, "iterations": 3}})


def _validate(
    sample: SampleModel,
    candidate: Path,
    fmt: str = "onnx",
    *,
    validation: Validation = QUICK,
    tolerance: Tolerance | None = None,
    dataset: list[dict[str, np.ndarray]] | None = None,  # type: ignore[type-arg]
) -> ValidationOutcome:
    return validate_model(
        reference=reference_runner(locate_source(sample.model_dir), threads=1),
        candidate=OrtRunner(candidate, threads=1),
        specs=sample.input_specs(),
        validation=validation,
        rule=effective_rule(fmt, tolerance),  # type: ignore[arg-type]
        quantized=fmt == "onnx-int8",
        dataset=dataset,
    )


@pytest.mark.parametrize("name", ["cnn", "mlp", "mlp-legacy", "dynamic-batch", "two-output"])
def test_fp32_conversion_is_faithful(
    name: str, sample_models: dict[str, SampleModel], tmp_path: Path
) -> None:
    sample = sample_models[name]
    result = convert_model(
        locate_source(sample.model_dir), Target(format="onnx"), tmp_path, specs=sample.input_specs()
    )
    assert [t.name for t in result.info.inputs] == [s.name for s in sample.inputs]
    assert len(result.info.outputs) == sample.output_count
    assert result.info.opset == 17
    batch = 3 if name == "dynamic-batch" else 1
    validation = QUICK.model_copy(update={"batch_size": batch})
    outcome = _validate(sample, result.model_path, validation=validation)
    assert outcome.passed, outcome.section.failures
    for output in outcome.section.outputs:
        assert output.max_abs <= 1e-5, output
        assert output.mismatched == 0
    if name == "two-output":
        assert [o.dtype for o in outcome.section.outputs] == ["float32", "int64"]
    if name == "dynamic-batch":
        assert outcome.probe_inputs[0]["x"].shape == (3, 12)
    assert outcome.section.benchmark is not None and outcome.section.benchmark.speedup > 0


def test_perturbed_weight_fails_validation(cnn: SampleModel, tmp_path: Path) -> None:
    result = convert_model(
        locate_source(cnn.model_dir),
        Target(format="onnx"),
        tmp_path / "ok",
        specs=cnn.input_specs(),
    )
    model = onnx.load(str(result.model_path))
    tensors = list(model.graph.initializer) + [
        attr.t for node in model.graph.node if node.op_type == "Constant" for attr in node.attribute
    ]
    biggest = max(tensors, key=lambda t: int(np.prod(t.dims)))
    weights = numpy_helper.to_array(biggest).copy()
    weights.flat[0] += 0.5
    biggest.CopyFrom(numpy_helper.from_array(weights, biggest.name))
    corrupted = tmp_path / "corrupted.onnx"
    onnx.save(model, str(corrupted))
    outcome = _validate(cnn, corrupted)
    assert not outcome.passed
    assert outcome.section.max_abs is not None and outcome.section.max_abs > 1e-5
    assert any("max abs / max |reference|" in f for f in outcome.section.failures)


def test_int8_static_keeps_top1_agreement(cnn: SampleModel, tmp_path: Path) -> None:
    specs = cnn.input_specs()
    calibration = dataset_samples(
        samples.classification_dataset(cnn, 64, seed=1), specs, batch_size=1
    )
    result = convert_model(
        locate_source(cnn.model_dir),
        Target(format="onnx-int8"),
        tmp_path,
        specs=specs,
        calibration=Calibration(calibration, "dataset", "calibration.npz"),
    )
    assert result.quantization is not None and result.quantization.calibration == "dataset"
    ops = {node.op_type for node in onnx.load(str(result.model_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    data = dataset_samples(samples.classification_dataset(cnn, 200, seed=2), specs, batch_size=1)
    outcome = _validate(cnn, result.model_path, "onnx-int8", dataset=data)
    scores = outcome.section.outputs[0]
    assert scores.top1_agreement is not None and scores.top1_agreement >= 0.99
    assert outcome.passed, outcome.section.failures
    assert outcome.section.samples == 200


def test_fp16_keeps_float32_io(mlp: SampleModel, tmp_path: Path) -> None:
    result = convert_model(
        locate_source(mlp.model_dir), Target(format="onnx-fp16"), tmp_path, specs=mlp.input_specs()
    )
    assert [t.dtype for t in result.info.inputs + result.info.outputs] == ["float32", "float32"]
    graph = onnx.load(str(result.model_path)).graph
    tensors = list(graph.initializer) + [
        a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute
    ]
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in tensors)
    outcome = _validate(mlp, result.model_path, "onnx-fp16")
    assert outcome.passed, outcome.section.failures
    assert 0 < (outcome.section.max_abs or 0) < 1e-2


def test_unsupported_operator_is_named(unconvertible: SampleModel, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOperator) as caught:
        convert_model(
            locate_source(unconvertible.model_dir),
            Target(format="onnx"),
            tmp_path,
            specs=unconvertible.input_specs(),
        )
    assert caught.value.operators == ["cumprod"]
    assert caught.value.exit_code == 12
    assert not (tmp_path / "model.onnx").exists()


def test_truncated_params_are_named(mlp: SampleModel, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(mlp.model_dir, broken)
    params = broken / mlp.params_file.name
    params.write_bytes(params.read_bytes()[:-100])
    with pytest.raises(InvalidModel, match=r"inference\.pdiparams is corrupt"):
        convert_model(
            locate_source(broken), Target(format="onnx"), tmp_path / "out", specs=mlp.input_specs()
        )
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_empty_directory_and_wrong_rank(mlp: SampleModel, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceNotFound, match="empty"):
        locate_source(tmp_path / "empty")
    wrong = [InputSpec(name="features", shape=[16])]
    with pytest.raises(InvalidModel, match=r"inputs\[0\]\.shape \[16\] has rank 1"):
        convert_model(
            locate_source(mlp.model_dir), Target(format="onnx"), tmp_path / "out", specs=wrong
        )
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_an_early_child_left_without_work_ends_with_its_job(tmp_path: Path) -> None:
    """convert-validate starts the child before it knows there is work (a cache hit, an ONNX
    source, a bad request): ended on the way out, its scratch directory removed."""
    with early_child(tmp_path) as child:
        assert child is not None
        process = child.process
    assert process.poll() is not None
    assert list(tmp_path.iterdir()) == []


def test_an_early_child_converts_once_its_command_comes(mlp: SampleModel, tmp_path: Path) -> None:
    with early_child(tmp_path) as child:
        result = convert_model(
            locate_source(mlp.model_dir),
            Target(format="onnx"),
            tmp_path / "out",
            specs=mlp.input_specs(),
            child=child,
        )
        assert child is not None and child.process.poll() == 0
    assert result.info.opset == 17 and result.model_path.stat().st_size > 0
