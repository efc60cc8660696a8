"""The two Job pipelines: convert and validate, between object storage and a work directory.

Called by `modelfleet.workers.cli` (the Job entrypoint). Each returns an outcome whose
`summary()` is the one-line termination message; each raises a classified WorkerError (or
`modelfleet.storage.StorageError`) on failure, after writing a failure report when the
artifact's digest is already known. The convert-validate Job runs both in one process; a
`SourceCache` passed to both lets the second step reuse the source the first downloaded, and a
`ReferenceCache` lets it reuse the Paddle Inference reference that the paddle2onnx child
recorded right after the export (`references`): that Job never imports Paddle itself. A
validate-only Job (and a convert-validate whose artifact turned out stored already) runs
Paddle Inference in its own process.

The steps themselves (calibration choice, conversion + manifest, validation + report and
probe) are `modelfleet.workers.steps`, the same the local `modelfleet convert|validate` run;
here is what only a Job does: the cache check, publishing, failure reports. What a Job reads
from and writes to object storage is `modelfleet.workers.objects`.

Publishing order: model.onnx, then report.json, then manifest.json LAST — an artifact is
complete iff its manifest exists, so a crash at any point leaves nothing that looks complete.
Every check (conversion, onnx.checker, ONNX Runtime load, input spec) runs on local files
before the first upload. A complete artifact is a cache hit: no conversion runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from modelfleet.api.conversion import TF_FORMATS
from modelfleet.artifacts import (
    ArtifactKeys,
    Manifest,
    artifact_digest,
    converter_versions,
    is_artifact_complete,
    model_file,
)
from modelfleet.jobrequests import ConvertRequest, ValidateRequest, WorkerRequest
from modelfleet.reports import ConversionSection, Report, SourceInfo
from modelfleet.storage import Storage
from modelfleet.workers.convert import KEPT_FP32, Calibration, convert_model
from modelfleet.workers.datasets import Feeds
from modelfleet.workers.errors import InvalidModel, SourceNotFound, ToleranceExceeded
from modelfleet.workers.objects import (
    SourceCache,
    early_keys,
    existing_report,
    fetch_calibration,
    fetch_dataset,
    fetch_request_source,
    keys_for,
    put_json,
    put_report,
    report_failure,
)
from modelfleet.workers.paddle2onnx_child import PaddleChild
from modelfleet.workers.paddle_reference import isolated_reference
from modelfleet.workers.references import ReferencePlan, load_reference, plan_reference
from modelfleet.workers.remedies import RemedyResult
from modelfleet.workers.remedying import Checks, Remedied, diagnose, remedied_manifest, republish
from modelfleet.workers.runtimes import Runner
from modelfleet.workers.sources import SourceModel, file_sha256
from modelfleet.workers.steps import (
    Converter,
    calibration_for,
    convert_target,
    needs_calibration,
    tolerance_message,
    validate_target,
    validation_dataset,
    validation_report,
    write_probe_file,
)
from modelfleet.workers.tf_runtimes import candidate_runner
from modelfleet.workers.validate import validation_samples

log = structlog.get_logger("modelfleet.workers")
CONVERTED = "out"  # under the work directory: the convert step's files, the validate step's too

ReferenceCache = dict[str, ReferencePlan]
"""Paddle references the conversion's child recorded, by source digest (convert-validate)."""


@dataclass(frozen=True)
class ConvertOutcome:
    keys: ArtifactKeys
    bucket: str
    cached: bool
    manifest: Manifest

    def summary(self) -> dict[str, Any]:
        return {
            "ok": True,
            "stage": "convert",
            "format": self.keys.format,
            "digest": self.keys.digest,
            "cached": self.cached,
            "artifactUri": f"s3://{self.bucket}/{self.keys.model}",
            "manifestUri": f"s3://{self.bucket}/{self.keys.manifest}",
            "sha256": self.manifest.sha256,
            "sizeBytes": self.manifest.size_bytes,
            "opset": self.manifest.opset,
        }


@dataclass(frozen=True)
class ValidateOutcome:
    keys: ArtifactKeys
    bucket: str
    report: Report

    def summary(self) -> dict[str, Any]:
        section = self.report.validation
        assert section is not None
        bench = section.benchmark
        return {
            "ok": section.passed,
            "stage": "validate",
            "format": self.keys.format,
            "digest": self.keys.digest,
            "passed": section.passed,
            "maxAbs": section.max_abs,
            "maxRel": section.max_rel,
            "cosine": section.cosine,
            "speedup": bench.speedup if bench else None,
            "reportUri": f"s3://{self.bucket}/{self.keys.report}",
            "probeUri": f"s3://{self.bucket}/{self.keys.probe}",
        }


def run_convert(
    request: ConvertRequest,
    *,
    storage: Storage,
    work_dir: Path,
    now: datetime,
    versions: Mapping[str, str] | None = None,
    converter: Converter = convert_model,
    sources: SourceCache | None = None,
    references: ReferenceCache | None = None,
    child: PaddleChild | None = None,
) -> ConvertOutcome:
    """The convert-validate Job passes the paddle2onnx `child` it started before anything else
    and `references`: the child then also records the Paddle reference the validate step will
    need, left there under the source digest."""
    bucket = request.bucket or storage.bucket
    versions = dict(versions or converter_versions())
    keys = early_keys(request, versions)
    if keys is not None and is_artifact_complete(storage, keys, bucket=bucket):
        return _cached(storage, keys, bucket)
    source, src_digest = fetch_request_source(request, storage, work_dir, sources)
    keys = keys or keys_for(request, artifact_digest(src_digest, request.target, versions))
    try:
        if is_artifact_complete(storage, keys, bucket=bucket):
            return _cached(storage, keys, bucket)
        calibration = _calibration(request, storage, work_dir)
        plan = None
        if references is not None and source.format == "paddle":
            plan = _plan_reference(request, storage, work_dir)
        log.info("converting", format=request.target.format, digest=keys.digest, source=source.kind)
        converted = convert_target(
            source,
            request.target,
            work_dir / CONVERTED,
            specs=request.inputs,
            calibration=calibration,
            digest=keys.digest,
            source_uri=request.source.uri,
            source_digest=src_digest,
            versions=versions,
            now=now,
            converter=converter,
            reference=plan,
            child=child,
        )
        if references is not None and plan is not None:
            references[src_digest] = plan  # recorded by now, or the child's failure noted
        manifest = converted.manifest
        storage.put_file(keys.model, converted.result.model_path, bucket=bucket)
        report = Report(
            format=request.target.format,
            digest=keys.digest,
            source=SourceInfo(uri=request.source.uri, digest=src_digest, format=source.kind),
            conversion=ConversionSection(
                ok=True,
                source_kind=source.kind,
                artifact_uri=f"s3://{bucket}/{keys.model}",
                manifest_uri=f"s3://{bucket}/{keys.manifest}",
                sha256=manifest.sha256,
                size_bytes=manifest.size_bytes,
                opset=manifest.opset,
                inputs=manifest.inputs,
                outputs=manifest.outputs,
                quantization=manifest.quantization,
                warnings=converted.result.warnings,
            ),
            updated_at=now.isoformat(),
        )
        put_report(storage, keys, report, request, bucket)
        put_json(storage, keys.manifest, manifest.to_json(), bucket)  # LAST
        log.info("converted", digest=keys.digest, sha256=manifest.sha256, size=manifest.size_bytes)
        return ConvertOutcome(keys, bucket, False, manifest)
    except Exception as err:
        report_failure(storage, bucket, keys, request, src_digest, err, now, stage="conversion")
        raise


def run_validate(
    request: ValidateRequest,
    *,
    storage: Storage,
    work_dir: Path,
    now: datetime,
    versions: Mapping[str, str] | None = None,
    run_benchmark: bool = True,
    sources: SourceCache | None = None,
    references: ReferenceCache | None = None,
) -> ValidateOutcome:
    """With `references` holding what the conversion's child recorded for this source and these
    validation settings, the reference is replayed from it instead of run here."""
    bucket = request.bucket or storage.bucket
    versions = dict(versions or converter_versions())
    keys = early_keys(request, versions)
    source, src_digest = fetch_request_source(request, storage, work_dir, sources)
    keys = keys or keys_for(request, artifact_digest(src_digest, request.target, versions))
    try:
        if not is_artifact_complete(storage, keys, bucket=bucket):
            raise SourceNotFound(
                f"artifact s3://{bucket}/{keys.artifact_prefix} is not complete "
                f"(no {keys.manifest}): convert it first",
                key=keys.manifest,
            )
        manifest = Manifest.model_validate_json(storage.get_bytes(keys.manifest, bucket=bucket))
        candidate_path = storage.get_file(
            keys.model, work_dir / "candidate" / model_file(keys.format), bucket=bucket
        )
        actual = file_sha256(candidate_path)
        if actual != manifest.sha256:
            raise InvalidModel(
                f"s3://{bucket}/{keys.model} has sha256 {actual}, manifest says {manifest.sha256}",
                key=keys.model,
            )
        plan = (references or {}).get(src_digest)
        if plan is not None and not plan.fits(request.inputs, request.validation):
            plan = None
        dataset = plan.dataset if plan is not None else _dataset(request, storage, work_dir)
        reference = _reference(request, source, plan, dataset, work_dir, run_benchmark)
        remedies: RemedyResult[Remedied] | None = None
        with candidate_runner(
            candidate_path,
            manifest,
            work_dir=work_dir / "candidate",
            what=f"{request.target.format} artifact",
        ) as candidate:
            outcome = validate_target(
                request.target.format,
                request.target.tolerance,
                reference=reference,
                candidate=candidate,
                specs=request.inputs,
                validation=request.validation,
                dataset=dataset,
                dataset_uri=request.validation.dataset_uri,
                run_benchmark=run_benchmark,
            )
        if not outcome.passed and request.target.format not in TF_FORMATS:
            outcome, remedies = diagnose(
                outcome,
                source=source,
                target=request.target,
                candidate=candidate_path,
                checks=Checks(
                    reference,
                    request.inputs,
                    request.validation,
                    dataset,
                    request.validation.dataset_uri,
                    run_benchmark,
                ),
                calibration=_calibration(request, storage, work_dir),
                work_dir=work_dir,
                kept_fp32=work_dir / CONVERTED / KEPT_FP32,  # a convert-validate Job's
            )
            divergence = outcome.section.divergence
            log.info(
                "remedies",
                divergence=divergence.describe() if divergence else None,
                tried=remedies.status_lines(),
            )
            won = remedies.outcome.result if remedies.outcome is not None else None
            if won is not None and remedies.applied is not None:
                manifest = remedied_manifest(manifest, won, remedies.applied)
                republish(storage, keys, bucket, manifest, won)
                outcome = won.outcome
        probe_path = work_dir / "probe.npz"
        write_probe_file(
            probe_path, outcome, fmt=request.target.format, digest=keys.digest, manifest=manifest
        )
        previous = existing_report(storage, keys, bucket)
        conversion = previous.conversion if previous else None
        if conversion is not None and remedies is not None:
            conversion = conversion.model_copy(
                update={k: getattr(manifest, k) for k in ("sha256", "size_bytes", "opset")}
            )
        report = validation_report(
            outcome,
            fmt=request.target.format,
            digest=keys.digest,
            source=SourceInfo(uri=request.source.uri, digest=src_digest, format=source.kind),
            now=now,
            conversion=conversion,
            remedies=remedies.section() if remedies is not None and remedies.tried else None,
        )
        storage.put_file(keys.probe, probe_path, bucket=bucket)
        put_report(storage, keys, report, request, bucket)
        log.info(
            "validated", digest=keys.digest, passed=outcome.passed, max_abs=outcome.section.max_abs
        )
        if not outcome.passed:
            raise ToleranceExceeded(
                tolerance_message(request.target.format, outcome.section),
                report=f"s3://{bucket}/{keys.report}",
            )
        return ValidateOutcome(keys, bucket, report)
    except ToleranceExceeded:
        raise
    except Exception as err:
        report_failure(storage, bucket, keys, request, src_digest, err, now, stage="validation")
        raise


def _reference(
    request: WorkerRequest,
    source: SourceModel,
    plan: ReferencePlan | None,
    dataset: list[Feeds] | None,
    work_dir: Path,
    benchmark: bool,
) -> Runner:
    """What the conversion's child recorded, else Paddle Inference run in a stage child."""
    if plan is not None:
        return load_reference(plan)
    return isolated_reference(
        source,
        work_dir / "validate-reference",
        specs=request.inputs,
        validation=request.validation,
        dataset=dataset,
        benchmark=benchmark,
    )


def _cached(storage: Storage, keys: ArtifactKeys, bucket: str) -> ConvertOutcome:
    manifest = Manifest.model_validate_json(storage.get_bytes(keys.manifest, bucket=bucket))
    log.info("cache hit", digest=keys.digest, format=keys.format)
    return ConvertOutcome(keys, bucket, True, manifest)


def _calibration(request: WorkerRequest, storage: Storage, work_dir: Path) -> Calibration | None:
    """The target's calibration dataset is downloaded only when the target calibrates."""
    spec = request.target.calibration if needs_calibration(request.target) else None
    return calibration_for(
        request.target,
        request.inputs,
        seed=request.validation.seed,
        batch_size=request.validation.batch_size,
        data=fetch_calibration(storage, spec, work_dir) if spec is not None else None,
        limit=spec.samples if spec is not None else None,
    )


def _dataset(request: WorkerRequest, storage: Storage, work_dir: Path) -> list[Feeds] | None:
    """The validation dataset's samples, or None when the validation runs seeded samples."""
    data = fetch_dataset(request, storage, work_dir)
    return validation_dataset(request.inputs, request.validation, data)


def _plan_reference(
    request: WorkerRequest, storage: Storage, work_dir: Path
) -> ReferencePlan | None:
    """The samples the validate step will run, handed to the paddle2onnx child. None when the
    dataset cannot be had: the conversion goes on, and the validate step, finding no plan,
    fetches the dataset itself and fails (or not) exactly as a validate Job would."""
    try:
        dataset = _dataset(request, storage, work_dir)
    except Exception as err:  # the validate step's to report, under its own stage
        log.warning("reference not planned", error=str(err))
        return None
    return plan_reference(
        work_dir / "reference",
        specs=request.inputs,
        validation=request.validation,
        samples=validation_samples(request.inputs, request.validation, dataset),
        data="dataset" if dataset is not None else "seeded",
    )
