"""The images' Dockerfiles (docker/*.Dockerfile), read as text: there is no container engine
here to build them. Checks what a reviewer would: multi-stage with compilers only in the
builder, a pinned base image, a numeric non-root user, nothing installed at run time."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DOCKER = Path(__file__).resolve().parents[3] / "docker"
IMAGES = {"operator": "", "worker": "convert", "worker-tf": "convert", "agent": "agent"}
"""image -> the extra it installs"""
BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|cmake|python3?-dev)\b")


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                values[key] = value
        return values


def parse(path: Path) -> list[Stage]:
    """Instructions per stage: continuation lines joined, comment lines dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path.name} ends inside a continuation"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
        else:
            assert stages, f"{path.name}: {keyword} before FROM"
            stages[-1].instructions.append((keyword, " ".join(args.split())))
    return stages


@pytest.fixture(params=sorted(IMAGES))
def image(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def stages(image: str) -> list[Stage]:
    return parse(DOCKER / f"{image}.Dockerfile")


def test_build_is_multi_stage_with_wheels_from_a_builder(stages: list[Stage], image: str) -> None:
    *builders, final = stages
    assert builders, "a builder stage"
    assert final.name is None
    (builder,) = builders
    assert builder.name == "builder"
    extra = IMAGES[image]
    target = f'".[{extra}]"' if extra else "."
    assert f"pip wheel --wheel-dir /wheels {target}" in builder.all("RUN")
    installs = [r for r in final.all("RUN") if "pip install" in r]
    assert len(installs) == 1
    (install,) = installs
    assert "from=builder" in install and "--no-index" in install
    wanted = f'"modelfleet[{extra}]"' if extra else "modelfleet"
    assert install.endswith(wanted), install


def test_base_images_are_pinned_to_a_tag(stages: list[Stage]) -> None:
    names = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.image in names:
            continue
        repository, _, tag = stage.image.partition("@")[0].rpartition(":")
        assert repository and tag, f"{stage.image} has no tag"
        assert tag != "latest" and "$" not in stage.image
        assert re.fullmatch(r"3\.11\.\d+-slim-bookworm", tag), stage.image


def test_dockerfiles_say_production_pins_by_digest(image: str) -> None:
    assert "pin it by digest" in (DOCKER / f"{image}.Dockerfile").read_text()


def test_final_stage_runs_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    final = stages[-1]
    users = final.all("USER")
    assert users, "final stage sets USER"
    assert final.instructions[-1][0] in ("USER", "WORKDIR", "EXPOSE", "ENTRYPOINT", "CMD")
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) == 65532
    assert not group or (group.isdigit() and int(group) != 0)
    last_user = max(i for i, (kw, _) in enumerate(final.instructions) if kw == "USER")
    assert not [kw for kw, _ in final.instructions[last_user:] if kw in ("RUN", "COPY", "ADD")]


def test_final_stage_has_no_build_tools(stages: list[Stage]) -> None:
    *builders, final = stages
    for run in final.all("RUN"):
        if "apt-get install" in run:
            packages = run.split("apt-get install", 1)[1].split("&&")[0]
            assert not BUILD_TOOLS.search(packages), run
            assert "--no-install-recommends" in run and "rm -rf /var/lib/apt/lists/*" in run
    assert any(BUILD_TOOLS.search(r) for b in builders for r in b.all("RUN")), (
        "compilers, if any, belong in the builder (the check above must see them there)"
    )


def test_python_writes_no_bytecode_and_pip_keeps_no_cache(stages: list[Stage]) -> None:
    for stage in stages:
        env = stage.env()
        assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
        assert env.get("PIP_NO_CACHE_DIR") == "1"
    assert not any("type=cache" in r for s in stages for r in s.all("RUN"))


def test_nothing_can_be_installed_at_run_time(stages: list[Stage], image: str) -> None:
    env = stages[-1].env()
    assert env.get("PIP_NO_INDEX") == "1"
    if image.startswith("worker"):
        assert env.get("POLYGRAPHY_AUTOINSTALL_DEPS") == "0"


def test_the_tf_worker_carries_the_locked_tf_environment() -> None:
    """The TensorFlow environment is built from the same lock file as `make tf-venv`, where
    the final stage keeps it (a virtualenv is not relocatable), and the worker is told."""
    builder, final = parse(DOCKER / "worker-tf.Dockerfile")
    (venv,) = [r for r in builder.all("RUN") if "/opt/tf" in r]
    assert "python -m venv /opt/tf" in venv
    assert "--no-deps -r requirements-tf.txt" in venv and "pip check" in venv
    assert "--from=builder /opt/tf /opt/tf" in final.all("COPY")
    assert final.env()["MODELFLEET_TF_PYTHON"] == "/opt/tf/bin/python"


def test_the_build_context_is_an_allowlist(image: str) -> None:
    """BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile; every COPY source is in."""
    ignore = (DOCKER / f"{image}.Dockerfile.dockerignore").read_text()
    rules = [r for r in ignore.splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*", "exclude everything, then include what the build needs"
    included = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    for stage in parse(DOCKER / f"{image}.Dockerfile"):
        for copy in stage.all("COPY"):
            if copy.startswith("--from"):
                continue
            *sources, _ = copy.split()
            assert set(sources) <= included, copy
    for excluded in ("**/__pycache__", "**/*.py[cod]"):
        assert excluded in rules
