"""Fixtures for tests against the real servers: a fresh namespace per test; per module, an
operator with the dev job runner and a small real Paddle model uploaded to MinIO."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kubernetes import client

from modelfleet.dev.components import ensure_storage_secret, run_job_runner, start_operator
from modelfleet.dev.ports import free_port
from modelfleet.dev.samples import SampleModel, build_mlp
from modelfleet.dev.servers import ApiServer, S3Server
from modelfleet.storage import Storage
from support.operator import OperatorHandle


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the real servers."""
    for item in items:
        if "/tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@contextmanager
def _fresh_namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def namespace(kube_client: client.ApiClient) -> Iterator[str]:
    with _fresh_namespace(kube_client) as name:
        yield name


@pytest.fixture
def second_namespace(kube_client: client.ApiClient) -> Iterator[str]:
    """For tests that need two namespaces (a namespace-scoped install watching both)."""
    with _fresh_namespace(kube_client) as name:
        yield name


@pytest.fixture(scope="module")
def operator(
    kube_apiserver: ApiServer,
    minio_storage: S3Server,
    kube_client: client.ApiClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorHandle]:
    run_dir = tmp_path_factory.mktemp("operator")
    env = {
        **kube_apiserver.env(),
        **minio_storage.env(),
        "MODELFLEET_RESYNC_SECONDS": "5",
        "MODELFLEET_METRICS_PORT": str(free_port()),
    }
    with run_job_runner(kube_client, run_dir / "jobs"):
        handle = OperatorHandle(run_dir, env, start_operator(run_dir, env))
        try:
            yield handle
        finally:
            handle.process.stop()


@pytest.fixture(scope="module")
def storage(minio_storage: S3Server) -> Storage:
    return Storage.from_env(minio_storage.env())


@pytest.fixture(scope="module")
def mlp_source(
    storage: Storage, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SampleModel, str]:
    """An MLP inference model under s3://<bucket>/models/mlp/."""
    sample = build_mlp(tmp_path_factory.mktemp("mlp"))
    prefix = f"models/mlp-{hashlib.sha256(str(sample.model_dir).encode()).hexdigest()[:8]}/"
    for path in (sample.model_file, sample.params_file):
        storage.put_file(prefix + path.name, path)
    return sample, storage.uri(prefix)


@pytest.fixture
def conversion_namespace(
    namespace: str, kube_client: client.ApiClient, minio_storage: S3Server
) -> str:
    ensure_storage_secret(kube_client, namespace, minio_storage)
    return namespace
