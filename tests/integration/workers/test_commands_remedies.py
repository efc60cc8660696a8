"""`modelfleet convert` remedies what it converted wrong, and says so; `--remedies none` leaves
the wrong file, which `modelfleet validate` then refuses naming the layer (real Paddle,
paddle2onnx, ONNX Runtime; the GroupNorm + GELU net of docs/remedies.md)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner

from modelfleet.artifacts import Manifest
from modelfleet.dev.samples import SampleModel
from modelfleet.reasons import EXIT_CODES
from modelfleet.workers.commands import convert_command, validate_command
from support.hostile_models import groupnorm_gelu

pytestmark = pytest.mark.paddle

STRICT = ["--atol", "1e-5", "--rtol", "1e-5"]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return groupnorm_gelu(tmp_path_factory.mktemp("groupnorm"))


def test_convert_prints_and_records_the_remedy(net: SampleModel, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        convert_command, [str(net.model_dir), "--to", "onnx", "--out", str(out), *STRICT]
    )
    print(result.output)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == ["remedied: repair norm-epsilon", "  tried repair norm-epsilon: passed"]
    manifest = Manifest.model_validate_json((out / "manifest.json").read_text())
    assert manifest.settings is not None and manifest.settings["repairs"] == ["norm-epsilon"]
    validated = CliRunner().invoke(
        validate_command,
        ["--reference", str(net.model_dir), "--candidate", str(out / "model.onnx"),
         "--no-benchmark", *STRICT],
    )  # fmt: skip
    assert validated.exit_code == 0, validated.output


def test_without_remedies_validate_names_the_norm(net: SampleModel, tmp_path: Path) -> None:
    out = tmp_path / "out"
    runner = CliRunner()
    converted = runner.invoke(
        convert_command,
        [str(net.model_dir), "--to", "onnx", "--out", str(out), "--remedies", "none"],
    )
    assert converted.exit_code == 0, converted.output
    assert "remedied" not in converted.output
    # one of the epsilons paddle2onnx was seen writing: a denormal one (as likely) is off by
    # only 5e-5, which a layer-wise bound need not name
    model = onnx.load(str(out / "model.onnx"))
    norm = next(n for n in model.graph.node if n.op_type == "InstanceNormalization")
    next(a for a in norm.attribute if a.name == "epsilon").f = -1.0212997428897924e26
    onnx.save(model, str(out / "model.onnx"))
    failed = runner.invoke(
        validate_command,
        ["--reference", str(net.model_dir), "--candidate", str(out / "model.onnx"),
         "--no-benchmark", *STRICT],
    )  # fmt: skip
    print(failed.output)
    assert failed.exit_code == EXIT_CODES["ToleranceExceeded"], failed.output
    [line] = failed.stderr.splitlines()
    assert line.startswith("ToleranceExceeded: onnx differs from the reference: ")
    assert "from pd_op.group_norm #0)" in line
