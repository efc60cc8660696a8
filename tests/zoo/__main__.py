"""`make zoo`: build every zoo net, convert x validate each format, run the tolerance study,
write `tests/zoo/results.json` (raw) and `docs/zoo.md` (generated).

    PYTHONPATH=tests .venv/bin/python -m zoo [--only resnet50,unet] [--formats onnx]
        [--work DIR] [--results FILE] [--doc FILE] [--render]

Run from the repository root. Every build, conversion, validation and study is its own
process under a timeout (see `harness`), so a crash or hang is recorded, not fatal. With
`--only`, the results of other architectures already in the results file are kept;
`--render` only rewrites the doc from the results file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.machine import machine_facts
from modelfleet.artifacts import converter_versions
from zoo.catalog import ARCHITECTURES, FORMATS
from zoo.harness import CaseResult, build_net, run_case, run_step
from zoo.report import render

STUDY_TIMEOUT_S = 900
RESULTS = Path("tests/zoo/results.json")
DOC = Path("docs/zoo.md")


def run_zoo(archs: list[str], formats: list[str], work: Path) -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    builds: dict[str, dict[str, Any]] = {}
    studies: dict[str, Any] = {}
    for arch in archs:
        source, built = build_net(arch, work / "nets")
        builds[arch] = {"outcome": built.outcome, "seconds": round(built.seconds, 2)}
        print(f"[zoo] build {arch}: {built.outcome} in {built.seconds:.1f}s", flush=True)
        if built.rc != 0:
            builds[arch]["reason"] = built.reason_line() or built.output.strip()[-300:]
            continue
        for fmt in formats:
            result: CaseResult = run_case(arch, fmt, source, work / "artifacts")
            cases.append(result.to_json())
            print(f"[zoo] {arch} {fmt}: {result.verdict} {result.reason or ''}", flush=True)
        out = work / f"study-{arch}.json"
        step = run_step(
            [sys.executable, "-m", "zoo.study", arch, str(source), str(work / "artifacts"),
             str(out)],
            STUDY_TIMEOUT_S,
        )  # fmt: skip
        if out.is_file():
            studies[arch] = json.loads(out.read_text())
        else:
            studies[arch] = {"arch": arch, "rows": [], "errors": [f"study {step.outcome}"],
                             "reference_note": step.output.strip()[-300:]}  # fmt: skip
        print(f"[zoo] study {arch}: {step.outcome} in {step.seconds:.1f}s", flush=True)
    return {"builds": builds, "cases": cases, "studies": studies}


def _merge(old: dict[str, Any], new: dict[str, Any], archs: list[str]) -> dict[str, Any]:
    """Keep the other cases' results when only some architectures or formats were run."""
    ran = {(c["arch"], c["format"]) for c in new["cases"]}
    kept = [c for c in old.get("cases", []) if (c["arch"], c["format"]) not in ran]
    order = list(ARCHITECTURES)
    return old | {
        "builds": {k: v for k, v in old.get("builds", {}).items() if k not in archs}
        | new["builds"],
        "cases": sorted([*kept, *new["cases"]],
                        key=lambda c: (order.index(c["arch"]), FORMATS.index(c["format"]))),
        "studies": {k: v for k, v in old.get("studies", {}).items() if k not in archs}
        | new["studies"],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m zoo")
    parser.add_argument("--only", default=",".join(ARCHITECTURES))
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    parser.add_argument("--render", action="store_true", help="Only rewrite the doc.")
    args = parser.parse_args()
    if args.render:
        args.doc.write_text(render(json.loads(args.results.read_text())))
        return
    archs = [a for a in args.only.split(",") if a]
    unknown = sorted(set(archs) - set(ARCHITECTURES))
    if unknown:
        parser.error(f"unknown architectures {unknown}; known: {', '.join(ARCHITECTURES)}")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="modelfleet-zoo-") as tmp:
        work = args.work or Path(tmp)
        new = run_zoo(archs, args.formats.split(","), work)
    old = json.loads(args.results.read_text()) if args.results.is_file() else {}
    results = _merge(old, new, archs) | {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python -m zoo", *sys.argv[1:]]),
        "seconds": round(time.monotonic() - start, 1),
        "machine": machine_facts().lines(),
        "versions": converter_versions(),
    }
    args.results.write_text(json.dumps(results, indent=1, default=str) + "\n")
    args.doc.write_text(render(results))
    print(f"[zoo] wrote {args.results} and {args.doc} in {results['seconds']}s")


if __name__ == "__main__":
    main()
