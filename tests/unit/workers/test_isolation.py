"""No crash reaches the user: how a stage child's end and paddle2onnx's log become reasons.

The logs below are paddle2onnx 2.1.0's own words (see /work/shared/FIELD-NOTES.md); the stage
children here run real (cheap) worker functions, so no Paddle is needed."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from modelfleet.operator.conversion.jobs import PERMANENT_EXIT_CODES
from modelfleet.reasons import EXIT_CODES, RETRYABLE_REASONS
from modelfleet.workers.convert import check_isolated, rejected_output
from modelfleet.workers.datasets import TensorInfo
from modelfleet.workers.errors import (
    ConverterCrashed,
    InvalidModel,
    ReferenceFailed,
    UnsupportedOperator,
    classify,
)
from modelfleet.workers.export_failures import export_failure
from modelfleet.workers.isolation import (
    STAGE_MARK,
    crash,
    current_stage,
    how_it_ended,
    output_tail,
    run_stage,
)
from modelfleet.workers.runtimes import OnnxInfo

MODEL = Path("/m/inference.json")
INTERP_LOG = """\
[Paddle2ONNX] Start export pd_op.add, op_id: 10
[Paddle2ONNX] Finish export pd_op.add, op_id: 10
[Paddle2ONNX] Start export pd_op.nearest_interp, op_id: 11
\x1b[0;31m2026-12-02 07:35:52 [ERROR]\tFailed to convert PaddlePaddle model: (Unimplemented) \
the 0th elementwise MUST be ir::FloatAttribute
  [Hint: Expected array_list[0].isa<::pir::FloatAttribute>() == true] (at pir_parser.cc:814)
.\x1b[0m
"""
POOL_LOG = """\
[Paddle2ONNX] Load parameters /m/inference.pdiparams successfully.
[ERROR][Paddle2ONNX] [OP: pd_op.pool2d] Adaptive only support static input shape.
[ERROR][Paddle2ONNX] There are unsupported features.
FatalError: `Process abort signal` is detected by the operating system.
"""
FAILED_AFTER_OP_LOG = """\
[Paddle2ONNX] Start export pd_op.add, op_id: 10
[Paddle2ONNX] Finish export pd_op.add, op_id: 10
[ERROR] Failed to convert PaddlePaddle model: (InvalidArgument) bad graph
"""
SEGV = -int(signal.SIGSEGV)
ABRT = -int(signal.SIGABRT)


class TestExportFailure:
    """What a paddle2onnx child that wrote no model met."""

    def test_a_refused_attribute_names_the_op_and_the_workaround(self) -> None:
        err = export_failure(255, INTERP_LOG, opset=17, model=MODEL)
        assert isinstance(err, UnsupportedOperator) and err.operators == ["nearest_interp"]
        assert err.message.startswith(
            "paddle2onnx cannot convert operator pd_op.nearest_interp: "
            "the 0th elementwise MUST be ir::FloatAttribute. Workaround: "
        )
        assert "size=" in err.message and "\x1b" not in err.message

    def test_an_op_it_names_itself_before_aborting(self) -> None:
        err = export_failure(ABRT, POOL_LOG, opset=17, model=MODEL)
        assert isinstance(err, UnsupportedOperator) and err.operators == ["pool2d"]
        assert "Adaptive only support static input shape" in err.message
        assert "static input shape" in err.message.split("Workaround: ")[1]

    @pytest.mark.parametrize(
        ("returncode", "how"),
        [(SEGV, "was killed by SIGSEGV"), (ABRT, "was killed by SIGABRT"), (None, "did not")],
    )
    def test_a_signal_or_a_hang_is_a_crash(self, returncode: int | None, how: str) -> None:
        text = "[Paddle2ONNX] Start export pd_op.lstm, op_id: 4\n"
        err = export_failure(returncode, text, opset=17, model=MODEL)
        assert isinstance(err, ConverterCrashed) and err.stage == "paddle2onnx"
        assert err.message.startswith(f"paddle2onnx {how}")
        assert "last output: [Paddle2ONNX] Start export pd_op.lstm" in err.message

    def test_an_error_after_every_op_finished_is_the_models(self) -> None:
        err = export_failure(255, FAILED_AFTER_OP_LOG, opset=17, model=MODEL)
        assert type(err) is InvalidModel
        assert "paddle2onnx exited 255 converting inference.json" in err.message

    def test_an_unsupported_operator_is_still_named_from_the_program(self) -> None:
        text = '(%1) = "pd_op.cumprod" ()\n[ERROR] There are 1 unsupported operators: cumprod'
        err = export_failure(ABRT, text, opset=17, model=MODEL, supported={"matmul"})
        assert isinstance(err, UnsupportedOperator) and err.operators == ["cumprod"]

    def test_messages_carry_no_colour_codes_and_no_timestamps(self) -> None:
        text = (
            "\x1b[0;31m2026-12-02 07:35:52 [ERROR]\tFailed to convert PaddlePaddle model: "
            "(InvalidArgument) bad graph\x1b[0m\n"
            "W1202 07:35:52.123456 4242 pir_parser.cc:81] error: bad attribute\n"
        )
        err = export_failure(255, text, opset=17, model=MODEL)
        assert type(err) is InvalidModel
        assert "\x1b" not in err.message and "07:35:52" not in err.message
        assert "[ERROR]\tFailed to convert PaddlePaddle model" in err.message
        assert "error: bad attribute" in err.message
        crashed = export_failure(
            SEGV, "[2026/12/02 07:35:52] \x1b[1mStart\x1b[0m\n", opset=17, model=MODEL
        )
        assert crashed.message.endswith("last output: Start")


class TestRejectedOutput:
    """A transform's result that ONNX Runtime will not load, the fp32 model having loaded."""

    def test_the_node_it_names_is_an_unsupported_operator(self) -> None:
        err = InvalidModel(
            "onnx-fp16 model model.onnx does not load in ONNX Runtime: [ONNXRuntimeError] : 1 : "
            "FAIL : Load model from /w/model.onnx failed:Node (Resize.0) Op (Resize) "
            "[ShapeInferenceError] Either `sizes` or `scales` must be provided, but not both"
        )
        rejected = rejected_output("fp16 conversion", err)
        assert isinstance(rejected, UnsupportedOperator) and rejected.operators == ["Resize"]
        assert rejected.message.startswith(
            "the fp16 conversion cannot handle operator Resize: ONNX Runtime rejects node "
            "Resize.0 of the model it wrote ("
        )
        assert "Either `sizes` or `scales`" in rejected.message

    def test_without_a_node_it_stays_invalid_model(self) -> None:
        err = InvalidModel("onnx-int8 model model.onnx fails onnx.checker: bad")
        assert rejected_output("static quantization", err) is err


class TestChildEnd:
    @pytest.mark.parametrize(
        ("returncode", "want"),
        [
            (SEGV, "was killed by SIGSEGV"),
            (-int(signal.SIGKILL), "was killed by SIGKILL"),
            (3, "exited 3"),
            (None, "did not finish in 30s"),
        ],
    )
    def test_how_it_ended(self, returncode: int | None, want: str) -> None:
        assert how_it_ended(returncode, 30) == want

    def test_the_crash_names_the_last_step_announced(self) -> None:
        log = f"{STAGE_MARK}fp16 conversion\nconverting\n{STAGE_MARK}ONNX Runtime session\n"
        assert current_stage(log, "stage") == "ONNX Runtime session"
        assert current_stage("no marks\n", "stage") == "stage"
        err = crash("stage", SEGV, log, 30)
        assert classify(err).reason == "ConverterCrashed"
        assert err.message == "ONNX Runtime session was killed by SIGSEGV; last output: converting"
        assert crash("x", SEGV, "", 30).message == "x was killed by SIGSEGV; it wrote nothing"

    def test_the_tail_drops_marks_blank_lines_and_import_noise(self) -> None:
        log = "\n".join(
            [
                "/site-packages/paddle/ext.py:712: UserWarning: No ccache found. Please ...",
                "  warnings.warn(warning_message)",
                f"{STAGE_MARK}paddle2onnx",
                "",
                *(f"line {i}" for i in range(8)),
            ]
        )
        assert output_tail(log) == "line 3 | line 4 | line 5 | line 6 | line 7"


class TestRunStage:
    """Real child processes, running cheap worker functions."""

    def test_a_value_comes_back(self, tmp_path: Path) -> None:
        value = run_stage(
            "noop", "modelfleet.workers.isolation:enter_stage", {"name": "x"}, directory=tmp_path
        )
        assert value is None
        assert f"{STAGE_MARK}x" in (tmp_path / "child.log").read_text()

    def test_a_classified_failure_comes_back_as_itself(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidModel, match=r"missing\.onnx was not written") as caught:
            run_stage(
                "check",
                "modelfleet.workers.convert:inspect_in_child",
                {"path": str(tmp_path / "missing.onnx"), "what": "fp16 model"},
                directory=tmp_path / "c",
            )
        assert classify(caught.value).exit_code == EXIT_CODES["InvalidModel"]

    def test_a_model_checked_in_a_child_by_a_relative_path(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import onnx
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(model, str(tmp_path / "m.onnx"))
        monkeypatch.chdir(tmp_path)  # the child runs in `directory`, not here
        info = check_isolated(Path("m.onnx"), what="candidate", directory=Path("check"))
        assert info == OnnxInfo(
            17, [TensorInfo("x", "float32", (1, 4))], [TensorInfo("y", "float32", (1, 4))]
        )

    def test_a_hang_is_killed_and_named(self, tmp_path: Path) -> None:
        with pytest.raises(ConverterCrashed, match=r"^slow step did not finish in 0\.001s"):
            run_stage(
                "slow step",
                "modelfleet.workers.isolation:enter_stage",
                {"name": "x"},
                directory=tmp_path,
                timeout_s=0.001,
            )

    def test_only_worker_functions_run(self, tmp_path: Path) -> None:
        with pytest.raises(ConverterCrashed, match="not a worker module"):
            run_stage("escape", "os:getcwd", {}, directory=tmp_path)


class TestReasons:
    def test_new_reasons_keep_old_codes_and_are_permanent(self) -> None:
        assert EXIT_CODES["ConverterCrashed"] == 15 and EXIT_CODES["ReferenceFailed"] == 16
        assert [EXIT_CODES[r] for r in ("SourceNotFound", "InvalidModel", "StorageError")] == [
            10,
            11,
            14,
        ]
        assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
        for reason in ("ConverterCrashed", "ReferenceFailed"):
            assert reason not in RETRYABLE_REASONS
            assert EXIT_CODES[reason] in PERMANENT_EXIT_CODES  # type: ignore[index]

    def test_exception_classes_carry_them(self) -> None:
        assert (
            classify(ConverterCrashed("fp16 conversion", "was killed by SIGSEGV")).exit_code == 15
        )
        assert classify(ReferenceFailed("oneDNN")).reason == "ReferenceFailed"
