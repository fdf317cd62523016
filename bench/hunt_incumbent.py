"""`hunt` paired with the incumbent: pySigma's SQLite backend over the same logs and rules.

    python bench/hunt_incumbent.py [--runs 5] [--engine duckdb]

Ours: `sigma-transpile hunt RULES --logs LOGS --engine E --format jsonl -o FILE` over the
CloudTrail corpus with the suzaku CloudTrail rules (bench/hunt.py's set). The incumbent:
bench/sigmacli_hunt.py in the sigma-cli venv (pySigma 1.5.1, pySigma-backend-sqlite 2.0.0:
`pip install pysigma-backend-sqlite==2.0.0` there), which loads the same records into an
in-memory SQLite table and runs each rule's query. Whole processes, alternately; prints the
medians, the median per-pair ratio and the load average.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import paired
from common import ROOT, need_corpus
from hunt import rule_folders


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--engine", default="duckdb", choices=("duckdb", "evaluator"))
    args = p.parse_args()
    logs = str(need_corpus("cloudtrail"))
    theirs = [str(paired.sigma_cli().with_name("python")), str(ROOT / "bench" / "sigmacli_hunt.py"),
              *rule_folders(), "--logs", logs]
    with tempfile.TemporaryDirectory(prefix="bench-hunt-") as tmp:
        ours = [paired.OURS, "hunt", *rule_folders(), "--logs", logs, "--engine", args.engine,
                "--format", "jsonl", "-o", str(Path(tmp) / "out.jsonl"), "--no-progress"]
        before = paired.load()
        measured = paired.pairs(ours, theirs, args.runs, ok=(0, 1))
    print(f"  incumbent: {measured[-1][1].stderr.strip().splitlines()[-1]}")
    paired.report(f"hunt, {args.engine} engine, vs pySigma SQLite", measured, theirs="pySigma", before=before)


if __name__ == "__main__":
    main()
