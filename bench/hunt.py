"""`hunt` over the CloudTrail corpus with every suzaku CloudTrail rule, on both engines.

    python bench/hunt.py [--runs 5] [--scale 10] [--engine duckdb --engine evaluator]

Times the whole process (`python -m transpiler hunt ... --format jsonl -o FILE`), median of
several runs, wall and CPU time (the CPU time of the child process, less disturbed by a busy
machine), and prints rules x records per second. Then the same on a corpus --scale times as
large: the files replicated into a temporary folder with new eventIDs (removed at the end,
never committed). Last, one in-process run per engine shows where the time goes.

The comparison with the incumbent (pySigma's SQLite backend) is paired, in the same session:
bench/hunt_incumbent.py. The growth line divides whole-process times, fixed start-up
included in both, so it understates the marginal cost per record.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, need_corpus



def rule_folders() -> list[str]:
    root = need_corpus("rules", "suzaku-rules")
    return [str(root / "suzaku" / "aws" / "cloudtrail"), str(root / "sigma" / "aws" / "cloudtrail")]


def timed(argv, runs):
    """Median wall and CPU seconds of a whole process, with the samples and the last run."""
    walls, cpus, done = [], [], None
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if done.returncode not in (0, 1):
            sys.exit(done.stderr)
    return statistics.median(walls), statistics.median(cpus), walls, done


def counts(summary: str) -> tuple[int, int, int]:
    """(rules, records, detections) from hunt's summary on stderr."""
    line = next(s for s in summary.splitlines() if s.startswith("hunt ("))
    records = int(line.split(" records,")[0].rsplit(" ", 1)[1])
    rules = int(line.split(" rules and ")[0].rsplit(" ", 1)[1])
    found = next(s for s in summary.splitlines() if " detections" in s and not s.startswith(" "))
    return rules, records, int(found.split()[0])


def replicate(source: Path, target: Path, times: int) -> None:
    """The corpus `times` over: copy k of each record gets eventID `<id>-k` (copy 0 keeps its own),
    so duplicates stay duplicates within a copy and the copies do not collapse into one."""
    for k in range(times):
        for f in sorted(p for p in source.rglob("*") if p.is_file() and ".json" in p.name):
            out = target / f"copy{k}" / f.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            data = f.read_bytes()
            try:
                doc = json.loads(gzip.decompress(data) if f.name.endswith(".gz") else data)
            except ValueError:
                out.write_bytes(data)            # the broken file stays broken
                continue
            records = doc["Records"] if isinstance(doc, dict) and "Records" in doc else doc
            for r in records if isinstance(records, list) else [records]:
                if k and isinstance(r, dict) and r.get("eventID"):
                    r["eventID"] = f"{r['eventID']}-{k}"
            text = json.dumps(doc, separators=(",", ":")).encode()
            out.write_bytes(gzip.compress(text, 1) if f.name.endswith(".gz") else text)


def measure(label, logs, engines, runs, out):
    results = {}
    for engine in engines:
        argv = [sys.executable, "-m", "transpiler", "hunt", *rule_folders(), "--logs", str(logs),
                "--engine", engine, "--format", "jsonl", "-o", out, "--no-progress"]
        wall, cpu, walls, done = timed(argv, runs)
        rules, records, detections = counts(done.stderr)
        results[engine] = (wall, records)
        print(f"{label} {engine:<9}: median {wall:.2f} s wall, {cpu:.2f} s CPU over {runs} runs "
              f"({', '.join(f'{w:.2f}' for w in walls)}); {rules} rules x {records:,} records, "
              f"{detections:,} detections; {rules * records / wall / 1e6:.1f} M rule-records/s")
    return results


def phases(logs, engines):
    sys.path.insert(0, str(ROOT))
    from transpiler import hunt
    for engine in engines:
        report = hunt.run(rule_folders(), [str(logs)], engine)
        print(f"in-process {engine}: " + ", ".join(f"{k} {v:.2f} s" for k, v in report.phases.items()))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--scale", type=int, default=10, help="times the corpus for the growth figure (0: skip)")
    p.add_argument("--engine", action="append", choices=("duckdb", "evaluator"))
    args = p.parse_args()
    engines = args.engine or ["duckdb", "evaluator"]
    logs = need_corpus("cloudtrail")
    print(f"machine: {os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("against the incumbent, paired: python bench/hunt_incumbent.py")
    with tempfile.TemporaryDirectory(prefix="bench-hunt-") as tmp:
        out = str(Path(tmp) / "timeline.jsonl")
        base = measure("corpus   ", logs, engines, args.runs, out)
        if args.scale > 1:
            big = Path(tmp) / "logs"
            start = time.perf_counter()
            replicate(logs, big, args.scale)
            print(f"(made the {args.scale}x corpus in {time.perf_counter() - start:.1f} s)")
            grown = measure(f"corpus x{args.scale}", big, engines, max(3, args.runs // 2), out)
            for engine in engines:
                (w1, r1), (w2, r2) = base[engine], grown[engine]
                print(f"{engine}: {r2 / r1:.1f}x the records took {w2 / w1:.1f}x the time")
        phases(logs, engines)


if __name__ == "__main__":
    main()
