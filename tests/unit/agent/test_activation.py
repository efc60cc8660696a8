"""The --on-activate command: run without a shell, told what is active, judged by its exit."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import pytest

from modelfleet.agent.activation import ActivationHook, hook_env, last_line, run_hook
from modelfleet.agent.errors import ActivationFailed

PYTHON = shlex.quote(sys.executable)


def make_hook(script: str, *args: str, timeout: float = 10.0) -> ActivationHook:
    words = " ".join(shlex.quote(a) for a in args)
    return ActivationHook.parse(
        f"{PYTHON} -c {shlex.quote(script)} {words}", timeout_seconds=timeout
    )


def test_the_command_sees_what_is_active(tmp_path: Path) -> None:
    env = hook_env(
        slot="detector",
        slot_dir=tmp_path / "slots" / "detector",
        model=tmp_path / "objects" / "abc.onnx",
        runtime=tmp_path / "slots" / "detector" / "runtime.json",
        revision=7,
        sha256="abc",
    )
    out = tmp_path / "seen"
    script = "import os, sys; open(sys.argv[1], 'w').write(os.environ['MODELFLEET_REVISION'])"
    run_hook(make_hook(script, str(out)), env)
    assert out.read_text() == "7"
    assert env["MODELFLEET_MODEL"].endswith("objects/abc.onnx")
    assert env["MODELFLEET_RUNTIME"].endswith("detector/runtime.json")
    assert env["MODELFLEET_SLOT"] == "detector" and env["MODELFLEET_SHA256"] == "abc"


def test_a_failing_command_names_its_exit_code_and_last_stderr_line() -> None:
    script = (
        "import sys; print('ignored'); "
        "sys.stderr.write('loading\\nport 8080 busy\\n\\n'); sys.exit(3)"
    )
    with pytest.raises(ActivationFailed) as caught:
        run_hook(make_hook(script), {})
    assert caught.value.reason == "ActivationFailed"
    assert caught.value.message == "on-activate command exited 3: port 8080 busy"


def test_without_stderr_the_last_stdout_line_is_the_cause() -> None:
    with pytest.raises(ActivationFailed, match=r"exited 1: reload refused$"):
        run_hook(make_hook("import sys; print('reload refused'); sys.exit(1)"), {})


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "child-finished"
    script = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', "
        "f'import time; time.sleep(1.5); open({sys.argv[1]!r}, \"w\")']); time.sleep(30)"
    )
    started = time.monotonic()
    with pytest.raises(ActivationFailed, match=r"^on-activate command timed out after 0.5s$"):
        run_hook(make_hook(script, str(marker), timeout=0.5), {})
    assert time.monotonic() - started < 5
    time.sleep(2)
    assert not marker.exists(), "the command's child outlived the timeout"


def test_a_command_that_does_not_exist_fails_to_start(tmp_path: Path) -> None:
    hook = ActivationHook.parse(str(tmp_path / "no-such-reload"))
    with pytest.raises(ActivationFailed, match=r"could not start: FileNotFoundError"):
        run_hook(hook, {})


def test_the_command_is_split_like_a_shell_but_never_run_by_one(tmp_path: Path) -> None:
    out = tmp_path / "argv.json"
    script = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"
    hook = ActivationHook.parse(
        f"{PYTHON} -c {shlex.quote(script)} {out} 'a b' $(touch {tmp_path}/pwned) `id`; id"
    )
    run_hook(hook, {"MODELFLEET_SLOT": "x; touch pwned"})
    assert json.loads(out.read_text()) == ["a b", "$(touch", f"{tmp_path}/pwned)", "`id`;", "id"]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("command", ["", "   ", "reload 'unclosed"])
def test_empty_or_unbalanced_commands_are_refused(command: str) -> None:
    with pytest.raises(ValueError):
        ActivationHook.parse(command)


@pytest.mark.parametrize(
    ("output", "line"),
    [
        (b"", ""),
        (b"a\nb\n\n  \n", "b"),
        (b"\xff broken\n", "\ufffd broken"),
        (b"x" * 500, "x" * 300),
    ],
)
def test_last_line(output: bytes, line: str) -> None:
    assert last_line(output) == line
