"""Load and parse every SigmaHQ rule (YAML, condition grammar, modifiers -> IR).

    python bench/load_rules.py [--runs 5]

Ours alone (no incumbent figure: the comparisons with sigma-cli are paired, in the same
session, in convert_athena.py and convert_kql.py).
"""
from __future__ import annotations

import argparse
import sys

from common import need_corpus, time_command

SCRIPT = """
import sys
from transpiler.rule import load_paths
rules, errors = load_paths([sys.argv[1]])
print(len(rules), len(errors))
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--folder", default=None)
    args = p.parse_args()
    folder = args.folder or str(need_corpus("rules", "sigmahq-rules"))
    median, samples, done = time_command([sys.executable, "-c", SCRIPT, folder], args.runs)
    rules, errors = map(int, done.stdout.split())
    print(f"load+parse {rules} rules ({errors} errors) from {folder}")
    print(f"whole process: median {median:.2f} s over {args.runs} runs "
          f"({', '.join(f'{s:.2f}' for s in samples)}); {rules / median:.0f} rules/s")


if __name__ == "__main__":
    main()
