"""ModelFleet benchmarks: `python -m bench [--only NAME] [--quick]` from the repo root.

Not part of the installed package. Each benchmark module exposes `run(ctx) -> Section`; the
runner renders every section into `bench/RESULTS.md`.
"""
