"""`hunt` at scale: time, records per second and peak memory over scaled copies of the corpus.

    python bench/scale_logs.py /data/scale/x30 --times 30          # make each set first (on a disk)
    python bench/hunt_scale.py /data/scale/x1 /data/scale/x30 [--engine duckdb] [--runs 1] [--format table]

For each log set and engine: one whole `hunt` process (every suzaku and SigmaHQ CloudTrail
rule, `--format jsonl -o FILE`, or --format's), its wall and CPU time, the records it read (hunt's summary),
records per second, the peak resident memory of the process (the kernel's maxrss, from wait4)
and the peak size of its scratch folder (--temp-dir, sampled every 0.5 s). The scratch folder
and the timeline go under --work (default: a temporary folder next to the first set), never
under /dev/shm. Pass --memory to hunt with --memory (default: hunt's own, 1 GiB). With both
engines, their runs alternate and the median of the per-pair ratios of wall times is printed
(the evaluator's against DuckDB's).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT
from hunt import counts, rule_folders


def folder_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def one_run(argv, scratch: Path) -> dict:
    """wall, cpu, maxrss (bytes), scratch peak (bytes), stderr of one process."""
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.wait(0.5):
            peak[0] = max(peak[0], folder_bytes(scratch))

    watcher = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        watcher.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if proc.returncode not in (0, 1):
        sys.exit(f"hunt failed ({proc.returncode}):\n{stderr}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss * 1024,
            "scratch": peak[0], "stderr": stderr}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("sets", nargs="+", type=Path, help="log folders made by bench/scale_logs.py")
    p.add_argument("--engine", action="append", choices=("duckdb", "evaluator"))
    p.add_argument("--runs", type=int, default=1, help="runs per set and engine (the median is shown)")
    p.add_argument("--memory", help="hunt --memory (e.g. 1G)")
    p.add_argument("--work", type=Path, help="where the scratch folder and timeline go")
    p.add_argument("--format", choices=("jsonl", "csv", "table"), default="jsonl",
                   help="hunt --format (table: the default of hunt itself)")
    args = p.parse_args()
    engines = args.engine or ["duckdb", "evaluator"]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.work or args.sets[0].parent))
    print(f"machine: {os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    try:
        for logs in args.sets:
            runs = {engine: [] for engine in engines}
            for _ in range(args.runs):          # the engines alternate: pairs at the same load
                for engine in engines:
                    scratch = work / "scratch"
                    shutil.rmtree(scratch, ignore_errors=True)
                    scratch.mkdir()
                    argv = [sys.executable, "-m", "transpiler", "hunt", *rule_folders(), "--logs", str(logs),
                            "--engine", engine, "--format", args.format, "-o", str(work / "timeline"),
                            "--no-progress", "--temp-dir", str(scratch)] + (["--memory", args.memory] if args.memory else [])
                    runs[engine].append(one_run(argv, scratch))
            for engine in engines:
                done = runs[engine]
                wall = statistics.median(r["wall"] for r in done)
                cpu = statistics.median(r["cpu"] for r in done)
                rss = max(r["rss"] for r in done)
                spill = max(r["scratch"] for r in done)
                rules, records, detections = counts(done[-1]["stderr"])
                print(f"{logs.name:>12} {engine:<9}: {wall:7.1f} s wall, {cpu:7.1f} s CPU, {records:>10,} records, "
                      f"{records / wall:>9,.0f} records/s, peak RSS {rss / 2**20:6.0f} MiB, scratch peak "
                      f"{spill / 2**20:6.0f} MiB; {rules} rules, {detections:,} detections; "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
            if len(engines) == 2:
                ratios = [b["wall"] / a["wall"] for a, b in zip(runs[engines[0]], runs[engines[1]])]
                print(f"{logs.name:>12} {engines[1]}/{engines[0]} wall: {statistics.median(ratios):.2f} "
                      f"(median of {len(ratios)} pairs: {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
