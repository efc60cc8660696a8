"""ModelConversion: a Paddle model to convert, the targets to produce and how to prove them."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from modelfleet.api.base import (
    DNS_SUBDOMAIN,
    S3_URI,
    SHA256_HEX,
    ApiModel,
    Condition,
    ResourceModel,
    cel,
    validations,
)

TargetFormat = Literal[
    "onnx",
    "onnx-fp16",
    "onnx-int8",
    "tf-savedmodel",
    "tflite",
    "tflite-fp16",
    "tflite-dynamic-range",
]
TF_FORMATS: frozenset[str] = frozenset(
    {"tf-savedmodel", "tflite", "tflite-fp16", "tflite-dynamic-range"}
)
"""Made by onnx2tf from the validated fp32 ONNX, in its own environment (`workers.tf_convert`)."""
QUANTIZED_FORMATS: frozenset[str] = frozenset({"onnx-int8", "tflite-dynamic-range"})
"""Formats with int8 weights: top-k agreement applies to their float outputs."""
DType = Literal["float32", "float16", "float64", "int64", "int32", "uint8", "int8", "bool"]
ConversionPhase = Literal[
    "Pending",
    "Converting",
    "Validating",
    "AwaitingApproval",
    "Succeeded",
    "Failed",
    "ArtifactCorrupted",
]
"""ArtifactCorrupted: approved, but a stored artifact no longer matches its manifest
(operator/integrity.py); it returns to Succeeded once the object matches again."""


class CredentialsSecret(ApiModel):
    """A Secret in the object's namespace with the S3 keys; read only through secretKeyRef."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253)
    access_key_key: str = Field(default="accessKey", max_length=253)
    secret_key_key: str = Field(default="secretKey", max_length=253)


class Source(ApiModel):
    uri: str = Field(
        pattern=S3_URI,
        max_length=1024,
        description="s3://bucket/prefix/ holding a Paddle inference model (*.json or *.pdmodel "
        "plus *.pdiparams), or an .onnx file when format is onnx.",
    )
    format: Literal["paddle", "onnx"] = "paddle"
    credentials_secret: CredentialsSecret | None = None


class InputSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "!has(self.range) || self.range[0] <= self.range[1]",
                "range must be [low, high] with low <= high",
                ".range",
            )
        )
    }

    name: str = Field(min_length=1, max_length=256)
    shape: list[int] = Field(
        min_length=1,
        max_length=8,
        description="Dimensions; -1 marks a dynamic one (pinned to batchSize or 1).",
        json_schema_extra=validations(
            cel("self.all(d, d == -1 || d > 0)", "each dimension must be -1 (dynamic) or > 0")
        ),
    )
    dtype: DType = "float32"
    range: list[float] | None = Field(default=None, min_length=2, max_length=2)


class Calibration(ApiModel):
    uri: str = Field(pattern=S3_URI, max_length=1024, description="An .npz of input samples.")
    samples: int = Field(default=128, ge=1, le=100000)


class Tolerance(ApiModel):
    """Polygraphy semantics: an element fails only if it exceeds both atol and rtol. Omitted,
    the format's defaults apply (scale-free bounds chosen on the model zoo; docs/tolerances.md)."""

    atol: float = Field(default=1e-5, ge=0)
    rtol: float = Field(default=1e-5, ge=0)
    min_cosine: float | None = Field(default=None, ge=-1, le=1)
    top_k_agreement: float | None = Field(
        default=None, ge=0, le=1, description="Minimum share of samples whose top-k match."
    )
    top_k: int = Field(default=1, ge=1, le=100)
    max_normalized_error: float | None = Field(
        default=None,
        ge=0,
        description="Maximum of max|c-r| / max|r| per output (scale-free); when set, or "
        "maxRelativeL2 is, the element rule (atol, rtol) is reported but does not decide.",
    )
    max_relative_l2: float | None = Field(
        default=None, ge=0, description="Maximum of ||c-r|| / ||r|| per output (scale-free)."
    )


class KeepFloat(ApiModel):
    """Parts of the graph the user wants kept in float32 (fp16: not converted; int8: not
    quantized)."""

    nodes: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list,
        max_length=256,
        description="ONNX node names (as paddle2onnx names them, e.g. `Conv.3`) kept in float.",
    )
    op_types: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list,
        max_length=64,
        description="ONNX op types (e.g. `Resize`, `LayerNormalization`) kept in float.",
    )


class Target(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "!has(self.calibration) || self.format == 'onnx-int8'",
                "calibration applies only to format onnx-int8",
                ".calibration",
            ),
            cel(
                "!has(self.quantization) || self.format == 'onnx-int8'",
                "quantization applies only to format onnx-int8",
                ".quantization",
            ),
            cel(
                "!has(self.calibration) || !has(self.quantization) "
                "|| self.quantization != 'dynamic'",
                "dynamic quantization takes no calibration data",
                ".calibration",
            ),
            cel(
                "!has(self.keepFloat) || self.format in ['onnx-fp16', 'onnx-int8']",
                "keepFloat applies only to onnx-fp16 and onnx-int8",
                ".keepFloat",
            ),
            cel(
                "!has(self.tolerance) || !has(self.tolerance.topKAgreement) "
                "|| self.format in ['onnx-int8', 'tflite-dynamic-range']",
                "topKAgreement applies only to quantized targets",
                ".tolerance.topKAgreement",
            ),
        )
    }

    format: TargetFormat = Field(
        description="onnx (fp32), onnx-fp16, onnx-int8; tf-savedmodel (a TensorFlow SavedModel "
        "with a serving_default signature, tarred) and tflite, tflite-fp16, "
        "tflite-dynamic-range (int8 weights, float activations), made by onnx2tf from the "
        "fp32 ONNX: 4-D inputs and outputs become NHWC, recorded per tensor in the manifest."
    )
    opset: int = Field(
        default=17,
        ge=7,
        le=23,
        description="ONNX opset (of the ONNX a TensorFlow target is made from).",
    )
    quantization: Literal["static", "dynamic"] | None = None
    calibration: Calibration | None = None
    tolerance: Tolerance | None = None
    remedies: Literal["auto", "none"] = Field(
        default="auto",
        description="auto: when the target fails on a converter defect or misses its tolerance, "
        "try alternatives (a repair of known paddle2onnx defects, other opsets, fp16 with parts "
        "kept in float32, int8 with the most error-prone nodes kept in float, the oneDNN-free "
        "Paddle reference) and publish the first that passes; the report and status list what "
        "was tried. none: publish nothing but the requested settings.",
    )
    keep_float: KeepFloat | None = Field(
        default=None,
        description="Nodes and op types kept in float32: not converted to fp16, not quantized "
        "to int8. Changes the produced file, so it enters the artifact digest.",
    )


class Benchmark(ApiModel):
    warmup: int = Field(default=5, ge=0, le=10000)
    iterations: int = Field(default=50, ge=1, le=100000)


class Validation(ApiModel):
    seed: int = Field(default=0, ge=0)
    samples: int = Field(default=16, ge=1, le=10000)
    batch_size: int = Field(default=1, ge=1, le=4096)
    dataset_uri: str | None = Field(default=None, pattern=S3_URI, max_length=1024)
    benchmark: Benchmark = Field(default_factory=Benchmark)


class JobTemplate(ApiModel):
    image: str | None = Field(default=None, max_length=512)
    resources: dict[str, Any] | None = None
    backoff_limit: int = Field(default=1, ge=0, le=10)
    active_deadline_seconds: int = Field(default=1800, ge=1)
    ttl_seconds_after_finished: int = Field(default=3600, ge=0)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)


class ModelConversionSpec(ApiModel):
    source: Source
    inputs: list[InputSpec] = Field(
        min_length=1,
        max_length=32,
        json_schema_extra=validations(
            cel("self.all(i, self.exists_one(j, j.name == i.name))", "input names must be unique")
        ),
    )
    targets: list[Target] = Field(
        min_length=1,
        max_length=8,
        json_schema_extra=validations(
            cel(
                "self.all(t, self.exists_one(u, u.format == t.format))",
                "each target format may appear only once",
            )
        ),
    )
    validation: Validation = Field(default_factory=Validation)
    approval: Literal["auto", "manual"] = "auto"
    job_template: JobTemplate = Field(default_factory=JobTemplate)


class LatencyStats(ApiModel):
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput_per_s: float | None = None


class TargetValidation(ApiModel):
    format: TargetFormat
    passed: bool
    reason: str = ""
    max_abs: float | None = None
    max_rel: float | None = None
    l2: float | None = None
    cosine: float | None = None
    top_k_agreement: float | None = None
    source_latency: LatencyStats | None = None
    target_latency: LatencyStats | None = None
    speedup: float | None = None
    remedies: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="What automatic remedies tried, in order (`<settings>: <verdict>`), the "
        "last one being the one published when the target passed.",
    )


class ArtifactStatus(ApiModel):
    format: TargetFormat
    uri: str
    sha256: str = Field(pattern=SHA256_HEX)
    size_bytes: int = Field(ge=0)
    manifest_uri: str
    report_uri: str | None = None
    probe_uri: str | None = None


class ModelConversionStatus(ApiModel):
    phase: ConversionPhase | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    artifacts: list[ArtifactStatus] = Field(default_factory=list)
    validation: list[TargetValidation] = Field(default_factory=list)
    jobs: dict[str, str] = Field(
        default_factory=dict,
        description="Jobs of the current work by `<step>-<format>`: `convert-validate` (nothing "
        "stored yet: both steps in one Job), `validate` (artifact stored).",
    )
    formats: str | None = Field(
        default=None,
        max_length=128,
        description="Every target's format, comma-separated: the TARGETS column of `kubectl "
        "get` (a printer column's JSONPath shows only the first element of a list).",
    )


class ModelConversion(ResourceModel):
    KIND: ClassVar[str] = "ModelConversion"
    PLURAL: ClassVar[str] = "modelconversions"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("mc",)

    kind: str = "ModelConversion"

    spec: ModelConversionSpec
    status: ModelConversionStatus | None = None
