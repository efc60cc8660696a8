"""The chart's CRDs and the GitOps example's are byte-for-byte the ones `make crds` writes to
crds/ (which tests/unit/api/test_crds_up_to_date.py checks against the models)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize("copy_dir", ["charts/modelfleet/crds", "examples/gitops/crds"])
def test_crd_copies_are_identical_to_the_generated_ones(repo_root: Path, copy_dir: str) -> None:
    generated = {p.name: p.read_bytes() for p in (repo_root / "crds").glob("*.yaml")}
    copies = {p.name: p.read_bytes() for p in (repo_root / copy_dir).iterdir()}
    assert sorted(copies) == sorted(generated), f"cp crds/*.yaml {copy_dir}/"
    for name, content in generated.items():
        assert copies[name] == content, f"{copy_dir}/{name} drifted: cp crds/{name} {copy_dir}/"
