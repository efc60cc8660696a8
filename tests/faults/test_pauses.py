"""Servers paused (SIGSTOP, then SIGCONT): MinIO during a conversion's upload and during a
device's download, the kube-apiserver while agents hold models. A paused server accepts
connections and answers nothing, the nastiest way to be unavailable."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Callable

import pytest
from faults.builders import AGENTS, Deployment, assert_loadable, healthy_on, no_double_assignment
from kubernetes import client

from modelfleet.api.base import GROUP, VERSION
from modelfleet.dev.samples import SampleModel
from modelfleet.dev.servers import ApiServer, S3Server
from modelfleet.storage import Storage
from support.faults import (
    Breakpoint,
    GatedJobRunner,
    apiserver_pid,
    is_stopped,
    minio_pid,
    paused,
    poll,
    wait_stopped,
)
from support.operator import OperatorHandle, make_conversion_body, wait_for
from support.recorders import JobLog
from support.rollouts import device_name, slot_of

pytestmark = [pytest.mark.faults, pytest.mark.integration]
PAUSE_S = 8.0
VICTIM = device_name(2)
RATE = 1024 * 1024
RELAY_STRATEGY = {"waves": ["100%"], "maxInFlight": "100%", "bakeSeconds": 0}


@pytest.mark.paddle
def test_minio_paused_during_a_conversion_upload(
    faults_namespace: str,
    kube_client: client.ApiClient,
    job_runner: GatedJobRunner,
    operator: OperatorHandle,
    minio_storage: S3Server,
    storage: Storage,
    mlp: SampleModel,
    mlp_uri: str,
    record_property: Callable[[str, object], None],
) -> None:
    """The worker's upload of the converted model waits out the pause; the conversion then
    succeeds with its one Job (no retry), the operator having survived its own stalled reads."""
    record_property("fault", f"MinIO SIGSTOP for {PAUSE_S:.0f} s as the worker uploads model.onnx")
    name = "pause-upload"
    body = make_conversion_body(name, mlp, mlp_uri, targets=[{"format": "onnx", "opset": 16}])
    body["metadata"]["name"] = name
    objects = client.CustomObjectsApi(kube_client)
    batch = client.BatchV1Api(kube_client)
    with JobLog(kube_client, faults_namespace) as jobs:
        job_runner.stop_at = Breakpoint(
            "modelfleet.storage:Storage.put_file", when="args[1].endswith('/model.onnx')"
        )
        objects.create_namespaced_custom_object(
            GROUP, VERSION, faults_namespace, "modelconversions", body
        )
        job = poll("the Job", lambda: jobs.names(f"{name}-"))
        assert isinstance(job, list)
        worker = poll(
            "the worker at its upload", lambda: _stopped(job_runner.worker(job[0])), timeout=120
        )
        assert isinstance(worker, int)
        with paused(minio_pid(minio_storage)):
            os.kill(worker, signal.SIGCONT)
            time.sleep(PAUSE_S)
            assert job_runner.worker(job[0]) == worker, "the worker gave up during the pause"
        done = wait_for(
            lambda: objects.get_namespaced_custom_object(
                GROUP, VERSION, faults_namespace, "modelconversions", name
            ),
            lambda o: (o.get("status") or {}).get("phase") == "Succeeded",
            timeout=180,
            what=f"{name} Succeeded",
        )
    ready = next(c for c in done["status"]["conditions"] if c["type"] == "Ready")
    finished = poll(
        "the Job complete",
        lambda: (j := batch.read_namespaced_job(job[0], faults_namespace).status).succeeded and j,
    )
    record_property(
        "status",
        f"{done['status']['phase']}, Ready {ready['status']} {ready['reason']}; Job "
        f"succeeded={finished.succeeded} failed={finished.failed or 0}",
    )
    assert jobs.names(f"{name}-") == job, jobs.names(f"{name}-")
    assert (finished.succeeded, finished.failed or 0) == (1, 0)
    assert ready["status"] == "True"
    assert operator.process.alive()


def _stopped(pid: int | None) -> int | None:
    return pid if pid is not None and is_stopped(pid) else None


def test_minio_paused_during_a_device_download(
    relay: Deployment,
    minio_storage: S3Server,
    record_property: Callable[[str, object], None],
) -> None:
    """A download request that MinIO leaves unanswered stalls, the device keeps its verified
    model and reports Downloading; after the pause the download finishes and the rollout
    succeeds."""
    record_property("fault", f"MinIO SIGSTOP for {PAUSE_S:.0f} s as a device requests its model")
    fleet = relay.rollouts.fleet
    revision = relay.status()["currentRevision"] + 1
    old = relay.artifact_of(relay.status()["stableRevision"])
    for agent in fleet.agents:
        if agent.name == f"agent-{VICTIM}":
            agent.stop()
    victim = fleet.start_agent(
        VICTIM,
        stop_at=Breakpoint("modelfleet.agent.download:download", when="kwargs.get('size')"),
    )
    artifact = relay.publish("paused", shift=0.3 * revision, padding=RATE)
    part = fleet.data_dir(VICTIM) / "staging" / f"{artifact.sha256}.part"
    with relay.assignments() as log, relay.watch() as disk:
        relay.pin(artifact)
        wait_stopped(victim, what="its download")
        with paused(minio_pid(minio_storage)):
            os.kill(victim.pid, signal.SIGCONT)
            time.sleep(PAUSE_S)
            assert not part.exists() or part.stat().st_size == 0, "bytes from a paused MinIO"
            assert fleet.active_sha(VICTIM, relay.slot) == old.sha256
            during = slot_of(fleet.device(VICTIM), relay.slot)
        relay.settle("Succeeded", revision)
        healthy_on(relay, artifact, AGENTS)
    record_property(
        "status", f"during the pause: {during.get('phase')} {during.get('message', '')}"
    )
    assert during["phase"] == "Downloading", during
    assert disk.broken == [], disk.broken
    no_double_assignment(log, relay)
    assert_loadable(relay)


def test_apiserver_paused_while_agents_hold_models(
    relay: Deployment,
    kube_apiserver: ApiServer,
    kube_client: client.ApiClient,
    operator: OperatorHandle,
    record_property: Callable[[str, object], None],
) -> None:
    """Agents keep serving their verified models through the outage and stay up; afterwards
    every Lease is renewed, the operator is still running, and a new revision rolls out."""
    record_property("fault", f"kube-apiserver SIGSTOP for {PAUSE_S:.0f} s")
    fleet = relay.rollouts.fleet
    namespace = relay.rollouts.namespace
    coordination = client.CoordinationV1Api(kube_client)
    names = [d["metadata"]["name"] for d in relay.devices()]
    before = {name: fleet.active_sha(name, relay.slot) for name in names}
    with relay.watch() as disk:
        with paused(apiserver_pid(kube_apiserver)):
            time.sleep(PAUSE_S)
            resumed = dt.datetime.now(dt.UTC)
            serving = {name: fleet.active_sha(name, relay.slot) for name in before}
        assert serving == before
        latest = {agent.name: agent for agent in fleet.agents}
        assert all(agent.alive() for agent in latest.values()), "an agent died in the outage"

        def renewed() -> bool:
            leases = coordination.list_namespaced_lease(namespace).items
            return len(leases) >= AGENTS and all(
                lease.spec.renew_time > resumed for lease in leases
            )

        poll("every Lease renewed after the pause", renewed, timeout=60)
        revision = relay.status()["currentRevision"] + 1
        artifact = relay.publish("after-outage", shift=0.3 * revision)
        with relay.assignments() as log:
            relay.pin(artifact)
            status = relay.settle("Succeeded", revision)
            healthy_on(relay, artifact, AGENTS)
    record_property("status", f"after: every Lease renewed; next revision {status['phase']}")
    assert disk.broken == [], disk.broken
    no_double_assignment(log, relay)
    assert operator.process.alive()
    assert_loadable(relay)
