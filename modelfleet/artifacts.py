"""Content-addressed artifact layout, the artifact digest and the manifest.

Shared by the conversion/validation workers (which write artifacts), the operator (which
computes the digest to find a cached artifact and skip the Job) and the device agent (which
reads the manifest). Layout, as in DESIGN.md:

    artifacts/<digest>/<format>/model.onnx      (model.tflite; model.savedmodel.tar: `model_file`)
    artifacts/<digest>/<format>/manifest.json   written LAST: an artifact is complete iff it exists
    reports/<digest>/<format>/report.json
    reports/<digest>/<format>/probe.npz

`digest = sha256(source digest + conversion config of the target + converter versions)`, see
`artifact_digest`. Only what changes the produced file enters the digest: the target's format,
opset, quantization mode, calibration (uri, samples) and the nodes kept in float (only when
the target names some); tolerances and validation settings do not (changing them re-validates,
it does not re-convert). When an automatic remedy produced the file with other settings than
the requested ones (`modelfleet.remedies.Settings`), `artifact_digest(..., settings=)` covers
them too; with the requested settings the digest is the one computed without them, so targets
that needed no remedy keep their digests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from modelfleet.api.conversion import TF_FORMATS, Target, TargetFormat
from modelfleet.remedies import Settings
from modelfleet.storage import ObjectExists

MANIFEST_SCHEMA_VERSION = 1
MODEL_FILE = "model.onnx"
MODEL_FILES: Mapping[str, str] = {
    "tf-savedmodel": "model.savedmodel.tar",  # the SavedModel directory, tarred (`tf_convert`)
    "tflite": "model.tflite",
    "tflite-fp16": "model.tflite",
    "tflite-dynamic-range": "model.tflite",
}
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.json"
PROBE_FILE = "probe.npz"

# Bump when our own conversion code changes what it produces for the same inputs.
CONVERTER_REVISION = "1"
CONVERTER_PACKAGES = ("paddlepaddle", "paddle2onnx", "onnx", "onnxruntime")
TF_TOOLCHAIN = "onnx2tf==1.29.24 tensorflow==2.19.0 ai-edge-litert==2.1.0"
"""The TensorFlow targets' converter, pinned in requirements-tf.txt (a test keeps them equal):
it lives in its own environment, so `converter_versions` cannot read it; it enters the digest
of those targets through `conversion_config`."""
Layout = Literal["NCHW", "NHWC", "NCW", "NWC", "NCDHW", "NDHWC"]


@dataclass(frozen=True)
class ArtifactKeys:
    """Object keys (relative to the bucket) of one target's artifact and report."""

    digest: str
    format: TargetFormat
    artifact_prefix: str
    report_prefix: str

    @classmethod
    def for_target(
        cls,
        digest: str,
        fmt: TargetFormat,
        *,
        artifact_prefix: str | None = None,
        report_prefix: str | None = None,
    ) -> ArtifactKeys:
        return cls(
            digest=digest,
            format=fmt,
            artifact_prefix=_dir(artifact_prefix or f"artifacts/{digest}/{fmt}/"),
            report_prefix=_dir(report_prefix or f"reports/{digest}/{fmt}/"),
        )

    @property
    def model(self) -> str:
        return self.artifact_prefix + model_file(self.format)

    @property
    def manifest(self) -> str:
        return self.artifact_prefix + MANIFEST_FILE

    @property
    def report(self) -> str:
        return self.report_prefix + REPORT_FILE

    @property
    def probe(self) -> str:
        return self.report_prefix + PROBE_FILE

    def settings_report(self, settings: str) -> str:
        """The report as judged under one validation settings digest: conversions of one
        artifact with different input specs or tolerances each keep their own evidence (the
        shared report.json is whichever wrote last)."""
        return f"{self.report_prefix}settings/{settings}/{REPORT_FILE}"


def model_file(fmt: str) -> str:
    """The artifact's file name: model.onnx, model.tflite or model.savedmodel.tar."""
    return MODEL_FILES.get(fmt, MODEL_FILE)


def _dir(prefix: str) -> str:
    return prefix if prefix.endswith("/") else prefix + "/"


def conversion_config(target: Target) -> dict[str, Any]:
    """The part of a target that changes the produced file, normalized (None ≡ default)."""
    quantization: str | None = None
    calibration: dict[str, Any] | None = None
    if target.format == "onnx-int8":
        quantization = target.quantization or "static"
        if target.calibration is not None and quantization == "static":
            calibration = {"uri": target.calibration.uri, "samples": target.calibration.samples}
    config: dict[str, Any] = {
        "format": target.format,
        "opset": target.opset,
        "quantization": quantization,
        "calibration": calibration,
    }
    if target.format in TF_FORMATS:
        config["toolchain"] = TF_TOOLCHAIN
    keep = target.keep_float
    if keep is not None and (keep.nodes or keep.op_types):
        config["keepFloat"] = {"nodes": list(keep.nodes), "opTypes": list(keep.op_types)}
    return config


def converter_versions() -> dict[str, str]:
    """Versions of the converter toolchain installed here (read without importing them)."""
    versions = {"modelfleet-converter": CONVERTER_REVISION}
    for package in CONVERTER_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def artifact_digest(
    source_digest: str,
    target: Target,
    versions: Mapping[str, str],
    *,
    settings: Settings | None = None,
) -> str:
    """sha256 over (source digest, conversion config, converter versions); pure.

    With `settings` (what an automatic remedy produced the file with), the config is the
    target as those settings make it (their opset and float sets, so the digest equals that
    of a spec asking for them directly) plus the repairs applied; with the requested settings
    the digest is the one computed without them. The reference configuration changes the
    evidence, not the file: the report records it, the digest does not.

    >>> from modelfleet.api.conversion import Target
    >>> d = artifact_digest("ab" * 32, Target(format="onnx"), {"paddle2onnx": "2.1.0"})
    >>> len(d), d == artifact_digest("ab" * 32, Target(format="onnx", opset=17),
    ...                              {"paddle2onnx": "2.1.0"})
    (64, True)
    """
    extra: dict[str, Any] = {}
    if settings is not None:
        target = settings.applied_to(target)
        delta = settings.delta(Settings.requested(target))
        extra = {key: value for key, value in delta.items() if key != "reference"}
    payload = {
        "schema": MANIFEST_SCHEMA_VERSION,
        "source": source_digest,
        "target": conversion_config(target),
        "versions": dict(sorted(versions.items())),
    }
    if extra:
        payload["settings"] = extra
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def source_digest(file_digests: Mapping[str, str]) -> str:
    """Digest of a source model from {relative file name: sha256 of its bytes}; pure."""
    lines = "".join(f"{name}\0{sha}\n" for name, sha in sorted(file_digests.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def is_artifact_complete(
    store: ObjectExists, keys: ArtifactKeys, *, bucket: str | None = None
) -> bool:
    """An artifact is complete iff its manifest exists (the manifest is always written last)."""
    return store.exists(keys.manifest, bucket=bucket)


class Document(BaseModel):
    """camelCase JSON documents in object storage; readers ignore fields they do not know."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", ser_json_inf_nan="strings"
    )

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


class TensorSignature(Document):
    name: str
    dtype: str
    shape: list[int | str] = Field(description="Dimensions; a string names a dynamic one.")
    layout: Layout | None = Field(
        default=None,
        description="How the artifact lays the tensor out where it has channels; `shape` is "
        "in that layout. Validation and devices transpose the source's (channels-first) "
        "tensors to it and back.",
    )
    runtime_name: str | None = Field(
        default=None,
        description="The tensor's name in the artifact's own signature when it differs from "
        "`name` (the source model's): a SavedModel's `output_0`.",
    )


class SourceRef(Document):
    uri: str
    digest: str
    format: Literal["paddle", "onnx"]


class QuantizationInfo(Document):
    mode: Literal["static", "dynamic"]
    calibration: Literal["dataset", "synthetic", "none"]
    calibration_uri: str | None = None
    samples: int = 0


class Manifest(Document):
    schema_version: int = MANIFEST_SCHEMA_VERSION
    digest: str
    format: TargetFormat
    file: str = MODEL_FILE
    sha256: str
    size_bytes: int
    opset: int
    inputs: list[TensorSignature]
    outputs: list[TensorSignature]
    versions: dict[str, str]
    source: SourceRef
    target: dict[str, Any]
    quantization: QuantizationInfo | None = None
    created_at: str
    settings: dict[str, Any] | None = Field(
        default=None,
        description="The settings an automatic remedy produced this file with "
        "(`modelfleet.remedies.Settings.to_wire()`); None: made as the target asks.",
    )
