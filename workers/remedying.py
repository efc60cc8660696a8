"""The remedy step of a target that failed validation with its requested settings: the loop of
`modelfleet.workers.remedies.run_remedies` with a real `attempt` (docs/remedies.md).

An attempt exports the source at the settings' opset (`convert.convert_model`), applies the
settings to the fp32 file (`repairs.produce`: repairs, fp16 or int8 with the float sets kept),
checks the result loads (in a stage child, as every produced model), and validates it exactly
as the failed file was (`steps.validate_target`: same reference, samples and rule). For int8
the nodes to keep in float come from the divergence ranking, most damaging first.

Called by the validate Job and `modelfleet convert` / `modelfleet validate`, which publish the
passing file in place of the failed one (same key: the digest of the request, which the
operator computes; the settings used are in the manifest and the report's `remedies`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelfleet.api.conversion import TF_FORMATS, InputSpec, Target, Validation
from modelfleet.artifacts import ArtifactKeys, Manifest
from modelfleet.remedies import Budget, Settings
from modelfleet.storage import Storage
from modelfleet.workers.convert import Calibration, check_isolated, convert_model
from modelfleet.workers.datasets import Feeds
from modelfleet.workers.diagnosis import locate, with_divergence
from modelfleet.workers.errors import ConverterCrashed, ReferenceFailed, ToleranceExceeded
from modelfleet.workers.paddle_reference import isolated_reference
from modelfleet.workers.remedies import Outcome, RemedyResult, outcome_of_validation, run_remedies
from modelfleet.workers.repairs import graph_facts, produce
from modelfleet.workers.runtimes import OnnxInfo, OrtRunner, Runner
from modelfleet.workers.sources import SourceModel, file_sha256
from modelfleet.workers.steps import Converted, tolerance_message, validate_target
from modelfleet.workers.tf_runtimes import candidate_runner
from modelfleet.workers.validate import ValidationOutcome


@dataclass(frozen=True)
class Remedied:
    """A file that passed with other settings than requested: what replaces the failed one."""

    model_path: Path
    info: OnnxInfo
    outcome: ValidationOutcome


@dataclass(frozen=True)
class Checks:
    """What every attempt is validated with: the failed validation's own inputs."""

    reference: Runner
    specs: Sequence[InputSpec]
    validation: Validation
    dataset: list[Feeds] | None
    dataset_uri: str | None
    run_benchmark: bool


def diagnose(
    failed: ValidationOutcome,
    *,
    source: SourceModel,
    target: Target,
    candidate: Path,
    checks: Checks,
    calibration: Calibration | None,
    work_dir: Path,
    kept_fp32: Path | None = None,
) -> tuple[ValidationOutcome, RemedyResult[Remedied]]:
    """After the requested settings failed validation: `failed` with the diverging node named
    (`diagnosis`), and what the remedies did (their `outcome.result`, when one passed, is the
    file to publish instead); `target.remedies == "none"` tries nothing."""
    found = locate(
        failed,
        fmt=target.format,
        tolerance=target.tolerance,
        candidate=candidate,
        source=source,
        specs=checks.specs,
        work_dir=work_dir,
        kept_fp32=kept_fp32,
    )
    failed = with_divergence(failed, found)
    divergence = found.divergence
    first: Outcome[Remedied] = outcome_of_validation(
        failed.section, diverging_node=divergence.node if divergence else None
    )
    ranking = [e.node for e in found.ranking]  # int8: kept in float, most damaging first
    counter = itertools.count()

    def attempt(settings: Settings) -> Outcome[Remedied]:
        return _attempt(
            settings, source, target, checks, calibration, work_dir / f"remedy-{next(counter)}"
        )

    remedies = run_remedies(
        first,
        attempt,
        lambda: ranking,
        Budget(),
        fmt=target.format,
        requested=Settings.requested(target),
        mode=target.remedies,
        source_format=source.format,
        graph=graph_facts(candidate),
    )
    return failed, remedies


def _attempt(
    settings: Settings,
    source: SourceModel,
    target: Target,
    checks: Checks,
    calibration: Calibration | None,
    out: Path,
) -> Outcome[Remedied]:
    if settings.reference != "default":
        # the flow's reference already runs without oneDNN when its defaults fail
        raise ReferenceFailed("no other Paddle reference configuration to try here")
    fp32 = convert_model(
        source, Target(format="onnx", opset=settings.opset), out / "fp32", specs=checks.specs
    ).model_path
    final = out / "model.onnx"
    kept = produce(
        fp32,
        target.format,
        settings,
        final,
        program=source.model_file if source.format == "paddle" else None,
        work_dir=out,
        quantization=target.quantization or "static",
        calibration=calibration.samples if calibration is not None else (),
    )
    info = check_isolated(final, what=f"{target.format} model", directory=out / "check")
    outcome = validate_target(
        target.format,
        target.tolerance,
        reference=checks.reference,
        candidate=OrtRunner(final, what=f"{target.format} model"),
        specs=checks.specs,
        validation=checks.validation,
        dataset=checks.dataset,
        dataset_uri=checks.dataset_uri,
        run_benchmark=checks.run_benchmark,
    )
    return outcome_of_validation(
        outcome.section,
        result=Remedied(final, info, outcome),
        size_bytes=final.stat().st_size,
        kept_float=tuple(kept) if kept else None,
    )


def remedied_manifest(manifest: Manifest, remedied: Remedied, applied: Settings) -> Manifest:
    """The failed file's manifest, describing the remedied file and the settings it used."""
    inputs, outputs = remedied.info.signature()
    return manifest.model_copy(
        update={
            "sha256": file_sha256(remedied.model_path),
            "size_bytes": remedied.model_path.stat().st_size,
            "opset": remedied.info.opset,
            "inputs": inputs,
            "outputs": outputs,
            "settings": applied.to_wire(),
        }
    )


def republish(
    storage: Storage, keys: ArtifactKeys, bucket: str, manifest: Manifest, remedied: Remedied
) -> None:
    """The remedied file in place of the failed one: manifest removed first and put LAST, so the
    keys never hold a manifest that does not describe the model beside it."""
    storage.remove(keys.manifest, bucket=bucket)
    storage.put_file(keys.model, remedied.model_path, bucket=bucket)
    storage.put_bytes(
        keys.manifest, manifest.to_json().encode(), bucket=bucket, content_type="application/json"
    )


def checked_conversion(
    converted: Converted,
    *,
    source: SourceModel,
    target: Target,
    specs: Sequence[InputSpec],
    validation: Validation,
    calibration: Calibration | None,
    work_dir: Path,
) -> tuple[Converted, RemedyResult[Remedied] | None]:
    """`modelfleet convert` with remedies on: validate the converted file against Paddle (no
    benchmark) and, when it fails, remedy it as the validate Job does. The file to publish
    (the remedied one with its manifest, else `converted`) and what the remedies did; a
    ToleranceExceeded naming the diverging layer when nothing passed."""
    if source.format != "paddle" or target.remedies == "none":
        return converted, None
    try:
        reference = isolated_reference(
            source,
            work_dir / "reference",
            specs=specs,
            validation=validation,
            dataset=None,
            benchmark=False,
        )
        with candidate_runner(
            converted.result.model_path,
            converted.manifest,
            work_dir=work_dir / "candidate",
            what=f"{target.format} model",
        ) as candidate:
            outcome = validate_target(
                target.format,
                target.tolerance,
                reference=reference,
                candidate=candidate,
                specs=specs,
                validation=validation,
                dataset=None,
                dataset_uri=None,
                run_benchmark=False,
            )
    except (ReferenceFailed, ConverterCrashed) as err:  # the check's, not the conversion's
        warning = f"not checked against Paddle Inference: {err.reason}: {err.message}"
        warnings = [*converted.result.warnings, warning[:600]]
        return dataclasses.replace(
            converted, result=dataclasses.replace(converted.result, warnings=warnings)
        ), None
    checks = Checks(reference, specs, validation, None, None, False)
    if outcome.passed:
        return converted, None
    if target.format in TF_FORMATS:  # the remedies change ONNX conversions, not onnx2tf's
        raise ToleranceExceeded(tolerance_message(target.format, outcome.section))
    failed, remedies = diagnose(
        outcome,
        source=source,
        target=target,
        candidate=converted.result.model_path,
        checks=checks,
        calibration=calibration,
        work_dir=work_dir,
        kept_fp32=converted.result.fp32_path,
    )
    won = remedies.outcome.result if remedies.outcome is not None else None
    if won is None or remedies.applied is None:
        raise ToleranceExceeded(tolerance_message(target.format, failed.section))
    manifest = remedied_manifest(converted.manifest, won, remedies.applied)
    result = dataclasses.replace(converted.result, model_path=won.model_path)
    return Converted(result, manifest), remedies
