"""The DuckDB dialect, executed: the rows a generated query selects are exactly the events the
evaluator matches, for every golden case and for the CloudTrail corpus, rule by rule.

Golden events are arbitrary JSON, so every case runs on the generic events table (each field's
values resolved as the evaluator does); cases on logsource aws/cloudtrail also run on the
CloudTrail table, the shape Athena reads. Cases the dialect marks unsupported are skipped.
"""
from __future__ import annotations

from collections import Counter

import pytest
from caselib import load_cases
from conftest import corpus_path

from transpiler.errors import Unsupported
from transpiler.evaluate import matches
from transpiler.resources import resource_dir

duckdb = pytest.importorskip("duckdb")
from transpiler import duckdb_events  # noqa: E402
from transpiler.backends.sql import DuckDB  # noqa: E402

CASES = [c for c in load_cases() if not c.error]
GENERIC = resource_dir("templates") / "duckdb" / "mappings" / "generic.yml"


@pytest.fixture(scope="module")
def con():
    connection = duckdb_events.connect()
    yield connection
    connection.close()


def selected(con, sql: str) -> list[int]:
    return sorted(row[0] for row in con.execute(f"SELECT row_id FROM ({sql}) AS q").fetchall())


def expected(query, events) -> list[int]:
    return [n for n, e in enumerate(events) if matches(query, e)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_generic_table(con, case):
    rule = case.rule()
    try:
        sql = DuckDB(mapping_file=GENERIC).convert(rule)
    except Unsupported as e:
        pytest.skip(f"unsupported: {e.message}")
    duckdb_events.load_events(con, case.events)
    assert selected(con, sql) == expected(rule.query, case.events), sql


CLOUDTRAIL_CASES = [c for c in CASES if {k: str(v).lower() for k, v in c.logsource.items()}
                    == {"product": "aws", "service": "cloudtrail"}]


@pytest.mark.parametrize("case", CLOUDTRAIL_CASES, ids=lambda c: c.id)
def test_cloudtrail_table(con, case):
    rule = case.rule()
    try:
        sql = DuckDB().convert(rule)
    except Unsupported as e:
        pytest.skip(f"unsupported: {e.message}")
    duckdb_events.load_cloudtrail(con, case.events)
    assert selected(con, sql) == expected(rule.query, case.events), sql


@pytest.mark.corpus
@pytest.mark.slow
def test_cloudtrail_corpus(con):
    """Every suzaku CloudTrail rule over every corpus event: DuckDB rows == evaluator matches."""
    from transpiler.rule import load_paths
    from transpiler.ruleset import RuleSet

    rules_root = corpus_path("rules", "suzaku-rules")
    rules, errors = load_paths([rules_root / "suzaku" / "aws" / "cloudtrail",
                                rules_root / "sigma" / "aws" / "cloudtrail"])
    rules = [r for r in rules if r.kind == "rule"]
    events, bad_files = duckdb_events.read_cloudtrail(con, [corpus_path("cloudtrail")])
    assert [e.path for e in bad_files] == [str(corpus_path("cloudtrail", "traildiscover.cloud", "aws",
                                                           "cloudtrail", "CreateApiKey.json"))]
    by_rule = {id(r): [] for r in rules}
    ruleset = RuleSet(rules)
    for n, event in enumerate(events):
        for r in ruleset.matching(event.data):
            by_rule[id(r)].append(n)

    backend = DuckDB()
    unsupported, wrong, total = Counter(), [], 0
    for rule in rules:
        try:
            sql = backend.convert(rule)
        except Unsupported as e:
            unsupported[e.message] += 1
            continue
        got = selected(con, sql)
        total += len(got)
        if got != by_rule[id(rule)]:
            wrong.append(f"{rule.path}: duckdb {len(got)} rows, evaluator {len(by_rule[id(rule)])}\n{sql}")
    print(f"\n{len(rules)} rules ({len(errors)} load errors), {len(events)} events: "
          f"{len(rules) - sum(unsupported.values())} converted, {sum(unsupported.values())} unsupported, "
          f"{total} matches")
    for message, count in unsupported.most_common():
        print(f"  {count} x {message}")
    assert not wrong, "\n".join(wrong[:10])
