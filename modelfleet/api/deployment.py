"""EdgeDeployment: roll one approved artifact out to a labelled fleet in waves."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from modelfleet.api.base import (
    DNS_SUBDOMAIN,
    S3_URI,
    SHA256_HEX,
    ApiModel,
    Condition,
    IntOrPercent,
    LabelSelector,
    ResourceModel,
    cel,
    validations,
)
from modelfleet.api.conversion import TargetFormat

DeploymentPhase = Literal[
    "Progressing", "Paused", "Succeeded", "Degraded", "RollingBack", "RolledBack"
]

_DEFAULT_WAVES: list[int | str] = ["10%", "50%", "100%"]
_PERCENT_VALUE = "int(string(w).replace('%', ''))"
_PREVIOUS = "self[self.indexOf(w) - 1]"


class ModelRef(ApiModel):
    """Either an approved ModelConversion's artifact, or a pinned artifact URI and digest."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.conversion) != has(self.uri)",
                "set exactly one of conversion or uri",
            ),
            cel("!has(self.uri) || has(self.sha256)", "a pinned uri needs its sha256", ".sha256"),
        )
    }

    conversion: str | None = Field(default=None, pattern=DNS_SUBDOMAIN, max_length=253)
    format: TargetFormat = "onnx"
    uri: str | None = Field(default=None, pattern=S3_URI, max_length=1024)
    sha256: str | None = Field(default=None, pattern=SHA256_HEX)


class Strategy(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.progressDeadlineSeconds > self.deviceTimeoutSeconds",
                "progressDeadlineSeconds must exceed deviceTimeoutSeconds, or a silent device "
                "trips the deadline before it counts as offline",
                ".progressDeadlineSeconds",
            ),
            cel(
                "type(self.maxInFlight) == int ? self.maxInFlight > 0 : self.maxInFlight != '0%'",
                "maxInFlight must be at least 1 or 1%: with 0 no device is ever updated",
                ".maxInFlight",
            ),
        )
    }

    waves: list[IntOrPercent] = Field(
        default_factory=_DEFAULT_WAVES.copy,
        min_length=1,
        max_length=16,
        description="Cumulative wave sizes, counts before percentages, increasing, ending at 100%.",
        json_schema_extra=validations(
            cel("self[size(self) - 1] == '100%'", "the last wave must be '100%'"),
            cel(
                "self.all(w, self.indexOf(w) == self.lastIndexOf(w))",
                "waves must not repeat",
            ),
            cel(
                f"self.all(w, self.indexOf(w) == 0 || type(w) == string "
                f"|| (type({_PREVIOUS}) == int && {_PREVIOUS} < w))",
                "waves must be strictly increasing, with counts before percentages",
            ),
            cel(
                f"self.all(w, self.indexOf(w) == 0 || type(w) == int || type({_PREVIOUS}) == int "
                f"|| int(string({_PREVIOUS}).replace('%', '')) < {_PERCENT_VALUE})",
                "waves must be strictly increasing, with counts before percentages",
            ),
            cel(
                "self.all(w, type(w) == string || w > 0) "
                "&& self.all(w, type(w) == int || w != '0%')",
                "a wave must hold at least one device",
            ),
        ),
    )
    max_in_flight: IntOrPercent = Field(default="25%")
    bake_seconds: int = Field(default=30, ge=0, le=86400)
    pause: Literal["none", "betweenWaves"] = "none"
    failure_threshold: int = Field(
        default=10, ge=0, le=100, description="Percent of attempted devices in a wave."
    )
    device_timeout_seconds: int = Field(default=600, ge=1)
    progress_deadline_seconds: int = Field(default=3600, ge=1)


class RollbackPolicy(ApiModel):
    automatic: bool = True


class EdgeDeploymentSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.slot) == has(oldSelf.slot) && (!has(self.slot) || "
                "self.slot == oldSelf.slot)",
                "slot is immutable: create another EdgeDeployment for another slot",
                ".slot",
            )
        )
    }

    model: ModelRef
    slot: str | None = Field(
        default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63
    )
    selector: LabelSelector = Field(
        json_schema_extra=validations(
            cel(
                "size(self.matchLabels) > 0 || size(self.matchExpressions) > 0",
                "selector must not be empty: select devices by label",
            )
        )
    )
    strategy: Strategy = Field(default_factory=Strategy)
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy)
    revision_history_limit: int = Field(default=10, ge=1, le=100)
    paused: bool = False


class DeviceCounts(ApiModel):
    targeted: int = 0
    updated: int = 0
    healthy: int = 0
    failed: int = 0
    in_flight: int = 0
    offline: int = 0


class RevisionRecord(ApiModel):
    revision: int = Field(ge=1)
    sha256: str
    format: str
    uri: str
    size_bytes: int | None = None
    probe_uri: str | None = None
    conversion: str | None = None
    conversion_generation: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    outcome: Literal["Progressing", "Succeeded", "RolledBack", "Superseded"] = "Progressing"


class EdgeDeploymentStatus(ApiModel):
    phase: DeploymentPhase | None = None
    observed_generation: int | None = None
    slot: str | None = None
    current_revision: int | None = None
    stable_revision: int | None = None
    wave: int | None = None
    wave_progress: str | None = Field(
        default=None,
        max_length=16,
        description="The current wave counted from 1, of all waves (`2/3`): the WAVE column of "
        "`kubectl get`, as `modelfleet status` shows it (`wave` counts from 0).",
    )
    wave_started_at: str | None = None
    wave_completed_at: str | None = None
    promoted_wave: int | None = None
    counts: DeviceCounts = Field(default_factory=DeviceCounts)
    conditions: list[Condition] = Field(default_factory=list)
    history: list[RevisionRecord] = Field(default_factory=list)


class EdgeDeployment(ResourceModel):
    KIND: ClassVar[str] = "EdgeDeployment"
    PLURAL: ClassVar[str] = "edgedeployments"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("edep",)

    kind: str = "EdgeDeployment"

    spec: EdgeDeploymentSpec
    status: EdgeDeploymentStatus | None = None
