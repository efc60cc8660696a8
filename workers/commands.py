"""`modelfleet convert` and `modelfleet validate`: the workers' power at a terminal.

Registered under the `modelfleet` CLI (`convert_command`, `validate_command`). Same code paths
as the Jobs, on local files (or an s3:// source, with MODELFLEET_S3_* set):

    modelfleet convert SOURCE_DIR --to onnx|onnx-fp16|onnx-int8|tf-savedmodel|tflite|tflite-fp16|
                       tflite-dynamic-range --out DIR [--opset N]
                       [--calibration FILE.npz] [--inputs SPEC]
    modelfleet validate --reference SOURCE_DIR --candidate MODEL.onnx [--inputs SPEC]
                        [--atol A --rtol R --min-cosine C --seed S --samples N] [--report FILE]

SPEC: `name:shape:dtype[:lo,hi]` entries separated by `;` (shape like `-1x3x224x224`), or
`@FILE` with a JSON list of input specs. Without it the specs are read off the model.
Exit codes: 0 pass, else `modelfleet.reasons.EXIT_CODES` (13 = ToleranceExceeded); a failure
is one line `Reason: message` on stderr.

The steps (calibration choice, conversion + manifest, validation + report and probe) are
`modelfleet.workers.steps`, the ones the Jobs run; these commands only read local files (or an
s3:// source), write local files and print.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast, get_args

import click
from rich.console import Console
from rich.markup import escape

from modelfleet.api.conversion import (
    TF_FORMATS,
    DType,
    InputSpec,
    Target,
    TargetFormat,
    Tolerance,
    Validation,
)
from modelfleet.artifacts import Manifest, artifact_digest, converter_versions
from modelfleet.reports import SourceInfo
from modelfleet.workers.errors import InvalidModel, classify
from modelfleet.workers.printing import print_artifact, print_outcome, print_remedies

if TYPE_CHECKING:  # the heavy parts are imported where used: `modelfleet --help` stays fast
    from modelfleet.workers.runtimes import Runner
    from modelfleet.workers.sources import SourceModel
    from modelfleet.workers.steps import Converted, LocalDataset

FORMATS: tuple[str, ...] = get_args(TargetFormat)


def parse_input_specs(text: str) -> list[InputSpec]:
    """`image:-1x3x32x32:float32:0,1;mask:-1x32:bool` or `@specs.json` → input specs."""
    if text.startswith("@"):
        raw = json.loads(Path(text[1:]).read_text())
        return [InputSpec.model_validate(item) for item in raw]
    specs = []
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        parts = entry.split(":")
        if len(parts) < 2 or len(parts) > 4:
            raise click.BadParameter(f"{entry!r}: expected name:shape[:dtype[:lo,hi]]")
        name, shape = parts[0], [int(d) for d in parts[1].replace(",", "x").split("x")]
        dtype = parts[2] if len(parts) > 2 and parts[2] else "float32"
        if dtype not in get_args(DType):
            raise click.BadParameter(f"{entry!r}: dtype must be one of {get_args(DType)}")
        value_range = [float(v) for v in parts[3].split(",")] if len(parts) > 3 else None
        specs.append(InputSpec(name=name, shape=shape, dtype=dtype, range=value_range))
    if not specs:
        raise click.BadParameter("no input specs given")
    return specs


def _local_source(source: str, scratch: Path) -> Path:
    if source.startswith("s3://"):
        from modelfleet.storage import Storage
        from modelfleet.workers.sources import fetch_source

        return fetch_source(Storage.from_env(), source, scratch / "source")
    return Path(source)


def _fail(err: Exception) -> None:
    failure = classify(err)
    message = escape(" ".join(failure.message.split()))  # one line, printed as written
    Console(stderr=True, soft_wrap=True).print(f"[red]{failure.reason}[/red]: {message}")
    sys.exit(failure.exit_code)


@click.command("convert")
@click.argument("source")
@click.option("--to", "fmt", type=click.Choice(FORMATS), required=True, help="Target format.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--opset", type=int, default=17, show_default=True)
@click.option(
    "--calibration",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="An .npz of calibration inputs (onnx-int8 static); default: seeded synthetic samples.",
)
@click.option("--quantization", type=click.Choice(["static", "dynamic"]), default=None)
@click.option(
    "--inputs", "inputs_spec", help="Input specs (see module help); default: read off the model."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option(
    "--remedies",
    type=click.Choice(["auto", "none"]),
    default="auto",
    show_default=True,
    help="auto: validate a Paddle conversion and, when it fails, try the alternatives of "
    "docs/remedies.md; none: convert only.",
)
@click.option("--atol", type=float, help="The target's tolerance (with --rtol) for that check.")
@click.option("--rtol", type=float)
def convert_command(
    source: str,
    fmt: str,
    out_dir: Path,
    opset: int,
    calibration: Path | None,
    quantization: str | None,
    inputs_spec: str | None,
    seed: int,
    batch_size: int,
    remedies: str,
    atol: float | None,
    rtol: float | None,
) -> None:
    """Convert the Paddle model (or ONNX file) at SOURCE into OUT/model.onnx (model.tflite,
    model.savedmodel.tar) + manifest.json."""
    from modelfleet.workers.remedying import checked_conversion
    from modelfleet.workers.sources import digest_of, locate_source
    from modelfleet.workers.steps import calibration_for, convert_target

    try:
        tolerance = None
        if atol is not None or rtol is not None:
            tolerance = {
                "atol": 1e-5 if atol is None else atol,
                "rtol": 1e-5 if rtol is None else rtol,
            }
        target = Target.model_validate(
            {"format": fmt, "opset": opset, "remedies": remedies}
            | ({"quantization": quantization} if quantization else {})
            | ({"tolerance": tolerance} if tolerance else {})
        )
        with tempfile.TemporaryDirectory(prefix="modelfleet-convert-") as tmp:
            scratch = Path(tmp)
            model = locate_source(_local_source(source, scratch))
            specs = parse_input_specs(inputs_spec) if inputs_spec else _specs_of(model, scratch)
            data = _local_dataset(calibration)
            cal = calibration_for(target, specs, seed=seed, batch_size=batch_size, data=data)
            src_digest = digest_of(model)
            versions = converter_versions()
            converted = convert_target(
                model,
                target,
                scratch / "out",
                specs=specs,
                calibration=cal,
                digest=artifact_digest(src_digest, target, versions),
                source_uri=source,
                source_digest=src_digest,
                versions=versions,
                now=datetime.now(UTC),
            )
            converted, remedied = checked_conversion(
                converted,
                source=model,
                target=target,
                specs=specs,
                validation=Validation.model_validate({"seed": seed, "batchSize": batch_size}),
                calibration=cal,
                work_dir=scratch / "check",
            )
            _publish(converted, out_dir)
    except click.ClickException:
        raise
    except Exception as err:  # classified, else InternalError: never a traceback
        _fail(err)
        return
    console = Console()
    if remedied is not None:
        print_remedies(console, remedied.section())
    print_artifact(console, converted, out_dir)


def _local_dataset(path: Path | None) -> LocalDataset | None:
    from modelfleet.workers.steps import LocalDataset

    return LocalDataset(path, str(path), str(path)) if path is not None else None


def _publish(converted: Converted, out_dir: Path) -> None:
    """OUT/<model file>, then OUT/manifest.json LAST (as in object storage: a directory holds a
    complete artifact iff it has a manifest)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.json").unlink(missing_ok=True)
    name = converted.manifest.file
    staged = out_dir / f".{name}.partial"
    shutil.copyfile(converted.result.model_path, staged)
    os.replace(staged, out_dir / name)
    (out_dir / "manifest.json").write_text(converted.manifest.to_json())


def _specs_of(model: SourceModel, scratch: Path) -> list[InputSpec]:
    from modelfleet.workers.datasets import specs_from_model
    from modelfleet.workers.paddle_reference import source_inputs

    return specs_from_model(source_inputs(model, scratch / "inputs"))


@click.command("validate")
@click.option("--reference", "reference_src", required=True, help="Source model dir (or s3://).")
@click.option(
    "--candidate",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The model to check (.onnx; .tflite or .savedmodel.tar with its manifest.json).",
)
@click.option("--inputs", "inputs_spec", help="Input specs; default: read off the candidate.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Candidate format (default: from manifest.json beside it, else onnx).",
)
@click.option("--atol", type=float, default=None)
@click.option("--rtol", type=float, default=None)
@click.option("--min-cosine", type=float, default=None)
@click.option("--top-k-agreement", type=float, default=None)
@click.option("--top-k", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--samples", type=int, default=16, show_default=True)
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option("--dataset", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--warmup", type=int, default=5, show_default=True)
@click.option("--iterations", type=int, default=50, show_default=True)
@click.option("--no-benchmark", is_flag=True, help="Skip the latency benchmark.")
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--probe", "probe_path", type=click.Path(path_type=Path, dir_okay=False))
def validate_command(
    reference_src: str,
    candidate: Path,
    inputs_spec: str | None,
    fmt: str | None,
    atol: float | None,
    rtol: float | None,
    min_cosine: float | None,
    top_k_agreement: float | None,
    top_k: int,
    seed: int,
    samples: int,
    batch_size: int,
    dataset: Path | None,
    warmup: int,
    iterations: int,
    no_benchmark: bool,
    report_path: Path | None,
    probe_path: Path | None,
) -> None:
    """Compare CANDIDATE (ONNX Runtime) with the reference model (Paddle Inference)."""
    from modelfleet.workers.datasets import specs_from_model
    from modelfleet.workers.diagnosis import locate, with_divergence
    from modelfleet.workers.errors import ToleranceExceeded
    from modelfleet.workers.paddle_reference import isolated_reference
    from modelfleet.workers.sources import digest_of, locate_source
    from modelfleet.workers.steps import (
        tolerance_message,
        validate_target,
        validation_dataset,
        validation_report,
        write_probe_file,
    )

    try:
        target_format = cast(TargetFormat, fmt) if fmt else _format_beside(candidate)
        tolerance = None
        if any(v is not None for v in (atol, rtol, min_cosine, top_k_agreement)):
            tolerance = Tolerance(
                atol=1e-5 if atol is None else atol,
                rtol=1e-5 if rtol is None else rtol,
                min_cosine=min_cosine,
                top_k_agreement=top_k_agreement,
                top_k=top_k,
            )
        validation = Validation.model_validate(
            {
                "seed": seed,
                "samples": samples,
                "batchSize": batch_size,
                "benchmark": {"warmup": warmup, "iterations": iterations},
            }
        )
        with (
            tempfile.TemporaryDirectory(prefix="modelfleet-validate-") as tmp,
            ExitStack() as stack,
        ):
            source = locate_source(_local_source(reference_src, Path(tmp)))
            cand = _open_candidate(candidate, target_format, Path(tmp), stack)
            specs = parse_input_specs(inputs_spec) if inputs_spec else specs_from_model(cand.inputs)
            data = validation_dataset(specs, validation, _local_dataset(dataset))
            outcome = validate_target(
                target_format,
                tolerance,
                reference=isolated_reference(
                    source,
                    Path(tmp) / "reference",
                    specs=specs,
                    validation=validation,
                    dataset=data,
                    benchmark=not no_benchmark,
                ),
                candidate=cand,
                specs=specs,
                validation=validation,
                dataset=data,
                dataset_uri=str(dataset) if dataset else None,
                run_benchmark=not no_benchmark,
            )
            found = None
            if not outcome.passed and target_format not in TF_FORMATS:
                found = locate(
                    outcome,
                    fmt=target_format,
                    tolerance=tolerance,
                    candidate=candidate,
                    source=source,
                    specs=specs,
                    work_dir=Path(tmp),
                )
                outcome = with_divergence(outcome, found)
            src_digest = digest_of(source)
    except click.ClickException:
        raise
    except Exception as err:  # classified, else InternalError: never a traceback
        _fail(err)
        return
    console = Console()
    print_outcome(console, outcome.section)
    if found is not None and found.divergence is None:
        console.print(f"[yellow]{escape(found.describe())}[/yellow]")
    try:
        if report_path is not None:
            report = validation_report(
                outcome,
                fmt=target_format,
                digest=None,
                source=SourceInfo(uri=reference_src, digest=src_digest, format=source.kind),
                now=datetime.now(UTC),
            )
            report_path.write_text(report.to_json())
        if probe_path is not None:
            manifest = (
                _manifest_beside(candidate, target_format) if target_format in TF_FORMATS else None
            )
            write_probe_file(probe_path, outcome, fmt=target_format, digest=None, manifest=manifest)
    except (OSError, InvalidModel) as err:
        _fail(err)
    if not outcome.passed:
        _fail(ToleranceExceeded(tolerance_message(target_format, outcome.section)))


def _open_candidate(candidate: Path, fmt: TargetFormat, scratch: Path, stack: ExitStack) -> Runner:
    """ONNX Runtime after the isolated ONNX checks; a TensorFlow candidate in its runtime's
    child, in the source's names and layouts of the manifest beside it."""
    from modelfleet.workers.convert import check_isolated
    from modelfleet.workers.runtimes import OrtRunner
    from modelfleet.workers.tf_runtimes import candidate_runner

    if fmt in TF_FORMATS:
        manifest = _manifest_beside(candidate, fmt)
        what = "candidate"
        return stack.enter_context(
            candidate_runner(candidate, manifest, work_dir=scratch / "candidate", what=what)
        )
    check_isolated(candidate, what="candidate", directory=scratch / "check")
    return OrtRunner(candidate, what="candidate")


def _manifest_beside(candidate: Path, fmt: str) -> Manifest:
    """A TensorFlow candidate's manifest (its tensors' names and layouts), which must be there."""
    path = candidate.with_name("manifest.json")
    try:
        manifest = Manifest.model_validate_json(path.read_text())
    except (OSError, ValueError) as err:
        raise InvalidModel(
            f"a {fmt} candidate needs the manifest.json written beside it by `modelfleet "
            f"convert` (its tensors' names and layouts): {err}"
        ) from err
    return manifest


def _format_beside(candidate: Path) -> TargetFormat:
    manifest = candidate.with_name("manifest.json")
    if manifest.is_file():
        try:
            return Manifest.model_validate_json(manifest.read_text()).format
        except ValueError:
            pass
    return "onnx"


__all__ = ["convert_command", "parse_input_specs", "validate_command"]
