"""Base model and shared field types for the custom resources.

The pydantic models are the single source of the CRD schemas (`make crds`), so fields carry
their Kubernetes-side rules (CEL `x-kubernetes-validations`, int-or-string) as schema extras.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "modelfleet.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
S3_URI = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
SHA256_HEX = r"^[a-f0-9]{64}$"
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"
)
"""A label key as the API server checks it: an optional DNS-subdomain prefix and `/`, then a
name of at most 63 alphanumerics, `-`, `_` or `.` that starts and ends alphanumeric."""
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
""" A label value: empty, or what a key's name part may be (at most 63 characters)."""


ATOMIC: dict[str, Any] = {"x-kubernetes-map-type": "atomic"}
"""Schema extra of an object that its one writer always writes whole (an EdgeDevice's slot
assignment, slot status, facts): the apiserver then records it in managedFields as one field
instead of one per leaf: an EdgeDevice's managedFields fell from 1,166 to 701 bytes with one
slot and from 2,182 to 761 with three (bench/FINDINGS.md §5). Merge patches behave as before."""


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One CEL rule for `x-kubernetes-validations`; fieldPath makes the error name the field."""
    validation = {"rule": rule, "message": message}
    if field_path:
        validation["fieldPath"] = field_path
    return validation


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=False
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    def to_merge_patch(self) -> dict[str, Any]:
        """Like `to_wire`, but unset fields are explicit nulls: a JSON merge patch clears them."""
        return self.model_dump(by_alias=True, mode="json")


class ResourceModel(ApiModel):
    """A whole custom resource object; the class constants name it for the CRD generator."""

    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    SHORT_NAMES: ClassVar[tuple[str, ...]]

    api_version: str = API_VERSION
    kind: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


IntOrPercent = Annotated[
    int | str,
    Field(
        json_schema_extra={
            "x-kubernetes-int-or-string": True,
            "maxLength": 4,
            **validations(
                cel(
                    "type(self) == int ? self >= 0 : self.matches('^([0-9]|[1-9][0-9]|100)%$')",
                    "must be a non-negative count or a percentage between 0% and 100%",
                )
            ),
        }
    ),
]

ResourceName = Annotated[str, Field(pattern=DNS_SUBDOMAIN, max_length=253)]
ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A kstatus-style condition: `kubectl wait --for=condition=Ready` reads these."""

    type: str = Field(max_length=63)
    status: ConditionStatus
    reason: str = Field(default="", max_length=128)
    message: str = Field(default="", max_length=4096)
    last_transition_time: str | None = None
    observed_generation: int | None = None


LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]


class LabelSelectorRequirement(ApiModel):
    key: str = Field(max_length=317, pattern=LABEL_KEY)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[LabelValue] = Field(default_factory=list, max_length=64)


_CEL_LABEL_KEY = LABEL_KEY.replace("\\", "\\\\")


class LabelSelector(ApiModel):
    """The standard Kubernetes label selector; its keys and values must be valid labels."""

    # A selector no label can match is a typo, not an empty fleet: refuse it on apply.

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                f"!has(self.matchLabels) || self.matchLabels.all(k, size(k) <= 317 && "
                f"k.matches('{_CEL_LABEL_KEY}'))",
                "matchLabels keys must be label keys: an optional DNS prefix and '/', then at "
                "most 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends",
                ".matchLabels",
            )
        )
    }

    match_labels: dict[str, LabelValue] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": 32}
    )
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=32)
