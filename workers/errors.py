"""Classified worker failures and the one mapping from reason to process exit code.

The operator reads the exit code of a conversion/validation Job (podFailurePolicy
`onExitCodes`) and the reason from the termination log; both come from `EXIT_CODES` below:

    reason               exit code   retry helps?
    SourceNotFound       10          no  (the source URI names nothing)
    InvalidModel         11          no  (corrupt/empty files, input spec does not fit the model)
    UnsupportedOperator  12          no  (paddle2onnx cannot convert some operators)
    ToleranceExceeded    13          no  (the converted model is not numerically faithful)
    StorageError         14          yes (object storage unreachable or refusing)
    InternalError        1           maybe (a bug: anything not classified above)
    (usage error)        2           no  (click: malformed command line or request)

Third-party exceptions are translated into these at the boundary (`raise ... from err`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Literal

from modelfleet.storage import StorageError as _StorageFailure

Reason = Literal[
    "SourceNotFound",
    "InvalidModel",
    "UnsupportedOperator",
    "ToleranceExceeded",
    "StorageError",
    "InternalError",
]

EXIT_CODES: Mapping[Reason, int] = MappingProxyType(
    {
        "SourceNotFound": 10,
        "InvalidModel": 11,
        "UnsupportedOperator": 12,
        "ToleranceExceeded": 13,
        "StorageError": 14,
        "InternalError": 1,
    }
)
EXIT_USAGE = 2
RETRYABLE_REASONS: frozenset[Reason] = frozenset({"StorageError", "InternalError"})


def reason_for_exit_code(code: int) -> Reason | None:
    for reason, value in EXIT_CODES.items():
        if value == code:
            return reason
    return None


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


def error_of(reason: str, message: str) -> WorkerError:
    """The exception `classify` reads back as (reason, message): a failure crosses a process
    boundary with its classification intact."""
    if reason == UnsupportedOperator.reason:
        return UnsupportedOperator([], message=message)
    kinds = (SourceNotFound, InvalidModel, ToleranceExceeded, StorageFailure)
    return next((kind for kind in kinds if kind.reason == reason), WorkerError)(message)


@dataclass(frozen=True)
class Failure:
    reason: Reason
    message: str
    exit_code: int


def classify(err: BaseException) -> Failure:
    """The reason, message and exit code for any exception a worker may meet."""
    if isinstance(err, WorkerError):
        return Failure(err.reason, err.message, err.exit_code)
    if isinstance(err, _StorageFailure):
        return Failure("StorageError", str(err), EXIT_CODES["StorageError"])
    message = f"{type(err).__name__}: {err}"
    return Failure("InternalError", message, EXIT_CODES["InternalError"])
