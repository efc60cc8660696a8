"""Paddle Inference failing with oneDNN or IR optimisation on: the reference is retried with
them off, and the report says which configuration produced it; failing in every
configuration is ReferenceFailed. `record_reference` runs here with a fake `PaddleRunner`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from unit.workers.builders import make_unfitting_reference

from modelfleet.api.conversion import InputSpec, Validation
from modelfleet.comparison import effective_rule
from modelfleet.workers import runtimes
from modelfleet.workers.datasets import TensorInfo
from modelfleet.workers.errors import InvalidModel, ReferenceFailed, classify
from modelfleet.workers.paddle_reference import record_reference
from modelfleet.workers.references import RESULT, load_reference, plan_reference
from modelfleet.workers.validate import ValidationOutcome, validate_model, validation_samples

Array = np.ndarray[Any, Any]
SPECS = [InputSpec(name="x", shape=[1, 4], range=[-1.0, 1.0])]
VALIDATION = Validation.model_validate({"samples": 3, "benchmark": {"warmup": 1, "iterations": 2}})
ONEDNN_ERROR = "ConvertPirAttribute2RuntimeAttribute not support"


class Predictor:
    """A `PaddleRunner` whose run fails under the configurations `fails` picks."""

    fails: Callable[[bool, bool], bool] = staticmethod(lambda mkldnn, ir_optim: False)
    tried: list[tuple[bool, bool]] = []  # noqa: RUF012 (reset by the fixture)

    def __init__(self, source: Any, *, mkldnn: bool = True, ir_optim: bool = True) -> None:
        Predictor.tried.append((mkldnn, ir_optim))
        self.name = "paddle.inference fake (CPU)"
        self.config = {"mkldnn": mkldnn, "irOptim": ir_optim}
        self.inputs = [TensorInfo("x", "float32", (1, 4))]
        self.outputs = [TensorInfo("y", "float32", (1, 4))]

    def run(self, feeds: Mapping[str, Array]) -> list[Array]:
        if Predictor.fails(self.config["mkldnn"], self.config["irOptim"]):
            how = runtimes.describe_config(self.config["mkldnn"], self.config["irOptim"])
            raise ReferenceFailed(f"Paddle Inference failed ({how}): {ONEDNN_ERROR}")
        return [np.tanh(feeds["x"])]


class Candidate:
    name = "onnxruntime fake (CPU)"
    inputs = [TensorInfo("x", "float32", (1, 4))]  # noqa: RUF012
    outputs = [TensorInfo("y", "float32", (1, 4))]  # noqa: RUF012

    def run(self, feeds: Mapping[str, Array]) -> list[Array]:
        return [np.tanh(feeds["x"])]


@pytest.fixture(autouse=True)
def fake_paddle(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(runtimes, "PaddleRunner", Predictor)
    Predictor.tried = []
    yield
    Predictor.fails = staticmethod(lambda mkldnn, ir_optim: False)


def record(tmp_path: Path, fails: Callable[[bool, bool], bool]) -> Any:
    Predictor.fails = staticmethod(fails)
    plan = plan_reference(
        tmp_path / "reference",
        specs=SPECS,
        validation=VALIDATION,
        samples=validation_samples(SPECS, VALIDATION, None),
        data="seeded",
    )
    record_reference(plan.directory, tmp_path / "inference.json", tmp_path / "x.pdiparams")
    return plan


def validate(reference: Any) -> ValidationOutcome:
    return validate_model(
        reference=reference,
        candidate=Candidate(),
        specs=SPECS,
        validation=VALIDATION,
        rule=effective_rule("onnx", None),
        quantized=False,
    )


def test_the_defaults_produce_it_when_they_can(tmp_path: Path) -> None:
    outcome = validate(load_reference(record(tmp_path, lambda mkldnn, ir_optim: False)))
    assert Predictor.tried == [(True, True)]
    reference = outcome.section.reference
    assert reference is not None and reference.fallback_from is None
    assert reference.model_dump(by_alias=True)["config"] == {"mkldnn": True, "irOptim": True}


def test_onednn_off_when_onednn_fails(tmp_path: Path) -> None:
    plan = record(tmp_path, lambda mkldnn, ir_optim: mkldnn)
    outcome = validate(load_reference(plan))
    assert outcome.passed and Predictor.tried == [(True, True), (False, True)]
    reference = outcome.section.reference
    assert reference is not None and reference.config is not None
    assert (reference.config.mkldnn, reference.config.ir_optim) == (False, True)
    assert reference.fallback_from is not None and ONEDNN_ERROR in reference.fallback_from
    saved = json.loads(outcome.section.model_dump_json(by_alias=True))["reference"]
    assert saved["config"] == {"mkldnn": False, "irOptim": True}


def test_both_off_as_the_last_resort(tmp_path: Path) -> None:
    plan = record(tmp_path, lambda mkldnn, ir_optim: mkldnn or ir_optim)
    reference = load_reference(plan)
    assert Predictor.tried == [(True, True), (False, True), (True, False), (False, False)]
    assert reference.config == {"mkldnn": False, "irOptim": False}
    assert validate(reference).passed


def test_failing_in_every_configuration_is_reference_failed(tmp_path: Path) -> None:
    plan = record(tmp_path, lambda mkldnn, ir_optim: True)
    assert len(Predictor.tried) == 4
    with pytest.raises(ReferenceFailed) as caught:
        validate(load_reference(plan))
    failure = classify(caught.value)
    assert (failure.reason, failure.exit_code) == ("ReferenceFailed", 16)
    assert failure.message.startswith("Paddle Inference failed (oneDNN on, IR optimisation on)")
    assert failure.message.endswith(
        "(it failed with oneDNN off, IR optimisation on; oneDNN on, IR optimisation off; "
        "oneDNN off, IR optimisation off too)"
    )


def test_inputs_that_do_not_fit_are_not_retried(tmp_path: Path) -> None:
    plan = make_unfitting_reference(tmp_path, VALIDATION)
    assert Predictor.tried == [(True, True)]
    result = json.loads((plan.directory / RESULT).read_text())
    assert result["failure"]["reason"] == InvalidModel.reason
