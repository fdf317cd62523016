"""The differential fuzzer, long: random rules and events through every engine that executes
here (DuckDB, Athena executed with Trino's functions, the pipe-search interpreter, KQL on
duckdb-kql), each compared with the evaluator (tests/fuzzlib.py; tests/test_fuzz.py runs a short
fixed-seed version).

    python bench/fuzz.py [--examples 500] [--seed N] [--shape generic|cloudtrail|both]
                         [--minimize 10] [--all]

Prints, per shape and engine: rules given and executed, verdicts compared, matches,
disagreements, refusals by reason and undecided events by reason. Disagreements already known
(tests/test_fuzz.py KNOWN) are counted apart unless --all; the first --minimize new ones are
shrunk (tests/fuzzlib.minimize) and printed as golden-case YAML.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

import fuzzlib  # noqa: E402
from test_fuzz import known  # noqa: E402


def run(shape, engines, examples, chosen_seed):
    tally = fuzzlib.Tally()

    @seed(chosen_seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize=False)
    @given(example=fuzzlib.examples(shape))
    def one(example):
        fuzzlib.compare(engines, example.rules, example.events, example.docs, tally)

    one()
    return tally


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=500, help="examples per shape (3 rules, 8 events each)")
    ap.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    ap.add_argument("--shape", choices=["generic", "cloudtrail", "both"], default="both")
    ap.add_argument("--minimize", type=int, default=10, help="shrink and print this many new disagreements")
    ap.add_argument("--all", action="store_true", help="treat known (open) findings as new")
    args = ap.parse_args()
    chosen_seed = args.seed if args.seed is not None else random.randrange(2**32)
    engines = fuzzlib.available_engines()
    print(f"seed {chosen_seed}; engines: {', '.join(engines)} (and the evaluator as reference)")
    failed = 0
    try:
        for shape in (["generic", "cloudtrail"] if args.shape == "both" else [args.shape]):
            start = time.perf_counter()
            tally = run(shape, engines, args.examples, chosen_seed)
            new = [d for d in tally.disagreements if args.all or not known(d)]
            print(f"\n== {shape}: {args.examples} examples in {time.perf_counter() - start:.0f} s; "
                  f"{len(tally.disagreements)} disagreements, {len(new)} not known")
            print(tally.report())
            seen_known = {}
            for d in tally.disagreements:
                if d not in new:
                    seen_known[known(d)] = seen_known.get(known(d), 0) + 1
            if seen_known:
                print("known open findings:", ", ".join(f"{k} x{n}" for k, n in sorted(seen_known.items())))
            shown = set()
            for d in new[:args.minimize]:
                doc, events = fuzzlib.minimize(engines[d.engine], d.doc, d.events)
                key = (d.engine, json.dumps(doc["detection"], sort_keys=True, default=str))
                if key in shown:
                    continue
                shown.add(key)
                print(f"\n-- {d.engine} disagrees:")
                print(yaml.safe_dump({"logsource": doc["logsource"], "detection": doc["detection"], "events": events},
                                     allow_unicode=True, sort_keys=False, width=200))
            failed += len(new)
    finally:
        fuzzlib.close(engines)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
