"""Child processes for the steps that can crash or hang, so a crash becomes a named reason.

paddle2onnx, the fp16 conversion, quantization, ONNX Runtime's session creation on a new
artifact and Paddle Inference are native code: a SIGSEGV or SIGABRT there ends whatever process
runs them, with no Python exception and often no output. They run in a child (`Child`), and
what the worker reads back is either the failure the child classified itself or
`ConverterCrashed` naming the step, the signal and the last lines the child wrote.

Used by `modelfleet.workers.paddle2onnx_child` (`PaddleChild` is a `Child` of that module),
`modelfleet.workers.convert` (checks and transforms of the ONNX model) and
`modelfleet.workers.references` (the Paddle reference of a validation), through `run_stage`:

    echo '{"function": "modelfleet.workers.M:F", "kwargs": {...}, "result": PATH}' |
        python -m modelfleet.workers.isolation

The stage child calls F(**kwargs), writes `{"value": ...}` or `{"failure": {"reason",
"message"}}` to PATH (renamed into place) and exits 0, or the reason's exit code. F announces
each step it enters with `enter_stage` (one marker line in its log), so a crash names the step
that crashed rather than the stage as a whole.

Cost, measured on a quiet 2-core machine (tests/unit/workers/test_isolation.py runs children
too): a bare child 0.06 s; the conversion checks and fp16 child 0.3 s (importing numpy, onnx,
ONNX Runtime again), with quantization 0.9 s; the Paddle reference child about what importing
Paddle in the worker cost before (1.0 s against 1.3 s), since the worker no longer does.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from modelfleet.workers.errors import ConverterCrashed, classify, error_of

MODULE = "modelfleet.workers.isolation"
STAGE_MARK = "modelfleet-stage: "
STAGE_TIMEOUT_S = 1800
TAIL_LINES = 5
NO_INSTALL_ENV = {
    "POLYGRAPHY_AUTOINSTALL_DEPS": "0",
    "PIP_NO_INDEX": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}
_NOISE = ("UserWarning: No ccache found", "warnings.warn(")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# a line's leading clock: `2026-12-02 07:35:52 `, `[2026/12/02 07:35:52] `, glog's
# `W1202 07:35:52.123456 4242 file.cc:12] `: noise in a one-line message, and never the same twice
_CLOCK = re.compile(
    r"^\s*(?:\[?\d{4}[-/]\d{2}[-/]\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\]?\s*"
    r"|[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+\s+\S+:\d+\]\s*)"
)


class Child:
    """One child process running `python -m module` (or `argv`: another program, such as
    onnx2tf in its own environment, `tf_convert`); its stdout and stderr go to `log_path` from
    the start. `send` hands it its one command (a JSON line on stdin), `wait` waits."""

    process: subprocess.Popen[bytes]

    def __init__(
        self,
        module: str,
        log_path: Path,
        *,
        argv: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        environment = {**os.environ, **NO_INSTALL_ENV, "PYTHONUNBUFFERED": "1", **(env or {})}
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                list(argv) if argv is not None else [sys.executable, "-m", module],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=log_path.parent,
            )

    def send(self, command: Mapping[str, Any]) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(command).encode() + b"\n")
            stdin.close()
        except OSError:  # it died before reading (its log says why); `wait` reports the exit
            pass

    def wait(self, timeout: float) -> int | None:
        """Its exit code, or None when it ran past `timeout` (then it is killed)."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            return None

    def close(self) -> None:
        """End of input, and a kill if it still runs (it had no work, or ran out of time)."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.closed:
            with suppress(OSError):
                stdin.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def how_it_ended(returncode: int | None, timeout_s: float) -> str:
    """`was killed by SIGSEGV`, `exited 3`, `did not finish in 1800s`."""
    if returncode is None:
        return f"did not finish in {timeout_s:g}s"
    if returncode < 0:
        with suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
        return f"was killed by signal {-returncode}"
    return f"exited {returncode}"


def current_stage(log_text: str, default: str) -> str:
    """The last step the child announced (`enter_stage`), else `default`."""
    marks = [
        ln[len(STAGE_MARK) :].strip() for ln in log_text.splitlines() if ln.startswith(STAGE_MARK)
    ]
    return marks[-1] if marks else default


def clean_log(log_text: str) -> str:
    """A child's log as a message may quote it: no terminal colour codes, no line timestamps."""
    return "\n".join(_CLOCK.sub("", ln) for ln in _ANSI.sub("", log_text).splitlines())


def output_tail(log_text: str, lines: int = TAIL_LINES) -> str:
    """The last lines a child wrote, without stage markers, blank lines, import noise, colour
    codes and timestamps."""
    kept = [
        ln.strip()
        for ln in clean_log(log_text).splitlines()
        if ln.strip() and not ln.startswith(STAGE_MARK) and not any(n in ln for n in _NOISE)
    ]
    return " | ".join(kept[-lines:])[-800:]


def crash(stage: str, returncode: int | None, log_text: str, timeout_s: float) -> ConverterCrashed:
    """ConverterCrashed for a child that ended without a result: the step it was in, how it
    ended, what it last wrote."""
    return ConverterCrashed(
        current_stage(log_text, stage), how_it_ended(returncode, timeout_s), output_tail(log_text)
    )


def run_stage(
    stage: str,
    function: str,
    kwargs: Mapping[str, Any],
    *,
    directory: Path,
    timeout_s: float = STAGE_TIMEOUT_S,
) -> Any:
    """Run `function` ("modelfleet.workers.M:F", JSON arguments) in a stage child; return what
    it returned, raise the WorkerError it raised, or ConverterCrashed (see module docstring).
    `directory` holds its log and result (created if need be)."""
    directory = directory.resolve()  # the child runs there: every path it is given is absolute
    directory.mkdir(parents=True, exist_ok=True)
    result = directory / "result.json"
    result.unlink(missing_ok=True)
    child = Child(MODULE, directory / "child.log")
    try:
        child.send({"function": function, "kwargs": dict(kwargs), "result": str(result)})
        returncode = child.wait(timeout_s)
    finally:
        child.close()
    try:
        answer = json.loads(result.read_text())
    except (OSError, ValueError):
        raise crash(stage, returncode, child.output(), timeout_s) from None
    if answer.get("failure"):
        raise error_of(str(answer["failure"]["reason"]), str(answer["failure"]["message"]))
    return answer.get("value")


# --- in the child ----------------------------------------------------------------------------


def enter_stage(name: str) -> None:
    """Called in a child before each step that may crash: the worker names that step."""
    print(f"{STAGE_MARK}{name}", flush=True)


def main() -> int:
    command = json.loads(sys.stdin.readline())
    module_name, _, name = str(command["function"]).partition(":")
    if not module_name.startswith("modelfleet.workers."):
        raise SystemExit(f"modelfleet: {module_name} is not a worker module")
    answer: dict[str, Any]
    code = 0
    try:
        value = getattr(importlib.import_module(module_name), name)(**command["kwargs"])
        answer = {"value": value}
    except Exception as err:
        failure = classify(err)
        print(f"modelfleet: {failure.reason}: {failure.message}", file=sys.stderr)
        answer = {"failure": {"reason": failure.reason, "message": failure.message}}
        code = failure.exit_code
    result = Path(command["result"])
    partial = result.with_name(f".{result.name}.partial")
    partial.write_text(json.dumps(answer))
    os.replace(partial, result)
    return code


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)  # the result is written: skip native libraries' teardown
