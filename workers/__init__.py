"""ModelFleet data-plane workers: conversion and validation Jobs (`modelfleet-worker`).

Light names the operator uses (no Paddle/ONNX import): the request models, the exit-code
mapping and the failure classifier. Digest, layout and manifest live in `modelfleet.artifacts`.

They are imported on first use (PEP 562), so importing a worker module costs nothing here:
`modelfleet-worker convert-validate` starts its paddle2onnx child before importing anything
heavy (see `modelfleet.workers.cli`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelfleet.workers.errors import (
        EXIT_CODES,
        EXIT_USAGE,
        Failure,
        classify,
        reason_for_exit_code,
    )
    from modelfleet.workers.requests import (
        ConvertRequest,
        ConvertValidateRequest,
        ValidateRequest,
    )

__all__ = [
    "EXIT_CODES",
    "EXIT_USAGE",
    "ConvertRequest",
    "ConvertValidateRequest",
    "Failure",
    "ValidateRequest",
    "classify",
    "reason_for_exit_code",
]

_HOMES = {
    "EXIT_CODES": "errors",
    "EXIT_USAGE": "errors",
    "Failure": "errors",
    "classify": "errors",
    "reason_for_exit_code": "errors",
    "ConvertRequest": "requests",
    "ConvertValidateRequest": "requests",
    "ValidateRequest": "requests",
}

if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{__name__}.{home}"), name)
