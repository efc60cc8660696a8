"""Operator configuration, read once at start from flags and the environment."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelfleet.api.conversion import TF_FORMATS
from modelfleet.storage import ENV_BUCKET, ENV_ENDPOINT, ENV_REGION

NAMESPACES_ENV = "MODELFLEET_NAMESPACES"


def watched_namespaces(env: Mapping[str, str]) -> tuple[str, ...]:
    """`MODELFLEET_NAMESPACES` (comma-separated; empty: cluster-wide), the chart's
    `watchNamespaces`: one shard's namespaces."""
    return tuple(n.strip() for n in env.get(NAMESPACES_ENV, "").split(",") if n.strip())


@dataclass(frozen=True)
class JobDefaults:
    """Pod settings for worker Jobs whose ModelConversion's jobTemplate leaves them unset
    (`MODELFLEET_JOB_DEFAULTS`, JSON with `resources`, `nodeSelector`, `tolerations`)."""

    resources: dict[str, Any] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str) -> JobDefaults:
        try:
            values = json.loads(text) if text else {}
        except json.JSONDecodeError as err:
            raise ValueError(f"MODELFLEET_JOB_DEFAULTS is not JSON: {err}") from err
        unknown = set(values) - {"resources", "nodeSelector", "tolerations"}
        if unknown:
            raise ValueError(f"MODELFLEET_JOB_DEFAULTS: unknown keys {sorted(unknown)}")
        return cls(
            resources=values.get("resources") or {},
            node_selector=values.get("nodeSelector") or {},
            tolerations=values.get("tolerations") or [],
        )


@dataclass(frozen=True)
class OperatorSettings:
    """What the operator needs besides the objects it watches.

    `storage_secret` names a Secret (keys `accessKey`, `secretKey`) that must exist in each
    namespace holding ModelConversions: Jobs read it through secretKeyRef, so credentials never
    appear in a Job's args, the operator's logs or any status.
    """

    s3_endpoint: str
    bucket: str
    namespaces: tuple[str, ...] = ()
    worker_image: str = "modelfleet-worker:0.1.0"
    worker_tf_image: str = "modelfleet-worker-tf:0.1.0"
    """For the TensorFlow targets: the worker plus onnx2tf's environment (docker/worker-tf)."""
    worker_command: tuple[str, ...] = ("modelfleet-worker",)
    storage_secret: str = "modelfleet-storage"
    s3_region: str | None = None
    resync_seconds: float = 30.0
    integrity_check_seconds: float = 300.0
    """How old a stored artifact's last full sha256 may get before it is read again
    (operator/integrity.py); size and ETag are checked on every pass regardless."""
    job_defaults: JobDefaults = field(default_factory=JobDefaults)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: object
    ) -> OperatorSettings:
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "s3_endpoint": env.get(ENV_ENDPOINT, ""),
            "bucket": env.get(ENV_BUCKET, "modelfleet"),
            "namespaces": watched_namespaces(env),
            "worker_image": env.get("MODELFLEET_WORKER_IMAGE", cls.worker_image),
            "worker_tf_image": env.get("MODELFLEET_WORKER_TF_IMAGE", cls.worker_tf_image),
            "storage_secret": env.get("MODELFLEET_STORAGE_SECRET", cls.storage_secret),
            "s3_region": env.get(ENV_REGION) or None,
            "resync_seconds": float(env.get("MODELFLEET_RESYNC_SECONDS", cls.resync_seconds)),
            "integrity_check_seconds": float(
                env.get("MODELFLEET_INTEGRITY_CHECK_SECONDS", cls.integrity_check_seconds)
            ),
            "job_defaults": JobDefaults.from_json(env.get("MODELFLEET_JOB_DEFAULTS", "")),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def image_for(self, fmt: str) -> str:
        """The worker image that converts and validates `fmt` (its toolchain: in the digest)."""
        return self.worker_tf_image if fmt in TF_FORMATS else self.worker_image
