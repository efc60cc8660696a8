"""Annotations users (through the CLI) set on ModelFleet objects; part of the API contract."""

from typing import Final

APPROVED_GENERATION_ANNOTATION: Final = "modelfleet.io/approved-generation"
"""On a ModelConversion: the generation `modelfleet approve` approved (manual approval)."""

PROMOTE_ANNOTATION: Final = "modelfleet.io/promote"
"""On an EdgeDeployment: `<revision>/<wave>` that `modelfleet promote` released."""


def promotion_value(revision: int, wave: int) -> str:
    return f"{revision}/{wave}"
