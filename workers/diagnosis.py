"""After a target failed validation: which layer diverged (`modelfleet.workers.divergence` does
the work in a child process; this chooses what the candidate is compared with).

- the onnx (fp32) target of a Paddle source: against the Paddle program, op by op;
- an fp16 / int8 target: against the fp32 ONNX it was made from, node by node. That file is
  the one the conversion kept beside it (`convert.KEPT_FP32`) when there is one: paddle2onnx
  does not always export the same graph twice (the GroupNorm epsilon of docs/remedies.md);
  else (a validate Job or `modelfleet validate`, given only the artifact) it is exported again;
- any target of an ONNX source: against the source.

Called by the validate Job and `modelfleet validate`; the named node goes into the report's
`validation.divergence` and, as one line, at the end of the failure message (hence into the
ModelConversion's condition) and the CLI output. Diagnostic only: it never raises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from modelfleet.api.conversion import InputSpec, Target, TargetFormat, Tolerance
from modelfleet.comparison import effective_rule
from modelfleet.workers.convert import convert_model
from modelfleet.workers.divergence import Localization, locate_against_onnx, locate_against_paddle
from modelfleet.workers.errors import WorkerError
from modelfleet.workers.sources import SourceModel
from modelfleet.workers.validate import ValidationOutcome


def locate(
    outcome: ValidationOutcome,
    *,
    fmt: TargetFormat,
    tolerance: Tolerance | None,
    candidate: Path,
    source: SourceModel,
    specs: Sequence[InputSpec],
    work_dir: Path,
    kept_fp32: Path | None = None,
) -> Localization:
    """The first diverging node of `candidate`, on the validation's first samples and under
    the target's effective rule (`Localization.none` with the reason when none is named)."""
    rule = effective_rule(fmt, tolerance)
    samples = outcome.probe_inputs
    if source.format == "onnx":
        return locate_against_onnx(candidate, source.model_file, samples=samples, rule=rule)
    if fmt == "onnx":
        assert source.params_file is not None
        return locate_against_paddle(
            candidate,
            model_file=source.model_file,
            params_file=source.params_file,
            samples=samples,
            rule=rule,
        )
    fp32 = kept_fp32 if kept_fp32 is not None and kept_fp32.is_file() else None
    if fp32 is None:
        try:
            fp32 = _export_fp32(source, candidate, specs, work_dir)
        except WorkerError as err:
            return Localization.none(f"the fp32 ONNX to compare with: {err.reason}: {err}")
    return locate_against_onnx(candidate, fp32, samples=samples, rule=rule)


def with_divergence(outcome: ValidationOutcome, found: Localization) -> ValidationOutcome:
    """`outcome` with the named node in its section (unchanged when none was named)."""
    if found.divergence is None:
        return outcome
    section = outcome.section.model_copy(update={"divergence": found.divergence.info()})
    return dataclasses.replace(outcome, section=section)


def _export_fp32(
    source: SourceModel, candidate: Path, specs: Sequence[InputSpec], work_dir: Path
) -> Path:
    """paddle2onnx's fp32 export of `source` at the candidate's opset."""
    target = Target(format="onnx", opset=_opset_of(candidate))
    return convert_model(source, target, work_dir / "divergence-fp32", specs=specs).model_path


def _opset_of(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
