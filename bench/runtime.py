"""Benchmark 4: Paddle Inference vs ONNX Runtime fp32 / fp16 / int8, per architecture, and
the TensorFlow targets next to ONNX Runtime fp32: their conversion time (paddle2onnx + onnx2tf
+ the load-and-run check, in `.venv-tf`) and latency (TensorFlow's serving_default signature,
LiteRT's interpreter), timed inside their runtime's child process (`tf_runtimes.TfRunner`).

The ONNX artifacts are made by ModelFleet's own conversion (`workers.convert.convert_model`,
which runs paddle2onnx in a child process; fp16 and static int8 with seeded synthetic
calibration, as `modelfleet convert --to onnx-int8` without a dataset). Latency: batch 1, one
intra-op thread on every runtime (the machine is shared; one thread is the stable comparison),
`warmup` untimed runs then `iterations` timed ones, each timed alone with perf_counter.
Agreement: top-1 (argmax of the output) of the fp16/int8 model vs the fp32 model and vs Paddle,
over `agreement_samples` seeded inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.models import ARCHITECTURES, build
from bench.report import Section, Table
from bench.stats import percentile, ratio

Array = npt.NDArray[Any]


def _feeds(specs: Any, seed: int) -> dict[str, Array]:
    rng = np.random.default_rng(seed)
    feeds: dict[str, Array] = {}
    for spec in specs:
        low, high = spec.range or (0.0, 1.0)
        size = tuple(int(d) for d in spec.shape)
        feeds[spec.name] = rng.uniform(float(low), float(high), size=size).astype(spec.dtype)
    return feeds


def _latencies(call: Callable[[], Any], warmup: int, iterations: int) -> list[float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def _top1(outputs: list[Array]) -> Array:
    return np.asarray([int(np.argmax(o.reshape(-1))) for o in outputs])


def run(work: Path, *, quick: bool) -> Section:
    from modelfleet.api.conversion import Target
    from modelfleet.workers.convert import Calibration, convert_model
    from modelfleet.workers.datasets import seeded_samples
    from modelfleet.workers.runtimes import OrtRunner, PaddleRunner
    from modelfleet.workers.sources import locate_source
    from modelfleet.workers.steps import CALIBRATION_SEED_OFFSET, SYNTHETIC_CALIBRATION_SAMPLES

    warmup, iterations = (5, 50) if quick else (20, 300)
    agreement_samples = 50 if quick else 200
    section = Section("runtime", "4. Runtime: Paddle Inference vs ONNX Runtime fp32/fp16/int8")
    latency = Table(
        f"Latency per inference, batch 1, 1 thread (ms; {iterations} timed runs after {warmup})",
        ("model", "runtime", "p50", "p99", "p50 vs Paddle", "model size (KiB)", "size vs fp32"),
    )
    agreement = Table(
        f"Top-1 agreement over {agreement_samples} seeded inputs",
        ("model", "format", "vs ONNX fp32", "vs Paddle", "max abs diff vs fp32"),
    )
    for name in ARCHITECTURES:
        sample = build(name, work / "runtime-models" / name)
        source = locate_source(sample.model_dir)
        specs = list(sample.inputs)
        calibration = Calibration(
            seeded_samples(
                specs,
                seed=CALIBRATION_SEED_OFFSET,
                count=SYNTHETIC_CALIBRATION_SAMPLES,
                batch_size=1,
            ),
            "synthetic",
        )
        paths: dict[str, Path] = {}
        for fmt in ("onnx", "onnx-fp16", "onnx-int8"):
            target = Target.model_validate({"format": fmt, "opset": 17})
            result = convert_model(
                source,
                target,
                work / "runtime-artifacts" / name / fmt,
                specs=specs,
                calibration=calibration if fmt == "onnx-int8" else None,
            )
            paths[fmt] = result.model_path
        paddle = PaddleRunner(source, threads=1)
        runners: dict[str, Any] = {"paddle": paddle}
        runners |= {fmt: OrtRunner(path, threads=1) for fmt, path in paths.items()}
        feeds = _feeds(specs, 0)
        medians: dict[str, float] = {}
        fp32_size = paths["onnx"].stat().st_size
        params_size = sample.params_file.stat().st_size + sample.model_file.stat().st_size
        for label, runner in runners.items():

            def infer(runner: Any = runner, feeds: Mapping[str, Array] = feeds) -> Any:
                return runner.run(feeds)

            times = _latencies(infer, warmup, iterations)
            medians[label] = percentile(times, 50)
            size = params_size if label == "paddle" else paths[label].stat().st_size
            latency.add(
                name,
                "Paddle Inference" if label == "paddle" else f"ORT {label}",
                medians[label],
                percentile(times, 99),
                ratio(medians[label], medians["paddle"]),
                size / 1024,
                ratio(size, fp32_size),
            )
        outputs: dict[str, list[Array]] = {label: [] for label in runners}
        for seed in range(agreement_samples):
            sample_feeds = _feeds(specs, 1000 + seed)
            for label, runner in runners.items():
                outputs[label].append(runner.run(sample_feeds)[0])
        top1 = {label: _top1(values) for label, values in outputs.items()}
        for fmt in ("onnx", "onnx-fp16", "onnx-int8"):
            diff = max(
                float(np.max(np.abs(a.astype(np.float32) - b.astype(np.float32))))
                for a, b in zip(outputs[fmt], outputs["onnx"], strict=True)
            )
            agreement.add(
                name,
                fmt,
                float(np.mean(top1[fmt] == top1["onnx"])),
                float(np.mean(top1[fmt] == top1["paddle"])),
                diff,
            )
    section.tables += [latency, agreement, _tensorflow(work, warmup, iterations)]
    section.notes += [
        "Paddle size = inference.json + inference.pdiparams; ONNX sizes are model.onnx as "
        "ModelFleet publishes it.",
        "int8 = static QDQ quantization calibrated on seeded synthetic samples (no dataset), the "
        "models are untrained: agreement shows quantization noise against argmax margins of "
        "random weights, a pessimistic proxy for a trained model.",
        "fp16 on a CPU without native fp16 arithmetic runs with casts; its latency is "
        "expected to be worse than fp32 here (fp16 targets GPUs/NPUs).",
    ]
    return section


TF_TARGETS = {"tf-savedmodel": "savedmodel", "tflite": "tflite", "tflite-fp16": "tflite"}


def _tensorflow(work: Path, warmup: int, iterations: int) -> Table:
    """Conversion time and latency of the TensorFlow targets beside ONNX Runtime fp32."""
    from modelfleet.api.conversion import Target
    from modelfleet.workers.convert import convert_model
    from modelfleet.workers.runtimes import OrtRunner
    from modelfleet.workers.sources import locate_source
    from modelfleet.workers.tf_runtimes import TfRunner, extract_tar

    table = Table(
        f"TensorFlow targets: conversion and latency, batch 1, 1 thread (ms; {iterations} "
        f"timed runs after {warmup}, timed in the runtime's child)",
        ("model", "format", "conversion (s)", "p50", "p99", "p50 vs ORT fp32"),
    )
    for name in ARCHITECTURES:
        sample = build(name, work / "runtime-models" / name)
        source = locate_source(sample.model_dir)
        specs = list(sample.inputs)
        feeds = _feeds(specs, 0)
        rows: dict[str, tuple[float, list[float]]] = {}
        for fmt in ("onnx", *TF_TARGETS):
            started = time.perf_counter()
            result = convert_model(
                source,
                Target.model_validate({"format": fmt, "opset": 17}),
                work / "tf-artifacts" / name / fmt,
                specs=specs,
            )
            seconds = time.perf_counter() - started
            if fmt == "onnx":
                ort = OrtRunner(result.model_path, threads=1)
                rows[fmt] = (seconds, _latencies(partial(ort.run, feeds), warmup, iterations))
                continue
            assert result.signature is not None
            model = result.model_path
            if fmt == "tf-savedmodel":
                model = extract_tar(model, model.parent / "savedmodel")
            runner = TfRunner(
                model,
                kind=TF_TARGETS[fmt],
                inputs=result.signature[0],
                outputs=result.signature[1],
                work_dir=work / "tf-runtime" / name / fmt,
                threads=1,
            )
            try:
                timed = runner.benchmark(feeds, warmup=warmup, iterations=iterations)
            finally:
                runner.close()
            rows[fmt] = (seconds, [t * 1000.0 for t in timed])
        ort_p50 = percentile(rows["onnx"][1], 50)
        for fmt, (seconds, times) in rows.items():
            p50 = percentile(times, 50)
            table.add(name, fmt, seconds, p50, percentile(times, 99), ratio(p50, ort_p50))
    return table
