"""The Paddle reference a convert-validate Job's child records and its validation replays: the
record round trip, the same verdict, numbers and failure classification as a live reference.

The child's side (`record_reference`) runs here with a fake `PaddleRunner`, so no Paddle."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from unit.workers.builders import make_unfitting_reference

from modelfleet.api.conversion import InputSpec, Validation
from modelfleet.comparison import effective_rule
from modelfleet.reasons import EXIT_CODES
from modelfleet.workers import runtimes
from modelfleet.workers.benchmark import summarize, time_runs
from modelfleet.workers.datasets import TensorInfo
from modelfleet.workers.errors import InvalidModel, WorkerError, classify, error_of
from modelfleet.workers.paddle_reference import record_reference
from modelfleet.workers.references import (
    CHILD_EXIT,
    RecordedFailure,
    RecordedReference,
    ReferencePlan,
    feeds_key,
    load_reference,
    note_child_exit,
    pack_outputs,
    pack_samples,
    plan_reference,
    tensor_from_wire,
    tensor_to_wire,
    unpack_outputs,
    unpack_samples,
)
from modelfleet.workers.validate import ValidationOutcome, validate_model, validation_samples

Array = np.ndarray[Any, Any]
SPECS = [InputSpec(name="x", shape=[1, 4], range=[-1.0, 1.0])]
VALIDATION = Validation.model_validate({"samples": 5, "benchmark": {"warmup": 2, "iterations": 7}})
WEIGHTS = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(4, 3)


class FakePaddle:
    """Stands in for `runtimes.PaddleRunner` in the child: a matmul, or the configured failure."""

    fail_load: Exception | None = None
    fail_run_at: int | None = None
    runs = 0

    def __init__(
        self,
        source: Any,
        *,
        threads: int | None = None,
        mkldnn: bool = True,
        ir_optim: bool = True,
    ) -> None:
        if FakePaddle.fail_load is not None:
            raise FakePaddle.fail_load
        self.name = "paddle.inference fake (CPU)"
        self.config = {"mkldnn": mkldnn, "irOptim": ir_optim}
        self.inputs = [TensorInfo("x", "float32", (None, 4))]
        self.outputs = [
            TensorInfo("scores", "float32", (None, 3)),
            TensorInfo("top", "int64", None),
        ]
        self.calls = 0

    def run(self, feeds: Mapping[str, Array]) -> list[Array]:
        if FakePaddle.fail_run_at is not None and self.calls == FakePaddle.fail_run_at:
            raise RuntimeError("predictor exploded")
        self.calls += 1
        scores = feeds["x"] @ WEIGHTS
        return [scores, np.argmax(scores, axis=-1).astype(np.int64)]


class FakeOrt:
    def __init__(self) -> None:
        self.name = "onnxruntime fake (CPU)"
        self.inputs = [TensorInfo("x", "float32", (None, 4))]
        self.outputs = [
            TensorInfo("scores", "float32", (None, 3)),
            TensorInfo("top", "int64", (1,)),
        ]

    def run(self, feeds: Mapping[str, Array]) -> list[Array]:
        scores = (feeds["x"] @ WEIGHTS).astype(np.float32) + np.float32(1e-7)
        return [scores, np.argmax(scores, axis=-1).astype(np.int64)]


@pytest.fixture(autouse=True)
def fake_paddle(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(runtimes, "PaddleRunner", FakePaddle)
    FakePaddle.fail_load, FakePaddle.fail_run_at = None, None
    yield


def recorded(tmp_path: Path, *, benchmark: bool = True) -> tuple[ReferencePlan, Path]:
    """Plan as the worker does, record as the child does; the plan and its directory."""
    plan = plan_reference(
        tmp_path / "reference",
        specs=SPECS,
        validation=VALIDATION,
        samples=validation_samples(SPECS, VALIDATION, None),
        data="seeded",
        benchmark=benchmark,
    )
    record_reference(plan.directory, tmp_path / "inference.json", tmp_path / "x.pdiparams")
    return plan, plan.directory


def validate(reference: Any) -> ValidationOutcome:
    return validate_model(
        reference=reference,
        candidate=FakeOrt(),
        specs=SPECS,
        validation=VALIDATION,
        rule=effective_rule("onnx", None),
        quantized=False,
    )


BASE = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(2, dtype=np.int64)}


class TestFeedsKey:
    @pytest.mark.parametrize(
        ("label", "other", "same"),
        [
            ("copies", {k: v.copy() for k, v in BASE.items()}, True),
            ("other order", dict(reversed(BASE.items())), True),
            ("non-contiguous view", {"a": np.asfortranarray(BASE["a"]), "b": BASE["b"]}, True),
            ("one value", {**BASE, "b": np.array([1, 2], dtype=np.int64)}, False),
            ("dtype", {**BASE, "b": np.ones(2, dtype=np.int32)}, False),
            ("shape, same bytes", {**BASE, "a": BASE["a"].reshape(3, 2)}, False),
            ("name", {"a2": BASE["a"], "b": BASE["b"]}, False),
        ],
    )
    def test_identifies_content(self, label: str, other: dict[str, Array], same: bool) -> None:
        assert (feeds_key(BASE) == feeds_key(other)) is same, label


class TestWire:
    @pytest.mark.parametrize(
        "tensor",
        [
            TensorInfo("x", "float32", (1, 3, 32, 32)),
            TensorInfo("x", "int64", (None, 4)),
            TensorInfo("y", "bool", None),
        ],
    )
    def test_tensor_round_trip(self, tensor: TensorInfo) -> None:
        assert tensor_from_wire(json.loads(json.dumps(tensor_to_wire(tensor)))) == tensor

    @pytest.mark.parametrize("reason", list(EXIT_CODES))
    def test_every_reason_is_classified_again_as_itself(self, reason: str) -> None:
        failure = classify(error_of(reason, f"{reason} happened"))
        assert (failure.reason, failure.message) == (reason, f"{reason} happened")
        assert failure.exit_code == EXIT_CODES[reason]  # type: ignore[index]

    @pytest.mark.parametrize(
        "err",
        [
            InvalidModel("Paddle Inference cannot load m.json + m.pdiparams: bad"),
            RuntimeError("predictor exploded"),
            MemoryError(),
        ],
    )
    def test_a_recorded_failure_classifies_as_the_live_one(self, err: Exception) -> None:
        wire = json.loads(json.dumps(RecordedFailure.of("run", err, 3).to_wire()))
        back = RecordedFailure.from_wire(wire)
        assert back.sample == 3 and back.at == "run"
        assert classify(back.error()) == classify(err)

    def test_outputs_and_samples_round_trip(self) -> None:
        results = [[np.full((1, 3), i, np.float32), np.array([i], np.int64)] for i in range(12)]
        back = unpack_outputs(pack_outputs(results))
        assert len(back) == 12  # "10:0" sorts before "2:0" as text, not as a number
        for got, want in zip(back, results, strict=True):
            assert all(
                np.array_equal(g, w) and g.dtype == w.dtype for g, w in zip(got, want, strict=True)
            )
        samples = [{"x": np.full((1, 2), i), "y:z": np.zeros(1)} for i in range(11)]
        assert [s["x"][0, 0] for s in unpack_samples(pack_samples(samples), 11)] == list(range(11))
        assert set(unpack_samples(pack_samples(samples), 11)[0]) == {"x", "y:z"}


class TestReplay:
    def test_same_section_and_probe_as_the_live_reference(self, tmp_path: Path) -> None:
        plan, _ = recorded(tmp_path)
        replayed = validate(load_reference(plan))
        live = validate(FakePaddle(None))
        assert replayed.passed and live.passed
        strip = {"benchmark"}
        assert replayed.section.model_dump(exclude=strip) == live.section.model_dump(exclude=strip)
        assert replayed.section.reference_runtime == "paddle.inference fake (CPU)"
        for got, want in zip(replayed.probe_references, live.probe_references, strict=True):
            assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
        bench = replayed.section.benchmark
        assert bench is not None and bench.source.iterations == 7
        assert bench.source.runtime == "paddle.inference fake (CPU)"

    def test_the_benchmark_is_the_childs_timings_summarized_here(self, tmp_path: Path) -> None:
        plan, directory = recorded(tmp_path)
        result = json.loads((directory / "result.json").read_text())
        result["durationsS"] = [0.001 * (i + 1) for i in range(7)]
        (directory / "result.json").write_text(json.dumps(result))
        bench = validate(load_reference(plan)).section.benchmark
        assert bench is not None
        want = summarize([0.001 * (i + 1) for i in range(7)], 1)
        assert bench.source.p50_ms == pytest.approx(want.p50_ms) == pytest.approx(4.0)
        assert bench.warmup == 2 and bench.iterations == 7

    def test_samples_are_found_by_content_not_by_call_order(self, tmp_path: Path) -> None:
        plan, _ = recorded(tmp_path)
        reference = load_reference(plan)
        live = FakePaddle(None)
        for feeds in reversed(plan.samples):
            got, want = reference.run(feeds), live.run(feeds)
            assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))

    def test_an_input_the_child_never_saw_is_an_internal_error(self, tmp_path: Path) -> None:
        plan, _ = recorded(tmp_path)
        with pytest.raises(WorkerError, match="not given") as caught:
            load_reference(plan).run({"x": np.zeros((1, 4), np.float32)})
        assert classify(caught.value).reason == "InternalError"

    def test_other_benchmark_settings_are_refused(self, tmp_path: Path) -> None:
        plan, _ = recorded(tmp_path)
        with pytest.raises(WorkerError, match="warmup=5, iterations=50"):
            load_reference(plan).benchmark(warmup=5, iterations=50)
        plan, _ = recorded(tmp_path / "none", benchmark=False)
        with pytest.raises(WorkerError, match="no recorded"):
            load_reference(plan).benchmark(warmup=2, iterations=7)

    def test_a_plan_fits_only_its_own_settings(self, tmp_path: Path) -> None:
        plan, _ = recorded(tmp_path)
        assert plan.fits(SPECS, VALIDATION)
        assert not plan.fits(SPECS, VALIDATION.model_copy(update={"seed": 1}))
        assert not plan.fits([SPECS[0].model_copy(update={"range": [0.0, 1.0]})], VALIDATION)
        assert plan.dataset is None


class TestFailures:
    """The replay raises what the live reference raised, where it raised it."""

    def test_load_failure(self, tmp_path: Path) -> None:
        FakePaddle.fail_load = InvalidModel("Paddle Inference cannot load inference.json: no")
        plan, _ = recorded(tmp_path)
        with pytest.raises(InvalidModel) as replayed:
            load_reference(plan)
        with pytest.raises(InvalidModel) as live:
            FakePaddle(None)
        assert classify(replayed.value) == classify(live.value)

    def test_run_failure_at_the_same_sample(self, tmp_path: Path) -> None:
        FakePaddle.fail_run_at = 2
        plan, _ = recorded(tmp_path)
        reference = load_reference(plan)
        assert len(reference.results) == 2
        reference.run(plan.samples[1])
        with pytest.raises(WorkerError) as replayed:
            validate(reference)
        with pytest.raises(RuntimeError) as live:
            validate(FakePaddle(None))
        assert classify(replayed.value) == classify(live.value)
        assert classify(replayed.value).message == "RuntimeError: predictor exploded"

    def test_inputs_that_do_not_fit_are_refused_before_any_run(self, tmp_path: Path) -> None:
        plan = make_unfitting_reference(tmp_path, VALIDATION)
        reference = load_reference(plan)
        assert reference.results == [] and reference.failure is not None
        assert reference.failure.reason == "InvalidModel"

    def test_a_child_that_died_after_the_export(self, tmp_path: Path) -> None:
        plan = plan_reference(
            tmp_path / "r",
            specs=SPECS,
            validation=VALIDATION,
            samples=validation_samples(SPECS, VALIDATION, None),
            data="seeded",
        )
        note_child_exit(plan.directory, "was killed by SIGSEGV: no error message")
        assert (plan.directory / CHILD_EXIT).exists()
        with pytest.raises(WorkerError, match="killed by SIGSEGV") as caught:
            load_reference(plan)
        assert classify(caught.value).reason == "ConverterCrashed"  # was InternalError (issue 11)

    def test_a_complete_record_is_never_overridden_by_the_exit_note(self, tmp_path: Path) -> None:
        plan, directory = recorded(tmp_path)
        note_child_exit(directory, "exited 1: teardown crash")
        assert not (directory / CHILD_EXIT).exists()
        assert isinstance(load_reference(plan), RecordedReference)


def test_time_runs_counts_warmup_apart() -> None:
    ticks = iter([0.0, 0.5, 1.0, 3.0])
    calls: list[int] = []
    durations = time_runs(
        lambda: calls.append(1), warmup=3, iterations=2, clock=lambda: next(ticks)
    )
    assert durations == [0.5, 2.0] and len(calls) == 5
