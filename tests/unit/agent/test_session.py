"""runtime.json in the store and `modelfleet.device.open_session`: the application gets the
session the probe ran on, or an error, never a silently different one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from unit.agent.builders import make_model_file

from modelfleet import engines
from modelfleet.agent.store import Store
from modelfleet.api.device import RuntimeRequest
from modelfleet.device import SessionMismatch, open_session, request_of, runtime_document

SLOT = "detector"
FEEDS = {"x": np.array([[0.5, -1.0, 0.25, 2.0]], dtype=np.float32)}
REQUESTS = [
    RuntimeRequest(),
    RuntimeRequest(providers=["CUDAExecutionProvider", "CPUExecutionProvider"]),
    RuntimeRequest(engine="openvino", devices=["GPU", "CPU"]),
]


def install(tmp_path: Path, request: RuntimeRequest) -> tuple[Store, engines.Session]:
    """What the agent's Install step does with the store, after a passed probe."""
    store = Store(tmp_path / "data")
    staged = tmp_path / "m.onnx"
    sha = make_model_file(staged)
    store.commit(sha, staged)
    session = engines.load(store.object_path(sha), request)
    document = runtime_document(session.describe(), sha256=sha, model=store.model_reference(sha))
    store.write_runtime(SLOT, document)
    store.activate(SLOT, sha)
    return store, session


@pytest.mark.parametrize("request_", REQUESTS, ids=["default", "cuda-then-cpu", "openvino"])
def test_open_session_rebuilds_the_probed_session(tmp_path: Path, request_: RuntimeRequest) -> None:
    store, probed = install(tmp_path, request_)
    opened = open_session(store.slots / SLOT)
    # The same engine, backends, options and names; `requested` is the agent's business.
    assert replace(opened.describe(), requested=()) == replace(probed.describe(), requested=())
    np.testing.assert_array_equal(opened.run(FEEDS)["y"], probed.run(FEEDS)["y"])


def test_runtime_json_says_what_was_asked_and_what_is_used(tmp_path: Path) -> None:
    store, _ = install(tmp_path, REQUESTS[2])
    document = json.loads((store.slots / SLOT / "runtime.json").read_text())
    assert document["engine"] == "openvino" and document["devices"] == ["CPU"]
    assert (document["requested"], document["used"]) == (["GPU", "CPU"], ["CPU"])
    assert document["fallback"] is True
    assert document["options"] == {"INFERENCE_PRECISION_HINT": "f32"}
    assert (document["inputs"], document["outputs"]) == (["x"], ["y"])
    assert (store.slots / SLOT / document["model"]).resolve() == (
        store.slots / SLOT / "current"
    ).resolve()
    assert not list((store.slots / SLOT).glob("*.tmp"))


def test_the_rebuilt_request_keeps_engine_backends_and_options() -> None:
    document = {"engine": "openvino", "devices": ["CPU"], "options": {"A": "b"}, "model": "m"}
    assert request_of(document) == RuntimeRequest(
        engine="openvino", devices=["CPU"], options={"A": "b"}, allow_fallback=True
    )


def test_a_process_on_other_backends_than_the_probe_gets_an_error(tmp_path: Path) -> None:
    store, _ = install(tmp_path, RuntimeRequest())
    path = store.slots / SLOT / "runtime.json"
    document = json.loads(path.read_text())
    document["used"] = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    path.write_text(json.dumps(document))
    with pytest.raises(SessionMismatch, match="the probe ran on CUDAExecutionProvider"):
        open_session(store.slots / SLOT)


def test_an_empty_slot_has_no_session(tmp_path: Path) -> None:
    with pytest.raises(engines.EngineError, match="no revision is active"):
        open_session(tmp_path)


def test_deactivation_removes_runtime_json(tmp_path: Path) -> None:
    store, _ = install(tmp_path, RuntimeRequest())
    store.deactivate(SLOT)
    assert not (store.slots / SLOT).exists()
