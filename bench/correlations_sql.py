"""The suzaku CloudTrail correlations in SQL: conversion time per dialect, and over the CloudTrail
corpus the DuckDB query's time next to the reference evaluator's (same alerts: see
tests/test_correlation_sql.py).

    python bench/correlations_sql.py [--runs 5] [--timespan SECONDS]

--timespan replaces every correlation's timespan (longer windows: more work per event).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

from common import ROOT, need_corpus

sys.path.insert(0, str(ROOT))

from transpiler import duckdb_events  # noqa: E402
from transpiler.backends.sql import Athena, DuckDB  # noqa: E402
from transpiler.correlation import evaluate, resolve  # noqa: E402
from transpiler.rule import load_paths  # noqa: E402


def median_time(fn, runs):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--timespan", type=int, default=None)
    args = p.parse_args()
    rules, _ = load_paths([need_corpus("rules", "suzaku-rules", "suzaku", "aws", "cloudtrail")])
    correlations, _, errors = resolve(rules)
    if args.timespan:
        correlations = [dataclasses.replace(c, timespan=args.timespan) for c in correlations]
    for backend in (Athena(), DuckDB()):
        first, _ = median_time(lambda: [backend.convert_correlation(c) for c in correlations], 1)
        seconds, _ = median_time(lambda: [backend.convert_correlation(c) for c in correlations], args.runs)
        print(f"{backend.name}: {len(correlations)} correlations converted in {seconds * 1000:.1f} ms "
              f"(median of {args.runs}; the first time, templates compiled: {first * 1000:.0f} ms)")
    con = duckdb_events.connect()
    events, _ = duckdb_events.read_cloudtrail(con, [need_corpus("cloudtrail")])
    data = [e.data for e in events]
    print(f"{len(events)} CloudTrail events; median of {args.runs} runs each:")
    duck = DuckDB()
    for c in correlations:
        sql = duck.convert_correlation(c)
        t_sql, rows = median_time(lambda: con.execute(sql).fetchall(), args.runs)
        t_eval, alerts = median_time(lambda: evaluate(c, data, "eventTime"), max(1, args.runs // 2))
        print(f"  {c.type:17} {c.rule.title[:45]:45} {len(rows):3} alerts  duckdb {t_sql * 1000:7.1f} ms  "
              f"evaluator {t_eval * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
