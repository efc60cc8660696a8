"""The real servers of the local control plane: etcd, kube-apiserver, kube-controller-manager
(garbage collector and namespace controllers only) and MinIO, each on free loopback ports."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelfleet.dev.pki import Pki, create_pki
from modelfleet.dev.ports import free_port
from modelfleet.dev.processes import ManagedProcess
from modelfleet.dev.supervision import Supervisor
from modelfleet.dev.tools import find_tool
from modelfleet.kubeconfigs import client_cert_user, write_kubeconfig

_STARTUP_TIMEOUT = 90.0
_SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass(frozen=True)
class ApiServer:
    url: str
    kubeconfig: Path
    pki: Pki
    audit_log: Path | None = None
    """JSON lines, one per request of the audited groups (`run_apiserver(audit_groups=...)`)."""

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str

    def env(self) -> dict[str, str]:
        """The MODELFLEET_S3_* variables every component reads its storage settings from."""
        return {
            "MODELFLEET_S3_ENDPOINT": self.endpoint,
            "MODELFLEET_S3_ACCESS_KEY": self.access_key,
            "MODELFLEET_S3_SECRET_KEY": self.secret_key,
            "MODELFLEET_S3_BUCKET": self.bucket,
        }


@contextmanager
def run_etcd(run_dir: Path, supervisor: Supervisor | None = None) -> Iterator[str]:
    client_port, peer_port = free_port(), free_port()
    url = f"http://127.0.0.1:{client_port}"
    etcd = ManagedProcess(
        "etcd",
        [
            str(find_tool("etcd")),
            f"--data-dir={run_dir / 'etcd-data'}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",
            "--quota-backend-bytes=8589934592",
            "--log-level=warn",
        ],
        log_path=run_dir / "logs" / "etcd.log",
    )
    try:
        etcd.wait_until(lambda: _http_ok(f"{url}/health"), timeout=_STARTUP_TIMEOUT, what="healthy")
        _supervise(supervisor, etcd)
        yield url
    finally:
        etcd.stop()


def _supervise(supervisor: Supervisor | None, process: ManagedProcess) -> None:
    """Once a server is ready: `modelfleet dev up` restarts it if it dies (supervision.py)."""
    if supervisor is not None:
        supervisor.watch(process)


PROFILING_ENV = "MODELFLEET_APISERVER_PROFILING"
"""Set to 1 to serve /debug/pprof on the dev apiserver (benchmarks: where its CPU goes)."""


def _audit_flags(run_dir: Path, groups: tuple[str, ...]) -> tuple[list[str], Path | None]:
    """Flags that record every request of these user groups (Metadata level: who, which verb,
    which object, the response code), and the log they go to; none without groups."""
    if not groups:
        return [], None
    policy = run_dir / "audit-policy.yaml"
    rules = [{"level": "Metadata", "userGroups": list(groups)}, {"level": "None"}]
    document = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": rules}
    policy.write_text(json.dumps({**document, "omitStages": ["RequestReceived"]}))
    log_path = run_dir / "logs" / "audit.log"
    flags = [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={log_path}",
        "--audit-log-format=json",
        "--audit-log-mode=blocking",
    ]
    return flags, log_path


@contextmanager
def run_apiserver(
    run_dir: Path,
    etcd_url: str,
    supervisor: Supervisor | None = None,
    *,
    audit_groups: tuple[str, ...] = (),
) -> Iterator[ApiServer]:
    """With `audit_groups`, the requests of those user groups go to an audit log (tests that
    must show who wrote what)."""
    pki = create_pki(run_dir / "pki")
    audit, audit_log = _audit_flags(run_dir, audit_groups)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    apiserver = ManagedProcess(
        "kube-apiserver",
        [
            str(find_tool("kube-apiserver")),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={run_dir / 'pki'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-issuer={_SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            f"--profiling={'true' if os.environ.get(PROFILING_ENV) == '1' else 'false'}",
            "--v=1",
            *audit,
        ],
        log_path=run_dir / "logs" / "kube-apiserver.log",
    )
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    kubeconfig = write_kubeconfig(
        run_dir / "kubeconfig",
        server=url,
        ca_cert=pki.ca_cert,
        user=client_cert_user(pki.admin_cert, pki.admin_key),
    )
    try:
        apiserver.wait_until(
            lambda: _http_ok(f"{url}/readyz", context), timeout=_STARTUP_TIMEOUT, what="ready"
        )
        _supervise(supervisor, apiserver)
        yield ApiServer(url=url, kubeconfig=kubeconfig, pki=pki, audit_log=audit_log)
    finally:
        apiserver.stop()


@contextmanager
def run_controller_manager(
    run_dir: Path, apiserver: ApiServer, supervisor: Supervisor | None = None
) -> Iterator[None]:
    """Garbage collection (ownerReferences) and namespace deletion, as a real cluster has."""
    port = free_port()
    manager = ManagedProcess(
        "kube-controller-manager",
        [
            str(find_tool("kube-controller-manager")),
            f"--kubeconfig={apiserver.kubeconfig}",
            f"--authentication-kubeconfig={apiserver.kubeconfig}",
            f"--authorization-kubeconfig={apiserver.kubeconfig}",
            "--controllers=garbage-collector-controller,namespace-controller,"
            "serviceaccount-controller,ttl-after-finished-controller",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--leader-elect=false",
            "--use-service-account-credentials=false",
            "--v=1",
        ],
        log_path=run_dir / "logs" / "kube-controller-manager.log",
    )
    context = ssl._create_unverified_context()  # its serving cert is self-signed at start
    try:
        manager.wait_until(
            lambda: _http_ok(f"https://127.0.0.1:{port}/healthz", context),
            timeout=_STARTUP_TIMEOUT,
            what="healthy",
        )
        _supervise(supervisor, manager)
        yield
    finally:
        manager.stop()


@contextmanager
def run_minio(
    run_dir: Path,
    *,
    access_key: str,
    secret_key: str,
    bucket: str,
    supervisor: Supervisor | None = None,
) -> Iterator[S3Server]:
    from minio import Minio

    port, console_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{port}"
    minio = ManagedProcess(
        "minio",
        [
            str(find_tool("minio")),
            "server",
            str(run_dir / "minio-data"),
            f"--address=127.0.0.1:{port}",
            f"--console-address=127.0.0.1:{console_port}",
            "--quiet",
        ],
        log_path=run_dir / "logs" / "minio.log",
        env={
            "MINIO_ROOT_USER": access_key,
            "MINIO_ROOT_PASSWORD": secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            "HOME": str(run_dir),
            "PATH": "/usr/bin:/bin",
        },
    )
    try:
        minio.wait_until(
            lambda: _http_ok(f"{endpoint}/minio/health/ready"),
            timeout=_STARTUP_TIMEOUT,
            what="ready",
        )
        client = Minio(f"127.0.0.1:{port}", access_key, secret_key, secure=False)
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
        _supervise(supervisor, minio)
        yield S3Server(
            endpoint=endpoint, access_key=access_key, secret_key=secret_key, bucket=bucket
        )
    finally:
        minio.stop()
