"""`modelfleet status`: ModelConversions (and later EdgeDeployments) in a table, like
`kubectl get` but with the numbers that matter: worst error and speedup per target."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from modelfleet.api.base import GROUP, VERSION
from modelfleet.api.conversion import ModelConversion
from modelfleet.kube import api_client

_PHASE_STYLE = {"Succeeded": "green", "Failed": "red", "AwaitingApproval": "yellow"}


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


def render_conversions(items: Sequence[dict[str, Any]], now: dt.datetime) -> Table:
    table = Table(title="ModelConversions", title_justify="left")
    for column in (
        "NAMESPACE",
        "NAME",
        "PHASE",
        "TARGET",
        "MAX ABS",
        "COSINE",
        "SPEEDUP",
        "REASON",
        "AGE",
    ):
        table.add_column(
            column, justify="right" if column in ("MAX ABS", "COSINE", "SPEEDUP") else "left"
        )
    for row in conversion_rows(items, now):
        style = _PHASE_STYLE.get(row[2], "")
        table.add_row(*row[:2], f"[{style}]{row[2]}[/]" if style else row[2], *row[3:])
    return table


@click.command()
@click.option("--namespace", "-n", default=None, help="Only this namespace (default: all).")
@click.option("--kubeconfig", type=click.Path(exists=True), default=None)
def status(namespace: str | None, kubeconfig: str | None) -> None:
    """Show ModelConversions with their per-target error and speedup."""
    from kubernetes import client

    with api_client(kubeconfig) as api:
        objects = client.CustomObjectsApi(api)
        plural = ModelConversion.PLURAL
        listed = (
            objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
            if namespace
            else objects.list_cluster_custom_object(GROUP, VERSION, plural)
        )
    Console().print(render_conversions(listed["items"], dt.datetime.now(dt.UTC)))
