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

Publishing order: model.onnx, then report.json, then manifest.json LAST — an artifact is
complete iff its manifest exists, so a crash at any point leaves nothing that looks complete.
Every check (conversion, onnx.checker, ONNX Runtime load, input spec) runs on local files
before the first upload. A complete artifact is a cache hit: no conversion runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from modelfleet.artifacts import (
    ArtifactKeys,
    Manifest,
    SourceRef,
    artifact_digest,
    conversion_config,
    converter_versions,
    is_artifact_complete,
)
from modelfleet.comparison import effective_rule
from modelfleet.jobrequests import ConvertRequest, ValidateRequest, WorkerRequest
from modelfleet.reports import (
    ConversionSection,
    FailureInfo,
    Report,
    SourceInfo,
    write_probe,
)
from modelfleet.storage import ObjectNotFound, Storage, parse_s3_uri
from modelfleet.workers.convert import Calibration, ConversionResult, convert_model
from modelfleet.workers.datasets import Feeds, dataset_samples, load_npz, seeded_samples
from modelfleet.workers.errors import InvalidModel, SourceNotFound, ToleranceExceeded, classify
from modelfleet.workers.paddle2onnx_child import PaddleChild
from modelfleet.workers.paddle_reference import isolated_reference
from modelfleet.workers.references import ReferencePlan, load_reference, plan_reference
from modelfleet.workers.runtimes import OrtRunner
from modelfleet.workers.sources import (
    SourceModel,
    digest_of,
    fetch_source,
    file_sha256,
    locate_source,
)
from modelfleet.workers.validate import validate_model, validation_samples

log = structlog.get_logger("modelfleet.workers")

CALIBRATION_SEED_OFFSET = 1_000_003  # synthetic calibration never reuses validation samples
SYNTHETIC_CALIBRATION_SAMPLES = 32

Converter = Callable[..., ConversionResult]
SourceCache = dict[tuple[str, str], tuple[SourceModel, str]]
"""Sources one process already fetched and located, by (uri, format), with their digests."""
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
    keys = _early_keys(request, versions)
    if keys is not None and is_artifact_complete(storage, keys, bucket=bucket):
        return _cached(storage, keys, bucket)
    source, src_digest = _fetch_source(request, storage, work_dir, sources)
    keys = keys or _keys(request, artifact_digest(src_digest, request.target, versions))
    try:
        if is_artifact_complete(storage, keys, bucket=bucket):
            return _cached(storage, keys, bucket)
        calibration = _calibration(request, storage, work_dir)
        plan = None
        if references is not None and source.format == "paddle":
            plan = _plan_reference(request, storage, work_dir)
        log.info("converting", format=request.target.format, digest=keys.digest, source=source.kind)
        result = converter(
            source,
            request.target,
            work_dir / "out",
            specs=request.inputs,
            calibration=calibration,
            reference=plan,
            child=child,
        )
        if references is not None and plan is not None:
            references[src_digest] = plan  # recorded by now, or the child's failure noted
        manifest = _manifest(request, keys, result, src_digest, versions, now)
        model_sha = manifest.sha256
        storage.put_file(keys.model, result.model_path, bucket=bucket)
        report = Report(
            format=request.target.format,
            digest=keys.digest,
            source=SourceInfo(uri=request.source.uri, digest=src_digest, format=source.kind),
            conversion=ConversionSection(
                ok=True,
                source_kind=source.kind,
                artifact_uri=f"s3://{bucket}/{keys.model}",
                manifest_uri=f"s3://{bucket}/{keys.manifest}",
                sha256=model_sha,
                size_bytes=manifest.size_bytes,
                opset=manifest.opset,
                inputs=manifest.inputs,
                outputs=manifest.outputs,
                quantization=manifest.quantization,
                warnings=result.warnings,
            ),
            updated_at=now.isoformat(),
        )
        _put_json(storage, keys.report, report.to_json(), bucket)
        _put_json(storage, keys.manifest, manifest.to_json(), bucket)  # LAST
        log.info("converted", digest=keys.digest, sha256=model_sha, size=manifest.size_bytes)
        return ConvertOutcome(keys, bucket, False, manifest)
    except Exception as err:
        _report_failure(storage, bucket, keys, request, src_digest, err, now, stage="conversion")
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
    keys = _early_keys(request, versions)
    source, src_digest = _fetch_source(request, storage, work_dir, sources)
    keys = keys or _keys(request, artifact_digest(src_digest, request.target, versions))
    try:
        if not is_artifact_complete(storage, keys, bucket=bucket):
            raise SourceNotFound(
                f"artifact s3://{bucket}/{keys.artifact_prefix} is not complete "
                f"(no {keys.manifest}): convert it first",
                key=keys.manifest,
            )
        manifest = Manifest.model_validate_json(storage.get_bytes(keys.manifest, bucket=bucket))
        candidate_path = storage.get_file(
            keys.model, work_dir / "candidate" / "model.onnx", bucket=bucket
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
        rule = effective_rule(request.target.format, request.target.tolerance)
        reference = (
            load_reference(plan)
            if plan is not None
            else isolated_reference(
                source,
                work_dir / "validate-reference",
                specs=request.inputs,
                validation=request.validation,
                dataset=dataset,
                benchmark=run_benchmark,
            )
        )
        outcome = validate_model(
            reference=reference,
            candidate=OrtRunner(candidate_path, what=f"{request.target.format} artifact"),
            specs=request.inputs,
            validation=request.validation,
            rule=rule,
            quantized=request.target.format == "onnx-int8",
            dataset=dataset,
            dataset_uri=request.validation.dataset_uri,
            run_benchmark=run_benchmark,
        )
        probe_path = work_dir / "probe.npz"
        write_probe(
            probe_path,
            inputs=outcome.probe_inputs,
            references=outcome.probe_references,
            candidates=outcome.probe_candidates,
            output_names=outcome.output_names,
            meta={
                "format": request.target.format,
                "digest": keys.digest,
                "samples": len(outcome.probe_inputs),
                "inputs": list(outcome.probe_inputs[0]),
                "outputs": outcome.output_names,
                "tolerance": outcome.section.tolerance.model_dump(by_alias=True),
                "semantics": outcome.section.semantics,
            },
        )
        previous = _existing_report(storage, keys, bucket)
        report = Report(
            format=request.target.format,
            digest=keys.digest,
            source=SourceInfo(uri=request.source.uri, digest=src_digest, format=source.kind),
            passed=outcome.passed,
            conversion=previous.conversion if previous else None,
            validation=outcome.section,
            failure=None
            if outcome.passed
            else FailureInfo(
                reason="ToleranceExceeded",
                message="; ".join(outcome.section.failures)[:2000],
                exit_code=ToleranceExceeded("").exit_code,
            ),
            updated_at=now.isoformat(),
        )
        storage.put_file(keys.probe, probe_path, bucket=bucket)
        _put_json(storage, keys.report, report.to_json(), bucket)
        log.info(
            "validated", digest=keys.digest, passed=outcome.passed, max_abs=outcome.section.max_abs
        )
        if not outcome.passed:
            raise ToleranceExceeded(
                f"{request.target.format} differs from the reference: "
                + "; ".join(outcome.section.failures)[:1500],
                report=f"s3://{bucket}/{keys.report}",
            )
        return ValidateOutcome(keys, bucket, report)
    except ToleranceExceeded:
        raise
    except Exception as err:
        _report_failure(storage, bucket, keys, request, src_digest, err, now, stage="validation")
        raise


def _keys(request: WorkerRequest, digest: str) -> ArtifactKeys:
    return ArtifactKeys.for_target(
        digest,
        request.target.format,
        artifact_prefix=request.artifact_prefix,
        report_prefix=request.report_prefix,
    )


def _early_keys(request: WorkerRequest, versions: Mapping[str, str]) -> ArtifactKeys | None:
    """Keys before any download, when the request says enough to know the digest."""
    if request.digest:
        return _keys(request, request.digest)
    if request.source_digest:
        return _keys(request, artifact_digest(request.source_digest, request.target, versions))
    return None


def _fetch_source(
    request: WorkerRequest, storage: Storage, work_dir: Path, sources: SourceCache | None
) -> tuple[SourceModel, str]:
    """Download and locate the source, or take it from `sources` when this process has it."""
    cache_key = (request.source.uri, request.source.format)
    fetched = sources.get(cache_key) if sources is not None else None
    if fetched is None:
        local = fetch_source(storage, request.source.uri, work_dir / "source")
        located = locate_source(local, request.source.format)
        fetched = (located, digest_of(located))
        if sources is not None:
            sources[cache_key] = fetched
    source, src_digest = fetched
    if request.source_digest and request.source_digest != src_digest:
        raise InvalidModel(
            f"source {request.source.uri} has digest {src_digest}, the request expected "
            f"{request.source_digest} (the source changed after the request was made)",
            field="sourceDigest",
        )
    return source, src_digest


def _cached(storage: Storage, keys: ArtifactKeys, bucket: str) -> ConvertOutcome:
    manifest = Manifest.model_validate_json(storage.get_bytes(keys.manifest, bucket=bucket))
    log.info("cache hit", digest=keys.digest, format=keys.format)
    return ConvertOutcome(keys, bucket, True, manifest)


def _calibration(request: ConvertRequest, storage: Storage, work_dir: Path) -> Calibration | None:
    target = request.target
    if target.format != "onnx-int8" or (target.quantization or "static") != "static":
        return None
    batch = request.validation.batch_size
    if target.calibration is not None:
        arrays = load_npz(_download(storage, target.calibration.uri, work_dir / "calibration"))
        samples = dataset_samples(
            arrays,
            request.inputs,
            batch_size=batch,
            limit=target.calibration.samples,
            origin=f"calibration {target.calibration.uri}",
        )
        return Calibration(samples, "dataset", target.calibration.uri)
    samples = seeded_samples(
        request.inputs,
        seed=request.validation.seed + CALIBRATION_SEED_OFFSET,
        count=SYNTHETIC_CALIBRATION_SAMPLES,
        batch_size=batch,
    )
    return Calibration(samples, "synthetic")


def _dataset(request: WorkerRequest, storage: Storage, work_dir: Path) -> list[Feeds] | None:
    """The validation dataset's samples, or None when the validation runs seeded samples."""
    uri = request.validation.dataset_uri
    if not uri:
        return None
    return dataset_samples(
        load_npz(_download(storage, uri, work_dir / "data")),
        request.inputs,
        batch_size=request.validation.batch_size,
        limit=request.validation.samples,
        origin=f"dataset {uri}",
    )


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


def _download(storage: Storage, uri: str, dest_dir: Path) -> Path:
    bucket, key = parse_s3_uri(uri)
    try:
        return storage.get_file(key, dest_dir / (Path(key).name or "data.npz"), bucket=bucket)
    except ObjectNotFound as err:
        raise SourceNotFound(f"{uri} does not exist", uri=uri) from err


def _manifest(
    request: ConvertRequest,
    keys: ArtifactKeys,
    result: ConversionResult,
    src_digest: str,
    versions: Mapping[str, str],
    now: datetime,
) -> Manifest:
    inputs, outputs = result.info.signature()
    return Manifest(
        digest=keys.digest,
        format=request.target.format,
        sha256=file_sha256(result.model_path),
        size_bytes=result.model_path.stat().st_size,
        opset=result.info.opset,
        inputs=inputs,
        outputs=outputs,
        versions=dict(versions),
        source=SourceRef(uri=request.source.uri, digest=src_digest, format=request.source.format),
        target=conversion_config(request.target),
        quantization=result.quantization,
        created_at=now.isoformat(),
    )


def _put_json(storage: Storage, key: str, text: str, bucket: str) -> None:
    storage.put_bytes(key, text.encode(), bucket=bucket, content_type="application/json")


def _existing_report(storage: Storage, keys: ArtifactKeys, bucket: str) -> Report | None:
    try:
        return Report.model_validate_json(storage.get_bytes(keys.report, bucket=bucket))
    except ObjectNotFound:
        return None
    except ValueError:
        return None


def _report_failure(
    storage: Storage,
    bucket: str,
    keys: ArtifactKeys,
    request: WorkerRequest,
    src_digest: str,
    err: BaseException,
    now: datetime,
    *,
    stage: str,
) -> None:
    """Best effort: a failure report under reports/ (never under artifacts/)."""
    failure = classify(err)
    previous = None
    try:
        previous = _existing_report(storage, keys, bucket)
    except Exception:
        previous = None
    report = Report(
        format=request.target.format,
        digest=keys.digest,
        source=SourceInfo(uri=request.source.uri, digest=src_digest, format=request.source.format),
        passed=False,
        conversion=(previous.conversion if previous else None)
        if stage == "validation"
        else ConversionSection(ok=False),
        validation=previous.validation if previous and stage == "conversion" else None,
        failure=FailureInfo.of(failure),
        updated_at=now.isoformat(),
    )
    try:
        _put_json(storage, keys.report, report.to_json(), bucket)
    except Exception as report_err:
        log.warning("failure report not written", error=str(report_err))
