"""The device's heartbeat: a `coordination.k8s.io/v1` Lease named after it, as kubelets keep.

`holderIdentity` is the device name, `leaseDurationSeconds` says how long a renewal counts,
and `renewTime` is moved every `interval` seconds - by default a quarter of the duration, like
the kubelet's 10 s of 40 s - from a thread of its own, so a long download never looks like an
outage. The rollout controller counts a device offline when its `renewTime` is older than the
deployment's `deviceTimeoutSeconds` (600 s by default), so the interval sets what liveness
costs the API server (N / interval writes per second at rest: 333/s for 20,000 devices at
60 s), not how soon a dead device is noticed: `deviceTimeoutSeconds` after its last renewal,
so between `deviceTimeoutSeconds - interval` and `deviceTimeoutSeconds` after it died
(docs/scale.md). The interval must stay well under the smallest `deviceTimeoutSeconds`, or a
live device that misses one renewal looks offline.

Renewals are jittered (`renewal_delay`): the first wait after start is drawn from the whole
interval and every later one varies by ±10%, so a fleet that starts together (a site's power
comes back, an agent upgrade) spreads its renewals over the interval instead of sending them
in one burst every interval for ever. Heartbeats never touch the EdgeDevice: status writes
stay one per slot transition.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelfleet.kube import AGENT_FIELD_MANAGER
from modelfleet.logs import get_logger

log = get_logger(__name__)


LEASE_SECONDS = 600
"""The default `leaseDurationSeconds`: the default `deviceTimeoutSeconds`, the time the rollout
controller counts a renewal. Renewed every quarter of it (150 s), the longest interval that
still leaves four renewals per timeout: at 20,000 devices 133 renewals/s, which cost this
project's 2-core apiserver + etcd about 0.8 of a core, against 333/s and about 2 cores at the
earlier 60 s (bench/FINDINGS.md)."""
JITTER = 0.1
"""Each wait varies by this fraction of itself either way."""
MIN_RETRY_SECONDS = 0.5


def renewal_delay(interval: float, *, first: bool, failed: bool, draw: float) -> float:
    """Seconds until the next renewal; `draw` is uniform in [0, 1).

    After a failure: a quarter of the interval (at least `MIN_RETRY_SECONDS`), so a short
    outage does not cost a whole interval of liveness. After the first renewal: anywhere in
    the interval, which spreads agents that started together. Otherwise the interval. Every
    wait but the first varies by ±`JITTER`, so renewals that coincide drift apart.
    """
    if failed:
        return max(MIN_RETRY_SECONDS, interval / 4 * _jittered(draw))
    if first:
        return interval * draw
    return interval * _jittered(draw)


def _jittered(draw: float) -> float:
    return 1.0 - JITTER + 2.0 * JITTER * draw


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
        duration_seconds: int = LEASE_SECONDS,
        interval_seconds: float | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.leases = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.duration_seconds = max(1, int(duration_seconds))
        self.interval = interval_seconds or self.duration_seconds / 4
        self.timeout = max(1.0, self.duration_seconds / 2)
        self.clock = clock
        self.draw = draw

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
                field_manager=AGENT_FIELD_MANAGER,
                _content_type="application/merge-patch+json",
                _request_timeout=self.timeout,
            )
        except ApiException as err:
            if err.status != 404:
                raise
            body = {"metadata": {"name": self.name}, "spec": {**spec, "acquireTime": now}}
            self.leases.create_namespaced_lease(
                self.namespace,
                body,
                field_manager=AGENT_FIELD_MANAGER,
                _request_timeout=self.timeout,
            )
            log.info("lease created", lease=self.name, duration_s=self.duration_seconds)

    def run(self, stop: threading.Event) -> None:
        """Renew until `stop`, waiting `renewal_delay` between attempts."""
        first = True
        while not stop.is_set():
            failed = False
            try:
                self.renew()
            except Exception as err:  # the heartbeat must outlive any server trouble
                failed = True
                status = err.status if isinstance(err, ApiException) else type(err).__name__
                log.warning("lease renewal failed", error=status)
            wait = renewal_delay(self.interval, first=first, failed=failed, draw=self.draw())
            first = first and failed
            stop.wait(wait)
