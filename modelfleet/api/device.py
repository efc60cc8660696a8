"""EdgeDevice: one device. The rollout controller owns spec.models; the agent owns status."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from modelfleet.api.base import SHA256_HEX, ApiModel, Condition, ResourceModel, cel, validations

SlotPhase = Literal["Pending", "Downloading", "Verifying", "Activating", "Healthy", "Failed"]


class SlotAssignment(ApiModel):
    """What the device should run in one slot: a revision of one EdgeDeployment."""

    deployment: str = Field(max_length=253)
    revision: int = Field(ge=1)
    format: str = Field(max_length=32)
    url: str = Field(max_length=8192, description="Presigned, time-limited download URL.")
    url_expires_at: str | None = None
    assigned_at: str | None = Field(
        default=None, description="When the rollout controller wrote this revision here."
    )
    sha256: str = Field(pattern=SHA256_HEX)
    size_bytes: int = Field(ge=0)
    probe_url: str | None = Field(default=None, max_length=8192)


class ProbeResult(ApiModel):
    max_abs: float | None = None
    latency_ms: float | None = None


class SlotStatus(ApiModel):
    target_revision: int | None = None
    active_revision: int | None = None
    active_sha256: str | None = None
    previous_revision: int | None = None
    phase: SlotPhase = "Pending"
    reason: str = ""
    message: str = Field(default="", max_length=4096)
    probe: ProbeResult | None = None
    last_update_time: str | None = None


class RuntimeFacts(ApiModel):
    onnxruntime: str | None = None
    execution_providers: list[str] = Field(default_factory=list)


class DeviceFacts(ApiModel):
    arch: str | None = None
    os: str | None = None
    agent_version: str | None = None
    runtime: RuntimeFacts = Field(default_factory=RuntimeFacts)
    free_disk_bytes: int | None = None


class EdgeDeviceSpec(ApiModel):
    models: dict[str, SlotAssignment] = Field(
        default_factory=dict,
        description="slot → assignment; slot names become directory names on the device.",
        json_schema_extra={
            "maxProperties": 64,
            **validations(
                cel(
                    "self.all(k, size(k) <= 63 && k.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))",
                    "slot names must be DNS labels (lowercase, digits, '-', at most 63)",
                )
            ),
        },
    )


class EdgeDeviceStatus(ApiModel):
    slots: dict[str, SlotStatus] = Field(default_factory=dict)
    facts: DeviceFacts = Field(default_factory=DeviceFacts)
    conditions: list[Condition] = Field(default_factory=list)


class EdgeDevice(ResourceModel):
    KIND: ClassVar[str] = "EdgeDevice"
    PLURAL: ClassVar[str] = "edgedevices"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("edev",)

    kind: str = "EdgeDevice"

    spec: EdgeDeviceSpec = Field(default_factory=EdgeDeviceSpec)
    status: EdgeDeviceStatus | None = None
