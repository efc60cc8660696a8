"""`modelfleet plan -f deployment.yaml` (also `kubectl modelfleet plan`): a rollout's preview.

A thin shell around `preview_rollout` (rollout/preview.py): it reads the EdgeDeployment from
the file, and from the cluster the namespace's EdgeDevices, their Leases, the other
EdgeDeployments (slot claims), the deployment itself if it exists (uid, status) and the
ModelConversion it names, exactly as the operator's controller would see them; then it prints
the rows. It only reads: no create, patch or dry-run request leaves it. Every failure is one
line `Reason: message` on stderr and exit code 1.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modelfleet.api.base import GROUP, VERSION
from modelfleet.api.conversion import ModelConversion
from modelfleet.api.deployment import EdgeDeployment
from modelfleet.api.device import EdgeDevice
from modelfleet.conditions import as_utc
from modelfleet.errors import describe
from modelfleet.operator.rollout.preview import Preview, PreviewRow, preview_rollout
from modelfleet.operator.rollout.resolution import conversion_artifact
from modelfleet.operator.rollout.revisions import ResolvedArtifact


class PlanError(Exception):
    """What the user sees: `reason: message`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Planned:
    namespace: str
    conversion: str | None
    preview: Preview


def load_deployments(path: Path) -> list[EdgeDeployment]:
    """The EdgeDeployments in a (multi-document) YAML file, validated against the API models."""
    try:
        text = path.read_text()
    except FileNotFoundError as err:
        raise PlanError("FileNotFound", f"{path}: no such file") from err
    except OSError as err:
        raise PlanError("FileNotFound", f"{path}: {describe(err)}") from err
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise PlanError("InvalidYAML", f"{path}: {' '.join(str(err).split())}") from err
    found = [d for d in documents if isinstance(d, dict) and d.get("kind") == EdgeDeployment.KIND]
    if not found:
        raise PlanError("InvalidSpec", f"{path} holds no EdgeDeployment")
    deployments = []
    for document in found:
        name = (document.get("metadata") or {}).get("name")
        if not name:
            raise PlanError("InvalidSpec", f"{path}: an EdgeDeployment without metadata.name")
        try:
            deployments.append(EdgeDeployment.model_validate(document))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = f"{path}: edgedeployment/{name}: {where}: {first['msg']}"
            raise PlanError("InvalidSpec", message) from err
    return deployments


def plan_deployment(
    api: Any, deployment: EdgeDeployment, namespace: str, now: dt.datetime
) -> Planned:
    """Read what the controller would read (GET and LIST only) and preview the rollout."""
    from kubernetes import client

    from modelfleet.operator.rollout.controller import DeploymentClaim, other_claims
    from modelfleet.operator.rollout.fleet_cache import parse_device

    objects = client.CustomObjectsApi(api)
    name = str(deployment.metadata["name"])
    spec = deployment.spec
    slot = spec.slot or name
    artifact = _artifact(objects, namespace, deployment)
    leases = {
        lease.metadata.name: as_utc(lease.spec.renew_time) if lease.spec.renew_time else None
        for lease in client.CoordinationV1Api(api).list_namespaced_lease(namespace).items
    }
    devices = [
        dataclasses.replace(
            parse_device(body), lease_renew_time=leases.get(body["metadata"]["name"])
        )
        for body in _items(objects, namespace, EdgeDevice.PLURAL)
    ]
    live: EdgeDeployment | None = None
    claims = []
    for item in _items(objects, namespace, EdgeDeployment.PLURAL):
        status = {k: v for k, v in (item.get("status") or {}).items() if k != "kopf"}
        found = EdgeDeployment.model_validate({**item, "status": status or None})
        found_name = item["metadata"]["name"]
        if found_name == name:
            live = found
        else:
            slot_claimed = found.spec.slot or found_name
            claims.append(DeploymentClaim(found_name, slot_claimed, found.spec.selector))
    metadata = live.metadata if live else {}
    generation = int(metadata.get("generation", 0))
    if live is None or live.spec != spec:
        generation += 1  # applying the file makes a new generation
    preview = preview_rollout(
        deployment_name=name,
        deployment_uid=metadata.get("uid"),
        generation=generation,
        spec=spec,
        status=live.status if live else None,
        annotations=metadata.get("annotations") or {},
        artifact=artifact,
        devices=devices,
        other_claims=other_claims(name, slot, devices, claims),
        now=now,
    )
    return Planned(namespace, spec.model.conversion, preview)


def _items(objects: Any, namespace: str, plural: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = objects.list_namespaced_custom_object(
        GROUP, VERSION, namespace, plural
    )["items"]
    return items


def _artifact(objects: Any, namespace: str, deployment: EdgeDeployment) -> ResolvedArtifact:
    """The artifact spec.model names: the conversion's approved one, or the pinned one."""
    from kubernetes.client.exceptions import ApiException

    model = deployment.spec.model
    if model.conversion is None:
        assert model.uri is not None and model.sha256 is not None  # the model's own rule
        return ResolvedArtifact(model.sha256, model.format, model.uri, size_bytes=0)
    try:
        raw = objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, ModelConversion.PLURAL, model.conversion
        )
    except ApiException as err:
        if err.status == 404:
            message = f"ModelConversion {model.conversion} not found in namespace {namespace}"
            raise PlanError("ConversionNotFound", message) from err
        raise
    resolution = conversion_artifact(raw, deployment.spec)
    if resolution.artifact is None:
        raise PlanError(resolution.reason or "WaitingForArtifact", resolution.message)
    return resolution.artifact


def document(planned: Planned) -> dict[str, Any]:
    """One preview as data, for `-o json|yaml`."""
    preview = planned.preview
    return {
        "kind": "RolloutPlan",
        "metadata": {"name": preview.deployment, "namespace": planned.namespace},
        "conversion": planned.conversion,
        "revision": preview.revision,
        "waveSizes": list(preview.wave_sizes),
        "orderKnown": preview.order_known,
        "outcome": preview.outcome,
        "message": preview.message,
        "devices": [_row_document(row) for row in preview.rows],
    }


def _row_document(row: PreviewRow) -> dict[str, Any]:
    artifact = row.artifact
    return {
        "name": row.device,
        "action": row.disposition,
        "wave": row.wave,
        "variant": row.variant,
        "revision": row.revision,
        "artifact": {"format": artifact.format, "sha256": artifact.sha256, "uri": artifact.uri}
        if artifact
        else None,
        "reason": row.reason or None,
        "message": row.message or None,
    }


def render(planned: Planned) -> tuple[str, Table]:
    """A heading that sums the rollout up, and one table row per device."""
    preview = planned.preview
    source = f"ModelConversion {planned.conversion}" if planned.conversion else "a pinned artifact"
    sizes = ", ".join(str(s) for s in preview.wave_sizes)
    heading = (
        f"edgedeployment/{preview.deployment} in {planned.namespace}: revision "
        f"{preview.revision} from {source}; cumulative waves {sizes}; ends {preview.outcome}"
    )
    if not preview.order_known:
        heading += (
            "\n(not created yet: its uid picks the order, so devices may land in other waves "
            "of the same sizes)"
        )
    table = Table(title_justify="left")
    for column in ("WAVE", "DEVICE", "ACTION", "VARIANT", "REVISION", "FORMAT", "SHA256"):
        table.add_column(column)
    table.add_column("REASON")
    table.add_column("MESSAGE")
    for row in preview.rows:
        artifact = row.artifact
        table.add_row(
            str(row.wave) if row.wave is not None else "-",
            row.device,
            row.disposition,
            row.variant or "-",
            str(row.revision) if row.revision is not None else "-",
            artifact.format if artifact else "-",
            artifact.sha256[:12] if artifact else "-",
            row.reason or "-",
            escape(row.message),
        )
    return heading, table


@click.command("plan")
@click.option(
    "--filename",
    "-f",
    "filename",
    required=True,
    type=click.Path(path_type=Path),
    help="A YAML file with one or more EdgeDeployments.",
)
@click.option(
    "--namespace",
    "-n",
    default=None,
    help="Where the deployment would live, unless the file says (default: default).",
)
@click.option("--kubeconfig", default=None, help="Default: $KUBECONFIG, ~/.kube/config.")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
)
def plan(filename: Path, namespace: str | None, kubeconfig: str | None, output: str) -> None:
    """Preview a rollout against the live fleet: devices per wave, artifacts, skipped devices.

    Writes nothing."""
    try:
        planned = _plan_all(filename, namespace, kubeconfig)
    except PlanError as err:
        click.echo(f"{err.reason}: {' '.join(err.message.split())}", err=True)
        sys.exit(1)
    if output in ("json", "yaml"):
        listed = {"apiVersion": "v1", "kind": "List", "items": [document(p) for p in planned]}
        if output == "json":
            click.echo(json.dumps(listed, indent=2))
        else:
            click.echo(yaml.safe_dump(listed, sort_keys=False), nl=False)
        return
    console = Console() if sys.stdout.isatty() else Console(width=100_000)
    for each in planned:
        heading, table = render(each)
        console.print(escape(heading))
        console.print(table)


def _plan_all(filename: Path, namespace: str | None, kubeconfig: str | None) -> list[Planned]:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException

    from modelfleet.kube import api_client

    deployments = load_deployments(filename)
    now = dt.datetime.now(dt.UTC)
    try:
        with api_client(kubeconfig) as api:
            return [
                plan_deployment(api, d, d.metadata.get("namespace") or namespace or "default", now)
                for d in deployments
            ]
    except ApiException as err:
        raise PlanError("ClusterError", f"the API server refused a read: {describe(err)}") from err
    except ValidationError as err:  # an object in the cluster that this version cannot read
        raise PlanError("ClusterError", f"unreadable object: {err.errors()[0]['msg']}") from err
    except (ConfigException, OSError) as err:
        raise PlanError("ClusterUnreachable", describe(err)) from err
    except Exception as err:
        if not type(err).__module__.startswith("urllib3"):
            raise
        cause = getattr(err, "reason", None)  # MaxRetryError: the connection's own error
        found = describe(cause if isinstance(cause, BaseException) else err)
        raise PlanError("ClusterUnreachable", found) from err
