"""The benchmarks live in bench/ at the repo root, outside the installed package: make them
importable. Appended, not prepended: the repo root also holds `operator/`, which must never
shadow the standard library's `operator`."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[3])
if ROOT not in sys.path:
    sys.path.append(ROOT)
