"""`python -m bench [--only NAME] [--quick]`: run the benchmarks, write bench/RESULTS.md."""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.machine import machine_facts
from bench.report import Section, render_results
from bench.simulator import PATTERNS
from modelfleet.agent.heartbeats import LEASE_SECONDS

BENCH_DIR = Path(__file__).resolve().parent
NAMES = ("fleet", "distribution", "conversion", "runtime")
SIZES = (1000, 5000)
"""Fleet sizes of `make bench`; 20,000 (~15 minutes more on 2 cores) with `--fleet-sizes`."""


def _runners(args: argparse.Namespace, work: Path) -> dict[str, Callable[[], Section]]:
    def fleet() -> Section:
        from bench import fleet as module

        sizes = tuple(args.fleet_sizes) if args.fleet_sizes else ((100,) if args.quick else SIZES)
        profile = BENCH_DIR / "profiles" if args.profile else None
        variant = module.Variant(
            name=args.variant,
            lease_interval=args.lease_interval,
            operator_pythonpath=args.operator_pythonpath,
        )
        return module.run(
            work,
            sizes=sizes,
            profile_dir=profile,
            variant=variant,
            patterns=tuple(args.patterns),
        )

    def distribution() -> Section:
        from bench import distribution as module

        return module.run(work, quick=args.quick)

    def conversion() -> Section:
        from bench import conversion as module

        return module.run(work, quick=args.quick)

    def runtime() -> Section:
        from bench import runtime as module

        return module.run(work, quick=args.quick)

    return {
        "fleet": fleet,
        "distribution": distribution,
        "conversion": conversion,
        "runtime": runtime,
    }


def _load_now() -> str:
    """The machine is shared: the load when a section ends says how much others used it."""
    load = " ".join(f"{x:.2f}" for x in machine_facts().load_avg)
    return f"- load average when written (1/5/15 min): {load}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", choices=NAMES, action="append", help="run only this benchmark")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer iterations")
    parser.add_argument(
        "--fleet-sizes",
        "--sizes",
        type=int,
        nargs="+",
        help="fleet sizes (default 1000 5000; add 20000 for issue 14's largest)",
    )
    parser.add_argument(
        "--patterns",
        nargs="+",
        choices=sorted(PATTERNS),
        default=["agent-slow", "agent"],
        help="device status patterns, one rollout each (fleet)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the operator (fleet)")
    parser.add_argument("--variant", default="baseline", help="label of a fleet variant")
    parser.add_argument(
        "--lease-interval",
        type=float,
        default=LEASE_SECONDS / 4,
        help="simulated lease renewal seconds (default: the agent's)",
    )
    parser.add_argument(
        "--operator-pythonpath", help="run a prototype operator from this tree (fleet)"
    )
    parser.add_argument(
        "--output", type=Path, default=BENCH_DIR / "RESULTS.md", help="where to write the results"
    )
    args = parser.parse_args(argv)
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    facts = machine_facts()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    selected = args.only or list(NAMES)
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="modelfleet-bench-") as tmp:
        runners = _runners(args, Path(tmp))
        for name in NAMES:
            if name not in selected:
                continue
            print(f"== {name}", flush=True)
            started = time.monotonic()
            section = runners[name]()
            section.seconds = time.monotonic() - started
            sections.append(section)
            args.output.write_text(
                render_results(
                    command=command.strip(),
                    date=date,
                    machine=[*facts.lines(), _load_now()],
                    sections=sections,
                )
            )
            print(f"== {name} done in {section.seconds:.0f} s", flush=True)
    print(f"results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
