"""EdgeDevice: one device. The rollout controller owns spec.models; the agent owns status."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field

from modelfleet.api.base import (
    ATOMIC,
    SHA256_HEX,
    ApiModel,
    Condition,
    ResourceModel,
    cel,
    validations,
)
from modelfleet.api.conversion import Tolerance

SlotPhase = Literal["Pending", "Downloading", "Verifying", "Activating", "Healthy", "Failed"]


class RuntimeRequest(ApiModel):
    """How the device runs a slot's artifact: an engine and its backends in order of preference.

    Absent from an assignment it means ONNX Runtime on the CPU (the behaviour before runtimes
    could be chosen). The agent probes the artifact on the session this builds, so the numbers
    are proven on the backend the application gets (`runtime.json` beside the slot's link).
    """

    engine: str = Field(
        default="onnxruntime",
        max_length=32,
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="Inference engine: onnxruntime, openvino or litert (LiteRT, for a .tflite "
        "artifact, which gets it when no runtime is asked for).",
    )
    providers: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="ONNX Runtime execution providers, preferred first; "
        "default [CPUExecutionProvider].",
    )
    devices: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="OpenVINO devices, preferred first (compiled as AUTO:<list>); default [CPU].",
    )
    allow_fallback: bool = Field(
        default=True,
        description="Whether a backend later in the list may take the graph when the first "
        "cannot; false fails the slot with RuntimeFallback instead.",
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Engine settings: OpenVINO compile properties (INFERENCE_PRECISION_HINT "
        "defaults to f32), ONNX Runtime session config entries.",
    )


class SlotAssignment(ApiModel):
    """What the device should run in one slot: a revision of one EdgeDeployment. The rollout
    controller writes it whole, so it is owned whole (`ATOMIC`)."""

    model_config = ConfigDict(json_schema_extra=ATOMIC)

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
    runtime: RuntimeRequest | None = Field(
        default=None, description="Engine and backends; absent: ONNX Runtime on the CPU."
    )
    variant: str | None = Field(
        default=None, max_length=63, description="The deployment's variant this device took."
    )
    tolerance: Tolerance | None = Field(
        default=None,
        description="The variant's probe tolerance; absent: the one the artifact was "
        "validated with (in the probe).",
    )


class ProbeResult(ApiModel):
    max_abs: float | None = None
    latency_ms: float | None = None
    validated_max_abs: float | None = Field(
        default=None,
        description="The same comparison for the outputs recorded at validation (ONNX Runtime "
        "on the CPU), to set this device's runtime next to it.",
    )


class KernelPlacement(ApiModel):
    backend: str
    kernels: int = Field(ge=0)


class SlotRuntime(ApiModel):
    """Which backend really runs the slot's artifact, as the engine reports it."""

    engine: str
    requested: list[str] = Field(default_factory=list)
    used: list[str] = Field(default_factory=list)
    fallback: bool = False
    placement: list[KernelPlacement] = Field(
        default_factory=list,
        max_length=16,
        description="Kernels per ONNX Runtime execution provider in the probe's first run "
        "(a list: a merge patch replaces it whole).",
    )


class DownloadRetry(ApiModel):
    """The download attempt that failed last and why, while the agent tries again."""

    attempt: int = Field(ge=1, description="How many attempts of this download failed so far.")
    last_error: str = Field(
        default="", max_length=1024, description="Why the last one failed (never the URL)."
    )


class SlotStatus(ApiModel):
    model_config = ConfigDict(json_schema_extra=ATOMIC)

    target_revision: int | None = None
    active_revision: int | None = None
    active_sha256: str | None = None
    previous_revision: int | None = None
    phase: SlotPhase = "Pending"
    reason: str = ""
    message: str = Field(default="", max_length=4096)
    probe: ProbeResult | None = None
    runtime: SlotRuntime | None = None
    download_retry: DownloadRetry | None = Field(
        default=None, description="Set while a download is retried (reason DownloadRetrying)."
    )
    last_update_time: str | None = None


class EngineFacts(ApiModel):
    """One installed inference engine: its version and the backends it can use here."""

    name: str
    version: str
    backends: list[str] = Field(
        default_factory=list,
        description="ONNX Runtime: available execution providers; OpenVINO: available devices.",
    )


class RuntimeFacts(ApiModel):
    onnxruntime: str | None = None
    execution_providers: list[str] = Field(default_factory=list)
    engines: list[EngineFacts] = Field(default_factory=list)


class AcceleratorFacts(ApiModel):
    """One accelerator the agent sees, as the place it was seen names it."""

    source: str = Field(
        max_length=32,
        description="Where it was seen: openvino (a device OpenVINO can compile for), nvidia "
        "(the driver's /proc entry or nvidia-smi), jetson (the device tree), dri (a render node).",
    )
    id: str = Field(max_length=128, description="GPU.0, renderD128, a PCI address...")
    name: str = Field(default="", max_length=256, description="The model, where known.")
    driver: str = Field(default="", max_length=128, description="Kernel driver or its version.")


class DeviceFacts(ApiModel):
    model_config = ConfigDict(json_schema_extra=ATOMIC)

    arch: str | None = None
    os: str | None = None
    agent_version: str | None = None
    runtime: RuntimeFacts = Field(default_factory=RuntimeFacts)
    accelerators: list[AcceleratorFacts] = Field(
        default_factory=list,
        max_length=64,
        description="Accelerators the agent sees (the engines' backends are under runtime).",
    )
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
