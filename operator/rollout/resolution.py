"""Which approved artifact a ModelConversion offers in one format: pure, from its raw object.

The EdgeDeployment controller (controller.py `resolve_artifact`) and `modelfleet plan`
(preview_commands.py) both read the conversion's status this way, so a preview names exactly
the artifact the operator would assign.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelfleet.operator.conversion.conditions import APPROVED as CONVERSION_APPROVED
from modelfleet.operator.conversion.conditions import READY as CONVERSION_READY
from modelfleet.operator.integrity import ARTIFACT_CORRUPTED
from modelfleet.operator.rollout.revisions import ResolvedArtifact


def conversion_artifact(raw: Mapping[str, Any], fmt: str) -> tuple[ResolvedArtifact | None, str]:
    """The `fmt` artifact of a Ready (or approved but ArtifactCorrupted) conversion whose status
    observed its current generation, or None and why not (the message the deployment's
    condition shows)."""
    name = raw["metadata"]["name"]
    status = raw.get("status") or {}
    ready = next((c for c in status.get("conditions", []) if c["type"] == CONVERSION_READY), None)
    current = status.get("observedGeneration") == raw["metadata"]["generation"]
    # an approved conversion with a corrupted artifact still resolves: the integrity check of
    # the artifact itself (DeploymentController._verified) decides whether it is this format's
    approved = any(
        c["type"] == CONVERSION_APPROVED and c["status"] == "True"
        for c in status.get("conditions", [])
    )
    corrupted = status.get("phase") == ARTIFACT_CORRUPTED and approved
    if not ready or (ready["status"] != "True" and not corrupted) or not current:
        phase = status.get("phase", "Pending")
        reason = f": {ready['reason']}" if ready else ""
        return None, f"ModelConversion {name} is {phase}{reason}, not approved"
    artifact = next((a for a in status.get("artifacts", []) if a["format"] == fmt), None)
    if artifact is None:
        return None, f"ModelConversion {name} has no {fmt} artifact"
    resolved = ResolvedArtifact(
        sha256=artifact["sha256"],
        format=fmt,
        uri=artifact["uri"],
        size_bytes=artifact["sizeBytes"],
        conversion=name,
        conversion_generation=raw["metadata"]["generation"],
        probe_uri=artifact.get("probeUri"),
    )
    return resolved, ""
