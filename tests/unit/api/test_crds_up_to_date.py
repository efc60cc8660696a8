"""The committed CRDs are exactly what `make crds` generates from the models."""

from __future__ import annotations

from pathlib import Path

from modelfleet.api.crdgen import render_all
from modelfleet.api.docgen import render as render_reference


def test_committed_crds_match_the_models(repo_root: Path) -> None:
    generated = render_all()
    committed = {p.name: p.read_text() for p in (repo_root / "crds").glob("*.yaml")}
    assert sorted(committed) == sorted(generated), "run `make crds`"
    for name, text in generated.items():
        assert committed[name] == text, f"crds/{name} is stale: run `make crds`"


def test_committed_reference_matches_the_models(repo_root: Path) -> None:
    committed = (repo_root / "docs" / "reference.md").read_text()
    assert committed == render_reference(), "docs/reference.md is stale: run `make docs`"
