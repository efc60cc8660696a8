"""Running the Paddle reference: always in a child process, with oneDNN and IR optimisation
turned off when Paddle Inference fails with them on.

`record_reference` runs in the paddle2onnx child after its export (a convert-validate Job) or
in a stage child of its own (`isolated_reference`: the validate Job and `modelfleet validate`),
never in the worker process: Paddle Inference crashing or hanging is ConverterCrashed (stage
"Paddle reference"), not the end of the worker. It writes the record `references` describes
and replays (`load_reference`).

Configurations tried (`CONFIGS`), in order, until one loads the model and runs every sample:
Paddle Inference's defaults (oneDNN and IR optimisation on), oneDNN off, IR optimisation off,
both off. Only a failed load or a run that Paddle Inference raised on (ReferenceFailed) moves
to the next; inputs that do not fit the model do not. result.json records the configuration
that produced the reference (`config`) and the defaults' failure (`fallbackFrom`); the
validation section of the report carries both (`validation.reference`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelfleet.api.conversion import InputSpec, Validation
from modelfleet.workers import benchmark as bench
from modelfleet.workers import runtimes
from modelfleet.workers.datasets import Feeds, TensorInfo, check_inputs
from modelfleet.workers.isolation import enter_stage, run_stage
from modelfleet.workers.references import (
    INPUTS,
    OUTPUTS,
    REQUEST,
    RESULT,
    STAGE,
    Array,
    RecordedFailure,
    load_reference,
    pack_outputs,
    plan_reference,
    tensor_from_wire,
    tensor_to_wire,
    unpack_samples,
)
from modelfleet.workers.sources import SourceModel
from modelfleet.workers.validate import validation_samples


def isolated_reference(
    source: SourceModel,
    directory: Path,
    *,
    specs: Sequence[InputSpec],
    validation: Validation,
    dataset: list[Feeds] | None,
    benchmark: bool = True,
) -> runtimes.Runner:
    """The reference of a validation that has no recorded one (validate Job and command): for
    a Paddle source, recorded now by a stage child (`isolation.run_stage`) on the samples the
    validation will run, so that Paddle Inference crashing or hanging is ConverterCrashed, not
    the end of this process; for an ONNX source, ONNX Runtime on the source model, here."""

    if source.format != "paddle":
        return runtimes.reference_runner(source)
    assert source.params_file is not None
    plan = plan_reference(
        directory,
        specs=specs,
        validation=validation,
        samples=validation_samples(specs, validation, dataset),
        data="dataset" if dataset is not None else "seeded",
        benchmark=benchmark,
    )
    run_stage(
        STAGE,
        "modelfleet.workers.paddle_reference:record_in_child",
        {
            "directory": str(directory.resolve()),  # the child runs in its own directory
            "model": str(source.model_file.resolve()),
            "params": str(source.params_file.resolve()),
        },
        directory=directory / "child",
    )
    return load_reference(plan)


def source_inputs(source: SourceModel, directory: Path) -> list[TensorInfo]:
    """The source model's inputs as its reference runtime reads them: for a Paddle source,
    Paddle Inference loading it in a stage child (`modelfleet convert` without input specs)."""
    if source.format != "paddle":
        return runtimes.reference_runner(source, threads=1).inputs
    assert source.params_file is not None
    wire = run_stage(
        "Paddle Inference loading the source model",
        "modelfleet.workers.paddle_reference:inputs_in_child",
        {"model": str(source.model_file.resolve()), "params": str(source.params_file.resolve())},
        directory=directory,
    )
    return [tensor_from_wire(raw) for raw in wire]


def inputs_in_child(*, model: str, params: str) -> list[list[Any]]:
    """`source_inputs` in a stage child."""
    model_file, params_file = Path(model), Path(params)
    source = SourceModel("paddle", model_file.parent, model_file, params_file)
    return [tensor_to_wire(t) for t in runtimes.PaddleRunner(source, threads=1).inputs]


def record_in_child(*, directory: str, model: str, params: str) -> None:
    """`record_reference` in a stage child (`isolated_reference`)."""
    enter_stage(STAGE)
    record_reference(Path(directory), Path(model), Path(params))


def record_reference(directory: Path, model_file: Path, params_file: Path) -> None:
    """Run Paddle Inference as validation would and write outputs.npz, then result.json.

    When Paddle Inference fails to load the model or raises running it (ReferenceFailed) with
    its defaults, the next of `CONFIGS` is tried: oneDNN off, IR optimisation off, both off.
    The first that runs every sample is the reference, and result.json says which (`config`,
    and `fallbackFrom`: the default's failure). When none does, the default's failure is
    recorded, naming the others tried."""

    request = json.loads((directory / REQUEST).read_text())
    specs = [InputSpec.model_validate(raw) for raw in request["inputs"]]
    with np.load(directory / INPUTS, allow_pickle=False) as data:
        samples = unpack_samples({k: np.asarray(data[k]) for k in data.files}, request["samples"])
    attempt = _first_that_runs((model_file, params_file), specs, samples)
    result, failure, runner = attempt.result, attempt.failure, attempt.runner
    timing = request.get("benchmark")
    if failure is None and runner is not None and timing is not None and samples:
        try:
            result["durationsS"] = bench.time_runs(
                lambda: runner.run(samples[0]),
                warmup=int(timing["warmup"]),
                iterations=int(timing["iterations"]),
            )
            result["benchmark"] = timing
        except Exception as err:
            failure = RecordedFailure.of("benchmark", err)
    result["failure"] = failure.to_wire() if failure is not None else None
    with (directory / OUTPUTS).open("wb") as handle:
        np.savez(handle, allow_pickle=False, **pack_outputs(attempt.results))
    partial = directory / f".{RESULT}.partial"
    partial.write_text(json.dumps(result))
    os.replace(partial, directory / RESULT)  # LAST: its presence means the record is complete


CONFIGS: tuple[dict[str, bool], ...] = (
    {"mkldnn": True, "ir_optim": True},
    {"mkldnn": False, "ir_optim": True},
    {"mkldnn": True, "ir_optim": False},
    {"mkldnn": False, "ir_optim": False},
)


def _first_that_runs(
    source: tuple[Path, Path], specs: Sequence[InputSpec], samples: Sequence[Feeds]
) -> _Attempt:
    """The first of `CONFIGS` that loads and runs every sample, its result noting the default's
    failure (`fallbackFrom`); when none does, the default's attempt, its failure naming the
    other configurations when it is ReferenceFailed."""

    first = attempt = _attempt(source, specs, samples, CONFIGS[0])
    for settings in CONFIGS[1:]:
        if attempt.failure is None or not attempt.retry:
            break
        attempt = _attempt(source, specs, samples, settings)
    if attempt.failure is None:
        if attempt is not first and first.failure is not None:
            attempt.result["fallbackFrom"] = first.failure.message
        return attempt
    failure = first.failure
    if first.retry and failure is not None and failure.reason == "ReferenceFailed":
        others = "; ".join(runtimes.describe_config(**c) for c in CONFIGS[1:])
        message = f"{failure.message} (it failed with {others} too)"
        first.failure = RecordedFailure(failure.at, "ReferenceFailed", message, failure.sample)
    return first


@dataclass
class _Attempt:
    """One configuration's run over every sample, in the child."""

    runner: Any
    result: dict[str, Any]
    results: list[list[Array]]
    failure: RecordedFailure | None
    retry: bool  # another configuration may succeed: loading failed, or Paddle Inference raised


def _attempt(
    source: tuple[Path, Path],
    specs: Sequence[InputSpec],
    samples: Sequence[Feeds],
    settings: Mapping[str, bool],
) -> _Attempt:
    model_file, params_file = source
    result: dict[str, Any] = {"runtime": None, "inputs": [], "outputs": [], "failure": None}
    results: list[list[Array]] = []
    try:
        runner = runtimes.PaddleRunner(
            SourceModel("paddle", model_file.parent, model_file, params_file), **settings
        )
    except Exception as err:
        return _Attempt(None, result, results, RecordedFailure.of("load", err), retry=True)
    result["runtime"] = runner.name
    result["config"] = runner.config
    result["inputs"] = [tensor_to_wire(t) for t in runner.inputs]
    result["outputs"] = [tensor_to_wire(t) for t in runner.outputs]
    try:
        check_inputs(specs, runner.inputs)  # validation refuses such inputs before any run
    except Exception as err:
        return _Attempt(runner, result, results, RecordedFailure.of("run", err, 0), retry=False)
    for index, feeds in enumerate(samples):
        try:
            results.append(runner.run(feeds))
        except Exception as err:
            failure = RecordedFailure.of("run", err, index)
            retry = failure.reason == "ReferenceFailed"
            return _Attempt(runner, result, results, failure, retry=retry)
    return _Attempt(runner, result, results, None, retry=False)
