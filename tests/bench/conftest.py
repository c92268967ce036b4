"""The benchmarks' pure helpers (bench/*.py, imported there by bare name, as pytest's rootdir
puts bench/ on sys.path for them) tested without running a benchmark: bench/ goes on sys.path
here too, after everything else, so that no name of it shadows an installed module."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))
