"""Start-up: one rule converted to Athena, the whole process, paired with sigma-cli.

    python bench/startup.py [--runs 10] [--rule rules/aws_iam_user_created.yml] [--target athena]

Ours cold (--no-cache: imports, load, convert), warm (its cache entry there) and after an
edit of the rule (a miss, with the analysed grammar and compiled templates cached), each
paired with `sigma convert -t athena RULE`; prints the medians of wall and CPU time and peak
RSS, the median per-pair ratios and the load average.

Both tools run from Python bytecode, as installed packages do (paired.from_bytecode);
--source-only keeps the shell's PYTHONDONTWRITEBYTECODE.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import paired
from common import ROOT


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--rule", default=str(ROOT / "rules" / "aws_iam_user_created.yml"))
    p.add_argument("--target", default="athena", choices=sorted(paired.SIGMA_TARGETS))
    p.add_argument("--source-only", action="store_true", help="keep PYTHONDONTWRITEBYTECODE if set")
    args = p.parse_args()
    theirs = paired.sigma_convert(args.target, [args.rule])
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = {**os.environ, "XDG_CACHE_HOME": tmp}
        cold = paired.cold()
        paired.from_bytecode(Path(tmp) / "bytecode", args.target, args.source_only, env)
        before = paired.load()
        measured = paired.pairs(paired.ours_convert(args.target, [args.rule], *cold), theirs, args.runs, env=env)
        paired.report(f"one rule to {args.target}, ours cold {' '.join(cold)}", measured, before=before)
        if cold:
            paired.run(paired.ours_convert(args.target, [args.rule]), env=env)    # fills the cache
            before = paired.load()
            measured = paired.pairs(paired.ours_convert(args.target, [args.rule]), theirs, args.runs, env=env)
            paired.report(f"one rule to {args.target}, ours warm", measured, before=before)
            # A rule never converted before (a new comment line each time), with the analysed
            # grammar and compiled templates in the cache: what an edit of the rule costs.
            edited = Path(tmp) / Path(args.rule).name
            text = Path(args.rule).read_text(encoding="utf-8")
            before = paired.load()
            measured = paired.pairs(paired.ours_convert(args.target, [str(edited)]), theirs, args.runs, env=env,
                                    prepare=lambda i: edited.write_text(f"{text}\n# edit {i}\n", encoding="utf-8"))
            paired.report(f"one rule to {args.target}, ours after an edit of the rule", measured, before=before)


if __name__ == "__main__":
    main()
