"""The device's heartbeat: a `coordination.k8s.io/v1` Lease named after it, as kubelets keep.

`holderIdentity` is the device name, `leaseDurationSeconds` says how long a renewal counts
(the controller treats a device whose `renewTime` is older as offline), and `renewTime` is
moved every `interval` seconds - by default a quarter of the duration, like the kubelet's
10 s of 40 s - from a thread of its own, so a long download never looks like an outage.
Heartbeats never touch the EdgeDevice: status writes stay one per slot transition.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.logs import get_logger

log = get_logger(__name__)


def micro_time(moment: datetime) -> str:
    """`metav1.MicroTime`: RFC 3339 with microseconds, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Heartbeat:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        duration_seconds: int = 40,
        interval_seconds: float | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.leases = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.duration_seconds = max(1, int(duration_seconds))
        self.interval = interval_seconds or self.duration_seconds / 4
        self.timeout = max(1.0, self.duration_seconds / 2)
        self.clock = clock

    def renew(self) -> None:
        now = micro_time(self.clock())
        spec = {
            "holderIdentity": self.name,
            "leaseDurationSeconds": self.duration_seconds,
            "renewTime": now,
        }
        try:
            self.leases.patch_namespaced_lease(
                self.name,
                self.namespace,
                {"spec": spec},
                _content_type="application/merge-patch+json",
                _request_timeout=self.timeout,
            )
        except ApiException as err:
            if err.status != 404:
                raise
            body = {"metadata": {"name": self.name}, "spec": {**spec, "acquireTime": now}}
            self.leases.create_namespaced_lease(self.namespace, body, _request_timeout=self.timeout)
            log.info("lease created", lease=self.name, duration_s=self.duration_seconds)

    def run(self, stop: threading.Event) -> None:
        """Renew until `stop`; after a failure, try again at a quarter of the interval."""
        while not stop.is_set():
            wait = self.interval
            try:
                self.renew()
            except Exception as err:  # the heartbeat must outlive any server trouble
                wait = max(0.5, self.interval / 4)
                status = err.status if isinstance(err, ApiException) else type(err).__name__
                log.warning("lease renewal failed", error=status, retry_in_s=wait)
            stop.wait(wait)
