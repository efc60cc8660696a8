"""EdgeDeployment: roll one approved artifact out to a labelled fleet in waves."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from modelfleet.api.base import (
    DNS_LABEL,
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
from modelfleet.api.conversion import TargetFormat, Tolerance
from modelfleet.api.device import RuntimeRequest

DeploymentPhase = Literal[
    "Progressing", "Paused", "Succeeded", "Degraded", "RollingBack", "RolledBack"
]

DEFAULT_VARIANT = "default"
"""The name status gives the devices no variant matches (they run `spec.model.format` with
ONNX Runtime on the CPU); reserved, so no variant may take it."""

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


class Variant(ApiModel):
    """What one kind of device runs: the conversion's artifact in `format`, on `runtime`.

    A device takes the first variant whose selector matches its labels, else the default
    (`spec.model.format` with ONNX Runtime on the CPU). The agent probes the artifact on the
    session `runtime` builds and judges it under `tolerance` (absent: the tolerance the
    artifact was validated with).
    """

    name: str = Field(
        pattern=DNS_LABEL,
        max_length=63,
        description="Names the variant in status counts and assignments; `default` is reserved "
        "for the devices no variant matches.",
    )
    selector: LabelSelector = Field(
        description="Devices whose labels match take this variant (the first match wins); "
        "empty: every device not taken by an earlier variant."
    )
    format: TargetFormat = Field(
        default="onnx", description="The artifact of spec.model's ModelConversion to run."
    )
    runtime: RuntimeRequest | None = Field(
        default=None, description="Engine and backends; absent: ONNX Runtime on the CPU."
    )
    tolerance: Tolerance | None = Field(
        default=None,
        description="How close the device's probe outputs must be; absent: the validated "
        "tolerance of the format.",
    )


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
            ),
            cel(
                "!has(self.variants) || size(self.variants) == 0 || has(self.model.conversion)",
                "variants come from one ModelConversion: set model.conversion, not a pinned uri",
                ".variants",
            ),
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
    variants: list[Variant] = Field(
        default_factory=list,
        max_length=16,
        description="Per-hardware artifacts and backends, in order: a device takes the first "
        "whose selector matches its labels, else spec.model.format on ONNX Runtime's CPU. All "
        "of them are one revision: waves, bake, abort and rollback span the whole fleet.",
        json_schema_extra=validations(
            cel(
                "self.all(v, self.exists_one(w, w.name == v.name))",
                "variant names must be unique",
            ),
            cel(
                f"self.all(v, v.name != '{DEFAULT_VARIANT}')",
                f"the variant name {DEFAULT_VARIANT} is reserved for devices no variant matches",
            ),
        ),
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


class RecordedSelector(LabelSelector):
    """A label selector as status records it: checked when the spec was applied, so it carries
    no CEL rule (in an unbounded history its cost would exceed the API server's budget)."""

    model_config = ApiModel.model_config | {"json_schema_extra": None}


class VariantArtifact(ApiModel):
    """A variant as one revision rolled it out: its definition and the artifact it resolved
    to, so returning to the revision restores each variant's own artifact and backend."""

    name: str = Field(max_length=63)
    selector: RecordedSelector = Field(default_factory=RecordedSelector)
    format: str = Field(max_length=32)
    sha256: str = Field(pattern=SHA256_HEX)
    uri: str = Field(max_length=1024)
    size_bytes: int | None = None
    probe_uri: str | None = None
    runtime: RuntimeRequest | None = None
    tolerance: Tolerance | None = None


class VariantStatus(ApiModel):
    """One variant's share of the fleet (`default`: devices no variant matches)."""

    name: str = Field(max_length=63)
    format: str = Field(max_length=32)
    sha256: str | None = Field(default=None, description="Its artifact in the current revision.")
    counts: DeviceCounts = Field(default_factory=DeviceCounts)


class RevisionRecord(ApiModel):
    revision: int = Field(ge=1)
    sha256: str
    format: str
    uri: str
    size_bytes: int | None = None
    probe_uri: str | None = None
    conversion: str | None = None
    conversion_generation: int | None = None
    variants: list[VariantArtifact] = Field(
        default_factory=list,
        max_length=16,
        description="Each variant's artifact in this revision; sha256, format and uri above "
        "are the default's.",
    )
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
    variants: list[VariantStatus] = Field(
        default_factory=list,
        max_length=17,
        description="Counts per variant, `default` last; empty without spec.variants.",
    )
    conditions: list[Condition] = Field(default_factory=list)
    history: list[RevisionRecord] = Field(default_factory=list)


class EdgeDeployment(ResourceModel):
    KIND: ClassVar[str] = "EdgeDeployment"
    PLURAL: ClassVar[str] = "edgedeployments"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("edep",)

    kind: str = "EdgeDeployment"

    spec: EdgeDeploymentSpec
    status: EdgeDeploymentStatus | None = None
