"""A tflite artifact on a real agent through LiteRT (issue 15): converted by onnx2tf and
validated against Paddle Inference at the terminal, its probe written in the artifact's own
terms (NHWC, its signature's names); the agent, asked for no runtime, recognises the TFLite
file, probes it on LiteRT's interpreter and hands the same session to the application.
Needs `.venv-tf` (the conversion) and `ai-edge-litert` (the agent extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from modelfleet.dev.samples import build_cnn_classifier
from modelfleet.device import open_session
from modelfleet.reports import read_probe
from modelfleet.workers.commands import convert_command, validate_command
from support.fleet import Fleet

pytest.importorskip("ai_edge_litert", reason="the agent extra's LiteRT runtime")
pytestmark = pytest.mark.paddle
SLOT = "classifier"


@pytest.fixture(scope="module")
def tflite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model.tflite, probe.npz) of the trained CNN, validated against Paddle Inference."""
    sample = build_cnn_classifier(tmp_path_factory.mktemp("cnn"))
    out = tmp_path_factory.mktemp("tflite")
    runner = CliRunner()
    converted = runner.invoke(
        convert_command,
        [str(sample.model_dir), "--to", "tflite", "--out", str(out), "--remedies", "none"],
    )
    assert converted.exit_code == 0, converted.output
    probe = out / "probe.npz"
    validated = runner.invoke(
        validate_command,
        [
            "--reference", str(sample.model_dir),
            "--candidate", str(out / "model.tflite"),
            "--samples", "4",
            "--no-benchmark",
            "--probe", str(probe),
        ],
    )  # fmt: skip
    assert validated.exit_code == 0, validated.output
    return out / "model.tflite", probe


def test_the_probe_is_in_the_artifacts_terms(tflite: tuple[Path, Path]) -> None:
    arrays, meta = read_probe(tflite[1])
    assert arrays["input:image"].shape == (4, 1, 32, 32, 3)  # samples x NHWC
    assert meta["format"] == "tflite" and meta["inputs"] == ["image"]


def test_an_agent_probes_a_tflite_artifact_through_litert(
    fleet: Fleet, tflite: tuple[Path, Path]
) -> None:
    model, probe = tflite
    artifact = fleet.publish_files("cnn-tflite", model, probe)
    fleet.start_agent("edge-tfl")
    fleet.wait("registration", lambda: fleet.device("edge-tfl"))
    fleet.assign("edge-tfl", SLOT, fleet.assignment(artifact, 1, format="tflite"))

    status = fleet.wait_phase("edge-tfl", SLOT, "Healthy", 1)
    assert status["runtime"]["engine"] == "litert"
    assert status["runtime"]["used"] == ["CPU"] and status["runtime"]["fallback"] is False
    assert status["probe"]["maxAbs"] < 1e-4
    engines = {
        e["name"]: e for e in fleet.device("edge-tfl")["status"]["facts"]["runtime"]["engines"]
    }
    assert engines["litert"]["version"].startswith("2.")

    session = open_session(fleet.current("edge-tfl", SLOT).parent)
    assert session.describe().engine == "litert"
    arrays, _ = read_probe(probe)
    (name,) = [k.removeprefix("output:") for k in arrays if k.startswith("output:")]
    got = session.run({"image": arrays["input:image"][0]})[name]
    np.testing.assert_allclose(got, arrays[f"candidate:{name}"][0], rtol=1e-5, atol=1e-5)
