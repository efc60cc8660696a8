"""ModelFleet data-plane workers: conversion and validation Jobs (`modelfleet-worker`).

Light names the operator uses (no Paddle/ONNX import): the request models, the exit-code
mapping and the failure classifier. Digest, layout and manifest live in `modelfleet.artifacts`.
"""

from modelfleet.workers.errors import (
    EXIT_CODES,
    EXIT_USAGE,
    Failure,
    classify,
    reason_for_exit_code,
)
from modelfleet.workers.requests import ConvertRequest, ConvertValidateRequest, ValidateRequest

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
