"""Validation: run reference and candidate on the same inputs, compare, benchmark, probe.

Called through `modelfleet.workers.steps.validate_target` (which picks the target's rule) by
the validate Job pipeline and the `modelfleet validate` command. Reference is Paddle
Inference for a Paddle source (ONNX Runtime for an ONNX source), candidate is ONNX Runtime CPU.
In a convert-validate Job the Paddle reference was run by the converter child and is replayed
here (`references.RecordedReference`: its outputs, and its benchmark timings of the same
first sample with the same settings).
Inputs are seeded samples from the input spec (`datasets.seeded_sample`) or a dataset `.npz`.
The comparison itself is pure (`modelfleet.comparison`); this module only drives the runtimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from modelfleet.api.conversion import InputSpec, Validation
from modelfleet.comparison import SEMANTICS, ComparisonResult, Rule, compare_outputs
from modelfleet.reports import BenchmarkSection, ValidationSection
from modelfleet.workers import benchmark as bench
from modelfleet.workers.datasets import Feeds, check_inputs, seeded_samples
from modelfleet.workers.errors import InvalidModel
from modelfleet.workers.references import RecordedReference, reference_info
from modelfleet.workers.runtimes import Runner

PROBE_SAMPLES = 4


@runtime_checkable
class SelfTimed(Protocol):
    """A candidate that times its own runs (`tf_runtimes.TfRunner`: seconds per run)."""

    def benchmark(self, feeds: Feeds, *, warmup: int, iterations: int) -> list[float]: ...


@dataclass(frozen=True)
class ValidationOutcome:
    comparison: ComparisonResult
    section: ValidationSection
    output_names: list[str]
    probe_inputs: list[Feeds]
    probe_references: list[list[npt.NDArray[Any]]]
    probe_candidates: list[list[npt.NDArray[Any]]]

    @property
    def passed(self) -> bool:
        return bool(self.comparison)


def output_mapping(reference: Runner, candidate: Runner) -> tuple[list[int], str]:
    """For each candidate output, the index of the matching reference output."""
    ref_names = [t.name for t in reference.outputs]
    cand_names = [t.name for t in candidate.outputs]
    if sorted(ref_names) == sorted(cand_names):
        return [ref_names.index(n) for n in cand_names], "name"
    if len(ref_names) != len(cand_names):
        raise InvalidModel(
            f"reference has {len(ref_names)} outputs ({', '.join(ref_names)}), candidate has "
            f"{len(cand_names)} ({', '.join(cand_names)})"
        )
    return list(range(len(cand_names))), "position"


def validate_model(
    *,
    reference: Runner,
    candidate: Runner,
    specs: Sequence[InputSpec],
    validation: Validation,
    rule: Rule,
    quantized: bool,
    dataset: list[Feeds] | None = None,
    dataset_uri: str | None = None,
    run_benchmark: bool = True,
) -> ValidationOutcome:
    check_inputs(specs, candidate.inputs)
    check_inputs(specs, reference.inputs)
    mapping, how = output_mapping(reference, candidate)
    data: Literal["seeded", "dataset"] = "dataset" if dataset is not None else "seeded"
    samples = validation_samples(specs, validation, dataset)
    names = [t.name for t in candidate.outputs]
    ref_names = [reference.outputs[i].name for i in mapping]
    references: list[list[npt.NDArray[Any]]] = []
    candidates: list[list[npt.NDArray[Any]]] = []
    for feeds in samples:
        ref = reference.run(feeds)
        references.append([ref[i] for i in mapping])
        candidates.append(candidate.run(feeds))
    comparison = compare_outputs(
        names,
        [_concat([outs[k] for outs in references]) for k in range(len(names))],
        [_concat([outs[k] for outs in candidates]) for k in range(len(names))],
        rule,
        quantized=quantized,
        reference_names=ref_names,
    )
    bench_section = None
    if run_benchmark:
        bench_section = _benchmark(reference, candidate, samples[0], validation, specs)
    stats = comparison.stats()
    section = ValidationSection(
        passed=comparison.passed,
        semantics=SEMANTICS,
        tolerance=rule,
        data=data,
        dataset_uri=dataset_uri,
        seed=validation.seed,
        samples=len(samples),
        batch_size=validation.batch_size,
        reference_runtime=reference.name,
        reference=reference_info(reference),
        candidate_runtime=candidate.name,
        output_mapping="name" if how == "name" else "position",
        outputs=list(comparison.outputs),
        failures=comparison.failures(),
        benchmark=bench_section,
        max_abs=stats.get("max_abs"),
        max_rel=stats.get("max_rel"),
        l2=stats.get("l2"),
        cosine=stats.get("cosine"),
    )
    probe = min(PROBE_SAMPLES, len(samples))
    return ValidationOutcome(
        comparison=comparison,
        section=section,
        output_names=names,
        probe_inputs=list(samples[:probe]),
        probe_references=references[:probe],
        probe_candidates=candidates[:probe],
    )


def validation_samples(
    specs: Sequence[InputSpec], validation: Validation, dataset: list[Feeds] | None
) -> list[Feeds]:
    """The samples a validation runs: the dataset's, else the seeded ones of its settings."""
    if dataset is not None:
        return dataset
    return seeded_samples(
        specs, seed=validation.seed, count=validation.samples, batch_size=validation.batch_size
    )


def _concat(arrays: list[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    return np.stack(arrays) if arrays else np.zeros((0,))


def _benchmark(
    reference: Runner,
    candidate: Runner,
    feeds: Feeds,
    validation: Validation,
    specs: Sequence[InputSpec],
) -> BenchmarkSection:
    rows = max(1, min(len(v) if np.ndim(v) else 1 for v in feeds.values()))
    settings = validation.benchmark
    if isinstance(reference, RecordedReference):  # timed in the Paddle child, the same way
        timings = reference.benchmark(warmup=settings.warmup, iterations=settings.iterations)
        ref = bench.summarize(timings, rows)
    else:
        ref = bench.measure(
            lambda: reference.run(feeds),
            warmup=settings.warmup,
            iterations=settings.iterations,
            batch_size=rows,
        )
    if isinstance(candidate, SelfTimed):  # a runtime in a child: timed there, no file I/O
        timings = candidate.benchmark(feeds, warmup=settings.warmup, iterations=settings.iterations)
        cand = bench.summarize(timings, rows)
    else:
        cand = bench.measure(
            lambda: candidate.run(feeds),
            warmup=settings.warmup,
            iterations=settings.iterations,
            batch_size=rows,
        )
    ratio = bench.speedup(ref, cand)
    return BenchmarkSection(
        warmup=settings.warmup,
        iterations=settings.iterations,
        source=bench.latency(reference.name, ref),
        target=bench.latency(candidate.name, cand),
        speedup=ratio,
        slower_than_source=ratio < 1.0,
    )
