"""Tolerance study of one zoo net: per-output metrics of its conversions and injected faults.

`python -m zoo.study ARCH SOURCE_DIR WORK_DIR OUT.json` (one process per net, run by
`zoo.__main__`): the reference is the project's own (`reference_runner`: Paddle Inference)
on the validation's own inputs (`seeded_samples`, seed 0, 16 samples, as `modelfleet validate`
draws them); each converted artifact `WORK_DIR/<arch>-<format>/model.onnx` and, for the
`FAULT_NETS`, each fault of the fp32 one runs on ONNX Runtime. Metrics come from
`modelfleet.comparison`; the normalised ones (max abs / max |reference|, relative L2) are
added here. When Paddle Inference fails, the reference is retried with oneDNN and IR
optimisation off (recorded), so a fault study does not depend on a reference bug.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from modelfleet.comparison import compare_output, effective_rule
from modelfleet.workers.commands import parse_input_specs
from modelfleet.workers.datasets import seeded_samples
from modelfleet.workers.runtimes import OrtRunner, reference_runner
from modelfleet.workers.sources import locate_source
from modelfleet.workers.validate import output_mapping
from zoo.catalog import ARCHITECTURES, FAULT_NETS, FORMATS
from zoo.faults import FAULTS

SAMPLES = 16


@dataclass(frozen=True)
class Metrics:
    """One output of one artifact against the reference, all samples together."""

    arch: str
    artifact: str  # a format, or "fault: <name>"
    format: str  # the format whose default rule applies
    output: str
    max_abs: float
    max_ref: float
    norm_max_abs: float  # max abs / max |reference|
    max_rel: float
    cosine: float
    l2: float
    rel_l2: float  # ||c - r|| / ||r||
    mismatched_fraction: float  # under today's default rule of `format`
    passes_today: bool
    note: str = ""


def metrics(arch: str, artifact: str, fmt: str, name: str, ref: Any, cand: Any,
            note: str = "") -> Metrics:  # fmt: skip
    rule = effective_rule(fmt, None)  # type: ignore[arg-type]
    result = compare_output(name, ref, cand, rule, classes_axis=fmt == "onnx-int8")
    r = np.asarray(ref, np.float64)
    max_ref = float(np.abs(r).max()) if r.size else 0.0
    norm_r = float(np.linalg.norm(r))
    return Metrics(
        arch, artifact, fmt, name, result.max_abs, max_ref,
        result.max_abs / max_ref if max_ref else math.inf, result.max_rel, result.cosine,
        result.l2, result.l2 / norm_r if norm_r else math.inf,
        result.mismatched / result.total if result.total else 0.0, result.passed, note,
    )  # fmt: skip


class _OnednnOffRunner:
    """Paddle Inference without oneDNN and IR optimisation: the study's fallback reference."""

    def __init__(self, source: Any) -> None:
        from paddle import inference

        config = inference.Config(str(source.model_file), str(source.params_file))
        config.disable_gpu()
        config.disable_mkldnn()
        config.switch_ir_optim(False)
        self._predictor = inference.create_predictor(config)
        self.names = list(self._predictor.get_output_names())

    def run(self, feeds: dict[str, Any]) -> list[Any]:
        for name, value in feeds.items():
            handle = self._predictor.get_input_handle(name)
            handle.reshape(list(value.shape))
            handle.copy_from_cpu(np.ascontiguousarray(value))
        self._predictor.run()
        return [self._predictor.get_output_handle(n).copy_to_cpu() for n in self.names]


def _stack(runs: list[list[Any]], k: int) -> Any:
    arrays = [r[k] for r in runs]
    if len({a.shape for a in arrays}) > 1:
        return np.concatenate([a.reshape(-1) for a in arrays])  # data-dependent shapes (NMS)
    return np.stack(arrays)


def study(arch: str, source_dir: Path, work: Path) -> dict[str, Any]:
    specs = parse_input_specs(ARCHITECTURES[arch].spec())
    samples = seeded_samples(specs, seed=0, count=SAMPLES)
    source = locate_source(source_dir)
    note = ""
    try:
        runner = reference_runner(source, threads=1)
        refs = [runner.run(f) for f in samples]
    except Exception as err:  # the reference failing is a finding; the study goes on
        note = f"reference retried with oneDNN and IR optim off after: {str(err).splitlines()[0]}"
        runner = None
        fallback = _OnednnOffRunner(source)
        refs = [fallback.run(f) for f in samples]
    rows: list[Metrics] = []
    errors: list[str] = []
    artifacts = [(fmt, fmt, work / f"{arch}-{fmt}" / "model.onnx") for fmt in FORMATS]
    fp32 = work / f"{arch}-onnx" / "model.onnx"
    if arch in FAULT_NETS and fp32.is_file():
        for fault, inject in FAULTS.items():
            broken, what = inject(onnx.load(str(fp32)))
            path = work / "faults" / f"{arch}-{fault.replace(' ', '-').replace('%', '')}.onnx"
            path.parent.mkdir(parents=True, exist_ok=True)
            onnx.save(broken, str(path))
            artifacts.append((f"fault: {fault} ({what})", "onnx", path))
    for artifact, fmt, path in artifacts:
        if not path.is_file():
            continue
        try:
            cand = OrtRunner(path, threads=1, what=artifact)
            mapping = output_mapping(runner, cand)[0] if runner else list(range(len(refs[0])))
            outs = [cand.run(f) for f in samples]
        except Exception as err:
            errors.append(f"{artifact}: {str(err).splitlines()[0][:300]}")
            continue
        for k, out_info in enumerate(cand.outputs):
            ref = _stack([[r[i] for i in mapping] for r in refs], k)
            rows.append(metrics(arch, artifact, fmt, out_info.name, ref, _stack(outs, k), note))
    return {"arch": arch, "reference_note": note, "errors": errors,
            "rows": [asdict(r) for r in rows]}  # fmt: skip


if __name__ == "__main__":
    result = study(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
    Path(sys.argv[4]).write_text(json.dumps(result, indent=1, default=str))
