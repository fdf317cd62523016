"""Shared helpers for the benchmark scripts: where the corpus is, and timing a command."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("SIGMA_CORPUS", ROOT.parent / "shared" / "corpus"))


def need_corpus(*parts) -> Path:
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        sys.exit(f"corpus not found: {path} (set SIGMA_CORPUS)")
    return path


def time_command(argv, runs=5) -> tuple[float, list[float], subprocess.CompletedProcess]:
    """Median wall time of a whole process, its samples, and the last run's output."""
    samples, done = [], None
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples, done
