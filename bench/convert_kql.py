"""Convert the SigmaHQ rules to KQL, paired with sigma-cli (pySigma-backend-kusto), then what
is unsupported, by reason, in the SigmaHQ and Suzaku rules.

    python bench/convert_kql.py [--runs 5] [--folder DIR ...]

Both tools convert the same files: those sigma-cli converts without aborting (3,137 of the
3,141 SigmaHQ rules: pySigma-backend-kusto 1.0.1 aborts on 4). Whole processes, alternately,
cold (ours with --no-cache); prints each tool's median wall and CPU time and peak RSS, the
median of the per-pair ratios and the load average. Then, per folder, from one in-process
run: converted, unsupported by reason (the error kind and its most frequent messages), load
errors.

Both tools run from Python bytecode, as installed packages do (bench/startup.py says why);
--source-only keeps the shell's PYTHONDONTWRITEBYTECODE (paired.from_bytecode).
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile

import paired
from common import ROOT, need_corpus

sys.path.insert(0, str(ROOT))


def counts(folder: str) -> dict:
    from transpiler.backends import get
    from transpiler.errors import Unsupported
    from transpiler.rule import load_paths

    rules, errors = load_paths([folder])
    backend = get("kql")()
    converted, reasons, skipped = 0, collections.Counter(), 0
    for rule in rules:
        if rule.kind != "rule":
            skipped += 1
            continue
        try:
            backend.convert(rule)
            converted += 1
        except Unsupported as e:
            # One bucket per reason: the kind, and the message without the names in it.
            reasons[(e.kind, re.sub(r"'[^']*'|\S+\.\S+", "…", e.message))] += 1
    return {"rules": len(rules), "load_errors": collections.Counter(e.kind for e in errors),
            "converted": converted, "unsupported": reasons, "not_rules": skipped}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--folder", action="append")
    p.add_argument("--source-only", action="store_true", help="keep PYTHONDONTWRITEBYTECODE if set")
    args = p.parse_args()
    sigmahq = need_corpus("rules", "sigmahq-rules")
    with tempfile.TemporaryDirectory(prefix="bench-kql-") as tmp:
        paired.from_bytecode(tmp, "kql", args.source_only)
        paired.convert_figure("kql", sigmahq, args.runs, *paired.cold())
    for folder in args.folder or [str(sigmahq), str(need_corpus("rules", "suzaku-rules"))]:
        c = counts(folder)
        unsupported = sum(c["unsupported"].values())
        print(f"kql: {folder}: {c['rules']} rules: {c['converted']} converted, {unsupported} unsupported, "
              f"{c['not_rules']} correlations/filters not converted, load errors {json.dumps(c['load_errors'])}")
        for (kind, message), n in c["unsupported"].most_common():
            print(f"  {n:5d}  {kind}: {message}")


if __name__ == "__main__":
    main()
