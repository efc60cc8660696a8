"""The operator's heartbeat table follows device Leases through list + watch."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from modelfleet.operator.rollout.leases import LeaseTable

T0 = dt.datetime(2026, 11, 21, 12, 0, 0, 250000, tzinfo=dt.UTC)


def _lease(name: str, renewed: dt.datetime) -> client.V1Lease:
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1LeaseSpec(holder_identity=name, renew_time=renewed),
    )


def _eventually(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def table(kube_client: client.ApiClient, namespace: str) -> Iterator[LeaseTable]:
    table = LeaseTable(kube_client, (namespace,))
    yield table
    table.stop()


def test_renewals_arrive_through_the_watch_and_deleted_leases_vanish(
    kube_client: client.ApiClient, namespace: str, table: LeaseTable
) -> None:
    leases = client.CoordinationV1Api(kube_client)
    leases.create_namespaced_lease(namespace, _lease("listed", T0))
    assert not table.synced
    table.start()
    _eventually(lambda: table.synced, "the first list")
    assert table.renew_time(namespace, "listed") == T0

    later = T0 + dt.timedelta(seconds=60)
    leases.patch_namespaced_lease("listed", namespace, {"spec": {"renewTime": later}})
    leases.create_namespaced_lease(namespace, _lease("joined", T0))
    _eventually(lambda: table.renew_time(namespace, "listed") == later, "the renewal")
    _eventually(lambda: table.renew_time(namespace, "joined") == T0, "the new lease")

    leases.delete_namespaced_lease("joined", namespace)
    _eventually(lambda: table.renew_time(namespace, "joined") is None, "the deletion")
    assert table.renew_time("elsewhere", "listed") is None
