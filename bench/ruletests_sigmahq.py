"""SigmaHQ's regression tests on every engine: the SigmaHQ rules of the corpus
(../shared/corpus/rules/sigmahq-rules*) with the regression data of a SigmaHQ/sigma checkout
(its regression_data/ folder, not in the corpus), as `sigma-transpile test` runs them.

    python bench/ruletests_sigmahq.py SIGMA_CHECKOUT [--targets evaluator,duckdb,athena,kql,pipesearch]

Prints, per target: rules tested, events checked, pass / fail / not executable (by reason) /
error, and seconds; then how each .evtx file read through evtx compares with the JSON exported
beside it. The corpus rules are at the commit the corpus README names; use a checkout of the
same commit.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import ROOT, need_corpus

sys.path.insert(0, str(ROOT))

from transpiler import engines, ruletests, testrun, winevent  # noqa: E402
from transpiler.rule import load_paths  # noqa: E402

FOLDERS = {"rules": "sigmahq-rules", "rules-emerging-threats": "sigmahq-rules-emerging-threats",
           "rules-threat-hunting": "sigmahq-rules-threat-hunting"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("sigma", type=Path, help="a SigmaHQ/sigma checkout (for regression_data/)")
    p.add_argument("--targets", default=",".join(sorted(engines.ENGINES, key=lambda t: (t != "evaluator", t))))
    args = p.parse_args()
    data = args.sigma / "regression_data"
    if not data.is_dir():
        sys.exit(f"no regression_data/ in {args.sigma}")
    with tempfile.TemporaryDirectory() as tmp:
        # SigmaHQ's layout: rule folders and regression_data/ side by side, so that
        # regression_tests_path resolves from each rule upwards
        for name, corpus in FOLDERS.items():
            os.symlink(need_corpus("rules", corpus), Path(tmp) / name)
        os.symlink(data.resolve(), Path(tmp) / "regression_data")
        start = time.perf_counter()
        rules, errors = load_paths([Path(tmp) / name for name in FOLDERS])
        suite, untested = ruletests.collect(rules)
        print(f"{len(rules)} rule documents ({len(errors)} load errors), {len(suite)} with regression tests, "
              f"{sum(t.events for t in suite)} events, {sum(bool(t.errors) for t in suite)} whose tests "
              f"cannot be read; {time.perf_counter() - start:.1f} s")
        for target in args.targets.split(","):
            start = time.perf_counter()
            results = testrun.run(suite, [target])
            seconds = time.perf_counter() - start
            c = testrun.counts(results, [target])[target]
            print(f"{target}: {c['rules']} rules, {c['checked']} events checked, {c['pass']} pass, "
                  f"{c['fail']} fail, {c['not-executable']} not executable, {c['error']} error; "
                  f"{seconds:.1f} s (load {os.getloadavg()[0]:.1f})")
            reasons = Counter(r.reason for r in results if r.status == "not-executable")
            for reason, n in reasons.most_common():
                print(f"    not executable {n}: {reason}")
            for r in results:
                if r.status in ("fail", "error"):
                    print(f"    {r.status} {r.tests.rule.label}: {r.reason or r.failures[0]}")
    same = trimmed = other = 0
    for evtx in sorted(data.rglob("*.evtx")):
        export = evtx.with_suffix(".json")
        if not export.is_file():
            continue
        a, b = winevent.read_evtx(evtx), winevent.read_export(export)
        if a == b:
            same += 1
        elif len(a) == len(b) and all(x.keys() == y.keys() and all(
                x[k] == y[k] or (isinstance(x[k], str) and x[k].rstrip() == y[k]) for k in x) for x, y in zip(a, b)):
            trimmed += 1
        else:
            other += 1
    print(f".evtx vs JSON export: {same} identical, {trimmed} differ only by trailing blanks the export "
          f"trims, {other} otherwise")


if __name__ == "__main__":
    main()
