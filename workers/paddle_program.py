"""A Paddle inference program's intermediate tensors under paddle2onnx's names.

paddle2onnx names the tensor an op's k-th result becomes `p2o.pd_op.<op>.<n>.<k>`, where the
op is the n-th of its type in program order (`p2o.pd_op.group_norm.0.0`, `p2o.pd_op.
batch_norm_.1.0`; in-place variants keep their trailing underscore). `program_values`
rebuilds these names from `program.global_block().ops` of the loaded PIR program, and
`fetch_tensors` runs the program with the Paddle static Executor fetching them. The program's
fetch ops are removed first: adding fetches for intermediate Values next to the saved ones
crashes the executor (SIGSEGV in FetchTensors, Paddle 3.3.1). The program's own outputs are
keyed `fetch:<i>`.

The Executor runs the program as saved, without Paddle Inference's IR passes or oneDNN, so a
divergence found here is between the exported graph and the program's semantics. A value an
in-place op (`pd_op.<op>_`, other than `batch_norm_`, which is in place on its running
statistics only) reads may be overwritten by the time it is fetched: such values are not
fetched. Ops inside control-flow blocks are not reached (global block only).

Imported only by the `divergence` child process, which imports Paddle (here, lazily).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]

_SAFE_INPLACE = frozenset({"batch_norm_"})
_SKIPPED_OPS = frozenset({"data", "fetch"})


@dataclass(frozen=True)
class ProgramTensors:
    values: dict[str, Array]  # key → tensor stacked over samples (axis 0)
    sources: dict[str, str]  # key → "pd_op.<op> #<n>"
    unreliable: list[str]  # wanted keys read by an in-place op


def program_values(program: Any, fetch_targets: Sequence[Any]) -> tuple[dict[str, Any], set[str]]:
    """({key: pir Value}, keys an in-place op may overwrite) for one loaded PIR program."""
    counts: dict[str, int] = {}
    values: dict[str, Any] = {}
    read_in_place: set[int] = set()
    by_id: dict[int, str] = {}
    for op in program.global_block().ops:
        name = str(op.name())
        if not name.startswith("pd_op."):
            continue
        short = name.removeprefix("pd_op.")
        n = counts.get(short, 0)
        counts[short] = n + 1
        if short in _SKIPPED_OPS:
            continue
        if short.endswith("_") and short not in _SAFE_INPLACE and op.num_operands():
            read_in_place.add(op.operand_source(0).id)
        for k in range(op.num_results()):
            key = f"p2o.pd_op.{short}.{n}.{k}"
            values[key] = op.result(k)
            by_id[op.result(k).id] = key
    for i, target in enumerate(fetch_targets):
        values[f"fetch:{i}"] = target
    unreliable = {key for ident, key in by_id.items() if ident in read_in_place}
    return values, unreliable


def source_of(key: str) -> str | None:
    """`p2o.pd_op.group_norm.0.0` → `pd_op.group_norm #0`."""
    if not key.startswith("p2o.pd_op."):
        return None
    op, n, _ = key.removeprefix("p2o.").rsplit(".", 2)
    return f"{op} #{n}"


def fetch_tensors(
    model_file: Path,
    params_file: Path,
    samples: Sequence[Mapping[str, Array]],
    wanted: Iterable[str],
) -> ProgramTensors:
    """The `wanted` keys the program has, computed by the static Executor for each sample."""
    import paddle

    paddle.enable_static()
    executor = paddle.static.Executor(paddle.CPUPlace())
    if model_file.suffix != ".json":
        raise ValueError(f"{model_file.name}: only PIR (.json) programs are mapped")
    program, feed_names, fetch_targets = paddle.static.load_inference_model(
        str(model_file.parent),
        executor,
        model_filename=model_file.name,
        params_filename=str(params_file.resolve().relative_to(model_file.parent.resolve())),
    )
    block = program.global_block()
    for op in list(block.ops):
        if op.name() == "pd_op.fetch":
            block.remove_op(op)
    values, overwritten = program_values(program, fetch_targets)
    wanted = list(dict.fromkeys(wanted))
    unreliable = [k for k in wanted if k in overwritten]
    keys = [k for k in wanted if k in values and k not in overwritten]
    runs = [
        executor.run(
            program,
            feed={name: sample[name] for name in feed_names},
            fetch_list=[values[k] for k in keys],
        )
        for sample in samples
    ]
    stacked = {k: np.stack([np.asarray(run[i]) for run in runs]) for i, k in enumerate(keys)}
    sources = {k: s for k in keys if (s := source_of(k)) is not None}
    return ProgramTensors(stacked, sources, unreliable)
