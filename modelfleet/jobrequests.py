"""The JSON requests a conversion/validation Job receives (`modelfleet-worker ... --request`).

The operator builds them from a ModelConversion spec (it embeds the api models unchanged) and
passes them as one JSON argument. Endpoint and credentials are NOT part of a request: they
come from the MODELFLEET_S3_* environment variables (see `modelfleet.storage`).

Addressing: `digest` is the artifact digest (`modelfleet.artifacts.artifact_digest`); when
absent the worker computes it from the source digest, the target and its converter versions.
`sourceDigest`, when given, is checked against the downloaded source. Prefixes default to the
content-addressed layout (`artifacts/<digest>/<format>/`, `reports/<digest>/<format>/`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence

from pydantic import Field

from modelfleet.api.base import SHA256_HEX, ApiModel
from modelfleet.api.conversion import (
    InputSpec,
    Source,
    Target,
    TargetFormat,
    Tolerance,
    Validation,
)
from modelfleet.comparison import effective_rule


class WorkerRequest(ApiModel):
    source: Source
    source_digest: str | None = Field(default=None, pattern=SHA256_HEX)
    inputs: list[InputSpec] = Field(min_length=1, max_length=32)
    target: Target
    validation: Validation = Field(default_factory=Validation)
    bucket: str | None = Field(
        default=None, description="Bucket for artifacts and reports; default MODELFLEET_S3_BUCKET."
    )
    digest: str | None = Field(default=None, pattern=SHA256_HEX)
    artifact_prefix: str | None = None
    report_prefix: str | None = None


def validation_settings_digest(
    inputs: Sequence[InputSpec],
    validation: Validation,
    fmt: TargetFormat,
    tolerance: Tolerance | None,
) -> str:
    """sha256 over everything that decides a validation verdict: the input specs (names,
    shapes, dtypes, ranges), the validation settings (seed, samples, batch size, dataset) and
    the target's format and effective rule (so a change of the per-format defaults counts as a
    change of settings). Pure.

    The validate Job writes it into report.json; the operator accepts a stored report as
    evidence for a conversion only when the digest of that conversion's spec is the same, so a
    second ModelConversion of one source whose input is named or ranged differently runs its
    own validation instead of inheriting another's verdict.
    """
    payload = {
        "inputs": [spec.model_dump(mode="json", by_alias=True) for spec in inputs],
        "validation": validation.model_dump(mode="json", by_alias=True),
        "format": fmt,
        "rule": dataclasses.asdict(effective_rule(fmt, tolerance)),
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class ConvertRequest(WorkerRequest):
    """Convert `source` to `target` and publish model.onnx + manifest.json (manifest last)."""


class ValidateRequest(WorkerRequest):
    """Validate the published artifact of `target` against the source; write report + probe."""


class ConvertValidateRequest(WorkerRequest):
    """Both steps for one target in one process (the Job the operator creates when nothing is
    stored yet): the fields are those of the two requests above, which are derived from it."""

    def as_convert(self) -> ConvertRequest:
        return ConvertRequest.model_validate(self.model_dump())

    def as_validate(self) -> ValidateRequest:
        return ValidateRequest.model_validate(self.model_dump())
