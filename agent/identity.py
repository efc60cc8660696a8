"""Device identities: credentials that can touch only the device's own EdgeDevice and Lease.

Called by `modelfleet device provision NAME --out KUBECONFIG` (with admin credentials), once per
device; the kubeconfig it writes is all a device needs (no other Kubernetes tooling).

How the confinement works, and why:

- Each device gets a ServiceAccount `modelfleet-device-<name>`, a Role of the same name and a
  RoleBinding. The Role names the device in `resourceNames` for everything that addresses an
  existing object: get/list/watch of its EdgeDevice (list and watch are authorised by name
  only with the field selector `metadata.name=<name>`, which is what the agent sends),
  get/update/patch of `edgedevices/status`, get/update/patch of its Lease. It grants no update
  of the EdgeDevice itself: spec.models belongs to the rollout controller and labels (fleet
  membership) to the administrator once the device has registered.
- RBAC cannot restrict `create` by name (the name is not known at authorisation time). Rather
  than pre-creating every EdgeDevice and Lease here - which would make a deleted EdgeDevice
  unrecoverable by its agent and force the administrator to know the labels up front - the
  Role grants `create` on edgedevices and leases, and one cluster-wide
  ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, GA since Kubernetes 1.30)
  narrows it: a request from any `modelfleet-device-*` ServiceAccount must name the object
  after that account, and an EdgeDevice a device creates must not assign itself models.
  Denials come back as 403 Forbidden, like RBAC's.
- Tokens come from the TokenRequest API (bound, expiring; `token_ttl`). Deleting the
  ServiceAccount revokes every token issued for it.

`provision_device` proves the result before it returns: as the new identity it dry-runs the
creation of its own EdgeDevice (must be allowed) and of a neighbour's (must be refused by the
policy), waiting for the policy and the binding to reach the API server's caches. An identity
that is not confined is never handed out.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.agent.errors import ProvisioningError
from modelfleet.api.base import GROUP, VERSION
from modelfleet.api.device import EdgeDevice
from modelfleet.kube import api_client
from modelfleet.kubeconfigs import token_user, write_kubeconfig
from modelfleet.logs import get_logger

log = get_logger(__name__)

PREFIX = "modelfleet-device-"
POLICY_NAME = "modelfleet-device-identity"
DENIAL = "a device may only create objects named after itself"
MANAGED_BY = {"app.kubernetes.io/managed-by": "modelfleet"}
DEVICE_LABEL = "modelfleet.io/device"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_DEVICE_NAME = 253 - len(PREFIX)


def account_name(device_name: str) -> str:
    """The ServiceAccount, Role and RoleBinding name of a device."""
    return PREFIX + device_name


def check_device_name(device_name: str) -> str:
    if len(device_name) > MAX_DEVICE_NAME or not _DNS_SUBDOMAIN.match(device_name):
        raise ProvisioningError(
            f"device name {device_name[:80]!r} must be a DNS subdomain of at most "
            f"{MAX_DEVICE_NAME} characters"
        )
    return device_name


def provision_device(
    api: client.ApiClient,
    *,
    namespace: str,
    device_name: str,
    server: str,
    ca_cert: Path,
    kubeconfig_path: Path,
    token_ttl: timedelta = timedelta(days=365),
    verify_timeout: float = 30.0,
) -> Path:
    """Create (or update) the device's identity, issue a token, write its kubeconfig."""
    check_device_name(device_name)
    ensure_device_policy(api)
    name = account_name(device_name)
    labels = {**MANAGED_BY, DEVICE_LABEL: device_name}
    metadata = {"name": name, "namespace": namespace, "labels": labels}
    core = client.CoreV1Api(api)
    rbac = client.RbacAuthorizationV1Api(api)
    _create_or_replace(
        lambda: core.create_namespaced_service_account(namespace, {"metadata": metadata}),
        None,
    )
    role = {"metadata": metadata, "rules": device_rules(device_name)}
    _create_or_replace(
        lambda: rbac.create_namespaced_role(namespace, role),
        lambda: rbac.replace_namespaced_role(name, namespace, role),
    )
    binding = {
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    _create_or_replace(
        lambda: rbac.create_namespaced_role_binding(namespace, binding),
        lambda: rbac.replace_namespaced_role_binding(name, namespace, binding),
    )
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=int(token_ttl.total_seconds())
        )
    )
    issued = core.create_namespaced_service_account_token(name, namespace, request)
    write_kubeconfig(
        kubeconfig_path,
        server=server,
        ca_cert=ca_cert,
        user=token_user(issued.status.token),
        name="modelfleet-device",
        namespace=namespace,
    )
    verify_confinement(kubeconfig_path, namespace, device_name, timeout=verify_timeout)
    log.info("device provisioned", namespace=namespace, device=device_name, account=name)
    return kubeconfig_path


def device_rules(device_name: str) -> list[dict[str, Any]]:
    """The device's Role: create is narrowed by the admission policy, the rest by name."""
    only = [device_name]
    return [
        {"apiGroups": [GROUP], "resources": ["edgedevices"], "verbs": ["create"]},
        {
            "apiGroups": [GROUP],
            "resources": ["edgedevices"],
            "resourceNames": only,
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": [GROUP],
            "resources": ["edgedevices/status"],
            "resourceNames": only,
            "verbs": ["get", "update", "patch"],
        },
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": only,
            "verbs": ["get", "update", "patch"],
        },
    ]


def device_policy() -> tuple[dict[str, Any], dict[str, Any]]:
    """The ValidatingAdmissionPolicy and its binding (cluster-scoped, shared by all devices)."""
    account = "'system:serviceaccount:' + request.namespace + ':" + PREFIX + "'"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY_NAME, "labels": MANAGED_BY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": [EdgeDevice.PLURAL],
                    },
                    {
                        "apiGroups": ["coordination.k8s.io"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["leases"],
                    },
                ]
            },
            "matchConditions": [
                {
                    "name": "device-service-account",
                    "expression": "request.userInfo.username.matches("
                    f"'^system:serviceaccount:[^:]+:{PREFIX}')",
                }
            ],
            "validations": [
                {
                    "expression": f"request.userInfo.username == {account} + object.metadata.name",
                    "message": DENIAL,
                    "reason": "Forbidden",
                },
                {
                    "expression": "request.resource.resource != 'edgedevices'"
                    " || request.operation != 'CREATE' || !has(object.spec)"
                    " || !has(object.spec.models) || size(object.spec.models) == 0",
                    "message": "a device cannot assign models to itself",
                    "reason": "Forbidden",
                },
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY_NAME, "labels": MANAGED_BY},
        "spec": {"policyName": POLICY_NAME, "validationActions": ["Deny"]},
    }
    return policy, binding


def ensure_device_policy(api: client.ApiClient) -> None:
    admission = client.AdmissionregistrationV1Api(api)
    policy, binding = device_policy()

    def replace_policy() -> Any:
        existing = admission.read_validating_admission_policy(POLICY_NAME)
        policy["metadata"]["resourceVersion"] = existing.metadata.resource_version
        return admission.replace_validating_admission_policy(POLICY_NAME, policy)

    def replace_binding() -> Any:
        existing = admission.read_validating_admission_policy_binding(POLICY_NAME)
        binding["metadata"]["resourceVersion"] = existing.metadata.resource_version
        return admission.replace_validating_admission_policy_binding(POLICY_NAME, binding)

    _create_or_replace(lambda: admission.create_validating_admission_policy(policy), replace_policy)
    _create_or_replace(
        lambda: admission.create_validating_admission_policy_binding(binding), replace_binding
    )


def verify_confinement(
    kubeconfig: Path, namespace: str, device_name: str, *, timeout: float = 30.0
) -> None:
    """As the device: creating its own EdgeDevice is allowed, a neighbour's is refused."""
    neighbour = device_name[:-1] + ("b" if device_name[-1] == "a" else "a")
    deadline = time.monotonic() + timeout
    own = other = "not tried"
    with api_client(kubeconfig) as device_api:
        objects = client.CustomObjectsApi(device_api)
        while time.monotonic() < deadline:
            own = _dry_run_create(objects, namespace, device_name)
            other = _dry_run_create(objects, namespace, neighbour)
            if own == "allowed" and other == "denied by policy":
                return
            time.sleep(0.25)
    raise ProvisioningError(
        f"the identity of {device_name!r} is not confined after {timeout:.0f}s: creating its "
        f"own EdgeDevice was {own}, creating {neighbour!r} was {other}"
    )


def _dry_run_create(objects: client.CustomObjectsApi, namespace: str, name: str) -> str:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": EdgeDevice.KIND, "metadata": {"name": name}}
    try:
        objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, EdgeDevice.PLURAL, body, dry_run="All"
        )
    except ApiException as err:
        if err.status == 409:
            return "allowed"
        if err.status == 403 and DENIAL in str(err.body or ""):
            return "denied by policy"
        return f"answered HTTP {err.status}"
    return "allowed"


def _create_or_replace(create: Any, replace: Any) -> None:
    try:
        create()
    except ApiException as err:
        if err.status != 409:
            raise
        if replace is not None:
            replace()
