"""The operator works with exactly the chart's RBAC, and that RBAC forbids what it must.

The chart's ServiceAccount and (Cluster)Role and binding are created for real, a token for the
account comes from the TokenRequest API, and the operator process runs with a kubeconfig
holding only that token, with the command line and environment of the chart's Deployment
(Secret references resolved, as the kubelet would). The dev job runner stands in for the Job
controller with its own (admin) rights. One small conversion must become Ready and be rolled
out to one EdgeDevice (its spec.models assigned; no agent needed for that); the same
identity is refused Secrets, deleting or creating conversions, device status and Pods; and the
operator's log shows no refused request beyond kopf's optional resource/namespace scanning."""

from __future__ import annotations

import base64
import os
import re
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from unit.chart.rendering import Doc, find, render

from modelfleet.api.base import GROUP, VERSION
from modelfleet.dev.components import STORAGE_SECRET, run_job_runner
from modelfleet.dev.ports import free_port
from modelfleet.dev.processes import ManagedProcess
from modelfleet.dev.samples import SampleModel, build_mlp
from modelfleet.dev.servers import ApiServer, S3Server
from modelfleet.kube import api_client
from modelfleet.kubeconfigs import token_user, write_kubeconfig
from modelfleet.operator.conversion.jobs import CONVERSION_LABEL, STEP_LABEL
from modelfleet.storage import Storage
from support.kubectl import kubectl
from support.operator import PLURAL, make_conversion_body, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.paddle]
IDENTITY_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
# kopf watches CRDs (and, watching namespaces, Namespaces) to notice them appear; without the
# permission it logs the refusal and carries on with what it found at start. The operator can
# turn that scanning off (settings.scanning.disabled); the chart grants neither.
KOPF_SCANNING = ("customresourcedefinitions", '"namespaces"')


RESOURCE = {"apiVersion": f"{GROUP}/{VERSION}"}
ROLLOUT_LABELS = {"fleet": "chart-identity"}
ROLLOUT = {
    **RESOURCE,
    "kind": "EdgeDeployment",
    "metadata": {"name": "mlp-rollout"},
    "spec": {
        "model": {"conversion": "mlp", "format": "onnx"},
        "slot": "main",
        "selector": {"matchLabels": ROLLOUT_LABELS},
        "strategy": {"waves": ["100%"]},
    },
}


REFUSAL = re.compile(r"Forbidden|forbidden|(?<![,.\d])403(?!\d)")
"""A refused request, in kopf's or the kubernetes client's words; never a log timestamp's
milliseconds (`12:00:06,403`)."""


class RefusedInOperatorLogError(AssertionError):
    """The operator's log shows a request the chart's RBAC refused."""


@dataclass(frozen=True)
class ChartIdentity:
    docs: list[Doc]
    kubeconfig: Path
    account: str


@pytest.fixture(
    params=[
        "cluster-wide",
        "watch-namespaces",
    ]
)
def chart_identity(
    request: pytest.FixtureRequest,
    kube_apiserver: ApiServer,
    kube_client: client.ApiClient,
    minio_storage: S3Server,
    conversion_namespace: str,
    tmp_path: Path,
) -> Iterator[ChartIdentity]:
    """The chart installed into the test namespace as far as identity goes (cluster-wide, or
    watching only that namespace), and a kubeconfig with a token for its ServiceAccount."""
    values: Doc = {"storage": {"endpoint": minio_storage.endpoint, "bucket": minio_storage.bucket}}
    if request.param == "watch-namespaces":
        values["watchNamespaces"] = [conversion_namespace]
    docs = render(
        values,
        tmp_path=tmp_path,
        release=f"mf{uuid.uuid4().hex[:6]}",
        namespace=conversion_namespace,
    )
    identity = yaml.safe_dump_all([d for d in docs if d["kind"] in IDENTITY_KINDS])
    kubectl(kube_apiserver, "apply", "--server-side", "-f", "-", stdin=identity)
    try:
        account = find(docs, "ServiceAccount")["metadata"]["name"]
        issued = client.CoreV1Api(kube_client).create_namespaced_service_account_token(
            account,
            conversion_namespace,
            {"spec": {"audiences": [], "expirationSeconds": 3600}},
        )
        kubeconfig = write_kubeconfig(
            tmp_path / "operator.kubeconfig",
            server=kube_apiserver.url,
            ca_cert=kube_apiserver.pki.ca_cert,
            user=token_user(issued.status.token),
            name="modelfleet-operator",
            namespace=conversion_namespace,
        )
        yield ChartIdentity(docs=docs, kubeconfig=kubeconfig, account=account)
    finally:
        kubectl(kube_apiserver, "delete", "--ignore-not-found", "-f", "-", stdin=identity)


@pytest.fixture
def fresh_mlp(storage: Storage, tmp_path: Path) -> tuple[SampleModel, str]:
    """An MLP no other test converted: content addressing would otherwise skip the Jobs."""
    seed = uuid.uuid4().int % 100_000
    sample = build_mlp(tmp_path / "mlp", seed=seed)
    prefix = f"models/chart-identity-{seed}/"
    for path in (sample.model_file, sample.params_file):
        storage.put_file(prefix + path.name, path)
    return sample, storage.uri(prefix)


def operator_container(docs: list[Doc]) -> Doc:
    container: Doc
    (container,) = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def deployment_env(docs: list[Doc], core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    """The operator container's environment as the kubelet would resolve it."""
    container = operator_container(docs)
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        secret = core.read_namespaced_secret(ref["name"], namespace)
        env[item["name"]] = base64.b64decode(secret.data[ref["key"]]).decode()
    return env


def _live(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_as_deployed(docs: list[Doc], env: dict[str, str], log_dir: Path) -> ManagedProcess:
    """The Deployment's command and args, with the liveness endpoint on a free loopback port."""
    container = operator_container(docs)
    port = free_port()
    argv = [*container["command"], *container["args"]]
    liveness = argv.index("--liveness") + 1
    assert argv[liveness] == "http://0.0.0.0:8080/healthz"
    argv[liveness] = f"http://127.0.0.1:{port}/healthz"
    argv[0] = str(Path(sys.executable).with_name(argv[0]))
    inherited = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "PATH", "TMPDIR")}
    process = ManagedProcess(
        "operator", argv, log_path=log_dir / "operator.log", env={**inherited, **env}
    )
    process.wait_until(lambda: _live(f"http://127.0.0.1:{port}/healthz"), timeout=60, what="live")
    return process


def forbidden(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ApiException as err:
        if err.status == 403:
            return True
        raise
    return False


def test_operator_converts_under_the_chart_identity_and_nothing_more(
    chart_identity: ChartIdentity,
    kube_client: client.ApiClient,
    conversion_namespace: str,
    fresh_mlp: tuple[SampleModel, str],
    tmp_path: Path,
) -> None:
    namespace = conversion_namespace
    env = {
        **deployment_env(chart_identity.docs, client.CoreV1Api(kube_client), namespace),
        "KUBECONFIG": str(chart_identity.kubeconfig),
        "MODELFLEET_METRICS_PORT": str(free_port()),  # the chart's 9090 may be taken here
        "MODELFLEET_RESYNC_SECONDS": "2",  # let a few resyncs run under this identity
    }
    assert env["MODELFLEET_STORAGE_SECRET"] == STORAGE_SECRET
    sample, uri = fresh_mlp
    admin = client.CustomObjectsApi(kube_client)

    with run_job_runner(kube_client, tmp_path / "jobs"):
        operator = start_as_deployed(chart_identity.docs, env, tmp_path / "logs")
        try:
            admin.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, make_conversion_body("mlp", sample, uri)
            )
            done = wait_for(
                lambda: admin.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, "mlp"
                ),
                lambda o: (
                    o.get("status", {}).get("observedGeneration") == o["metadata"]["generation"]
                    and any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in o["status"].get("conditions", [])
                    )
                ),
                timeout=300,
                what="mlp Ready under the chart's identity",
            )
            # The rollout side under the same identity: the device index, a status write on
            # the deployment and the assignment patched into the device's spec.
            device = {"metadata": {"name": "dev-1", "labels": ROLLOUT_LABELS}, "spec": {}}
            admin.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "edgedevices",
                {**RESOURCE, "kind": "EdgeDevice", **device},
            )
            admin.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "edgedeployments", ROLLOUT
            )
            assigned = wait_for(
                lambda: admin.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "edgedevices", "dev-1"
                ),
                lambda o: "main" in o["spec"].get("models", {}),
                timeout=60,
                what="dev-1 assigned by the rollout controller",
            )
            rollout = admin.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "edgedeployments", "mlp-rollout"
            )
        finally:
            operator.stop()
    assert done["status"]["phase"] == "Succeeded"
    (artifact,) = done["status"]["artifacts"]
    assert assigned["spec"]["models"]["main"]["sha256"] == artifact["sha256"]
    assert rollout["status"]["observedGeneration"] == rollout["metadata"]["generation"]
    jobs = client.BatchV1Api(kube_client).list_namespaced_job(
        namespace, label_selector=f"{CONVERSION_LABEL}=mlp"
    )
    # One convert-validate Job (nothing cached), created by the operator's identity.
    assert [j.metadata.labels[STEP_LABEL] for j in jobs.items] == ["convert-validate"]

    with api_client(chart_identity.kubeconfig) as api:
        core = client.CoreV1Api(api)
        objects = client.CustomObjectsApi(api)
        assert forbidden(lambda: core.list_namespaced_secret(namespace))
        assert forbidden(lambda: core.read_namespaced_secret(STORAGE_SECRET, namespace))
        assert forbidden(core.list_secret_for_all_namespaces)
        assert forbidden(
            lambda: objects.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, "mlp"
            )
        )
        assert forbidden(
            lambda: objects.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                make_conversion_body("x", sample, uri),
                dry_run="All",
            )
        )
        assert forbidden(
            lambda: objects.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, "edgedevices", "any-device", {"status": {}}
            )
        )
        pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
        assert forbidden(lambda: core.create_namespaced_pod(namespace, pod, dry_run="All"))
        # What it may do, it may do: reading its conversions and their Jobs.
        assert objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "mlp")
        assert client.BatchV1Api(api).list_namespaced_job(namespace).items
    assert admin.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "mlp")

    log = (tmp_path / "logs" / "operator.log").read_text()
    refusals = [
        line
        for line in log.splitlines()
        if REFUSAL.search(line) and not any(k in line for k in KOPF_SCANNING)
    ]
    if refusals:
        raise RefusedInOperatorLogError("\n".join(refusals[:5]))
