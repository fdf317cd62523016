"""The pipesearch (Logpresso-style) backend: the seed shape, enrichment, and its queries run
by the interpreter in transpiler/engines/pipesearch.py against the evaluator."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from caselib import UNSUPPORTED, load_cases, load_expected
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transpiler.backends.pipesearch import PipeSearch
from transpiler.engines.pipesearch import NotRepresentable, Row, literals, parse
from transpiler.errors import Unsupported
from transpiler.evaluate import matches
from transpiler.nodes import Op
from transpiler.rule import load_file, rule_from_dict

RULES = Path(__file__).resolve().parent.parent / "rules"

SEED_QUERY = """\
table aws_cloudtrail
| search lower(event_source) == "iam.amazonaws.com" and lower(event_name) == "createuser" and isnull(error_code)
| eval target_user = valueof(req_params, "userName")
| rename account_id as cloud_account, aws_region as cloud_region
| fields _time, cloud_account, cloud_region, src_ip, user, user_type, event_source, event_name, target_user, user_agent"""


def seed_rule(name):
    rules, errors = load_file(RULES / name)
    assert not errors and len(rules) == 1
    return rules[0]


def search_of(query: str) -> str:
    lines = [line for line in query.splitlines() if line.startswith("| search ")]
    assert len(lines) == 1, query
    return lines[0][len("| search "):]


# --- the seed: shipped Logpresso detection "AWS IAM User Created" ---------------------------------

def test_seed_rule_gives_the_seed_shape():
    rule = seed_rule("aws_iam_user_created.yml")
    backend = PipeSearch()
    assert backend.convert(rule) == SEED_QUERY
    assert backend.message(rule) == ("AWS IAM account creation: Cloud $cloud_account, Region $cloud_region, "
                                     "Account $user, New Account $target_user")
    assert backend.output_fields(rule) == ["_time", "cloud_account", "cloud_region", "src_ip", "user",
                                           "user_type", "event_source", "event_name", "target_user",
                                           "user_agent"]


def test_enrichment_follows_the_required_event_name():
    backend = PipeSearch()
    rule = seed_rule("aws_iam_access_key_creation_attempt.yml")
    assert "| eval target_user = valueof(req_params, \"userName\")" in backend.convert(rule)
    assert backend.message(rule).startswith("AWS IAM access key creation:")
    # A list of event names requires none of them: the log source's default enrichment.
    doc = {"title": "t", "logsource": {"product": "aws", "service": "cloudtrail"},
           "detection": {"sel": {"eventName": ["CreateUser", "DeleteUser"]}, "condition": "sel"}}
    query = backend.convert(rule_from_dict(doc))
    assert "| eval" not in query and "| rename account_id as cloud_account" in query
    assert backend.message(rule_from_dict(doc)).startswith("AWS $event_name:")


def test_generic_mapping_and_options():
    doc = {"title": "t", "logsource": {"category": "process_creation", "product": "windows"},
           "detection": {"sel": {"Image|endswith": "\\cmd.exe"}, "condition": "sel"}}
    rule = rule_from_dict(doc)
    assert PipeSearch().convert(rule) == 'table events\n| search lower(Image) == "*\\\\cmd.exe"'
    assert PipeSearch(table="sys_win", duration="1d").convert(rule).startswith("table duration=1d sys_win\n")
    assert PipeSearch().message(rule) == "t" and PipeSearch().output_fields(rule) == []


def test_field_names_that_are_not_tokens():
    doc = {"title": "t", "logsource": {"category": "proxy"},
           "detection": {"sel": {"cs-uri-query|contains": "a", "and": 1}, "condition": "sel"}}
    assert search_of(PipeSearch().convert(rule_from_dict(doc))) == \
        'lower(field("cs-uri-query")) == "*a*" and field("and") == "1"'


# --- literals: every value decodes back to itself, whatever it holds -------------------------------

HOSTILE = st.lists(st.sampled_from(list('ab*?\\"#[] |,()=\t\n\r\x00\u2013\u2014\u2015\u201c\u2212'
                                        '\u0301e\u00e9\u0130\u212a\U0001f600') + ["$(", "\\\""]),
                   min_size=1, max_size=10).map("".join)
OPS = ["", "|contains", "|startswith", "|endswith", "|cased", "|contains|cased"]


def _rule(key, value):
    return rule_from_dict({"title": "t", "logsource": {"category": "test"},
                           "detection": {"sel": {key: value}, "condition": "sel"}})


CONVERTED = Counter()   # property tests below: examples converted (True) or refused (False)


@given(value=HOSTILE, op=st.sampled_from(OPS))
@settings(max_examples=300, deadline=None)
def test_every_literal_decodes_to_the_intended_value(value, op):
    """The search parses under the documented rules (only \\\\ and \\" escapes, no rewritten
    characters), has exactly one leaf, and its string decodes to the value or to a regex."""
    rule = _rule("f" + op, value)
    try:
        query = PipeSearch().convert(rule)
    except Unsupported:
        CONVERTED[False] += 1
        return
    CONVERTED[True] += 1
    tree = parse(search_of(query))
    strs, m = literals(tree), rule.query
    if m.op is Op.EXISTS:
        assert tree == ("call", "isnotnull", [("field", "f")])
        return
    assert len(strs) == 1, query
    if tree[1] == "==":               # the literal is the value, lower-cased unless cased, in wildcards
        v = m.value if m.cased else m.value.lower()
        around = {Op.EQ: "{}", Op.CONTAINS: "*{}*", Op.STARTSWITH: "{}*", Op.ENDSWITH: "*{}"}[m.op]
        assert strs[0] == around.format(v), query
    else:                             # a regex: Java must compile it (test below runs it)
        assert tree[1] == "match", query


@given(value=HOSTILE, op=st.sampled_from(OPS), other=HOSTILE)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_queries_select_what_the_evaluator_selects(engine, value, op, other):
    rule = _rule("f" + op, value)
    try:
        query = PipeSearch().convert(rule)
    except Unsupported:
        CONVERTED[False] += 1
        return
    CONVERTED[True] += 1
    tree = parse(search_of(query))
    mapping = PipeSearch().mapping_for(rule)
    for s in {value, value.upper(), value.lower(), other, other + value + other, value + other}:
        event = {"f": s}
        assert engine.passes(tree, Row(event, mapping)) == matches(rule.query, event), (query, event)


def test_property_tests_converted_most_examples():
    """The two tests above return on Unsupported: they prove something only if most hostile
    values convert (runs after them, in file order; alone it has nothing to check)."""
    if not CONVERTED:
        pytest.skip("run with the property tests above")
    assert CONVERTED[True] >= 0.8 * sum(CONVERTED.values()), CONVERTED


# --- the golden cases, run -------------------------------------------------------------------------

def _runnable():
    expected = load_expected("pipesearch")
    return [c for c in load_cases() if not c.error and not expected.get(c.id, UNSUPPORTED).startswith(UNSUPPORTED)]


@pytest.mark.parametrize("case", _runnable(), ids=lambda c: c.id)
def test_golden_case_runs_like_the_evaluator(engine, case):
    rule = case.rule()
    backend = PipeSearch()
    query = backend.convert(rule)
    tree = parse(search_of(query))
    mapping = backend.mapping_for(rule)
    ran = 0
    for event, want in [(e, True) for e in case.match] + [(e, False) for e in case.no_match]:
        try:
            row = Row(event, mapping)
            got = engine.passes(tree, row)
        except NotRepresentable:
            continue                  # e.g. a list: the mapping says one value per field
        ran += 1
        assert got == want, f"{case.id}: {query}\nevent {event}: Logpresso {got}, Sigma {want}"
    if not ran:
        pytest.skip("no event fits the row model (lists)")


@given(values=st.lists(HOSTILE, min_size=1, max_size=3), op=st.sampled_from(OPS + ["|windash|contains", "|cidr"]),
       others=st.lists(HOSTILE, max_size=3))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_value_lists_select_what_the_evaluator_selects(engine, values, op, others):
    """Lists fold into in(), [classes] (windash) or one network test: still exact."""
    if op == "|cidr":
        values = [f"10.{len(v)}.0.0/16" for v in values]
        others = others + ["10.1.2.3", "::ffff:10.1.2.3", "10.2.0.9"]
    rule = _rule("f" + op, ["-" + v for v in values] if "windash" in op else values)
    try:
        query = PipeSearch().convert(rule)
    except Unsupported:
        return
    tree = parse(search_of(query))
    mapping = PipeSearch().mapping_for(rule)
    for s in {*values, *(v.upper() for v in values), *others, "x /" + values[0] + " y", "\u2014" + values[0]}:
        event = {"f": s}
        assert engine.passes(tree, Row(event, mapping)) == matches(rule.query, event), (query, event)


@pytest.mark.corpus
def test_cloudtrail_rules_on_cloudtrail_events(engine):
    """The AWS rules of both corpora, run on the CloudTrail corpus through the mapping: the rows
    the queries select are the events the evaluator matches. Events of another eventName than
    the one a rule requires are skipped (neither side can select them), and for rules that
    require none, a fixed sample plus every evaluator match."""
    from conftest import corpus_path
    from transpiler.backends.pipesearch import required_value
    from transpiler.events import read_events
    from transpiler.rule import load_paths

    events = [e.data for e in read_events([corpus_path("cloudtrail")])[0] if isinstance(e.data, dict)]
    by_name = {}
    for e in events:
        by_name.setdefault(str(e.get("eventName", "")).lower(), []).append(e)
    rules, _ = load_paths([corpus_path("rules", "sigmahq-rules", "cloud", "aws"),
                           corpus_path("rules", "suzaku-rules")])
    backend, checked, selected = PipeSearch(), 0, 0
    for rule in rules:
        if rule.kind != "rule" or rule.logsource.get("service") != "cloudtrail":
            continue
        try:
            tree = parse(search_of(backend.convert(rule)))
        except Unsupported:
            continue
        mapping = backend.mapping_for(rule)
        name = required_value(rule.query, "eventName")
        pool = by_name.get(name.lower(), []) if name else \
            events[::15] + [e for e in events if matches(rule.query, e)]
        for event in pool:
            want = matches(rule.query, event)
            try:
                got = engine.passes(tree, Row(event, mapping))
            except NotRepresentable:
                continue
            checked += 1
            selected += want
            assert got == want, f"{rule.path}: {event.get('eventID')}: Logpresso {got}, Sigma {want}"
    print(f"cloudtrail: {checked} rule-event pairs, {selected} selected")
    assert checked > 1000 and selected > 10, (checked, selected)


def _shapes_ok(tree) -> bool:
    """Every `==` string and in() item is exact, v*, *v or *v* (never the legacy regex path)."""
    def ok(term):
        n = term.count("*")
        return n == 0 or (n == 1 and (term[0] == "*" or term[-1] == "*")) or \
            (n == 2 and term[0] == term[-1] == "*" and len(term) > 1)
    if tree[0] == "bin":
        if tree[1] == "==" and tree[3][0] == "const" and isinstance(tree[3][1], str) and not ok(tree[3][1]):
            return False
        return _shapes_ok(tree[2]) and _shapes_ok(tree[3])
    if tree[0] == "call":
        if tree[1] == "in" and not all(ok(a[1]) for a in tree[2][1:] if a[0] == "const"):
            return False
        return all(_shapes_ok(a) for a in tree[2])
    return True


def _patterns(tree):
    if tree[0] == "call":
        if tree[1] == "match":
            yield tree[2][1][1]
        for a in tree[2]:
            yield from _patterns(a)
    elif tree[0] == "bin":
        yield from _patterns(tree[2])
        yield from _patterns(tree[3])


@pytest.mark.corpus
def test_every_corpus_query_parses(engine):
    """All corpus rules: the search parses under the documented rules, uses only the exact
    `==`/in() shapes, and every match() pattern compiles in Java."""
    from conftest import corpus_path
    from transpiler.rule import load_paths

    rules, _ = load_paths([corpus_path("rules", "sigmahq-rules"), corpus_path("rules", "suzaku-rules")])
    backend, done = PipeSearch(), 0
    for rule in rules:
        if rule.kind != "rule":
            continue
        try:
            query = backend.convert(rule)
        except Unsupported:
            continue
        tree = parse(search_of(query))
        assert _shapes_ok(tree), query
        for pattern in _patterns(tree):
            engine.java.find(pattern, "")          # raises on a PatternSyntaxException
        done += 1
    assert done > 4000, done
