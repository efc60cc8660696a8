"""Paddle reference results recorded in a child process and replayed in the worker, so the
worker process never imports Paddle and a crash of Paddle Inference never ends it.

Called by `modelfleet.workers.jobs` (plans the reference before the conversion, reads the
record in the validate step), `modelfleet.workers.convert` (hands the plan to the paddle2onnx
child, which records it after a successful export) and `modelfleet.workers.paddle_reference`
(which records it: in that child, or in a stage child of its own for the standalone validate
Job and command).

The child runs exactly what validation would have run in the worker: `PaddleRunner` on the
same samples in the same order, then the latency benchmark of the first sample with the same
warmup and iterations. `RecordedReference` replays it behind the `Runner` surface, so
`validate.validate_model` compares, benchmarks and reports the same way for both, and raises
a failure of the reference (load, run, benchmark) at the point where the live run would have.

The reference directory (in the Job's scratch directory):

    request.json   by the worker: {"inputs": [input specs], "samples": N,
                   "benchmark": {"warmup": W, "iterations": I} | null}
    inputs.npz     by the worker: "<i>:<name>" = input <name> of sample i
    outputs.npz    by the child: "<i>:<k>" = Paddle Inference output k of sample i
    result.json    by the child, LAST: {"runtime", "inputs", "outputs" (tensors as
                   [name, dtype, shape | null]), "durationsS": [...] | null,
                   "config": {"mkldnn", "irOptim"}, "fallbackFrom": str | null,
                   "failure": {"at": "load" | "run" | "benchmark", "sample", "reason",
                   "message"} | null}
    child.json     by the worker, only when the child ended without result.json: {"how"}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import numpy.typing as npt

from modelfleet.api.conversion import InputSpec, Validation
from modelfleet.reasons import EXIT_CODES, Reason
from modelfleet.reports import ReferenceConfig, ReferenceInfo
from modelfleet.workers.datasets import Feeds, TensorInfo
from modelfleet.workers.errors import ConverterCrashed, WorkerError, classify, error_of

if TYPE_CHECKING:  # both import this module
    from modelfleet.workers.runtimes import Runner

Array = npt.NDArray[Any]
Stage = Literal["load", "run", "benchmark"]

REQUEST = "request.json"
INPUTS = "inputs.npz"
OUTPUTS = "outputs.npz"
RESULT = "result.json"
CHILD_EXIT = "child.json"
STAGE = "Paddle reference"


def feeds_key(feeds: Mapping[str, Array]) -> str:
    """A digest of one sample (names, dtypes, shapes, bytes): which recorded sample it is."""
    digest = hashlib.sha256()
    for name in sorted(feeds):
        value = np.ascontiguousarray(feeds[name])
        digest.update(f"{name}\0{value.dtype.str}\0{value.shape}\0".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def tensor_to_wire(tensor: TensorInfo) -> list[Any]:
    return [tensor.name, tensor.dtype, None if tensor.shape is None else list(tensor.shape)]


def tensor_from_wire(raw: Sequence[Any]) -> TensorInfo:
    name, dtype, shape = raw
    return TensorInfo(str(name), str(dtype), None if shape is None else tuple(shape))


@dataclass(frozen=True)
class RecordedFailure:
    """Where the reference failed in the child, and how `classify` named it there."""

    at: Stage
    reason: Reason
    message: str
    sample: int | None = None

    def error(self) -> WorkerError:
        return error_of(self.reason, self.message)

    def to_wire(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "sample": self.sample,
            "reason": self.reason,
            "message": self.message,
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> RecordedFailure:
        reason = cast(Reason, raw["reason"] if raw["reason"] in EXIT_CODES else "InternalError")
        return cls(raw["at"], reason, str(raw["message"]), raw.get("sample"))

    @classmethod
    def of(cls, at: Stage, err: BaseException, sample: int | None = None) -> RecordedFailure:
        failure = classify(err)
        return cls(at, failure.reason, failure.message, sample)


@dataclass(frozen=True)
class ReferencePlan:
    """What the child is asked to record: the validation samples (seeded, or the dataset's)
    and the benchmark settings, for one source and one validation config."""

    directory: Path
    specs: list[InputSpec]
    validation: Validation
    samples: list[Feeds]
    data: Literal["seeded", "dataset"]
    benchmark: bool = True

    def fits(self, specs: Sequence[InputSpec], validation: Validation) -> bool:
        """Whether a validation with these settings would run exactly the planned samples."""
        return list(specs) == self.specs and validation == self.validation

    @property
    def dataset(self) -> list[Feeds] | None:
        return self.samples if self.data == "dataset" else None


def plan_reference(
    directory: Path,
    *,
    specs: Sequence[InputSpec],
    validation: Validation,
    samples: Sequence[Feeds],
    data: Literal["seeded", "dataset"],
    benchmark: bool = True,
) -> ReferencePlan:
    """Write request.json and inputs.npz for the child; return the plan the worker keeps."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (OUTPUTS, RESULT, CHILD_EXIT):
        (directory / stale).unlink(missing_ok=True)
    settings = validation.benchmark
    request = {
        "inputs": [spec.to_wire() for spec in specs],
        "samples": len(samples),
        "benchmark": {"warmup": settings.warmup, "iterations": settings.iterations}
        if benchmark
        else None,
    }
    with (directory / INPUTS).open("wb") as handle:
        np.savez(handle, allow_pickle=False, **pack_samples(samples))
    (directory / REQUEST).write_text(json.dumps(request))
    return ReferencePlan(
        directory=directory,
        specs=list(specs),
        validation=validation,
        samples=list(samples),
        data=data,
        benchmark=benchmark,
    )


def note_child_exit(directory: Path, how: str) -> None:
    """Called by the worker when the child ended after the export without a result.json."""
    if not (directory / RESULT).exists():
        (directory / CHILD_EXIT).write_text(json.dumps({"how": how}))


@dataclass
class RecordedReference:
    """The `Runner` of a recorded Paddle Inference reference: `run(feeds)` returns what the
    child computed for that sample, or raises what the child met there."""

    name: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    results: list[list[Array]]
    keys: dict[str, int]
    durations_s: list[float] | None = None
    warmup: int | None = None
    iterations: int | None = None
    failure: RecordedFailure | None = None
    config: dict[str, bool] | None = None
    fallback_from: str | None = None

    def run(self, feeds: Mapping[str, Array]) -> list[Array]:
        index = self.keys.get(feeds_key(feeds))
        failure = self.failure
        if failure is not None and failure.at == "run" and index == failure.sample:
            raise failure.error()
        if index is None or index >= len(self.results):
            raise WorkerError(
                "no recorded Paddle Inference output for this input: the validation asked for a "
                "sample the converter child was not given"
            )
        return [np.array(out, copy=True) for out in self.results[index]]

    def benchmark(self, *, warmup: int, iterations: int) -> list[float]:
        """The child's timings of the first sample (seconds per run), as `time_runs` gives."""
        if self.failure is not None and self.failure.at == "benchmark":
            raise self.failure.error()
        if self.durations_s is None or (warmup, iterations) != (self.warmup, self.iterations):
            raise WorkerError(
                f"no recorded Paddle Inference benchmark for warmup={warmup}, "
                f"iterations={iterations} (recorded: warmup={self.warmup}, "
                f"iterations={self.iterations})"
            )
        return list(self.durations_s)


def reference_info(runner: Runner) -> ReferenceInfo:
    """For the report: the runtime and the configuration that produced the reference, recorded
    (`RecordedReference`) or live (`PaddleRunner.config`; ONNX Runtime has none)."""
    config = getattr(runner, "config", None)
    return ReferenceInfo(
        runtime=runner.name,
        config=None
        if config is None
        else ReferenceConfig(mkldnn=config["mkldnn"], ir_optim=config["irOptim"]),
        fallback_from=runner.fallback_from if isinstance(runner, RecordedReference) else None,
    )


def load_reference(plan: ReferencePlan) -> RecordedReference:
    """The record of `plan`; raises what the child met loading the model, or ConverterCrashed
    when the child ended before recording anything."""
    result_path = plan.directory / RESULT
    if not result_path.is_file():
        exit_path = plan.directory / CHILD_EXIT
        how = json.loads(exit_path.read_text())["how"] if exit_path.is_file() else "ended"
        raise ConverterCrashed(
            STAGE,
            "",
            message=f"the {STAGE} (Paddle Inference, in the converter child) {how}, before it "
            "recorded the reference outputs",
        )
    result = json.loads(result_path.read_text())
    failure = RecordedFailure.from_wire(result["failure"]) if result.get("failure") else None
    if failure is not None and failure.at == "load":
        raise failure.error()
    results: list[list[Array]] = []
    outputs_path = plan.directory / OUTPUTS
    if outputs_path.is_file():
        with np.load(outputs_path, allow_pickle=False) as data:
            results = unpack_outputs({key: np.asarray(data[key]) for key in data.files})
    bench = result.get("benchmark") or {}
    return RecordedReference(
        name=str(result["runtime"]),
        inputs=[tensor_from_wire(t) for t in result["inputs"]],
        outputs=[tensor_from_wire(t) for t in result["outputs"]],
        results=results,
        keys={feeds_key(feeds): i for i, feeds in reversed(list(enumerate(plan.samples)))},
        durations_s=result.get("durationsS"),
        warmup=bench.get("warmup"),
        iterations=bench.get("iterations"),
        failure=failure,
        config=result.get("config"),
        fallback_from=result.get("fallbackFrom"),
    )


def pack_outputs(results: Sequence[Sequence[Array]]) -> dict[str, Array]:
    return {f"{i}:{k}": out for i, outs in enumerate(results) for k, out in enumerate(outs)}


def unpack_outputs(arrays: Mapping[str, Array]) -> list[list[Array]]:
    """Inverse of `pack_outputs`: outputs per sample, in sample then output order."""
    by_sample: dict[int, dict[int, Array]] = {}
    for key, value in arrays.items():
        sample, output = (int(part) for part in key.split(":"))
        by_sample.setdefault(sample, {})[output] = value
    return [[outs[k] for k in sorted(outs)] for _, outs in sorted(by_sample.items())]


def pack_samples(samples: Sequence[Mapping[str, Array]]) -> dict[str, Array]:
    return {f"{i}:{name}": v for i, feeds in enumerate(samples) for name, v in feeds.items()}


def unpack_samples(arrays: Mapping[str, Array], count: int) -> list[Feeds]:
    samples: list[Feeds] = [{} for _ in range(count)]
    for key, value in arrays.items():
        index, name = key.split(":", 1)
        samples[int(index)][name] = value
    return samples
