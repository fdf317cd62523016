"""Convert the SigmaHQ and Suzaku rules to KQL: the whole process (import + load + convert),
and what is unsupported, by reason.

    python bench/convert_kql.py [--runs 3] [--folder DIR ...]

For comparison, sigma-cli's kusto target (pySigma-backend-kusto 1.0.1) aborts on 4 SigmaHQ
rules and needs about 10.7 s for the rest of sigmahq-rules. Prints, per folder, the median wall
time over the runs, then from one in-process run the counts: converted, unsupported by reason
(the error kind and its most frequent messages), load errors.
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import sys

from common import ROOT, need_corpus, time_command

sys.path.insert(0, str(ROOT))

SCRIPT = """
import sys
from transpiler.backends import get
from transpiler.errors import Unsupported
from transpiler.rule import load_paths
rules, errors = load_paths([sys.argv[1]])
backend = get("kql")()
for rule in rules:
    if rule.kind == "rule":
        try:
            backend.convert(rule)
        except Unsupported:
            pass
"""


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
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--folder", action="append")
    args = p.parse_args()
    folders = args.folder or [str(need_corpus("rules", "sigmahq-rules")), str(need_corpus("rules", "suzaku-rules"))]
    for folder in folders:
        median, samples, done = time_command([sys.executable, "-c", SCRIPT, folder], args.runs)
        if done.returncode:
            sys.exit(done.stderr)
        c = counts(folder)
        unsupported = sum(c["unsupported"].values())
        print(f"kql: {folder}: {c['rules']} rules: {c['converted']} converted, {unsupported} unsupported, "
              f"{c['not_rules']} correlations/filters not converted, load errors {json.dumps(c['load_errors'])}")
        print(f"  whole process: median {median:.2f} s over {args.runs} runs "
              f"({', '.join(f'{s:.2f}' for s in samples)}); {c['rules'] / median:.0f} rules/s")
        for (kind, message), n in c["unsupported"].most_common():
            print(f"  {n:5d}  {kind}: {message}")


if __name__ == "__main__":
    main()
