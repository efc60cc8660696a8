"""Session fixtures: the real local control plane and MinIO, started through modelfleet.dev.

Each pytest-xdist worker starts its own servers on free loopback ports, so workers never share
state; servers start only when a test asks for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from modelfleet.dev.environment import dev_environment
from modelfleet.dev.servers import ApiServer, S3Server
from modelfleet.kube import api_client


@pytest.fixture(scope="session")
def minio_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real MinIO with an empty default bucket."""
    with dev_environment(tmp_path_factory.mktemp("minio"), kubernetes=False) as env:
        assert env.s3 is not None
        yield env.s3


@pytest.fixture(scope="session")
def kube_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A real etcd + kube-apiserver (RBAC on) with the ModelFleet CRDs installed."""
    with dev_environment(tmp_path_factory.mktemp("kube"), object_storage=False) as env:
        assert env.apiserver is not None
        yield env.apiserver


@pytest.fixture(scope="session")
def kube_client(kube_apiserver: ApiServer) -> Iterator[client.ApiClient]:
    with api_client(kube_apiserver.kubeconfig) as api:
        yield api


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
