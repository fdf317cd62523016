"""Convert the SigmaHQ and suzaku corpora to Logpresso-style pipe search and count the outcome.

    python bench/convert_pipesearch.py [--runs 3] [FOLDER ...]

Prints, per folder: rules converted, unsupported by reason (the message with the variable
parts cut), anything else that went wrong (a crash: must be zero), and the time: the median
wall time of the whole process (import + load + convert) and, from one in-process run, how it
splits between loading and converting.
"""
from __future__ import annotations

import argparse
import json
import sys

from common import need_corpus, time_command

SCRIPT = r"""
import collections, json, re, sys, time, traceback
from transpiler.backends import get
from transpiler.errors import Unsupported
from transpiler.rule import load_paths
start = time.perf_counter()
rules, errors = load_paths([sys.argv[1]])
loaded = time.perf_counter()
backend = get("pipesearch")()
converted, reasons, crashes, other_kinds = 0, collections.Counter(), [], collections.Counter()
for rule in rules:
    if rule.kind != "rule":
        other_kinds[rule.kind] += 1
        continue
    try:
        backend.convert(rule)
        converted += 1
    except Unsupported as e:
        # The reason without the rule's own names and values.
        reason = re.sub(r"'[^']*'|\"[^\"]*\"|\{[^}]*\}", "…", e.message)
        reason = re.sub(r"pipesearch: \S+ (is (inside )?the (array|map))", r"pipesearch: FIELD \1", reason)
        reason = re.sub(r"(the array|the map) \S+", r"\1 …", reason)
        reason = re.sub(r"the (minute|hour|day|week|month|year) of", "the PART of", reason)
        reason = re.sub(r"network \S+ holds", "network … holds", reason)
        reasons[reason] += 1
    except Exception as e:
        crashes.append(f"{rule.path}: {type(e).__name__}: {e}")
done = time.perf_counter()
print(json.dumps({"rules": len(rules), "errors": len(errors), "converted": converted,
                  "reasons": reasons.most_common(), "crashes": crashes, "other": dict(other_kinds),
                  "load": loaded - start, "convert": done - loaded}))
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("folders", nargs="*")
    args = p.parse_args()
    folders = args.folders or [str(need_corpus("rules", "sigmahq-rules")),
                               str(need_corpus("rules", "suzaku-rules"))]
    crashed = False
    for folder in folders:
        median, samples, done = time_command([sys.executable, "-c", SCRIPT, folder], args.runs)
        if done.returncode:
            sys.exit(done.stderr)
        r = json.loads(done.stdout)
        unsupported = sum(n for _, n in r["reasons"])
        print(f"{folder}: {r['rules']} documents ({r['other'] or 'all rules'}), {r['errors']} load errors")
        print(f"  converted {r['converted']}, unsupported {unsupported}, crashed {len(r['crashes'])}")
        for reason, n in r["reasons"]:
            print(f"  {n:6d}  {reason}")
        for crash in r["crashes"][:20]:
            print(f"  CRASH {crash}")
        print(f"  whole process: median {median:.2f} s over {args.runs} runs "
              f"({', '.join(f'{s:.2f}' for s in samples)}); in-process load {r['load']:.2f} s, "
              f"convert {r['convert']:.2f} s ({r['converted'] + unsupported} rules, "
              f"{1000 * r['convert'] / max(1, r['converted'] + unsupported):.2f} ms each)")
        crashed |= bool(r["crashes"])
    sys.exit(1 if crashed else 0)


if __name__ == "__main__":
    main()
