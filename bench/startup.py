"""Start-up: one rule converted to Athena, the whole process, paired with sigma-cli.

    python bench/startup.py [--runs 10] [--rule rules/aws_iam_user_created.yml] [--target athena]

Ours cold (--no-cache: imports, load, convert) and warm (its cache entry there), each paired
with `sigma convert -t athena RULE`; prints the medians of wall and CPU time and peak RSS, the
median per-pair ratios and the load average.
"""
from __future__ import annotations

import argparse
import os
import tempfile

import paired
from common import ROOT


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--rule", default=str(ROOT / "rules" / "aws_iam_user_created.yml"))
    p.add_argument("--target", default="athena", choices=sorted(paired.SIGMA_TARGETS))
    args = p.parse_args()
    theirs = paired.sigma_convert(args.target, [args.rule])
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = {**os.environ, "XDG_CACHE_HOME": tmp}
        cold = paired.cold()
        before = paired.load()
        measured = paired.pairs(paired.ours_convert(args.target, [args.rule], *cold), theirs, args.runs, env=env)
        paired.report(f"one rule to {args.target}, ours cold {' '.join(cold)}", measured, before=before)
        if cold:
            paired.run(paired.ours_convert(args.target, [args.rule]), env=env)    # fills the cache
            before = paired.load()
            measured = paired.pairs(paired.ours_convert(args.target, [args.rule]), theirs, args.runs, env=env)
            paired.report(f"one rule to {args.target}, ours warm", measured, before=before)


if __name__ == "__main__":
    main()
