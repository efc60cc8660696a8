"""Job failure reasons and the one mapping from reason to process exit code: the contract
between the workers (who exit with them) and the operator (who reads them back).

The operator reads the exit code of a conversion/validation Job (podFailurePolicy
`onExitCodes`) and the reason from the termination log; both come from `EXIT_CODES` below:

    reason               exit code   retry helps?
    SourceNotFound       10          no  (the source URI names nothing)
    InvalidModel         11          no  (corrupt/empty files, input spec does not fit the model)
    UnsupportedOperator  12          no  (paddle2onnx cannot convert some operators)
    ToleranceExceeded    13          no  (the converted model is not numerically faithful)
    StorageError         14          yes (object storage unreachable or refusing)
    ConverterCrashed     15          no  (a conversion stage died by a signal or hung: the same
                                          model and converter versions crash the same way)
    ReferenceFailed      16          no  (Paddle Inference cannot run the source model, with or
                                          without oneDNN and IR optimisation)
    InternalError        1           maybe (a bug: anything not classified above)
    (usage error)        2           no  (click: malformed command line or request)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Reason = Literal[
    "SourceNotFound",
    "InvalidModel",
    "UnsupportedOperator",
    "ToleranceExceeded",
    "StorageError",
    "ConverterCrashed",
    "ReferenceFailed",
    "InternalError",
]

EXIT_CODES: Mapping[Reason, int] = MappingProxyType(
    {
        "SourceNotFound": 10,
        "InvalidModel": 11,
        "UnsupportedOperator": 12,
        "ToleranceExceeded": 13,
        "StorageError": 14,
        "ConverterCrashed": 15,
        "ReferenceFailed": 16,
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


@dataclass(frozen=True)
class Failure:
    """A classified failure as it crosses a process boundary: termination log, report, status."""

    reason: Reason
    message: str
    exit_code: int
