"""Prometheus metrics of the operator, served on MODELFLEET_METRICS_PORT (default 9090).

Gauges are recomputed from each object's status on every pass (level-triggered like the rest),
so a restarted operator reports the same numbers as the one before it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import get_args

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from modelfleet.api.conversion import ConversionPhase
from modelfleet.api.deployment import DeploymentPhase

CONVERSIONS = Gauge(
    "modelfleet_conversions",
    "ModelConversions by phase.",
    ["namespace", "name", "phase"],
)
CONVERSION_OUTCOMES = Counter(
    "modelfleet_conversion_outcomes_total",
    "Conversion passes that ended a generation, by outcome and reason.",
    ["outcome", "reason"],
)
JOB_DURATION = Histogram(
    "modelfleet_job_duration_seconds",
    "Wall time of finished conversion and validation Jobs.",
    ["step", "format", "outcome"],
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
DEPLOYMENTS = Gauge(
    "modelfleet_deployments",
    "EdgeDeployments by phase.",
    ["namespace", "name", "phase"],
)
DEVICES = Gauge(
    "modelfleet_deployment_devices",
    "Devices of an EdgeDeployment by state: targeted, updated, healthy, failed, inFlight, offline.",
    ["namespace", "name", "state"],
)
RECONCILE_ERRORS = Counter(
    "modelfleet_reconcile_errors_total",
    "Reconcile passes that raised, by controller.",
    ["controller"],
)
_PHASES = {  # the API's own phase lists: a new phase gets its gauge without a second list
    "conversion": get_args(ConversionPhase),
    "deployment": get_args(DeploymentPhase),
}


def serve(port: int | None = None) -> None:
    start_http_server(port or int(os.environ.get("MODELFLEET_METRICS_PORT", "9090")))


def _one_hot(gauge: Gauge, kind: str, namespace: str, name: str, phase: str | None) -> None:
    for candidate in _PHASES[kind]:
        gauge.labels(namespace, name, candidate).set(1 if candidate == phase else 0)


def record_conversion(namespace: str, name: str, phase: str | None) -> None:
    _one_hot(CONVERSIONS, "conversion", namespace, name, phase)


def record_deployment(
    namespace: str, name: str, phase: str | None, counts: Mapping[str, int]
) -> None:
    _one_hot(DEPLOYMENTS, "deployment", namespace, name, phase)
    for state, value in counts.items():
        DEVICES.labels(namespace, name, state).set(value)


def forget(namespace: str, name: str) -> None:
    """Drop the series of a deleted object so dashboards do not show ghosts."""
    for gauge, kind in ((CONVERSIONS, "conversion"), (DEPLOYMENTS, "deployment")):
        for phase in _PHASES[kind]:
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name, phase)
