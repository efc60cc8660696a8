"""`modelfleet status`: ModelConversions and EdgeDeployments in tables, like `kubectl get` but
with the numbers that matter: worst error and speedup per target, wave and device counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from modelfleet.api.base import GROUP, VERSION
from modelfleet.api.conversion import ModelConversion
from modelfleet.api.deployment import EdgeDeployment
from modelfleet.kube import api_client

_PHASE_STYLE = {
    "Succeeded": "green",
    "Failed": "red",
    "AwaitingApproval": "yellow",
    "Paused": "yellow",
    "Degraded": "red",
    "RollingBack": "red",
    "RolledBack": "red",
}
_COUNTS = ("targeted", "updated", "healthy", "failed", "inFlight", "offline")


def age(created: str | None, now: dt.datetime) -> str:
    """kubectl-style age: 45s, 12m, 3h, 5d."""
    if not created:
        return "-"
    seconds = int((now - dt.datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def conversion_rows(items: Sequence[dict[str, Any]], now: dt.datetime) -> list[list[str]]:
    """One row per (conversion, target): pure, so the table's content is testable."""
    rows = []
    for item in items:
        meta, spec, status = item["metadata"], item["spec"], item.get("status") or {}
        validations = {v["format"]: v for v in status.get("validation", [])}
        ready: dict[str, Any] = next(
            (c for c in status.get("conditions", []) if c["type"] == "Ready"), {}
        )
        for index, target in enumerate(spec.get("targets", [])):
            found = validations.get(target["format"], {})
            first = index == 0
            rows.append(
                [
                    meta["namespace"] if first else "",
                    meta["name"] if first else "",
                    status.get("phase", "Pending") if first else "",
                    target["format"],
                    _number(found.get("maxAbs"), ".2e"),
                    _number(found.get("cosine"), ".6f"),
                    _number(found.get("speedup"), ".2f") + ("x" if found.get("speedup") else ""),
                    ready.get("reason", "") if first else "",
                    age(meta.get("creationTimestamp"), now) if first else "",
                ]
            )
    return rows


def deployment_rows(items: Sequence[dict[str, Any]], now: dt.datetime) -> list[list[str]]:
    rows = []
    for item in items:
        meta, spec, status = item["metadata"], item["spec"], item.get("status") or {}
        waves = len(spec.get("strategy", {}).get("waves", ["10%", "50%", "100%"]))
        wave = status.get("wave")
        counts = status.get("counts", {})
        revision = f"{status.get('currentRevision', '-')}/{status.get('stableRevision', '-')}"
        rows.append(
            [
                meta["namespace"],
                meta["name"],
                status.get("phase", "Pending"),
                revision,
                "-" if wave is None else f"{wave + 1}/{waves}",
                *(str(counts.get(key, 0)) for key in _COUNTS),
                age(meta.get("creationTimestamp"), now),
            ]
        )
    return rows


def _table(title: str, columns: Sequence[str], rows: list[list[str]], numeric: set[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left")
    for row in rows:
        style = _PHASE_STYLE.get(row[2], "")
        table.add_row(*row[:2], f"[{style}]{row[2]}[/]" if style else row[2], *row[3:])
    return table


def render_conversions(items: Sequence[dict[str, Any]], now: dt.datetime) -> Table:
    metrics = ("MAX ABS", "COSINE", "SPEEDUP")
    columns = ("NAMESPACE", "NAME", "PHASE", "TARGET", *metrics, "REASON", "AGE")
    return _table("ModelConversions", columns, conversion_rows(items, now), set(metrics))


def render_deployments(items: Sequence[dict[str, Any]], now: dt.datetime) -> Table:
    counts = tuple(key.upper().replace("INFLIGHT", "IN FLIGHT") for key in _COUNTS)
    columns = ("NAMESPACE", "NAME", "PHASE", "REV/STABLE", "WAVE", *counts, "AGE")
    return _table("EdgeDeployments", columns, deployment_rows(items, now), set(counts))


@click.command()
@click.option("--namespace", "-n", default=None, help="Only this namespace (default: all).")
@click.option("--kubeconfig", type=click.Path(exists=True), default=None)
def status(namespace: str | None, kubeconfig: str | None) -> None:
    """Show conversions (per-target error, speedup) and deployments (wave, device counts)."""
    from kubernetes import client

    with api_client(kubeconfig) as api:
        objects = client.CustomObjectsApi(api)

        def items(plural: str) -> list[dict[str, Any]]:
            listed = (
                objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
                if namespace
                else objects.list_cluster_custom_object(GROUP, VERSION, plural)
            )
            found: list[dict[str, Any]] = listed["items"]
            return found

        conversions, deployments = items(ModelConversion.PLURAL), items(EdgeDeployment.PLURAL)
    now = dt.datetime.now(dt.UTC)
    console = Console()
    console.print(render_conversions(conversions, now))
    console.print(render_deployments(deployments, now))
