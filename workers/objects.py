"""The Jobs' side of object storage: what they fetch for a request and what they leave there.

Called by the Job pipelines (`modelfleet.workers.jobs`) only; the local CLI reads and writes
local files instead. Here: the keys of a request's artifact and report, the source (fetched
once per process, `SourceCache`), the datasets a request names (downloaded, then turned into
samples by `modelfleet.workers.steps`), and report.json reads and writes, including the
best-effort failure report.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import structlog

from modelfleet.api.conversion import Calibration as CalibrationSpec
from modelfleet.artifacts import ArtifactKeys, artifact_digest
from modelfleet.jobrequests import WorkerRequest, validation_settings_digest
from modelfleet.reports import ConversionSection, FailureInfo, Report, SourceInfo
from modelfleet.storage import ObjectNotFound, Storage, parse_s3_uri
from modelfleet.workers.errors import InvalidModel, SourceNotFound, classify
from modelfleet.workers.sources import SourceModel, digest_of, fetch_source, locate_source
from modelfleet.workers.steps import LocalDataset

log = structlog.get_logger("modelfleet.workers")

SourceCache = dict[tuple[str, str], tuple[SourceModel, str]]
"""Sources one process already fetched and located, by (uri, format), with their digests."""


def keys_for(request: WorkerRequest, digest: str) -> ArtifactKeys:
    return ArtifactKeys.for_target(
        digest,
        request.target.format,
        artifact_prefix=request.artifact_prefix,
        report_prefix=request.report_prefix,
    )


def early_keys(request: WorkerRequest, versions: Mapping[str, str]) -> ArtifactKeys | None:
    """Keys before any download, when the request says enough to know the digest."""
    if request.digest:
        return keys_for(request, request.digest)
    if request.source_digest:
        return keys_for(request, artifact_digest(request.source_digest, request.target, versions))
    return None


def fetch_request_source(
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


def fetch_calibration(storage: Storage, spec: CalibrationSpec, work_dir: Path) -> LocalDataset:
    path = download(storage, spec.uri, work_dir / "calibration")
    return LocalDataset(path, spec.uri, f"calibration {spec.uri}")


def fetch_dataset(request: WorkerRequest, storage: Storage, work_dir: Path) -> LocalDataset | None:
    """The validation dataset the request names, downloaded; None when it names none."""
    uri = request.validation.dataset_uri
    if not uri:
        return None
    return LocalDataset(download(storage, uri, work_dir / "data"), uri, f"dataset {uri}")


def download(storage: Storage, uri: str, dest_dir: Path) -> Path:
    bucket, key = parse_s3_uri(uri)
    try:
        return storage.get_file(key, dest_dir / (Path(key).name or "data.npz"), bucket=bucket)
    except ObjectNotFound as err:
        raise SourceNotFound(f"{uri} does not exist", uri=uri) from err


def put_json(storage: Storage, key: str, text: str, bucket: str) -> None:
    storage.put_bytes(key, text.encode(), bucket=bucket, content_type="application/json")


def put_report(
    storage: Storage, keys: ArtifactKeys, report: Report, request: WorkerRequest, bucket: str
) -> None:
    """report.json, plus its copy under the request's validation settings, which is what the
    operator reads as evidence for a spec with those settings."""
    text = report.to_json()
    settings = validation_settings_digest(
        request.inputs, request.validation, request.target.format, request.target.tolerance
    )
    put_json(storage, keys.settings_report(settings), text, bucket)
    put_json(storage, keys.report, text, bucket)


def existing_report(storage: Storage, keys: ArtifactKeys, bucket: str) -> Report | None:
    try:
        return Report.model_validate_json(storage.get_bytes(keys.report, bucket=bucket))
    except ObjectNotFound:
        return None
    except ValueError:
        return None


def report_failure(
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
        previous = existing_report(storage, keys, bucket)
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
        put_report(storage, keys, report, request, bucket)
    except Exception as report_err:
        log.warning("failure report not written", error=str(report_err))
