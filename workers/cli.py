"""`modelfleet-worker convert|validate --request JSON`: the conversion and validation Jobs.

The operator runs these as the container command of a batch/v1 Job. Object storage comes from
the MODELFLEET_S3_* environment variables only. On exit the worker has written the full result
to object storage, one JSON line to the termination log, and exits 0 on success or with the
reason's code from `modelfleet.workers.errors.EXIT_CODES`.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pydantic
import structlog

from modelfleet.storage import Storage
from modelfleet.workers.errors import EXIT_USAGE, classify
from modelfleet.workers.reports import write_termination_log
from modelfleet.workers.requests import ConvertRequest, ValidateRequest

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")


def configure_logging() -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


def _parse_request(raw: str, model: type[pydantic.BaseModel], termination_log: Path) -> Any:
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


def _run(
    stage: str,
    termination_log: Path,
    work_dir: Path | None,
    action: Callable[[Storage, Path, datetime], dict[str, Any]],
) -> None:
    configure_logging()
    log = structlog.get_logger("modelfleet.workers")
    try:
        storage = Storage.from_env()
        with tempfile.TemporaryDirectory(prefix=f"modelfleet-{stage}-", dir=work_dir) as tmp:
            summary = action(storage, Path(tmp), datetime.now(UTC))
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
    write_termination_log(termination_log, summary)
    click.echo(_one_line(summary))


def _one_line(summary: dict[str, Any]) -> str:
    from modelfleet.workers.reports import termination_line

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
    from modelfleet.workers.jobs import run_convert

    parsed: ConvertRequest = _parse_request(request, ConvertRequest, termination_log)

    def action(storage: Storage, tmp: Path, now: datetime) -> dict[str, Any]:
        return run_convert(parsed, storage=storage, work_dir=tmp, now=now).summary()

    _run("convert", termination_log, work_dir, action)


@cli.command("validate")
@_request_option
@_termination_option
@_work_dir_option
def validate_job(request: str, termination_log: Path, work_dir: Path | None) -> None:
    """Validate a published artifact against its source; write report.json and probe.npz."""
    from modelfleet.workers.jobs import run_validate

    parsed: ValidateRequest = _parse_request(request, ValidateRequest, termination_log)

    def action(storage: Storage, tmp: Path, now: datetime) -> dict[str, Any]:
        return run_validate(parsed, storage=storage, work_dir=tmp, now=now).summary()

    _run("validate", termination_log, work_dir, action)


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
