"""One target's conversion and validation steps, wherever its files live.

Called by both `modelfleet.workers.jobs` (the Jobs: inputs from object storage, results
published there) and `modelfleet.workers.commands` (`modelfleet convert` / `modelfleet
validate`: local files in, local files out, a table printed). Both differ only in where the
inputs come from, where the outputs go and what they print; every decision is made here:

- `calibration_for`: which samples a static int8 target is calibrated with;
- `convert_target`: the conversion (`convert.convert_model`) and the manifest describing it;
- `validation_dataset`, `validate_target`: the inputs a validation runs and the validation
  itself under the target's effective rule (`validate.validate_model`);
- `validation_report`, `write_probe_file`: what a validation leaves (report.json, probe.npz).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from modelfleet.api.conversion import (
    QUANTIZED_FORMATS,
    TF_FORMATS,
    InputSpec,
    Target,
    TargetFormat,
    Tolerance,
    Validation,
)
from modelfleet.artifacts import Manifest, SourceRef, conversion_config
from modelfleet.comparison import effective_rule
from modelfleet.jobrequests import validation_settings_digest
from modelfleet.layouts import to_layout
from modelfleet.reasons import EXIT_CODES
from modelfleet.reports import (
    ConversionSection,
    FailureInfo,
    RemediesSection,
    Report,
    SourceInfo,
    ValidationSection,
    write_probe,
)
from modelfleet.workers.convert import Calibration, ConversionResult, convert_model
from modelfleet.workers.datasets import Feeds, dataset_samples, load_npz, seeded_samples
from modelfleet.workers.paddle2onnx_child import PaddleChild
from modelfleet.workers.references import ReferencePlan
from modelfleet.workers.runtimes import Runner
from modelfleet.workers.sources import SourceModel, file_sha256
from modelfleet.workers.validate import ValidationOutcome, validate_model

CALIBRATION_SEED_OFFSET = 1_000_003  # synthetic calibration never reuses validation samples
SYNTHETIC_CALIBRATION_SAMPLES = 32

Converter = Callable[..., ConversionResult]


@dataclass(frozen=True)
class LocalDataset:
    """An .npz of input rows on local disk: `uri` is what artifacts record as its origin,
    `origin` is how error messages name it."""

    path: Path
    uri: str
    origin: str


@dataclass(frozen=True)
class Converted:
    """A converted target on local disk, not yet published: the model file and its manifest."""

    result: ConversionResult
    manifest: Manifest


def needs_calibration(target: Target) -> bool:
    """Only static int8 quantization calibrates (static is int8's default)."""
    return target.format == "onnx-int8" and (target.quantization or "static") == "static"


def calibration_for(
    target: Target,
    specs: Sequence[InputSpec],
    *,
    seed: int,
    batch_size: int,
    data: LocalDataset | None = None,
    limit: int | None = None,
) -> Calibration | None:
    """The dataset's samples (at most `limit`) when there is one, else seeded synthetic ones
    drawn away from the validation's seed; None when the target does not calibrate."""
    if not needs_calibration(target):
        return None
    if data is not None:
        arrays = load_npz(data.path)
        samples = dataset_samples(
            arrays, specs, batch_size=batch_size, limit=limit, origin=data.origin
        )
        return Calibration(samples, "dataset", data.uri)
    samples = seeded_samples(
        specs,
        seed=seed + CALIBRATION_SEED_OFFSET,
        count=SYNTHETIC_CALIBRATION_SAMPLES,
        batch_size=batch_size,
    )
    return Calibration(samples, "synthetic")


def convert_target(
    source: SourceModel,
    target: Target,
    out_dir: Path,
    *,
    specs: Sequence[InputSpec],
    calibration: Calibration | None,
    digest: str,
    source_uri: str,
    source_digest: str,
    versions: Mapping[str, str],
    now: datetime,
    converter: Converter = convert_model,
    reference: ReferencePlan | None = None,
    child: PaddleChild | None = None,
) -> Converted:
    """Write `out_dir/model.onnx` and describe it; a classified WorkerError on failure.
    `reference` and `child` are the convert-validate Job's (see `convert.convert_model`)."""
    result = converter(
        source,
        target,
        out_dir,
        specs=specs,
        calibration=calibration,
        reference=reference,
        child=child,
    )
    inputs, outputs = result.signature or result.info.signature()
    manifest = Manifest(
        digest=digest,
        format=target.format,
        file=result.model_path.name,
        sha256=file_sha256(result.model_path),
        size_bytes=result.model_path.stat().st_size,
        opset=result.info.opset,
        inputs=inputs,
        outputs=outputs,
        versions=dict(versions),
        source=SourceRef(uri=source_uri, digest=source_digest, format=source.format),
        target=conversion_config(target),
        quantization=result.quantization,
        created_at=now.isoformat(),
    )
    return Converted(result, manifest)


def validation_dataset(
    specs: Sequence[InputSpec], validation: Validation, data: LocalDataset | None
) -> list[Feeds] | None:
    """The dataset's samples (at most `validation.samples`), or None: seeded samples run."""
    if data is None:
        return None
    return dataset_samples(
        load_npz(data.path),
        specs,
        batch_size=validation.batch_size,
        limit=validation.samples,
        origin=data.origin,
    )


def validate_target(
    fmt: TargetFormat,
    tolerance: Tolerance | None,
    *,
    reference: Runner,
    candidate: Runner,
    specs: Sequence[InputSpec],
    validation: Validation,
    dataset: list[Feeds] | None,
    dataset_uri: str | None,
    run_benchmark: bool = True,
) -> ValidationOutcome:
    """Run reference and candidate on the same inputs and judge them under the target's
    effective rule (its tolerance, else the format's defaults). The section records the digest
    of those settings: the operator reuses the report only for a spec with the same one."""
    outcome = validate_model(
        reference=reference,
        candidate=candidate,
        specs=specs,
        validation=validation,
        rule=effective_rule(fmt, tolerance),
        quantized=fmt in QUANTIZED_FORMATS,
        dataset=dataset,
        dataset_uri=dataset_uri,
        run_benchmark=run_benchmark,
    )
    settings = validation_settings_digest(specs, validation, fmt, tolerance)
    section = outcome.section.model_copy(update={"settings_digest": settings})
    return dataclasses.replace(outcome, section=section)


def tolerance_message(fmt: TargetFormat, section: ValidationSection) -> str:
    """The one line of a failed validation (the report's, the Job's, the CLI's and hence the
    condition's): what fell outside the tolerance, then the diverging node when one was named."""
    text = f"{fmt} differs from the reference: " + "; ".join(section.failures)[:1500]
    if section.divergence is not None:
        text += f"; {section.divergence.describe()}"
    return text


def validation_report(
    outcome: ValidationOutcome,
    *,
    fmt: TargetFormat,
    digest: str | None,
    source: SourceInfo,
    now: datetime,
    conversion: ConversionSection | None = None,
    remedies: RemediesSection | None = None,
) -> Report:
    """report.json after a validation; a failed one carries the ToleranceExceeded failure."""
    failure = None
    if not outcome.passed:
        failure = FailureInfo(
            reason="ToleranceExceeded",
            message=tolerance_message(fmt, outcome.section),
            exit_code=EXIT_CODES["ToleranceExceeded"],
        )
    return Report(
        format=fmt,
        digest=digest,
        source=source,
        passed=outcome.passed,
        conversion=conversion,
        validation=outcome.section,
        remedies=remedies,
        failure=failure,
        updated_at=now.isoformat(),
    )


def write_probe_file(
    path: Path,
    outcome: ValidationOutcome,
    *,
    fmt: TargetFormat,
    digest: str | None,
    manifest: Manifest | None = None,
) -> None:
    """probe.npz of the validation's first samples (format in `modelfleet.reports`). For a
    TensorFlow artifact (its `manifest` given) in the artifact's own terms: its signature's
    names and layouts, as a device's engine feeds and reads it (`modelfleet.engines`)."""
    inputs, references, candidates = (
        outcome.probe_inputs,
        outcome.probe_references,
        outcome.probe_candidates,
    )
    names = outcome.output_names
    if manifest is not None and manifest.format in TF_FORMATS:
        ins = {t.name: t for t in manifest.inputs}
        outs = [next(t for t in manifest.outputs if t.name == name) for name in names]
        inputs = [
            {(ins[k].runtime_name or k): to_layout(v, ins[k].layout) for k, v in feeds.items()}
            for feeds in inputs
        ]
        references = [
            [to_layout(a, t.layout) for a, t in zip(r, outs, strict=True)] for r in references
        ]
        candidates = [
            [to_layout(a, t.layout) for a, t in zip(c, outs, strict=True)] for c in candidates
        ]
        names = [t.runtime_name or t.name for t in outs]
    write_probe(
        path,
        inputs=inputs,
        references=references,
        candidates=candidates,
        output_names=names,
        meta={
            "format": fmt,
            "digest": digest,
            "samples": len(inputs),
            "inputs": list(inputs[0]),
            "outputs": names,
            "tolerance": outcome.section.tolerance.to_wire(),
            "semantics": outcome.section.semantics,
        },
    )
