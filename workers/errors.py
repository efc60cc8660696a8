"""Classified worker failures: one exception class per reason of `modelfleet.reasons`.

Third-party exceptions are translated into these at the boundary (`raise ... from err`).
"""

from __future__ import annotations

from typing import ClassVar

from modelfleet.reasons import EXIT_CODES, Failure, Reason
from modelfleet.storage import StorageError as _StorageFailure


class WorkerError(Exception):
    """Base of classified failures; `context` names the file, field or key at fault."""

    reason: ClassVar[Reason] = "InternalError"

    def __init__(self, message: str, **context: str | int | float | list[str]):
        super().__init__(message)
        self.message = message
        self.context = context

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.reason]


class SourceNotFound(WorkerError):  # noqa: N818 (named for its reason)
    reason: ClassVar[Reason] = "SourceNotFound"


class InvalidModel(WorkerError):  # noqa: N818 (named for its reason)
    reason: ClassVar[Reason] = "InvalidModel"


class UnsupportedOperator(WorkerError):  # noqa: N818 (named for its reason)
    reason: ClassVar[Reason] = "UnsupportedOperator"

    def __init__(self, operators: list[str], message: str | None = None):
        names = ", ".join(operators) if operators else "(not named by paddle2onnx)"
        super().__init__(
            message or f"paddle2onnx cannot convert operator(s): {names}", operators=operators
        )
        self.operators = operators


class ToleranceExceeded(WorkerError):  # noqa: N818 (named for its reason)
    reason: ClassVar[Reason] = "ToleranceExceeded"


class StorageFailure(WorkerError):  # noqa: N818 (named for its reason)
    """Object storage failed; `modelfleet.storage.StorageError` is classified the same way."""

    reason: ClassVar[Reason] = "StorageError"


class ConverterCrashed(WorkerError):  # noqa: N818 (named for its reason)
    """A stage run in a child process (`modelfleet.workers.isolation`) died by a signal, ended
    without a result, or hung past its timeout: `stage` names it, `how` says what happened,
    `output` holds the last lines it wrote."""

    reason: ClassVar[Reason] = "ConverterCrashed"

    def __init__(self, stage: str, how: str, output: str = "", message: str | None = None):
        said = f"; last output: {output}" if output else "; it wrote nothing"
        super().__init__(message or f"{stage} {how}{said}", stage=stage)
        self.stage = stage


class ReferenceFailed(WorkerError):  # noqa: N818 (named for its reason)
    """Paddle Inference, the reference runtime, raised while running the source model."""

    reason: ClassVar[Reason] = "ReferenceFailed"


def error_of(reason: str, message: str) -> WorkerError:
    """The exception `classify` reads back as (reason, message): a failure crosses a process
    boundary with its classification intact."""
    if reason == UnsupportedOperator.reason:
        return UnsupportedOperator([], message=message)
    if reason == ConverterCrashed.reason:
        return ConverterCrashed("", "", message=message)
    kinds = (SourceNotFound, InvalidModel, ToleranceExceeded, StorageFailure, ReferenceFailed)
    return next((kind for kind in kinds if kind.reason == reason), WorkerError)(message)


def classify(err: BaseException) -> Failure:
    """The reason, message and exit code for any exception a worker may meet."""
    if isinstance(err, WorkerError):
        return Failure(err.reason, err.message, err.exit_code)
    if isinstance(err, _StorageFailure):
        return Failure("StorageError", str(err), EXIT_CODES["StorageError"])
    message = f"{type(err).__name__}: {err}"
    return Failure("InternalError", message, EXIT_CODES["InternalError"])
