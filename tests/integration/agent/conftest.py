"""A small fleet for agent tests: provisioned device identities, real agent processes started
as `python -m modelfleet.agent` with the device's own kubeconfig, artifacts in real MinIO."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from modelfleet.dev.servers import ApiServer
from modelfleet.storage import Storage
from support.fleet import Fleet


@pytest.fixture
def fleet(
    namespace: str,
    kube_client: client.ApiClient,
    kube_apiserver: ApiServer,
    storage: Storage,
    tmp_path: Path,
) -> Iterator[Fleet]:
    fleet = Fleet(namespace, kube_client, kube_apiserver, storage, tmp_path)
    try:
        yield fleet
    finally:
        for agent in fleet.agents:
            agent.stop()
