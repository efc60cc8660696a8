"""The remedy policy (what is tried, in which order, within which budget) and the loop that
tries it, with plain callables in place of the converter."""

from __future__ import annotations

import json
import math
from itertools import count

import pytest

from modelfleet.api.conversion import Target
from modelfleet.artifacts import artifact_digest
from modelfleet.remedies import (
    REPAIRS,
    Budget,
    Evidence,
    GraphFacts,
    Settings,
    alternatives,
    exclusion_steps,
    remediable,
)
from modelfleet.reports import Report, SourceInfo
from modelfleet.workers.errors import InvalidModel, UnsupportedOperator
from modelfleet.workers.remedies import Outcome, outcome_of_error, run_remedies

VERSIONS = {"paddle2onnx": "2.1.0", "onnx": "1.17.0"}
SRC = "ab" * 32
NAN = Evidence("ToleranceExceeded", "y: 16 NaN in candidate", "validation", nan=True)
REQUESTED = Settings(opset=17)


def failed(evidence: Evidence = NAN, cosine: float | None = None) -> Outcome[str]:
    return Outcome(False, evidence, cosine=cosine, max_abs=None)


def test_settings_are_hashable_and_round_trip_through_json() -> None:
    settings = Settings(17, REPAIRS, ("Conv.0",), ("Resize",), "no-onednn")
    assert len({settings, Settings(17, REPAIRS, ("Conv.0",), ("Resize",), "no-onednn")}) == 1
    wire = json.loads(json.dumps(settings.to_wire()))
    assert Settings.from_wire(wire) == settings
    assert settings.delta(REQUESTED) == {
        "repairs": ["norm-epsilon"],
        "floatNodes": ["Conv.0"],
        "floatOpTypes": ["Resize"],
        "reference": "no-onednn",
    }
    assert Settings(11).describe(REQUESTED) == "opset 11"


def test_requested_settings_come_from_the_target() -> None:
    target = Target.model_validate(
        {"format": "onnx-int8", "opset": 13, "keepFloat": {"nodes": ["Conv.3"], "opTypes": ["Add"]}}
    )
    assert Settings.requested(target) == Settings(13, (), ("Conv.3",), ("Add",))


@pytest.mark.parametrize(
    ("target", "digest"),
    [
        (
            Target(format="onnx"),
            "b32fd73e0b5dd516d3aaf142ae6c155fba15d4744d034d549971d5be93972077",
        ),
        (
            Target(format="onnx-fp16", opset=13),
            "74e4af3d45829f371b490f76a4a8c8bbf184441daa3901a3d91c8a19e3289555",
        ),
    ],
)
def test_digest_is_unchanged_when_no_remedy_ran(target: Target, digest: str) -> None:
    """Recorded before remedies existed: `remedies: auto` and the requested settings keep it."""
    assert artifact_digest(SRC, target, VERSIONS) == digest
    assert artifact_digest(SRC, target, VERSIONS, settings=Settings.requested(target)) == digest
    off = target.model_copy(update={"remedies": "none"})
    assert artifact_digest(SRC, off, VERSIONS) == digest


def test_digest_covers_the_settings_used_and_the_float_sets_asked() -> None:
    target = Target(format="onnx")
    base = artifact_digest(SRC, target, VERSIONS)
    repaired = artifact_digest(SRC, target, VERSIONS, settings=Settings(17, REPAIRS))
    other_opset = artifact_digest(SRC, target, VERSIONS, settings=Settings(11))
    assert len({base, repaired, other_opset}) == 3
    no_onednn = Settings(17, reference="no-onednn")
    assert artifact_digest(SRC, target, VERSIONS, settings=no_onednn) == base  # same file
    assert other_opset == artifact_digest(SRC, Target(format="onnx", opset=11), VERSIONS)
    int8 = Target(format="onnx-int8")
    keep = Target.model_validate({"format": "onnx-int8", "keepFloat": {"nodes": ["Conv.0"]}})
    assert artifact_digest(SRC, int8, VERSIONS) != artifact_digest(SRC, keep, VERSIONS)
    assert artifact_digest(SRC, keep, VERSIONS) == artifact_digest(
        SRC, int8, VERSIONS, settings=Settings(17, (), ("Conv.0",))
    )


def test_fp32_exporter_defect_tries_the_repair_then_other_opsets_then_the_reference() -> None:
    plan = alternatives("onnx", NAN, REQUESTED)
    assert plan[0] == Settings(17, REPAIRS)
    assert [s.opset for s in plan[1:6]] == [13, 11, 18, 16, 15]
    assert plan[-1] == Settings(17, reference="no-onednn")
    assert len(set(plan)) == len(plan) and REQUESTED not in plan
    no_norms = GraphFacts(frozenset({"Conv", "Relu"}), 10)
    assert alternatives("onnx", NAN, REQUESTED, graph=no_norms)[0] == Settings(13)
    crash = Evidence("ConverterCrashed", "paddle2onnx was killed by SIGSEGV", "export")
    assert [s.opset for s in alternatives("onnx", crash, REQUESTED)] == [13, 11, 18, 16, 15]


def test_onnx_source_gets_no_paddle_remedies() -> None:
    assert alternatives("onnx", NAN, REQUESTED, source_format="onnx") == []


def test_unremediable_failures_get_nothing() -> None:
    spec = Evidence("InvalidModel", "inputs[0].name 'image' is not an input", "source")
    unsupported = Evidence("UnsupportedOperator", "cannot convert cumprod", "export")
    assert not remediable(spec) and alternatives("onnx", spec, REQUESTED) == []
    assert not remediable(unsupported)
    too_old = Evidence("UnsupportedOperator", "opset 11 is too old for this model", "export")
    assert [s.opset for s in alternatives("onnx", too_old, Settings(11))] == [13, 18, 16, 15]


def test_a_failing_reference_is_retried_without_onednn() -> None:
    evidence = Evidence("ReferenceFailed", "ConvertPirAttribute2RuntimeAttribute", "reference")
    assert alternatives("onnx", evidence, REQUESTED) == [Settings(17, reference="no-onednn")]


def test_fp16_keeps_the_diverging_node_then_fragile_op_types_in_float() -> None:
    evidence = Evidence(
        "ToleranceExceeded",
        "cosine",
        "validation",
        diverging_node="Resize.0",
        neighbours=("Conv.2",),
    )
    graph = GraphFacts(frozenset({"Conv", "Resize", "LSTM", "Relu"}), 40)
    plan = alternatives("onnx-fp16", evidence, REQUESTED, graph=graph)
    assert plan[0].float_nodes == ("Resize.0", "Conv.2")
    assert plan[1].float_op_types == ("Resize",)
    assert plan[2].float_op_types == ("Resize", "LSTM")
    assert plan[3] == Settings(13)  # no InstanceNormalization: nothing to repair
    rejected = Evidence("InvalidModel", "Resize: Either sizes or scales", "load")
    norms = GraphFacts(frozenset({"Resize", "InstanceNormalization"}), 40)
    plan = alternatives("onnx-fp16", rejected, REQUESTED, graph=norms)
    assert plan[0].float_op_types == ("Resize",)  # wrong numbers are not the trouble here
    assert Settings(17, REPAIRS) not in plan
    wrong = alternatives("onnx-fp16", NAN, REQUESTED, graph=norms)
    assert wrong[0] == Settings(17, REPAIRS) and wrong[1].float_op_types == ("Resize",)


def test_int8_exclusion_grows_in_ranking_order_within_the_float_share() -> None:
    ranking = [f"Conv.{i}" for i in range(10)]
    steps = exclusion_steps(REQUESTED, ranking, GraphFacts(node_count=40), Budget())
    assert [len(s.float_nodes) for s in steps] == [1, 2, 4, 8, 10]
    assert steps[2].float_nodes == tuple(ranking[:4])
    capped = exclusion_steps(REQUESTED, ranking, GraphFacts(node_count=12), Budget())
    assert [len(s.float_nodes) for s in capped] == [1, 2, 3]  # 25% of 12 nodes
    user = Settings(17, (), ("Gemm.0",))
    assert exclusion_steps(user, ranking, GraphFacts(node_count=40), Budget())[0].float_nodes == (
        "Gemm.0",
        "Conv.0",
    )


def _clock() -> object:
    ticks = count()
    return lambda: float(next(ticks))


def test_run_remedies_publishes_the_first_passing_alternative_and_records_the_rest() -> None:
    seen: list[Settings] = []

    def attempt(settings: Settings) -> Outcome[str]:
        seen.append(settings)
        if settings.opset == 11:
            return Outcome(True, max_abs=1e-6, cosine=1.0, result="model-11.onnx")
        if settings.repairs:
            raise InvalidModel("repair: cannot match 1 Paddle norm op(s)")
        return failed(Evidence("ToleranceExceeded", "cosine", "validation"), cosine=0.69)

    result = run_remedies(
        failed(), attempt, None, Budget(), fmt="onnx", requested=REQUESTED, clock=_clock()
    )
    assert [s.describe(REQUESTED) for s in seen] == ["repair norm-epsilon", "opset 13", "opset 11"]
    assert result.applied == Settings(11)
    assert result.outcome is not None and result.outcome.result == "model-11.onnx"
    assert result.status_lines() == [
        "repair norm-epsilon: InvalidModel",
        "opset 13: ToleranceExceeded (cosine 0.690000)",
        "opset 11: passed",
    ]
    section = result.section()
    assert section.trigger.reason == "ToleranceExceeded" and not section.trigger.passed
    assert [t.passed for t in section.tried] == [False, False, True]
    assert section.applied == Settings(11).to_wire() and section.applied_change == "opset 11"
    report = Report(
        format="onnx", digest=None, source=SourceInfo(uri="s3://b/m/", format="paddle"),
        remedies=section, updated_at="now",
    )  # fmt: skip
    assert json.loads(report.to_json())["remedies"]["tried"][1]["settings"]["opset"] == 13


def test_run_remedies_stops_at_the_budget() -> None:
    calls: list[Settings] = []

    def attempt(settings: Settings) -> Outcome[str]:
        calls.append(settings)
        return failed()

    result = run_remedies(
        failed(), attempt, None, Budget(max_attempts=2), fmt="onnx", requested=REQUESTED
    )
    assert len(calls) == 2 and result.budget_spent and result.applied is None
    assert result.section().applied is None
    timed = run_remedies(
        failed(), attempt, None, Budget(max_seconds=3), fmt="onnx", requested=REQUESTED,
        clock=_clock(),
    )  # fmt: skip
    assert timed.budget_spent and len(timed.tried) == 1


def test_run_remedies_does_nothing_when_off_passed_or_unremediable() -> None:
    def attempt(settings: Settings) -> Outcome[str]:
        raise AssertionError("must not be called")

    off = run_remedies(
        failed(), attempt, None, Budget(), fmt="onnx", requested=REQUESTED, mode="none"
    )
    assert off.tried == () and off.applied is None and off.section().mode == "none"
    passed = run_remedies(Outcome(True), attempt, None, Budget(), fmt="onnx", requested=REQUESTED)
    assert passed.applied == REQUESTED
    missing = failed(Evidence("SourceNotFound", "no such key", "source"))
    assert (
        run_remedies(missing, attempt, None, Budget(), fmt="onnx", requested=REQUESTED).tried == ()
    )


def test_int8_tolerance_miss_follows_the_ranking_which_is_asked_once() -> None:
    asked: list[int] = []

    def rank() -> list[str]:
        asked.append(1)
        return ["Conv.4", "Conv.1", "MatMul.0", "Conv.2"]

    def attempt(settings: Settings) -> Outcome[str]:
        ok = len(settings.float_nodes) >= 2
        return Outcome(ok, None if ok else NAN, cosine=0.999 if ok else math.nan)

    miss = failed(Evidence("ToleranceExceeded", "top-1 agreement 0.9", "validation"))
    result = run_remedies(
        miss, attempt, rank, Budget(), fmt="onnx-int8", requested=REQUESTED,
        graph=GraphFacts(node_count=16),
    )  # fmt: skip
    assert asked == [1]
    assert [t.settings.float_nodes for t in result.tried] == [("Conv.4",), ("Conv.4", "Conv.1")]
    section = result.section()
    assert section.kept_float is not None and section.kept_float.nodes == ["Conv.4", "Conv.1"]


def test_a_classified_error_is_the_first_failure() -> None:
    too_old = UnsupportedOperator(["roll"], message="opset 11 is too old for this model: roll")
    first: Outcome[str] = outcome_of_error(too_old, "export")
    assert first.evidence == Evidence("UnsupportedOperator", too_old.message, "export")
    tried = run_remedies(
        first, lambda s: Outcome(s.opset == 18), None, Budget(), fmt="onnx", requested=Settings(11)
    )
    assert [t.settings.opset for t in tried.tried] == [13, 18]
