"""`modelfleet-worker convert|validate|convert-validate --request JSON`: the conversion Jobs.

The operator runs these as the container command of a batch/v1 Job. Object storage comes from
the MODELFLEET_S3_* environment variables only. On exit the worker has written the full result
to object storage, one JSON line to the termination log, and exits 0 on success or with the
reason's code from `modelfleet.workers.errors.EXIT_CODES`.

`convert-validate` is the two steps in one process (one interpreter, one source download, one
Storage), because their fixed start-up cost exceeds the work for small models. Paddle is
imported once, by the paddle2onnx child, which starts first (it imports Paddle while this
process imports, downloads and checks: so this module imports the heavy parts where they are
used) and also records the Paddle Inference reference the validation compares against
(`modelfleet.workers.references`). A failure in
either step ends the process exactly as that step's own command would (same report, same
termination line naming the stage, same exit code), so the operator reads both the same way.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from modelfleet.reasons import EXIT_USAGE
from modelfleet.workers.paddle2onnx_child import PaddleChild, early_child

if TYPE_CHECKING:  # the rest is imported where it is used: this module loads fast (see above)
    import pydantic

    from modelfleet.jobrequests import ConvertRequest, ConvertValidateRequest, ValidateRequest
    from modelfleet.storage import Storage

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")


def configure_logging() -> None:
    import structlog

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


def _parse_request(raw: str, model: type[pydantic.BaseModel], termination_log: Path) -> Any:
    import pydantic

    from modelfleet.reports import write_termination_log

    try:
        text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
        return model.model_validate_json(text)
    except (OSError, pydantic.ValidationError) as err:
        message = f"invalid --request: {err}"
        write_termination_log(
            termination_log,
            {"ok": False, "reason": "InvalidRequest", "exitCode": EXIT_USAGE, "message": message},
        )
        raise click.UsageError(message) from err


Step = tuple[str, Callable[["Storage", Path, datetime], dict[str, Any]]]
"""(stage, action): the stage names a failure of the action in the termination log."""


def _run(termination_log: Path, work_dir: Path | None, steps: Sequence[Step]) -> None:
    """Run the steps in order on one Storage and one scratch directory; stop at the first
    failure, which is reported under that step's stage exactly as its own command would."""
    import structlog

    from modelfleet.reports import write_termination_log
    from modelfleet.storage import Storage
    from modelfleet.workers.errors import classify

    configure_logging()
    log = structlog.get_logger("modelfleet.workers")
    stage = steps[0][0]
    summaries: list[dict[str, Any]] = []
    try:
        storage = Storage.from_env()
        prefix = f"modelfleet-{'-'.join(name for name, _ in steps)}-"
        with tempfile.TemporaryDirectory(prefix=prefix, dir=work_dir) as tmp:
            now = datetime.now(UTC)
            for name, action in steps:
                stage = name  # what a failure from here on is reported as
                summaries.append(action(storage, Path(tmp), now))
    except Exception as err:
        failure = classify(err)
        log.error(
            "failed", stage=stage, reason=failure.reason, message=failure.message, exc_info=True
        )
        write_termination_log(
            termination_log,
            {
                "ok": False,
                "stage": stage,
                "reason": failure.reason,
                "exitCode": failure.exit_code,
                "message": failure.message,
            },
        )
        click.echo(f"{stage} failed: {failure.reason}: {failure.message}", err=True)
        sys.exit(failure.exit_code)
    summary = _combined(summaries)
    write_termination_log(termination_log, summary)
    click.echo(_one_line(summary))


def _combined(summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One summary: a single step's as is; several merged (later steps win on shared keys such
    as `ok`) under the stage `convert-validate`."""
    if len(summaries) == 1:
        return summaries[0]
    merged: dict[str, Any] = {}
    for summary in summaries:
        merged.update(summary)
    merged["stage"] = "-".join(str(s["stage"]) for s in summaries)
    return merged


def _one_line(summary: dict[str, Any]) -> str:
    from modelfleet.reports import termination_line

    return termination_line(summary)


_request_option = click.option(
    "--request", "request", required=True, help="Request JSON, or @FILE holding it."
)
_termination_option = click.option(
    "--termination-log",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_TERMINATION_LOG,
    show_default=True,
    help="Where the one-line JSON summary goes (unwritable is tolerated).",
)
_work_dir_option = click.option(
    "--work-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Parent of the scratch directory (default: the system temp dir).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """ModelFleet data-plane worker (conversion and validation Jobs)."""


@cli.command("convert")
@_request_option
@_termination_option
@_work_dir_option
def convert_job(request: str, termination_log: Path, work_dir: Path | None) -> None:
    """Convert a source model to one target and publish the artifact."""
    from modelfleet.jobrequests import ConvertRequest
    from modelfleet.workers.jobs import run_convert

    parsed: ConvertRequest = _parse_request(request, ConvertRequest, termination_log)

    def action(storage: Storage, tmp: Path, now: datetime) -> dict[str, Any]:
        return run_convert(parsed, storage=storage, work_dir=tmp, now=now).summary()

    _run(termination_log, work_dir, [("convert", action)])


@cli.command("validate")
@_request_option
@_termination_option
@_work_dir_option
def validate_job(request: str, termination_log: Path, work_dir: Path | None) -> None:
    """Validate a published artifact against its source; write report.json and probe.npz."""
    from modelfleet.jobrequests import ValidateRequest
    from modelfleet.workers.jobs import run_validate

    parsed: ValidateRequest = _parse_request(request, ValidateRequest, termination_log)

    def action(storage: Storage, tmp: Path, now: datetime) -> dict[str, Any]:
        return run_validate(parsed, storage=storage, work_dir=tmp, now=now).summary()

    _run(termination_log, work_dir, [("validate", action)])


@cli.command("convert-validate")
@_request_option
@_termination_option
@_work_dir_option
def convert_validate_job(request: str, termination_log: Path, work_dir: Path | None) -> None:
    """Convert, then validate the same target in this process (one download of the source)."""
    with early_child(work_dir) as started:  # first of all: it imports Paddle while we work
        from modelfleet.jobrequests import ConvertValidateRequest

        parsed: ConvertValidateRequest = _parse_request(
            request, ConvertValidateRequest, termination_log
        )
        child = started if parsed.source.format == "paddle" else None
        if started is not None and child is None:
            started.close()  # an ONNX source is not converted by paddle2onnx
        _convert_validate(parsed, termination_log, work_dir, child)


def _convert_validate(
    parsed: ConvertValidateRequest,
    termination_log: Path,
    work_dir: Path | None,
    child: PaddleChild | None,
) -> None:
    from modelfleet.workers.jobs import ReferenceCache, run_convert, run_validate
    from modelfleet.workers.objects import SourceCache

    sources: SourceCache = {}
    references: ReferenceCache = {}

    def convert(storage: Storage, tmp: Path, now: datetime) -> dict[str, Any]:
        outcome = run_convert(
            parsed.as_convert(),
            storage=storage,
            work_dir=tmp,
            now=now,
            sources=sources,
            references=references,
            child=child,
        )
        return outcome.summary()

    def validate(storage: Storage, tmp: Path, now: datetime) -> dict[str, Any]:
        outcome = run_validate(
            parsed.as_validate(),
            storage=storage,
            work_dir=tmp,
            now=now,
            sources=sources,
            references=references,
        )
        return outcome.summary()

    _run(termination_log, work_dir, [("convert", convert), ("validate", validate)])


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.UsageError as err:
        err.show()
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        sys.exit(1)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
