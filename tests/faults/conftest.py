"""The fault matrix's shared world, started once for all its cases (they run sequentially:
`make faults`, marker `faults`): the session's kube-apiserver and MinIO, a job runner with a
gate, one operator that cases kill and restart, one namespace, and a fleet of real agents.
Each case works on its own conversion or deployment slot, so cases do not see each other.

With MODELFLEET_FAULTS_DOC set (as `make faults` does), the run writes the matrix (case, fault,
what was asserted, outcome, seconds) to that file: docs/faults.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults.builders import AGENTS, STRATEGY, Deployment, make_deployment
from faults.matrix import MatrixRow, write_matrix
from kubernetes import client

from modelfleet.dev.components import ensure_storage_secret, start_operator
from modelfleet.dev.samples import SampleModel, build_mlp
from modelfleet.dev.servers import ApiServer, S3Server
from modelfleet.storage import Storage
from support.faults import GatedJobRunner, running
from support.fleet import Fleet
from support.operator import OperatorHandle
from support.rollouts import Rollouts

NAMESPACE = "faults"
_ROWS: list[MatrixRow] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if "/tests/faults/" not in str(item.path):
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _ROWS.append(MatrixRow.of(item, report, call.duration))


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("MODELFLEET_FAULTS_DOC")
    if target and _ROWS:
        write_matrix(Path(target), _ROWS)


@pytest.fixture(scope="session")
def faults_namespace(kube_client: client.ApiClient, minio_storage: S3Server) -> Iterator[str]:
    core = client.CoreV1Api(kube_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    ensure_storage_secret(kube_client, NAMESPACE, minio_storage)
    yield NAMESPACE
    core.delete_namespace(NAMESPACE)


@pytest.fixture(scope="session")
def storage(minio_storage: S3Server) -> Storage:
    return Storage.from_env(minio_storage.env())


@pytest.fixture(scope="session")
def job_runner(
    kube_client: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatedJobRunner]:
    runner = GatedJobRunner(kube_client, tmp_path_factory.mktemp("jobs"))
    with running(runner):
        yield runner


@pytest.fixture(scope="session")
def operator(
    kube_apiserver: ApiServer,
    minio_storage: S3Server,
    job_runner: GatedJobRunner,
    faults_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorHandle]:
    run_dir = tmp_path_factory.mktemp("operator")
    env = {**kube_apiserver.env(), **minio_storage.env(), "MODELFLEET_RESYNC_SECONDS": "3"}
    handle = OperatorHandle(run_dir, env, start_operator(run_dir, env))
    try:
        yield handle
    finally:
        handle.process.stop()


@pytest.fixture(scope="session")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return build_mlp(tmp_path_factory.mktemp("mlp"))


@pytest.fixture(scope="session")
def rollouts(
    operator: OperatorHandle,
    kube_client: client.ApiClient,
    kube_apiserver: ApiServer,
    storage: Storage,
    faults_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Rollouts]:
    """AGENTS real agents on the operator's side of the matrix, online before any case."""
    fleet = Fleet(
        faults_namespace, kube_client, kube_apiserver, storage, tmp_path_factory.mktemp("fleet")
    )
    result = Rollouts(fleet, operator, {})
    for index in range(AGENTS):
        result.start(index)
    coordination = client.CoordinationV1Api(kube_client)
    deadline = time.monotonic() + 90
    while len(coordination.list_namespaced_lease(faults_namespace).items) < AGENTS:
        assert time.monotonic() < deadline, "agents did not come online"
        time.sleep(0.5)
    try:
        yield result
    finally:
        for agent in fleet.agents:
            agent.stop()


@pytest.fixture(scope="session")
def mlp_uri(storage: Storage, mlp: SampleModel) -> str:
    """The MLP's Paddle files in MinIO: the source of every conversion case."""
    prefix = "models/faults-mlp/"
    for path in (mlp.model_file, mlp.params_file):
        assert path is not None
        storage.put_file(prefix + path.name, path)
    return storage.uri(prefix)


@pytest.fixture(scope="module")
def relay(rollouts: Rollouts, request: pytest.FixtureRequest) -> Deployment:
    """The deployment whose revisions a module's cases move (one slot per module, named after
    it), every device on its first revision."""
    name = request.path.stem.removeprefix("test_").replace("_", "-")
    strategy = getattr(request.module, "RELAY_STRATEGY", STRATEGY)
    return make_deployment(rollouts, name, strategy=strategy)
