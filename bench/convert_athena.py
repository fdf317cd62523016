"""Convert every SigmaHQ rule to Athena SQL: the whole process, load + convert.

    python bench/convert_athena.py [--runs 5] [--target athena] [--folder DIR]

For comparison, sigma-cli with pySigma-backend-athena needs about 11 s for the same folder
and converts 3,024 of the rules (it aborts on 86). Prints the median wall time and, from
one in-process run, how the time splits between loading and converting, and the CPU time.
"""
from __future__ import annotations

import argparse
import sys

from common import need_corpus, time_command

SCRIPT = """
import sys, time
from transpiler.backends import get
from transpiler.errors import Unsupported
from transpiler.rule import load_paths
start = time.perf_counter()
rules, errors = load_paths([sys.argv[1]])
loaded = time.perf_counter()
backend = get(sys.argv[2])()
converted, unsupported = 0, 0
for rule in rules:
    if rule.kind != "rule":
        continue
    try:
        backend.convert(rule)
        converted += 1
    except Unsupported:
        unsupported += 1
done = time.perf_counter()
print(len(rules), len(errors), converted, unsupported, loaded - start, done - loaded, time.process_time())
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--target", default="athena")
    p.add_argument("--folder", default=None)
    args = p.parse_args()
    folder = args.folder or str(need_corpus("rules", "sigmahq-rules"))
    median, samples, done = time_command([sys.executable, "-c", SCRIPT, folder, args.target], args.runs)
    if done.returncode:
        sys.exit(done.stderr)
    rules, errors, converted, unsupported = map(int, done.stdout.split()[:4])
    load, convert, cpu = map(float, done.stdout.split()[4:])
    print(f"{args.target}: {rules} rules from {folder}: {converted} converted, {unsupported} unsupported, "
          f"{errors} load errors")
    print(f"whole process (import + load + convert): median {median:.2f} s over {args.runs} runs "
          f"({', '.join(f'{s:.2f}' for s in samples)}); {rules / median:.0f} rules/s")
    print(f"last run inside the process: load {load:.2f} s, convert {convert:.2f} s (wall); "
          f"{cpu:.2f} s CPU for the whole process (less disturbed by a busy machine)")


if __name__ == "__main__":
    main()
