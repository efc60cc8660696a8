"""Benchmark 3: ModelFleet convert + validate wall time against raw paddle2onnx plus a minimal
numpy comparison, on the same model; and the cache hit (a second convert of the same request).

ModelFleet side: the Job entrypoint exactly as the operator's Job runs it when nothing is
cached, `modelfleet-worker convert-validate --request JSON` (one process: convert, then
validate), against a real MinIO holding the source. The "before" columns keep the two-Job
shape earlier operators created, `modelfleet-worker convert` then `modelfleet-worker validate`
(each a fresh process, as each Job is a fresh container), so before/after stay side by side.
Each shape writes to its own bucket, so neither is a cache hit of the other. Validation runs
the request's defaults (16 samples) with its latency benchmark cut to warmup 0 / 1 iteration,
so both sides do the same work: convert, run 16 seeded samples through Paddle Inference and
ONNX Runtime, compare. Another column keeps the product default benchmark (5 warmup, 50
iterations).

Raw side: one fresh Python process (`bench.raw_convert`) that calls `paddle2onnx.export` and
compares 16 seeded samples with numpy. Both sides are timed from outside, process start to
exit, so interpreter and import costs count on both. The headline pair runs REPEATS times,
interleaved (MF, raw, MF, raw, ...), and the table gives medians and the range of the ratios.

Models: the three small architectures of `bench.models`, then `mobilenetv2` (ImageNet-shaped,
3.5 M parameters) to show how the fixed costs weigh as models grow.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.models import ARCHITECTURES, LARGE_ARCHITECTURES, build
from bench.report import Section, Table, fmt
from bench.stats import meets, ratio

TARGET_RATIO = 1.2
SAMPLES = 16
REPEATS = 3
"""MF and raw runs per model, interleaved; the table gives their medians (single runs on this
shared 2-core machine varied by up to 50%)."""
TOLERANCE = {"atol": 1e-4, "rtol": 1e-3}  # raw's np.allclose; fp32's default 1e-5 fails mobilenetv2


def _timed(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, int]:
    started = time.perf_counter()
    with log.open("ab") as out:
        code = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    return time.perf_counter() - started, code.returncode


def _worker(
    worker: str, command: str, request: str, env: dict[str, str], log: Path
) -> tuple[float, int]:
    """One Job's process as the Job runs it (the termination line goes next to the log)."""
    term = str(log.with_suffix(".termination"))
    return _timed([worker, command, "--request", request, "--termination-log", term], env, log)


def _request(uri: str, model_inputs: list[dict[str, object]], bucket: str, *, bench: bool) -> str:
    """The worker request; `bucket` receives artifacts and reports (the source stays put)."""
    validation: dict[str, object] = {"samples": SAMPLES, "seed": 0}
    if not bench:
        validation["benchmark"] = {"warmup": 0, "iterations": 1}
    return json.dumps(
        {
            "source": {"uri": uri},
            "inputs": model_inputs,
            "target": {"format": "onnx", "opset": 17, "tolerance": TOLERANCE},
            "validation": validation,
            "bucket": bucket,
        }
    )


def run(work: Path, *, quick: bool) -> Section:
    from modelfleet.dev.environment import dev_environment
    from modelfleet.storage import Storage

    section = Section("conversion", "3. Conversion: ModelFleet convert + validate vs raw")
    table = Table(
        "Wall time per model (s), each Job a fresh process",
        (
            "model",
            "params (MiB)",
            "MF convert-validate (1 process)",
            "raw paddle2onnx + numpy",
            "ratio MF / raw",
            "ratio range over repeats",
            "before: MF convert",
            "before: MF validate",
            "before: MF total (2 processes)",
            "before: ratio MF / raw",
            "raw, paddle2onnx default optimizer (polygraphy)",
            "MF convert-validate, default benchmark (5+50)",
            "ratio with default benchmark",
            "cache hit (2nd convert)",
            "cache hit / 1st convert",
        ),
    )
    worker = str(Path(sys.executable).with_name("modelfleet-worker"))
    architectures = ARCHITECTURES[:1] if quick else (*ARCHITECTURES, *LARGE_ARCHITECTURES)
    ratios: list[float] = []
    logs = work / "conversion-logs"
    logs.mkdir(parents=True, exist_ok=True)
    with dev_environment(work / "conversion", kubernetes=False) as env:
        assert env.s3 is not None
        storage = Storage.from_env(env.env())
        repeats = 1 if quick else REPEATS
        shapes = (*(f"after-{n}" for n in range(repeats)), "before", "default-bench")
        buckets = {shape: f"bench-{shape}" for shape in shapes}
        for bucket in buckets.values():
            storage.ensure_bucket(bucket)
        child_env = {**os.environ, **env.env()}
        for name in architectures:
            model = build(name, work / "models" / name)
            prefix = f"sources/{name}/"
            for path in (model.model_file, model.params_file):
                storage.put_file(prefix + path.name, path)
            uri = storage.uri(prefix)
            inputs = [spec.to_wire() for spec in model.inputs]
            log = logs / f"{name}.log"

            raw = [
                sys.executable,
                str(Path(__file__).with_name("raw_convert.py")),
                str(model.model_file),
                str(model.params_file),
                str(work / f"{name}-raw.onnx"),
                json.dumps(inputs),
                str(SAMPLES),
            ]
            pairs = []
            for n in range(repeats):  # interleaved, each MF run into a fresh bucket (no cache)
                after = _request(uri, inputs, buckets[f"after-{n}"], bench=False)
                pairs.append(
                    (
                        _worker(worker, "convert-validate", after, child_env, log),
                        _timed([*raw, "none"], child_env, log),
                    )
                )
            combined_s = statistics.median(mf for (mf, _), _ in pairs)
            raw_s = statistics.median(r for _, (r, _) in pairs)
            c1 = next((code for (_, code), _ in pairs if code), 0)  # a signal's code is < 0
            c6 = next((code for _, (_, code) in pairs if code), 0)
            each = [ratio(mf, r) for (mf, _), (r, _) in pairs]
            before = _request(uri, inputs, buckets["before"], bench=False)
            convert_s, c2 = _worker(worker, "convert", before, child_env, log)
            validate_s, c3 = _worker(worker, "validate", before, child_env, log)
            mark = log.stat().st_size
            cached_s, c4 = _worker(worker, "convert", before, child_env, log)
            cached = "cache hit" in log.read_bytes()[mark:].decode(errors="replace")
            default_bench = _request(uri, inputs, buckets["default-bench"], bench=True)
            combined_default_s, c5 = _worker(
                worker, "convert-validate", default_bench, child_env, log
            )
            raw_polygraphy_s, c7 = _timed([*raw, "polygraphy"], child_env, log)
            codes = (c1, c2, c3, c4, c5, c6, c7)
            if any(codes):
                section.notes.append(f"{name}: non-zero exit codes {codes}; see {log}")
            ratios.append(ratio(combined_s, raw_s))
            table.add(
                name,
                model.params_file.stat().st_size / 2**20,
                combined_s,
                raw_s,
                ratio(combined_s, raw_s),
                f"{fmt(min(each))}-{fmt(max(each))}",
                convert_s,
                validate_s,
                convert_s + validate_s,
                ratio(convert_s + validate_s, raw_s),
                raw_polygraphy_s,
                combined_default_s,
                ratio(combined_default_s, raw_s),
                f"{fmt(cached_s)}{'' if cached else ' (no cache hit logged!)'}",
                ratio(cached_s, convert_s),
            )
    section.tables.append(table)
    worst = max(ratios) if ratios else float("nan")
    section.target(
        "convert-validate / raw paddle2onnx+numpy (worst model)",
        f"{fmt(worst)}x",
        f"<= {TARGET_RATIO}x",
        meets(worst, TARGET_RATIO, higher_is_better=False),
    )
    section.notes += [
        "MF = ModelFleet's Job entrypoint (`modelfleet-worker convert-validate --request`, the "
        "one Job the operator creates for a target with nothing stored) against MinIO: it also "
        "downloads the source, checks it, runs onnx.checker and an ORT load, uploads model + "
        "manifest, downloads the artifact back to validate what is stored, writes report.json "
        "and probe.npz. paddle2onnx runs in a child process (it aborts on unsupported "
        "operators), so MF is two interpreters where raw is one; that child also runs the Paddle "
        "Inference reference (outputs and latency) for the validation, so Paddle is imported "
        "once on both sides.",
        "before = the two Jobs of earlier operators, `convert` then `validate`: three "
        "interpreters, two source downloads. A validate-only Job still runs when the artifact "
        "is stored already (cache hit, or only the validation settings changed).",
        f"Both sides compare {SAMPLES} seeded samples (Paddle Inference vs ONNX Runtime) with "
        f"atol {TOLERANCE['atol']:g} / rtol {TOLERANCE['rtol']:g} (the fp32 default, 1e-5, "
        "fails mobilenetv2: a few of its 16,000 logits differ by ~1.5e-5).",
        "raw = `paddle2onnx.export(..., optimize_tool='None')`, the exporter ModelFleet runs; "
        "the polygraphy column keeps paddle2onnx's default Python optimizer (much slower; "
        "ModelFleet turns it off because it may pip-install at run time).",
        "Cache hit = the same convert request again: the worker finds the manifest of the "
        "content-addressed artifact and converts nothing (the operator skips the Job entirely "
        "in that case; this measures the worker's own check).",
    ]
    return section
