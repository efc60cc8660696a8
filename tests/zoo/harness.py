"""Run zoo cases through the user's path: `modelfleet convert`, then `modelfleet validate`.

Every step is its own process under a timeout (building the net, converting, validating), so
a converter that dies by a signal or hangs becomes a recorded outcome of its case, never the
end of the run. What a case records is what a user at a terminal would see: the exit code,
the first `Reason: message` line, and the numbers of the validation report.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zoo.catalog import ARCHITECTURES

BUILD_TIMEOUT_S = 300
CONVERT_TIMEOUT_S = 600
VALIDATE_TIMEOUT_S = 600
TESTS_DIR = Path(__file__).resolve().parent.parent
_REASON = re.compile(r"^([A-Z][A-Za-z]+): (.*)$")


@dataclass(frozen=True)
class Step:
    """One process: how it ended and what it printed."""

    rc: int | None  # None = killed by the timeout
    seconds: float
    output: str

    @property
    def outcome(self) -> str:
        if self.rc is None:
            return "timeout"
        if self.rc < 0:
            return f"signal {signal.Signals(-self.rc).name}"
        return f"exit {self.rc}"

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.output

    def reason_line(self) -> str | None:
        """The first `Reason: message` line, as the CLI prints failures."""
        for line in self.output.splitlines():
            if _REASON.match(line.strip()):
                return line.strip()
        return None


def run_step(args: list[str], timeout_s: float, cwd: Path | None = None) -> Step:
    """Run a process to completion or timeout; COLUMNS keeps rich from wrapping the reason."""
    env = os.environ | {"COLUMNS": "400", "PYTHONPATH": str(TESTS_DIR)}
    start = time.monotonic()
    try:
        proc = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=cwd, check=False
        )
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else err.stdout or ""
        return Step(None, time.monotonic() - start, out)
    return Step(proc.returncode, time.monotonic() - start, proc.stdout + proc.stderr)


def cli_path() -> str:
    return str(Path(sys.executable).with_name("modelfleet"))


def build_net(name: str, root: Path) -> tuple[Path, Step]:
    """Build `name` under `root/name` in its own process (Paddle can crash while saving)."""
    out = root / name
    step = run_step([sys.executable, "-m", "zoo.builders", name, str(out)], BUILD_TIMEOUT_S)
    return out, step


@dataclass(frozen=True)
class CaseResult:
    arch: str
    format: str
    converted: bool
    convert_outcome: str
    convert_seconds: float
    verdict: str  # pass | fail | error | not run
    reason: str | None  # the first `Reason: message` line, or how the process ended
    validate_outcome: str | None
    validate_seconds: float | None
    traceback: bool
    max_abs: float | None = None
    cosine: float | None = None
    l2: float | None = None
    failures: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_case(arch: str, fmt: str, source: Path, work: Path) -> CaseResult:
    """Convert `source` to `fmt` and validate it, each in its own process."""
    spec = ARCHITECTURES[arch].spec()
    out = work / f"{arch}-{fmt}"
    convert = run_step(
        [cli_path(), "convert", str(source), "--to", fmt, "--out", str(out), "--inputs", spec],
        CONVERT_TIMEOUT_S,
    )
    converted = convert.rc == 0 and (out / "manifest.json").is_file()
    if not converted:
        return CaseResult(
            arch, fmt, False, convert.outcome, round(convert.seconds, 2), "not run",
            convert.reason_line() or _last_line(convert), None, None, convert.traceback,
        )  # fmt: skip
    report = out / "report.json"
    file = json.loads((out / "manifest.json").read_text())["file"]  # model.onnx, model.tflite...
    validate = run_step(
        [cli_path(), "validate", "--reference", str(source), "--candidate", str(out / file),
         "--inputs", spec, "--no-benchmark", "--report", str(report)],
        VALIDATE_TIMEOUT_S,
    )  # fmt: skip
    metrics: dict[str, Any] = {}
    if report.is_file():
        section = json.loads(report.read_text())["validation"]
        metrics = {
            "max_abs": _num(section.get("maxAbs")),
            "cosine": _num(section.get("cosine")),
            "l2": _num(section.get("l2")),
            "failures": tuple(section.get("failures") or ()),
        }
    if validate.rc == 0:
        verdict, reason = "pass", None
    elif report.is_file():
        verdict, reason = "fail", validate.reason_line() or f"(no Reason line; {validate.outcome})"
    else:
        verdict, reason = "error", validate.reason_line() or _last_line(validate)
    return CaseResult(
        arch, fmt, True, convert.outcome, round(convert.seconds, 2), verdict, reason,
        validate.outcome, round(validate.seconds, 2), convert.traceback or validate.traceback,
        **metrics,
    )  # fmt: skip


def _last_line(step: Step) -> str:
    lines = [line.strip() for line in step.output.splitlines() if line.strip()]
    tail = lines[-1][:300] if lines else "(no output)"
    return f"{step.outcome}: {tail}"


def _num(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)  # report.json writes non-finite numbers as "NaN"/"Infinity"
