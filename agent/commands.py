"""`modelfleet agent` (runs on the device) and `modelfleet device provision` (run by an admin).

Only click is imported at module level: the Kubernetes client, NumPy and ONNX Runtime load when
a command runs, so `modelfleet --help` stays fast.
"""

from __future__ import annotations

import dataclasses
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def parse_labels(text: str | None) -> dict[str, str]:
    """`site=berlin,hardware=jetson` → {"site": "berlin", "hardware": "jetson"}."""
    labels: dict[str, str] = {}
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--labels")
        labels[key.strip()] = value.strip()
    return labels


def resolve_namespace(namespace: str | None, kubeconfig: Path | None) -> str:
    """--namespace, else the kubeconfig context's, else the in-cluster one, else `default`."""
    if namespace:
        return namespace
    from kubernetes import config

    try:
        _, context = config.list_kube_config_contexts(
            config_file=str(kubeconfig) if kubeconfig else None
        )
        found = (context or {}).get("context", {}).get("namespace")
        if found:
            return str(found)
    except (config.ConfigException, OSError):
        pass
    if IN_CLUSTER_NAMESPACE.is_file():
        return IN_CLUSTER_NAMESPACE.read_text().strip()
    return "default"


@click.command("agent")
@click.option("--device-name", required=True, help="This device's EdgeDevice and Lease name.")
@click.option(
    "--data-dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Where models are stored; `slots/<slot>/current` is the active model.",
)
@click.option("--labels", help="Labels set when the device registers: k=v,k=v.")
@click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--namespace", help="Default: the kubeconfig context's, or the in-cluster one.")
@click.option(
    "--lease-duration-seconds",
    type=click.IntRange(min=1),
    default=600,  # heartbeats.LEASE_SECONDS; that module is not imported before a command runs
    show_default=True,
    help="Renewed every quarter of it. A device counts offline deviceTimeoutSeconds (600 s by "
    "default) after its last renewal, whatever the interval; keep the interval at most a "
    "quarter of the smallest deviceTimeoutSeconds. Each renewal costs the apiserver and etcd "
    "about 6 ms of CPU (bench/FINDINGS.md).",
)
@click.option(
    "--heartbeat-seconds",
    type=click.FloatRange(min=0.1),
    help="Lease renewal interval [default: a quarter of the lease duration].",
)
@click.option(
    "--resync-seconds",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Re-list the EdgeDevice and re-check every slot at least this often.",
)
@click.option("--facts-seconds", type=click.FloatRange(min=1), default=300.0, show_default=True)
@click.option("--download-attempts", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--retry-seconds",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="First delay before a failed download is tried again (doubles, up to 10 minutes).",
)
@click.option(
    "--max-download-rate",
    type=click.IntRange(min=1),
    help="Bytes per second, for metered or shared links.",
)
@click.option(
    "--progress-grace-seconds",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Report Downloading only if activation takes longer than this; 0: at once.",
)
@click.option(
    "--download-timeout-seconds",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Socket timeout per connect and read of a download; a stalled server is retried.",
)
@click.option(
    "--on-activate",
    "on_activate",
    help="Command run after a slot switches model (split like a shell, run without one; "
    "MODELFLEET_SLOT, _SLOT_DIR, _MODEL, _RUNTIME, _REVISION, _SHA256 in its environment). "
    "A non-zero exit or timeout rolls the slot back and fails it with ActivationFailed.",
)
@click.option(
    "--on-activate-timeout-seconds",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
)
@click.option(
    "--report-every-phase",
    is_flag=True,
    help="Also report Verifying and Activating (two more status writes per rollout).",
)
def agent_command(
    device_name: str,
    data_dir: Path,
    labels: str | None,
    kubeconfig: Path | None,
    namespace: str | None,
    lease_duration_seconds: int,
    heartbeat_seconds: float | None,
    resync_seconds: float,
    facts_seconds: float,
    download_attempts: int,
    retry_seconds: float,
    max_download_rate: int | None,
    progress_grace_seconds: float,
    download_timeout_seconds: float,
    on_activate: str | None,
    on_activate_timeout_seconds: float,
    report_every_phase: bool,
) -> None:
    """Run the device agent: keep this device's models as its EdgeDevice says."""
    from modelfleet.agent.activation import ActivationHook
    from modelfleet.agent.download import RetryPolicy
    from modelfleet.agent.reconcile import ASSIGNMENT_BACKOFF
    from modelfleet.agent.runner import Agent, AgentSettings
    from modelfleet.kube import api_client
    from modelfleet.logs import configure_logging, get_logger

    configure_logging()
    hook = None
    if on_activate is not None:
        try:
            hook = ActivationHook.parse(on_activate, timeout_seconds=on_activate_timeout_seconds)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--on-activate") from None
    settings = AgentSettings(
        device_name=device_name,
        namespace=resolve_namespace(namespace, kubeconfig),
        data_dir=data_dir.resolve(),
        labels=parse_labels(labels),
        lease_duration_seconds=lease_duration_seconds,
        heartbeat_seconds=heartbeat_seconds,
        resync_seconds=resync_seconds,
        facts_seconds=facts_seconds,
        retry=RetryPolicy(attempts=download_attempts, timeout=download_timeout_seconds),
        assignment_backoff=dataclasses.replace(ASSIGNMENT_BACKOFF, initial=retry_seconds),
        max_download_rate=max_download_rate,
        report_every_phase=report_every_phase,
        progress_grace_seconds=progress_grace_seconds,
        on_activate=hook,
    )
    with api_client(kubeconfig) as api:
        agent = Agent(api, settings)

        def stop(signum: int, _frame: Any) -> None:
            agent.shutdown()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        get_logger(__name__).info(
            "agent starting",
            device=device_name,
            namespace=settings.namespace,
            data_dir=str(settings.data_dir),
        )
        agent.run()


@click.group("device")
def device_command() -> None:
    """Manage device identities."""


@device_command.command("provision")
@click.argument("name")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the device's kubeconfig (mode 0600).",
)
@click.option("--namespace", help="Default: the admin kubeconfig context's namespace.")
@click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--server", help="API server URL as the device reaches it [default: the admin's].")
@click.option(
    "--ca-cert",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="CA bundle of the API server [default: the admin kubeconfig's].",
)
@click.option("--token-days", type=click.IntRange(min=1), default=365, show_default=True)
def provision_command(
    name: str,
    out: Path,
    namespace: str | None,
    kubeconfig: Path | None,
    server: str | None,
    ca_cert: Path | None,
    token_days: int,
) -> None:
    """Create device NAME's identity (ServiceAccount, Role, RoleBinding, token)."""
    from modelfleet.agent.errors import ProvisioningError
    from modelfleet.agent.identity import provision_device
    from modelfleet.kube import api_client

    with api_client(kubeconfig) as api:
        ca = ca_cert or (
            Path(api.configuration.ssl_ca_cert) if api.configuration.ssl_ca_cert else None
        )
        if ca is None:
            raise click.UsageError("the admin kubeconfig has no CA certificate: pass --ca-cert")
        try:
            path = provision_device(
                api,
                namespace=resolve_namespace(namespace, kubeconfig),
                device_name=name,
                server=server or str(api.configuration.host),
                ca_cert=ca,
                kubeconfig_path=out,
                token_ttl=timedelta(days=token_days),
            )
        except ProvisioningError as err:
            raise click.ClickException(str(err)) from err
    click.echo(f"device {name}: kubeconfig written to {path}")
