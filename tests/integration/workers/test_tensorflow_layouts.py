"""TensorFlow targets at the terminal: onnx2tf's NHWC artifact is validated through the layout
its manifest records, and a wrong record fails validation instead of passing (issue 15).

The net's input is [1, 4, 4, 4]: NCHW data fed where NHWC is expected keeps its shape, so
only the numbers can catch the mistake. Needs `.venv-tf` (`make tf-venv`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from modelfleet.api.conversion import InputSpec
from modelfleet.artifacts import Manifest
from modelfleet.dev.samples import SampleModel, save_inference_model
from modelfleet.reasons import EXIT_CODES
from modelfleet.reports import Report
from modelfleet.workers.commands import convert_command, validate_command

pytestmark = pytest.mark.paddle


def make_square_cnn(out_dir: Path, seed: int = 0) -> SampleModel:
    """conv+bn+relu → linear on a [1, 4, 4, 4] input: channels equal height and width, so NCHW
    data read as NHWC has the right shape and only the numbers can tell. BatchNorm gets
    statistics from a few training-mode passes over shifted, scaled data (not 0 and 1)."""
    import paddle
    from paddle import nn

    paddle.seed(seed)

    class SquareCnn(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2D(4, 8, 3, padding=1), nn.BatchNorm2D(8), nn.ReLU()
            )
            self.classifier = nn.Linear(8 * 4 * 4, 5)

        def forward(self, image: Any) -> Any:
            return self.classifier(paddle.flatten(self.features(image), 1))

    model = SquareCnn()
    model.train()
    rng = np.random.default_rng(seed)
    with paddle.no_grad():
        for _ in range(20):
            model(paddle.to_tensor(rng.normal(0.3, 2.0, (16, 4, 4, 4)).astype("float32")))
    model.eval()
    spec = InputSpec(name="image", shape=[1, 4, 4, 4], range=[0.0, 1.0])
    return save_inference_model("square-cnn", model, out_dir, [spec], seed)


@pytest.fixture(scope="module")
def square(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return make_square_cnn(tmp_path_factory.mktemp("square"))


@pytest.fixture(scope="module")
def tflite(square: SampleModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tflite")
    result = CliRunner().invoke(
        convert_command,
        [str(square.model_dir), "--to", "tflite", "--out", str(out), "--remedies", "none"],
    )
    assert result.exit_code == 0, result.output
    return out


def _validate(square: SampleModel, candidate: Path, report: Path) -> tuple[int, Report]:
    result = CliRunner().invoke(
        validate_command,
        [
            "--reference", str(square.model_dir),
            "--candidate", str(candidate),
            "--samples", "4",
            "--no-benchmark",
            "--report", str(report),
        ],
    )  # fmt: skip
    return result.exit_code, Report.model_validate_json(report.read_text())


def test_the_manifest_records_the_nhwc_input_and_validation_passes_through_it(
    square: SampleModel, tflite: Path, tmp_path: Path
) -> None:
    manifest = Manifest.model_validate_json((tflite / "manifest.json").read_text())
    assert manifest.format == "tflite" and manifest.file == "model.tflite"
    (image,) = manifest.inputs
    assert (image.name, image.layout, image.shape) == ("image", "NHWC", [1, 4, 4, 4])
    code, report = _validate(square, tflite / "model.tflite", tmp_path / "report.json")
    assert code == 0
    assert report.passed and report.validation is not None
    assert report.validation.candidate_runtime.startswith("ai-edge-litert")
    assert report.validation.max_abs is not None and report.validation.max_abs < 1e-4


def test_a_wrong_layout_record_fails_validation(
    square: SampleModel, tflite: Path, tmp_path: Path
) -> None:
    """The artifact takes NHWC; a manifest claiming NCHW feeds the source's tensor unchanged."""
    lied = tmp_path / "lied"
    lied.mkdir()
    (lied / "model.tflite").write_bytes((tflite / "model.tflite").read_bytes())
    raw = json.loads((tflite / "manifest.json").read_text())
    raw["inputs"][0]["layout"] = "NCHW"
    (lied / "manifest.json").write_text(json.dumps(raw))
    code, report = _validate(square, lied / "model.tflite", tmp_path / "report.json")
    assert code == EXIT_CODES["ToleranceExceeded"]
    assert not report.passed and report.failure is not None
    assert report.failure.reason == "ToleranceExceeded"
