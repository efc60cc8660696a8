"""Pure pieces the operator and agent share: digest, layout, exit codes, inputs, probe, logs."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from modelfleet.api.conversion import Calibration, InputSpec, Target, Tolerance
from modelfleet.artifacts import ArtifactKeys, artifact_digest, is_artifact_complete, source_digest
from modelfleet.reasons import EXIT_CODES, reason_for_exit_code
from modelfleet.reports import (
    TERMINATION_LIMIT,
    read_probe,
    termination_line,
    write_probe,
    write_termination_log,
)
from modelfleet.workers.benchmark import measure, speedup, summarize
from modelfleet.workers.commands import parse_input_specs
from modelfleet.workers.datasets import (
    TensorInfo,
    check_inputs,
    dataset_samples,
    seeded_sample,
    seeded_samples,
)
from modelfleet.workers.errors import InvalidModel
from modelfleet.workers.sources import check_params_file

VERSIONS = {"paddle2onnx": "2.1.0", "onnx": "1.17.0"}
SRC = "ab" * 32


class TestDigest:
    def test_same_inputs_same_digest(self) -> None:
        assert artifact_digest(SRC, Target(format="onnx"), VERSIONS) == artifact_digest(
            SRC, Target(format="onnx", opset=17), dict(reversed(VERSIONS.items()))
        )

    @pytest.mark.parametrize(
        "other",
        [
            Target(format="onnx", opset=13),
            Target(format="onnx-fp16"),
            Target(format="onnx-int8", quantization="dynamic"),
            Target(format="onnx-int8", calibration=Calibration(uri="s3://bkt/cal.npz")),
        ],
    )
    def test_conversion_options_change_it(self, other: Target) -> None:
        assert artifact_digest(SRC, Target(format="onnx"), VERSIONS) != artifact_digest(
            SRC, other, VERSIONS
        )

    def test_tolerance_and_default_quantization_do_not(self) -> None:
        base = artifact_digest(SRC, Target(format="onnx-int8"), VERSIONS)
        assert base == artifact_digest(
            SRC, Target(format="onnx-int8", quantization="static"), VERSIONS
        )
        assert base == artifact_digest(
            SRC, Target(format="onnx-int8", tolerance=Tolerance(top_k_agreement=0.9)), VERSIONS
        )

    def test_source_and_versions_change_it(self) -> None:
        target = Target(format="onnx")
        assert artifact_digest(SRC, target, VERSIONS) != artifact_digest(
            "cd" * 32, target, VERSIONS
        )
        assert artifact_digest(SRC, target, VERSIONS) != artifact_digest(
            SRC, target, {**VERSIONS, "onnx": "1.18.0"}
        )

    def test_source_digest_is_order_free(self) -> None:
        assert source_digest({"a.json": "1", "a.pdiparams": "2"}) == source_digest(
            {"a.pdiparams": "2", "a.json": "1"}
        )


def test_layout_and_completeness() -> None:
    keys = ArtifactKeys.for_target("d" * 64, "onnx-int8")
    assert keys.model == f"artifacts/{'d' * 64}/onnx-int8/model.onnx"
    assert keys.manifest == f"artifacts/{'d' * 64}/onnx-int8/manifest.json"
    assert keys.report == f"reports/{'d' * 64}/onnx-int8/report.json"
    assert keys.probe == f"reports/{'d' * 64}/onnx-int8/probe.npz"

    class Store:
        def __init__(self, keys: set[str]) -> None:
            self.keys = keys

        def exists(self, key: str, *, bucket: str | None = None) -> bool:
            return key in self.keys

    assert not is_artifact_complete(Store({keys.model}), keys)
    assert is_artifact_complete(Store({keys.model, keys.manifest}), keys)


def test_exit_codes_are_distinct_and_reversible() -> None:
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
    for reason, code in EXIT_CODES.items():
        assert reason_for_exit_code(code) == reason
    assert 0 not in EXIT_CODES.values() and 2 not in EXIT_CODES.values()


SPECS = [
    InputSpec(name="image", shape=[-1, 3, 4, 4], range=[-1.0, 1.0]),
    InputSpec(name="ids", shape=[-1, 5], dtype="int64", range=[2, 4]),
    InputSpec(name="mask", shape=[1, -1], dtype="bool"),
]


def test_seeded_samples_are_reproducible_alone() -> None:
    many = seeded_samples(SPECS, seed=7, count=5, batch_size=3)
    alone = seeded_sample(SPECS, seed=7, index=3, batch_size=3)
    for name in alone:
        np.testing.assert_array_equal(many[3][name], alone[name])
    assert not np.array_equal(many[0]["image"], many[1]["image"])
    assert many[0]["image"].shape == (3, 3, 4, 4) and many[0]["image"].dtype == np.float32
    assert many[0]["image"].min() >= -1 and many[0]["image"].max() <= 1
    assert many[0]["ids"].dtype == np.int64 and set(np.unique(many[0]["ids"])) <= {2, 3, 4}
    assert many[0]["mask"].shape == (1, 1) and many[0]["mask"].dtype == np.bool_


def test_dataset_split_and_errors() -> None:
    data = {"input:x": np.arange(20, dtype=np.float32).reshape(10, 2)}
    spec = [InputSpec(name="x", shape=[-1, 2])]
    samples = dataset_samples(data, spec, batch_size=4)
    assert len(samples) == 2 and samples[1]["x"].shape == (4, 2)
    assert dataset_samples(data, spec, batch_size=1, limit=3)[2]["x"][0, 0] == 4
    with pytest.raises(InvalidModel, match=r"rank 3.*inputs\[0\]\.shape"):
        dataset_samples({"x": np.zeros((2, 2, 2))}, spec, batch_size=1)
    with pytest.raises(InvalidModel, match=r"no array for input 'x'"):
        dataset_samples({"y": np.zeros((2, 2))}, spec, batch_size=1)


def test_input_spec_checked_against_model() -> None:
    model = [TensorInfo("image", "float32", (None, 3, 32, 32))]
    check_inputs([InputSpec(name="image", shape=[-1, 3, 32, 32])], model)
    with pytest.raises(InvalidModel, match=r"inputs\[0\]\.shape \[1, 32, 32\] has rank 3"):
        check_inputs([InputSpec(name="image", shape=[1, 32, 32])], model)
    with pytest.raises(InvalidModel, match=r"inputs\[0\]\.shape\[2\] = 16"):
        check_inputs([InputSpec(name="image", shape=[1, 3, 16, 16])], model)
    with pytest.raises(InvalidModel, match=r"inputs\[0\]\.name 'img'"):
        check_inputs([InputSpec(name="img", shape=[1, 3, 32, 32])], model)


def _tensor(dims: list[int], data: bytes) -> bytes:
    desc = bytes([0x08, 5]) + b"".join(bytes([0x10, d]) for d in dims)  # FP32, small dims
    return struct.pack("<IQIi", 0, 0, 0, len(desc)) + desc + data


def test_params_file_walk(tmp_path: Path) -> None:
    good = tmp_path / "good.pdiparams"
    good.write_bytes(_tensor([2, 3], bytes(24)) + _tensor([4], bytes(16)))
    assert check_params_file(good) == 2
    truncated = tmp_path / "truncated.pdiparams"
    truncated.write_bytes(good.read_bytes()[:-5])
    with pytest.raises(InvalidModel, match=r"truncated\.pdiparams is corrupt: tensor 1"):
        check_params_file(truncated)
    junk = tmp_path / "junk.pdiparams"
    junk.write_bytes(b"\x07" * 64)
    with pytest.raises(InvalidModel, match=r"junk\.pdiparams is corrupt"):
        check_params_file(junk)


def test_probe_round_trip(tmp_path: Path) -> None:
    inputs = [{"x": np.full((1, 2), i, np.float32)} for i in range(3)]
    refs = [[np.full((1, 4), i, np.float32), np.array([i], np.int64)] for i in range(3)]
    write_probe(
        tmp_path / "probe.npz",
        inputs=inputs,
        references=refs,
        candidates=refs,
        output_names=["scores", "label"],
        meta={"format": "onnx"},
    )
    arrays, meta = read_probe(tmp_path / "probe.npz")
    assert set(arrays) == {
        "input:x",
        "output:scores",
        "output:label",
        "candidate:scores",
        "candidate:label",
    }
    assert arrays["input:x"].shape == (3, 1, 2) and arrays["output:label"].dtype == np.int64
    assert meta == {"format": "onnx"}


def test_termination_line_fits_and_tolerates_unwritable(tmp_path: Path) -> None:
    line = termination_line(
        {"ok": False, "reason": "InvalidModel", "message": "x" * 10000, "v": float("inf")}
    )
    assert len(line.encode()) <= TERMINATION_LIMIT + 90 and "\n" not in line
    assert json.loads(line)["v"] == "inf"
    assert not write_termination_log(tmp_path / "missing-dir" / "log", {"ok": True})
    assert write_termination_log(tmp_path / "log", {"ok": True})


def test_latency_summary() -> None:
    summary = summarize([0.001] * 98 + [0.002, 0.010], batch_size=4)
    assert summary.p50_ms == pytest.approx(1.0)
    assert summary.p99_ms > summary.p90_ms >= summary.p50_ms
    assert summary.throughput_per_s == pytest.approx(100 * 4 / 0.11)
    ticks = iter(float(i) for i in range(100))
    measured = measure(
        lambda: None, warmup=2, iterations=3, batch_size=1, clock=lambda: next(ticks)
    )
    assert measured.iterations == 3 and measured.p50_ms == pytest.approx(1000.0)
    assert speedup(summary, summarize([0.0005], 4)) == pytest.approx(2.0)


def test_parse_input_specs() -> None:
    specs = parse_input_specs("image:-1x3x32x32:float32:0,1; mask:1x8:bool")
    assert specs[0].shape == [-1, 3, 32, 32] and specs[0].range == [0.0, 1.0]
    assert specs[1].dtype == "bool" and specs[1].range is None
