"""Which variant a device takes, and which artifact a revision gives it: pure functions.

A device takes the first of `spec.variants` whose selector matches its labels, else the
default: `spec.model.format` with ONNX Runtime on the CPU (no runtime request). The rollout
planner asks this for every device it assigns; `modelfleet plan` asks it too, to show which
variant and artifact each device would get, without writing anything:
`choose_variant(spec, {"hw": "jetson"}).name` is the name of the first variant whose selector
matches `hw=jetson`, or `default`.

A revision records each variant as it resolved (RevisionRecord.variants: selector, format,
artifact, runtime, tolerance), so assigning a device a revision, the current one or an older
one being restored, chooses among that revision's variants (`artifact_for`), not the spec's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from modelfleet.api.base import LabelSelector
from modelfleet.api.conversion import ArtifactStatus, Tolerance
from modelfleet.api.deployment import (
    DEFAULT_VARIANT,
    EdgeDeploymentSpec,
    RecordedSelector,
    RevisionRecord,
    VariantArtifact,
    VariantStatus,
)
from modelfleet.api.device import RuntimeRequest
from modelfleet.operator.rollout.fleet import Device, count
from modelfleet.operator.rollout.ordering import selector_matches
from modelfleet.operator.rollout.plans import ArtifactRef


class _Selecting(Protocol):
    @property
    def selector(self) -> LabelSelector: ...


S = TypeVar("S", bound=_Selecting)


@dataclass(frozen=True)
class VariantChoice:
    """The variant a device takes under a spec: its name (`default` when none matched), the
    artifact format, and the runtime and tolerance its assignment carries (None: defaults)."""

    name: str
    format: str
    runtime: RuntimeRequest | None = None
    tolerance: Tolerance | None = None

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_VARIANT


def first_match(variants: Sequence[S], labels: Mapping[str, str]) -> S | None:
    """The first of `variants` whose selector matches `labels`: the one rule of choosing."""
    return next((v for v in variants if selector_matches(v.selector, labels)), None)


def choose_variant(spec: EdgeDeploymentSpec, labels: Mapping[str, str]) -> VariantChoice:
    """The variant a device with `labels` takes under `spec` (module docstring)."""
    variant = first_match(spec.variants, labels)
    if variant is None:
        return VariantChoice(DEFAULT_VARIANT, spec.model.format)
    return VariantChoice(variant.name, variant.format, variant.runtime, variant.tolerance)


class _Release(Protocol):
    """A revision's artifacts: a history record, or the artifact the spec resolves to now."""

    @property
    def sha256(self) -> str: ...
    @property
    def uri(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def size_bytes(self) -> int | None: ...
    @property
    def probe_uri(self) -> str | None: ...
    @property
    def variants(self) -> Sequence[VariantArtifact]: ...


def artifact_for(release: _Release, labels: Mapping[str, str]) -> ArtifactRef:
    """What a device with `labels` runs in `release`: its variant's artifact, runtime and
    tolerance, else the default artifact."""
    variant = first_match(release.variants, labels)
    if variant is None:
        return ArtifactRef(
            release.sha256, release.uri, release.format, release.size_bytes, release.probe_uri
        )
    return ArtifactRef(
        variant.sha256,
        variant.uri,
        variant.format,
        variant.size_bytes,
        variant.probe_uri,
        variant=variant.name,
        runtime=variant.runtime,
        tolerance=variant.tolerance,
    )


@dataclass(frozen=True)
class MissingFormats:
    """Variants whose format the conversion has no approved artifact of: nothing may move."""

    missing: tuple[tuple[str, str], ...]
    """(variant, format)"""
    conversion: str

    @property
    def message(self) -> str:
        listed = ", ".join(f"variant {name} needs {fmt}" for name, fmt in self.missing)
        return (
            f"ModelConversion {self.conversion} has no approved artifact for {listed}: add the "
            f"format to its targets or change the variant; no device is moved until then"
        )


def variant_artifacts(
    spec: EdgeDeploymentSpec, artifacts: Sequence[ArtifactStatus], *, conversion: str
) -> tuple[VariantArtifact, ...] | MissingFormats:
    """Each variant of `spec` with the conversion's approved artifact of its format, or which
    variants have none (checked for all of them before any device is assigned)."""
    by_format = {a.format: a for a in artifacts}
    missing = tuple((v.name, v.format) for v in spec.variants if v.format not in by_format)
    if missing:
        return MissingFormats(missing, conversion)
    return tuple(
        VariantArtifact(
            name=v.name,
            selector=RecordedSelector.model_validate(v.selector.model_dump()),
            format=v.format,
            sha256=by_format[v.format].sha256,
            uri=by_format[v.format].uri,
            size_bytes=by_format[v.format].size_bytes,
            probe_uri=by_format[v.format].probe_uri,
            runtime=v.runtime,
            tolerance=v.tolerance,
        )
        for v in spec.variants
    )


def variant_counts(
    spec: EdgeDeploymentSpec, current: RevisionRecord | None, devices: Sequence[Device]
) -> list[VariantStatus]:
    """The status counts per variant the devices take under `spec`, `default` last, with each
    variant's artifact in the `current` revision; empty without spec.variants."""
    if not spec.variants:
        return []
    groups: dict[str, list[Device]] = {v.name: [] for v in spec.variants}
    groups[DEFAULT_VARIANT] = []
    for device in devices:
        groups[choose_variant(spec, device.view.labels).name].append(device)
    formats = {v.name: v.format for v in spec.variants}
    formats[DEFAULT_VARIANT] = spec.model.format
    shas = {v.name: v.sha256 for v in current.variants} if current is not None else {}
    if current is not None:
        shas[DEFAULT_VARIANT] = current.sha256
    revision = current.revision if current is not None else None
    return [
        VariantStatus(
            name=name, format=formats[name], sha256=shas.get(name), counts=count(group, revision)
        )
        for name, group in groups.items()
    ]
