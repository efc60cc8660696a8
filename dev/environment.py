"""The local control plane as one context manager: what `modelfleet dev up` and the test
fixtures start. Everything runs on loopback; nothing outlives the `with` block."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelfleet.dev.components import ensure_storage_secret, run_job_runner, run_operator
from modelfleet.dev.servers import (
    ApiServer,
    S3Server,
    run_apiserver,
    run_controller_manager,
    run_etcd,
    run_minio,
)
from modelfleet.dev.supervision import Supervisor
from modelfleet.kube import api_client, install_crds
from modelfleet.logs import get_logger

log = get_logger(__name__)
DEFAULT_BUCKET = "modelfleet"


@dataclass(frozen=True)
class DevEnvironment:
    run_dir: Path
    apiserver: ApiServer | None
    s3: S3Server | None

    def env(self) -> dict[str, str]:
        """The variables a client needs to reach this environment."""
        return {
            **(self.apiserver.env() if self.apiserver else {}),
            **(self.s3.env() if self.s3 else {}),
        }

    def write_env_file(self, path: Path, extra: dict[str, str] | None = None) -> Path:
        lines = [f"{key}={value}" for key, value in {**self.env(), **(extra or {})}.items()]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path


@contextmanager
def dev_environment(
    run_dir: Path,
    *,
    kubernetes: bool = True,
    object_storage: bool = True,
    modelfleet: bool = False,
    bucket: str = DEFAULT_BUCKET,
    supervisor: Supervisor | None = None,
    audit_groups: tuple[str, ...] = (),
) -> Iterator[DevEnvironment]:
    """Start the servers; with `modelfleet`, also the job runner and the operator. With a
    `supervisor`, each is handed to it once ready (`modelfleet dev up`: restarts on death).
    Requests of users in `audit_groups` go to the apiserver's audit log (`ApiServer.audit_log`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        apiserver = None
        s3 = None
        if object_storage:
            s3 = stack.enter_context(
                run_minio(
                    run_dir,
                    access_key="modelfleet",
                    secret_key=secrets.token_urlsafe(24),
                    bucket=bucket,
                    supervisor=supervisor,
                )
            )
            log.info("minio ready", endpoint=s3.endpoint, bucket=bucket)
        if kubernetes:
            etcd_url = stack.enter_context(run_etcd(run_dir, supervisor))
            apiserver = stack.enter_context(
                run_apiserver(run_dir, etcd_url, supervisor, audit_groups=audit_groups)
            )
            stack.enter_context(run_controller_manager(run_dir, apiserver, supervisor))
            api = stack.enter_context(api_client(apiserver.kubeconfig))
            install_crds(api)
            log.info(
                "kube-apiserver ready", url=apiserver.url, kubeconfig=str(apiserver.kubeconfig)
            )
        environment = DevEnvironment(run_dir=run_dir, apiserver=apiserver, s3=s3)
        if modelfleet:
            if apiserver is None or s3 is None:
                raise ValueError("the operator needs both kubernetes and object storage")
            ensure_storage_secret(api, "default", s3)
            stack.enter_context(run_job_runner(api, run_dir / "jobs", supervisor))
            stack.enter_context(run_operator(run_dir, environment.env(), supervisor))
            log.info("operator and job runner ready")
        yield environment
