"""Builders shared by the workers' unit tests (see tests/support/__init__.py for the convention)."""

from __future__ import annotations

from pathlib import Path

from modelfleet.api.conversion import InputSpec, Validation
from modelfleet.workers.paddle_reference import record_reference
from modelfleet.workers.references import ReferencePlan, plan_reference
from modelfleet.workers.validate import validation_samples


def make_unfitting_reference(tmp_path: Path, validation: Validation) -> ReferencePlan:
    """A reference recorded for inputs of shape [1, 5], which no test model takes: whatever
    Paddle stand-in the calling test installed has been asked to run it."""
    wrong = [InputSpec(name="x", shape=[1, 5])]
    plan = plan_reference(
        tmp_path / "r",
        specs=wrong,
        validation=validation,
        samples=validation_samples(wrong, validation, None),
        data="seeded",
    )
    record_reference(plan.directory, tmp_path / "m.json", tmp_path / "m.pdiparams")
    return plan
