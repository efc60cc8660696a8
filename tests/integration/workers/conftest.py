"""Real Paddle sample models, built once per test session (per xdist worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelfleet.dev import samples
from modelfleet.dev.samples import SampleModel


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("samples")


@pytest.fixture(scope="session")
def cnn(sample_root: Path) -> SampleModel:
    return samples.build_cnn_classifier(sample_root / "cnn")


@pytest.fixture(scope="session")
def mlp(sample_root: Path) -> SampleModel:
    return samples.build_mlp(sample_root / "mlp")


@pytest.fixture(scope="session")
def sample_models(sample_root: Path, cnn: SampleModel, mlp: SampleModel) -> dict[str, SampleModel]:
    return {
        "cnn": cnn,
        "mlp": mlp,
        "mlp-legacy": samples.build_mlp(sample_root / "mlp-legacy", legacy=True),
        "dynamic-batch": samples.build_dynamic_batch(sample_root / "dynamic"),
        "two-output": samples.build_two_output(sample_root / "two-output"),
    }


@pytest.fixture(scope="session")
def unconvertible(sample_root: Path) -> SampleModel:
    return samples.build_unconvertible(sample_root / "unconvertible")
