"""Which approved artifacts a ModelConversion offers an EdgeDeployment: pure, from its raw object.

The EdgeDeployment controller (controller.py `resolve_artifact`) and `modelfleet plan`
(preview_commands.py) both read the conversion's status this way, so a preview names exactly
the artifacts the operator would assign.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelfleet.api.conversion import ArtifactStatus
from modelfleet.api.deployment import EdgeDeploymentSpec
from modelfleet.operator.conversion.conditions import APPROVED as CONVERSION_APPROVED
from modelfleet.operator.conversion.conditions import READY as CONVERSION_READY
from modelfleet.operator.integrity import ARTIFACT_CORRUPTED
from modelfleet.operator.rollout.conditions import VARIANT_FORMAT_MISSING, WAITING_FOR_ARTIFACT
from modelfleet.operator.rollout.revisions import ResolvedArtifact
from modelfleet.operator.rollout.variants import MissingFormats, variant_artifacts


@dataclass(frozen=True)
class Resolution:
    """What `spec.model` (and its variants) resolve to right now; without an artifact, the
    condition reason and message that say why."""

    artifact: ResolvedArtifact | None
    reason: str = ""
    message: str = ""


def waiting(message: str) -> Resolution:
    """No artifact yet, for a reason the conversion may still clear."""
    return Resolution(None, WAITING_FOR_ARTIFACT, message)


def conversion_artifact(raw: Mapping[str, Any], spec: EdgeDeploymentSpec) -> Resolution:
    """The `spec.model.format` artifact (with each variant's) of a Ready conversion whose
    status observed its current generation, or why not. An approved conversion whose artifact
    turned ArtifactCorrupted still resolves: the integrity check of the artifact itself
    (controller.py `_verified`) decides whether it is this deployment's format."""
    name = raw["metadata"]["name"]
    status = raw.get("status") or {}
    conditions = status.get("conditions", [])
    ready = next((c for c in conditions if c["type"] == CONVERSION_READY), None)
    current = status.get("observedGeneration") == raw["metadata"]["generation"]
    approved = any(c["type"] == CONVERSION_APPROVED and c["status"] == "True" for c in conditions)
    corrupted = status.get("phase") == ARTIFACT_CORRUPTED and approved
    if not ready or (ready["status"] != "True" and not corrupted) or not current:
        phase = status.get("phase", "Pending")
        reason = f": {ready['reason']}" if ready else ""
        return waiting(f"ModelConversion {name} is {phase}{reason}, not approved")
    artifacts = [ArtifactStatus.model_validate(a) for a in status.get("artifacts", [])]
    variants = variant_artifacts(spec, artifacts, conversion=name)
    if isinstance(variants, MissingFormats):
        return Resolution(None, VARIANT_FORMAT_MISSING, variants.message)
    fmt = spec.model.format
    artifact = next((a for a in artifacts if a.format == fmt), None)
    if artifact is None:
        return waiting(f"ModelConversion {name} has no {fmt} artifact")
    resolved = ResolvedArtifact(
        sha256=artifact.sha256,
        format=fmt,
        uri=artifact.uri,
        size_bytes=artifact.size_bytes,
        conversion=name,
        conversion_generation=raw["metadata"]["generation"],
        probe_uri=artifact.probe_uri,
        variants=variants,
    )
    return Resolution(resolved)
