"""`modelfleet status`: ModelConversions and EdgeDeployments in tables, like `kubectl get` but
with the numbers that matter: worst error and speedup per target, wave and device counts.

`-o wide` adds the Ready condition's message (the worker's own words when a Job failed);
`-o json|yaml` prints both kinds as one `List`, as `kubectl get -o json` would. Off a terminal
(a pipe, a file, CI logs) tables are as wide as their content: nothing is cut to 80 columns."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import Any

import click
import yaml
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
    "ArtifactCorrupted": "red",
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


def _ready_message(status: dict[str, Any]) -> str:
    ready: dict[str, Any] = next(
        (c for c in status.get("conditions", []) if c["type"] == "Ready"), {}
    )
    return str(ready.get("message", ""))


def conversion_rows(
    items: Sequence[dict[str, Any]], now: dt.datetime, *, wide: bool = False
) -> list[list[str]]:
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
                    *([_ready_message(status) if first else ""] if wide else []),
                ]
            )
    return rows


def deployment_rows(
    items: Sequence[dict[str, Any]], now: dt.datetime, *, wide: bool = False
) -> list[list[str]]:
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
                *([_ready_message(status)] if wide else []),
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


def render_conversions(
    items: Sequence[dict[str, Any]], now: dt.datetime, *, wide: bool = False
) -> Table:
    metrics = ("MAX ABS", "COSINE", "SPEEDUP")
    columns = ("NAMESPACE", "NAME", "PHASE", "TARGET", *metrics, "REASON", "AGE")
    rows = conversion_rows(items, now, wide=wide)
    return _table("ModelConversions", (*columns, *(_WIDE if wide else ())), rows, set(metrics))


def render_deployments(
    items: Sequence[dict[str, Any]], now: dt.datetime, *, wide: bool = False
) -> Table:
    counts = tuple(key.upper().replace("INFLIGHT", "IN FLIGHT") for key in _COUNTS)
    columns = ("NAMESPACE", "NAME", "PHASE", "REV/STABLE", "WAVE", *counts, "AGE")
    rows = deployment_rows(items, now, wide=wide)
    return _table("EdgeDeployments", (*columns, *(_WIDE if wide else ())), rows, set(counts))


_WIDE = ("MESSAGE",)


def as_list(*groups: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The objects as one `kind: List`, without server bookkeeping nobody reads."""
    items = []
    for item in (item for group in groups for item in group):
        meta = {k: v for k, v in item["metadata"].items() if k != "managedFields"}
        items.append({**item, "metadata": meta})
    return {"apiVersion": "v1", "kind": "List", "items": items}


@click.command()
@click.option("--namespace", "-n", default=None, help="Only this namespace (default: all).")
@click.option("--kubeconfig", type=click.Path(exists=True), default=None)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "wide", "json", "yaml"]),
    default="table",
    show_default=True,
    help="wide adds each Ready message; json and yaml print the objects.",
)
def status(namespace: str | None, kubeconfig: str | None, output: str) -> None:
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
    if output == "json":
        click.echo(json.dumps(as_list(conversions, deployments), indent=2))
        return
    if output == "yaml":
        click.echo(yaml.safe_dump(as_list(conversions, deployments), sort_keys=False), nl=False)
        return
    now = dt.datetime.now(dt.UTC)
    # rich assumes 80 columns off a terminal and would cut cells ("Succee…"): a pipe gets
    # tables as wide as their content instead.
    console = Console() if sys.stdout.isatty() else Console(width=100_000)
    wide = output == "wide"
    console.print(render_conversions(conversions, now, wide=wide))
    console.print(render_deployments(deployments, now, wide=wide))
