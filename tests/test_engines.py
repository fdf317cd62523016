"""The engine interface (transpiler/engines): one plan, the same answer from a list of events
and from files, refusals and undecided events with their reasons, and the CloudTrail table
described once (cloudtrail.SCHEMA) with the SQL mapping checked against it."""
from __future__ import annotations

import json

import pytest
from conftest import missing_tool

from transpiler import cloudtrail, engines
from transpiler.mapping import load_mapping_file
from transpiler.resources import resource_dir
from transpiler.rule import load_text, rule_from_dict
from transpiler.ruleset import RuleSet

CLOUDTRAIL = {"product": "aws", "service": "cloudtrail"}


def rule(detection, logsource=CLOUDTRAIL, title="r"):
    return rule_from_dict({"title": title, "logsource": logsource, "detection": {**detection, "condition": "sel"}})


EVENTS = [
    {"eventName": "CreateUser", "eventID": "a", "userIdentity": {"arn": "arn:1"}, "eventTime": "2024-01-01T00:00:00Z"},
    {"eventName": "createuser", "eventID": "b", "requestParameters": {"userName": "bob"},
     "eventTime": "2024-01-01T00:00:10Z", "userIdentity": {"arn": "arn:1"}},
    {"eventName": "DeleteUser", "eventID": "a", "eventTime": "2024-01-01T00:00:20Z"},     # eventID repeated
    {"eventName": ["CreateUser", "x"], "eventID": "c"},                                    # a list: odd for tables
]
RULES = [rule({"sel": {"eventName": "CreateUser"}}, title="create"),
         rule({"sel": {"requestParameters.userName": "bob"}}, title="bob"),
         rule({"sel": {"Image|endswith": "cmd.exe"}}, {"category": "process_creation"}, title="windows")]


@pytest.mark.parametrize("name", ["evaluator", "duckdb"])
def test_files_and_lists_give_the_same_answer(tmp_path, name):
    (tmp_path / "one.json").write_text(json.dumps({"Records": EVENTS[:2]}))
    (tmp_path / "two.jsonl").write_text("\n".join(json.dumps(e) for e in EVENTS[2:]) + "\n")
    engine = engines.get(name)()
    listed = engine.run(RULES, EVENTS, show=("eventid",))
    files = engine.run(RULES, engines.Files.under([tmp_path]), show=("eventid",))
    position = {engines.key(0, 0): 0, engines.key(0, 1): 1, engines.key(1, 0): 2, engines.key(1, 1): 3}
    assert {n: [position[k] for k in ks] for n, ks in files.matches.items()} == listed.matches
    assert {position[k]: row for k, row in files.rows.items()} == listed.rows
    assert (files.read.records, files.read.duplicates, listed.read.records) == (4, 0, 4)
    deduped = engine.run(RULES, engines.Files.under([tmp_path], dedupe=True))
    assert deduped.read.duplicates == 1 and engines.key(1, 0) not in deduped.matches[0] + deduped.matches[1]
    assert listed.matches[1] == [1]


def test_engines_agree_with_the_evaluator_or_say_why():
    """duckdb reads the list-valued eventName as its JSON text (the CloudTrail table's shape)
    and agrees elsewhere; strict, a rule it cannot express is refused with the reason; with
    fallback it runs on the evaluator instead."""
    keywords = rule({"sel": ["CreateUser"]}, title="keywords")
    reference = engines.get("evaluator")().run(RULES + [keywords], EVENTS)
    strict = engines.get("duckdb")().run(RULES + [keywords], EVENTS)
    assert strict.refused == {3: "duckdb: keywords (a value anywhere in the event) need a column of every string; "
                                 "the table 'cloudtrail_logs' of this mapping has none"}
    assert strict.matches == {0: [0, 1], 1: [1], 2: []} and reference.matches[0] == [0, 1, 3]
    fallback = engines.get("duckdb")(fallback=True).run(RULES + [keywords], EVENTS)
    assert fallback.matches[3] == reference.matches[3] == [0, 1, 3] and list(fallback.fallback) == [3]


def test_pipesearch_leaves_out_the_events_a_row_cannot_hold():
    engine = engines.get("pipesearch")()
    if engine.unavailable():
        missing_tool(engine.unavailable())
    try:
        got = engine.run(RULES[:1], EVENTS)
    finally:
        engine.close()
    assert got.matches == {0: [0, 1]} and got.undecided == {0: [3]}
    assert got.stats["undecided"] == {"eventName is a list": 1}


def test_correlations_run_and_are_refused_by_name():
    rules, errors = load_text("""
title: two creates
logsource: {product: aws, service: cloudtrail}
correlation: {type: event_count, rules: [create], group-by: [userIdentity.arn], timespan: 1m, condition: {gte: 2}}
---
title: create
logsource: {product: aws, service: cloudtrail}
detection: {sel: {eventName: CreateUser}, condition: sel}
""", "c.yml")
    plan = engines.plan(rules, errors)
    assert len(plan.rules) == 1 and not plan.shown and not plan.errors       # generate: false hides it
    alerts = {}
    for name in ("evaluator", "duckdb"):
        out = engines.get(name)().run(plan.rules, EVENTS, plan.correlations)
        alerts[name] = [a.as_dict() for a in out.alerts]
    assert alerts["duckdb"] == alerts["evaluator"] and alerts["evaluator"][0]["triggers"] == 1
    assert engines.plan(rules, errors, keep=lambda r: False).skipped == 2


def test_a_field_required_twice_keeps_either_value_set():
    """Tags|all: [a, b] selects {Tags: [a, b]}: the index must not require a value equal to
    both a and b (their intersection is empty)."""
    both = rule({"sel": {"Tags|all": ["a", "b"]}}, {"category": "x"})
    assert RuleSet([both]).matching({"Tags": ["b", "a"]}) == [both]


def test_the_sql_mapping_is_the_cloudtrail_schema():
    """templates/sql/mappings/cloudtrail.yml maps every column of cloudtrail.SCHEMA and
    nothing else: scalars as fields, JSON text as json, resources as an array of structs."""
    mapping = load_mapping_file(resource_dir("templates") / "sql" / "mappings" / "cloudtrail.yml")
    assert (mapping.table, mapping.logsource, mapping.unmapped) == (cloudtrail.TABLE, cloudtrail.LOGSOURCE, "error")
    schema = cloudtrail.sigma_fields()
    scalars = {name: column for name, (column, kind) in schema.items() if kind == cloudtrail.TEXT}
    assert {name: t.column for name, t in mapping.fields.items()} == scalars
    assert all(t.type == "string" and not t.json_path and t.element is None for t in mapping.fields.values())
    assert mapping.json == {name: column for name, (column, kind) in schema.items() if kind == cloudtrail.JSON}
    lists = {name: (column, kind[0]) for name, (column, kind) in schema.items() if isinstance(kind, list)}
    assert mapping.arrays == {name: {"column": column, "fields": {key: c for c, key, _ in item}}
                              for name, (column, item) in lists.items()}
    maps = [name for name, (_, kind) in schema.items() if kind == cloudtrail.MAP]
    assert maps == ["userIdentity.sessionContext.webIdFederationData.attributes"]   # no SQL reads a map


def test_a_shown_event_is_the_table_row():
    row = cloudtrail.record({"eventName": 5, "userIdentity": "odd", "resources": {"ARN": "a"}, "other": 1},
                            cloudtrail.columns(("eventname", "useridentity", "resources")))
    assert row == {"eventname": "5", "useridentity": None, "resources": [{"arn": "a", "accountid": None, "type": None}]}
