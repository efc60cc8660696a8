"""The Helm chart renders what the operator needs and nothing more: exact RBAC, a hardened
operator Pod, the optional pieces only when asked for, and values checked by the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from unit.chart.rendering import (
    CHART,
    ENDPOINT,
    KUBE_VERSION,
    Doc,
    HelmError,
    containers,
    find,
    kinds,
    pod_spec,
    render,
    run_helm,
    with_endpoint,
)

# (apiGroup, resource) -> verbs: everything the operator calls (operator/controller.py, jobs.py,
# deployments.py, handlers.py) plus kopf's Events. Nothing on Secrets: Jobs and the operator's
# own Pod get credentials through secretKeyRef, resolved by the kubelet.
OPERATOR_RULES = {
    ("modelfleet.io", "modelconversions"): {"get", "list", "watch", "patch"},
    ("modelfleet.io", "edgedeployments"): {"get", "list", "watch", "patch"},
    ("modelfleet.io", "modelconversions/status"): {"patch"},
    ("modelfleet.io", "edgedeployments/status"): {"patch"},
    ("modelfleet.io", "edgedevices"): {"get", "list", "watch", "patch"},
    ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
    ("", "pods"): {"list"},
    ("coordination.k8s.io", "leases"): {"list", "watch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "get", "patch"},
}

EVERYTHING_ON = with_endpoint(
    {
        "watchNamespaces": ["team-a", "team-b"],
        "minio": {"enabled": True, "rootUser": "admin", "rootPassword": "password123"},
        "agent": {"enabled": True, "deviceLabels": {"site": "plant-north", "hardware": "jetson"}},
        "serviceMonitor": {"enabled": True},
        "worker": {"jobDefaults": {"resources": {"limits": {"memory": "4Gi"}}}},
    }
)


def rules_table(role: Doc) -> dict[tuple[str, str], set[str]]:
    table: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table.setdefault((group, resource), set()).update(rule["verbs"])
    return table


def env_of(container: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_helm_lint_passes_for_defaults_and_for_everything_on(tmp_path: Path) -> None:
    for values in (with_endpoint(), EVERYTHING_ON):
        out = run_helm(
            ["lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION],
            values=values,
            tmp_path=tmp_path,
        )
        assert "0 chart(s) failed" in out


def test_the_s3_endpoint_is_required_unless_minio_is_bundled(tmp_path: Path) -> None:
    with pytest.raises(HelmError, match=r"storage\.endpoint is required"):
        render({}, tmp_path=tmp_path)
    docs = render({"minio": {"enabled": True}}, tmp_path=tmp_path)
    operator = find(docs, "Deployment", "mf-modelfleet")["spec"]["template"]["spec"]
    endpoint = env_of(operator["containers"][0])["MODELFLEET_S3_ENDPOINT"]
    assert endpoint == "http://mf-modelfleet-minio.modelfleet-system.svc:9000"


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"storage": {"endpoint": ENDPOINT, "bucket": "m", "typo": 1}}, "additional properties"),
        ({"storage": {"endpoint": "minio:9000"}}, "/storage/endpoint"),
        (with_endpoint({"watchNamespaces": ["Team_A"]}), "/watchNamespaces/0"),
        (with_endpoint({"image": {"repository": "op", "tag": "a b"}}), "/image/tag"),
        (with_endpoint({"minio": {"rootPassword": "short"}}), "/minio/rootPassword"),
        (with_endpoint({"agent": {"dataDir": "relative/dir"}}), "/agent/dataDir"),
    ],
)
def test_the_values_schema_rejects_mistakes(tmp_path: Path, values: Doc, complaint: str) -> None:
    with pytest.raises(HelmError, match="values don't meet the specifications") as raised:
        render(values, tmp_path=tmp_path)
    assert complaint in str(raised.value)


def test_defaults_render_the_operator_its_identity_and_a_metrics_service(tmp_path: Path) -> None:
    docs = render(with_endpoint(), tmp_path=tmp_path)
    assert kinds(docs) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    assert all(d["metadata"].get("namespace") in (None, "modelfleet-system") for d in docs)


def test_the_operator_deployment_is_one_recreated_hardened_pod(tmp_path: Path) -> None:
    deployment = find(render(with_endpoint(), tmp_path=tmp_path), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    spec = pod_spec(deployment)
    assert spec["serviceAccountName"] == "mf-modelfleet"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 65532
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (operator,) = spec["containers"]
    assert operator["command"] == ["modelfleet"]
    assert operator["args"] == ["operator", "run", "--liveness", "http://0.0.0.0:8080/healthz"]
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    probe = operator["livenessProbe"]["httpGet"]
    assert (probe["path"], ports[probe["port"]]) == ("/healthz", 8080)
    assert operator["resources"]["requests"] and operator["resources"]["limits"]["memory"]
    assert operator["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    (tmp,) = operator["volumeMounts"]
    assert tmp["mountPath"] == "/tmp"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[tmp["name"]]


def test_the_operator_gets_storage_settings_and_credentials_only_by_reference(
    tmp_path: Path,
) -> None:
    values = with_endpoint(
        {
            "storage": {"endpoint": ENDPOINT, "region": "eu-1", "jobCredentialsSecret": "jobs-s3"},
            "worker": {"image": {"repository": "registry.local/worker", "tag": "1.2.3"}},
        }
    )
    operator = pod_spec(find(render(values, tmp_path=tmp_path), "Deployment"))["containers"][0]
    env = env_of(operator)
    assert env["MODELFLEET_S3_ENDPOINT"] == ENDPOINT
    assert env["MODELFLEET_S3_BUCKET"] == "modelfleet"
    assert env["MODELFLEET_S3_REGION"] == "eu-1"
    for name, key in (
        ("MODELFLEET_S3_ACCESS_KEY", "accessKey"),
        ("MODELFLEET_S3_SECRET_KEY", "secretKey"),
    ):
        assert env[name] == {"secretKeyRef": {"name": "modelfleet-storage", "key": key}}
    assert env["MODELFLEET_STORAGE_SECRET"] == "jobs-s3"
    assert env["MODELFLEET_WORKER_IMAGE"] == "registry.local/worker:1.2.3"
    assert env["MODELFLEET_METRICS_PORT"] == "9090"
    assert "MODELFLEET_NAMESPACES" not in env and "MODELFLEET_JOB_DEFAULTS" not in env


def test_images_default_to_the_chart_app_version(tmp_path: Path) -> None:
    chart_version = (CHART / "Chart.yaml").read_text().split('appVersion: "')[1].split('"')[0]
    docs = render(EVERYTHING_ON, tmp_path=tmp_path)
    operator = pod_spec(find(docs, "Deployment", "mf-modelfleet"))["containers"][0]
    agent = pod_spec(find(docs, "DaemonSet"))["containers"][0]
    assert operator["image"] == f"modelfleet-operator:{chart_version}"
    assert agent["image"] == f"modelfleet-agent:{chart_version}"
    assert env_of(operator)["MODELFLEET_WORKER_IMAGE"] == f"modelfleet-worker:{chart_version}"
    tf_image = env_of(operator)["MODELFLEET_WORKER_TF_IMAGE"]
    assert tf_image == f"modelfleet-worker-tf:{chart_version}"


def test_cluster_wide_rbac_grants_exactly_the_operators_verbs(tmp_path: Path) -> None:
    docs = render(with_endpoint(), tmp_path=tmp_path)
    role = find(docs, "ClusterRole")
    assert rules_table(role) == OPERATOR_RULES
    binding = find(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mf-modelfleet", "namespace": "modelfleet-system"}
    ]


def test_watch_namespaces_get_a_role_each_and_no_cluster_wide_grant(tmp_path: Path) -> None:
    docs = render(with_endpoint({"watchNamespaces": ["team-a", "team-b"]}), tmp_path=tmp_path)
    assert "ClusterRole" not in kinds(docs) and "ClusterRoleBinding" not in kinds(docs)
    roles = [d for d in docs if d["kind"] == "Role"]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for role in roles:
        assert rules_table(role) == OPERATOR_RULES
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == "modelfleet-system"
    operator = pod_spec(find(docs, "Deployment"))["containers"][0]
    assert operator["args"][-4:] == ["--namespace", "team-a", "--namespace", "team-b"]
    assert env_of(operator)["MODELFLEET_NAMESPACES"] == "team-a,team-b"


def test_no_rendered_object_grants_secrets_or_wildcards(tmp_path: Path) -> None:
    for docs in (
        render(with_endpoint(), tmp_path=tmp_path),
        render(EVERYTHING_ON, tmp_path=tmp_path),
    ):
        for role in (d for d in docs if d["kind"] in ("Role", "ClusterRole")):
            for rule in role["rules"]:
                assert "secrets" not in rule["resources"]
                assert "*" not in rule["resources"] + rule["verbs"] + rule["apiGroups"]


def test_every_pod_runs_non_root_with_a_read_only_root_filesystem(tmp_path: Path) -> None:
    docs = render(EVERYTHING_ON, tmp_path=tmp_path)
    workloads = [d for d in docs if d["kind"] in ("Deployment", "DaemonSet")]
    assert len(workloads) == 3
    for workload in workloads:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in containers(spec):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            if container["name"] == "ownership":  # the agent's chown of its hostPath dirs
                assert context["runAsUser"] == 0 and context["capabilities"]["add"] == ["CHOWN"]
            else:
                assert "runAsUser" not in context and "add" not in context["capabilities"]


def test_bundled_minio_brings_storage_credentials_and_a_bucket(tmp_path: Path) -> None:
    docs = render(
        {"minio": {"enabled": True, "rootUser": "admin", "rootPassword": "password123"}},
        tmp_path=tmp_path,
    )
    secret = find(docs, "Secret", "modelfleet-storage")
    assert secret["data"] == {"accessKey": "YWRtaW4=", "secretKey": "cGFzc3dvcmQxMjM="}
    claim = find(docs, "PersistentVolumeClaim")
    for kept in (secret, claim):
        assert kept["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    service = find(docs, "Service", "mf-modelfleet-minio")
    minio = find(docs, "Deployment", "mf-modelfleet-minio")
    assert minio["spec"]["strategy"] == {"type": "Recreate"}
    assert (
        service["spec"]["selector"].items()
        <= minio["spec"]["template"]["metadata"]["labels"].items()
    )
    minio_env = env_of(pod_spec(minio)["containers"][0])
    assert minio_env["MINIO_ROOT_USER"] == {
        "secretKeyRef": {"name": "modelfleet-storage", "key": "accessKey"}
    }
    volumes = {v["name"]: v for v in pod_spec(minio)["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    operator = pod_spec(find(docs, "Deployment", "mf-modelfleet"))
    (init,) = operator["initContainers"]
    assert init["name"] == "ensure-bucket" and "ensure_bucket()" in init["command"][-1]
    assert (
        env_of(init)["MODELFLEET_S3_ENDPOINT"]
        == env_of(operator["containers"][0])["MODELFLEET_S3_ENDPOINT"]
    )


def test_minio_credentials_are_generated_when_not_given(tmp_path: Path) -> None:
    secret = find(render({"minio": {"enabled": True}}, tmp_path=tmp_path), "Secret")
    assert len(secret["data"]["accessKey"]) > 20 and len(secret["data"]["secretKey"]) > 40
    provided = render({"minio": {"enabled": True, "createSecret": False}}, tmp_path=tmp_path)
    assert "Secret" not in kinds(provided)


def test_the_agent_daemonset_runs_each_node_as_its_own_device(tmp_path: Path) -> None:
    docs = render(EVERYTHING_ON, tmp_path=tmp_path)
    daemonset = find(docs, "DaemonSet")
    spec = pod_spec(daemonset)
    assert spec["automountServiceAccountToken"] is False and "serviceAccountName" not in spec
    agent = spec["containers"][0]
    args = agent["args"]
    assert args[:3] == ["agent", "--device-name", "$(NODE_NAME)"]
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags["--data-dir"] == "/var/lib/modelfleet"
    assert flags["--kubeconfig"] == "/etc/modelfleet/kubeconfig"
    assert flags["--namespace"] == "modelfleet-system"
    assert flags["--labels"] == "hardware=jetson,site=plant-north"
    node_name = next(e for e in agent["env"] if e["name"] == "NODE_NAME")
    assert node_name["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["data"]["hostPath"] == {
        "path": "/var/lib/modelfleet",
        "type": "DirectoryOrCreate",
    }
    assert volumes["identity"]["hostPath"] == {"path": "/etc/modelfleet", "type": "Directory"}
    mounts = {m["name"]: m for m in agent["volumeMounts"]}
    assert mounts["identity"]["readOnly"] is True


def test_service_monitor_scrapes_the_metrics_service(tmp_path: Path) -> None:
    docs = render(
        with_endpoint({"serviceMonitor": {"enabled": True, "labels": {"team": "ml"}}}),
        tmp_path=tmp_path,
    )
    monitor = find(docs, "ServiceMonitor")
    service = find(docs, "Service", "mf-modelfleet-metrics")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["team"] == "ml"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["modelfleet-system"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    operator_labels = find(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= operator_labels.items()
    with pytest.raises(HelmError, match=r"serviceMonitor\.enabled needs metrics\.enabled"):
        render(
            with_endpoint({"serviceMonitor": {"enabled": True}, "metrics": {"enabled": False}}),
            tmp_path=tmp_path,
        )


def test_job_defaults_reach_the_operator_as_json(tmp_path: Path) -> None:
    docs = render(EVERYTHING_ON, tmp_path=tmp_path)
    operator = pod_spec(find(docs, "Deployment", "mf-modelfleet"))["containers"][0]
    assert (
        env_of(operator)["MODELFLEET_JOB_DEFAULTS"] == '{"resources":{"limits":{"memory":"4Gi"}}}'
    )


def test_optional_pieces_are_off_by_default(tmp_path: Path) -> None:
    rendered = kinds(render(with_endpoint(), tmp_path=tmp_path))
    for kind in ("DaemonSet", "ServiceMonitor", "PersistentVolumeClaim", "Secret", "Role"):
        assert kind not in rendered
