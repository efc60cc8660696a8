"""What the rollout planner reads of the fleet: EdgeDevices, EdgeDeployments and Leases, each
from one list-and-watch (`modelfleet.informers`), not from kopf's indexes.

kopf's indexes made the operator's start-up grow quadratically with EdgeDevices (7 s at 1,000,
140-165 s at 5,000; bench/FINDINGS.md) and nothing was planned meanwhile. Here start-up is one
paginated LIST per resource, and planning starts as soon as all three LISTs are in (`synced`).
Devices are parsed into DeviceViews once per resourceVersion on the watch thread; a planning
pass only joins them with the Leases' renewTimes.

`on_device` / `on_deployment` run on the watch threads with the deployments a change concerns:
for a device, the deployments whose selector picks it (before or after the change) or whose
assignment it holds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client

from modelfleet.api.base import GROUP, VERSION, LabelSelector
from modelfleet.api.deployment import EdgeDeployment
from modelfleet.api.device import EdgeDevice
from modelfleet.informers import Informer, Key, Resource
from modelfleet.operator.rollout.controller import DeploymentClaim
from modelfleet.operator.rollout.fleet import DeviceView
from modelfleet.operator.rollout.leases import LeaseTable
from modelfleet.operator.rollout.ordering import selector_matches

DEVICES = Resource(GROUP, VERSION, EdgeDevice.PLURAL)
DEPLOYMENTS = Resource(GROUP, VERSION, EdgeDeployment.PLURAL)
Notify = Callable[[str, str], None]
"""(namespace, deployment name): this deployment should be planned again."""


def parse_device(body: dict[str, Any]) -> DeviceView:
    """The DeviceView without its Lease (joined per pass); ValueError if it does not validate."""
    try:
        device = EdgeDevice.model_validate(body)
    except Exception as err:  # pydantic's ValidationError is a ValueError; keep the contract
        raise ValueError(str(err)) from err
    return DeviceView.of(device, lease_renew_time=None)


def parse_deployment(body: dict[str, Any]) -> DeploymentClaim:
    meta, spec = body["metadata"], body.get("spec") or {}
    selector = LabelSelector.model_validate(spec.get("selector") or {})
    return DeploymentClaim(
        name=meta["name"], slot=spec.get("slot") or meta["name"], selector=selector
    )


def concerned(
    claims: Mapping[str, DeploymentClaim], old: DeviceView | None, new: DeviceView | None
) -> set[str]:
    """Deployments a device change concerns: their selector picks the device before or after
    the change, or the device holds one of their assignments."""
    names: set[str] = set()
    for view in (old, new):
        if view is None:
            continue
        names.update(a.deployment for a in view.models.values() if a.deployment)
        names.update(n for n, c in claims.items() if selector_matches(c.selector, view.labels))
    return names


@dataclasses.dataclass
class WithLeases:
    """DeviceViews joined with their Lease's renewTime; a join is redone only when the parsed
    view or the renewTime changed (a fresh copy of each of 20,000 views per pass is ~0.1 s)."""

    _joined: dict[Key, DeviceView] = dataclasses.field(default_factory=dict)
    _bases: dict[Key, DeviceView] = dataclasses.field(default_factory=dict)

    def join(
        self,
        namespace: str,
        views: Mapping[str, DeviceView],
        renew_time: Callable[[str, str], dt.datetime | None],
    ) -> list[DeviceView]:
        joined: list[DeviceView] = []
        for name, base in views.items():
            key = (namespace, name)
            lease = renew_time(namespace, name)
            view = self._joined.get(key)
            if view is None or self._bases.get(key) is not base or view.lease_renew_time != lease:
                view = dataclasses.replace(base, lease_renew_time=lease)
                self._joined[key], self._bases[key] = view, base
            joined.append(view)
        for key in [k for k in self._joined if k[0] == namespace and k[1] not in views]:
            del self._joined[key], self._bases[key]
        return joined


class FleetCache:
    def __init__(
        self,
        api: client.ApiClient,
        namespaces: tuple[str, ...],
        *,
        on_device: Notify,
        on_deployment: Callable[[str, str, DeploymentClaim | None], None],
    ) -> None:
        """`namespaces` empty: cluster-wide. `on_deployment(namespace, name, claim)`: claim
        None when the deployment is gone."""
        self._on_device = on_device
        self.devices = Informer(
            api, DEVICES, parse_device, namespaces=namespaces, on_change=self._device_changed
        )
        self.deployments = Informer(
            api,
            DEPLOYMENTS,
            parse_deployment,
            namespaces=namespaces,
            on_change=lambda key, _, new: on_deployment(key[0], key[1], new),
        )
        self.leases = LeaseTable(api, namespaces)
        self._with_leases = WithLeases()
        self.started_at = float("nan")
        """time.monotonic() of `start`: the LISTs began then."""

    @property
    def synced(self) -> bool:
        """Every LIST is in: devices, deployments and leases are complete."""
        return self.devices.synced and self.deployments.synced and self.leases.synced

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.leases.start()
        self.deployments.start()
        self.devices.start()

    def stop(self) -> None:
        self.devices.stop()
        self.deployments.stop()
        self.leases.stop()

    def device_views(self, namespace: str) -> list[DeviceView]:
        return self._with_leases.join(
            namespace, self.devices.in_namespace(namespace), self.leases.renew_time
        )

    def claims(self, namespace: str) -> list[DeploymentClaim]:
        return list(self.deployments.in_namespace(namespace).values())

    def deployment_keys(self) -> list[Key]:
        return sorted(self.deployments.items())

    def _device_changed(self, key: Key, old: DeviceView | None, new: DeviceView | None) -> None:
        if not self.synced:
            return  # the first LIST is not planned on device by device: see the operator's start
        namespace = key[0]
        for name in concerned(self.deployments.in_namespace(namespace), old, new):
            self._on_device(namespace, name)
