"""Property tests across targets: a rule value, whatever it holds, stays one literal of the
generated query (issue: hostile input). Hypothesis runs with a fixed seed (conftest profile).

The other halves of the same property live beside each backend: DuckDB executing queries with
hostile values against the evaluator and sqlglot reading each Athena literal back
(tests/test_sql.py), pipe-search literals decoded by its documented escapes
(tests/test_pipesearch.py). Here: KQL, through Microsoft's own Kusto tokenizer."""
import json
import subprocess
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_kql import KUSTO, _node_or_skip

from transpiler.backends import get
from transpiler.errors import Unsupported
from transpiler.rule import rule_from_dict

# Quotes, backslashes, wildcards, LIKE characters, newlines and tabs, Unicode dashes and quotes,
# KQL/SQL/pipe-search keywords and comment markers.
PIECES = ['"', "'", "\\", "`", "*", "?", "%", "_", "\n", "\r", "\t", "\u2013", "\u2014", "\u201c", "\u2019",
          "@", "|", "//", "/*", "*/", "--", "#", ";", " or 1==1 ", "where", "and", "not", "$", "{", "}",
          "[", "]", "(", ")", "a", "Z", "é", "\U0001f600", "\u2028", "\x00"[:0] + "x"]
VALUES = st.lists(st.sampled_from(PIECES), min_size=1, max_size=8).map("".join)
OPS = ["", "|contains", "|startswith", "|endswith", "|cased", "|contains|cased"]


def sigma_escape(text: str) -> str:
    """A literal text as a Sigma value: wildcards and backslashes escaped."""
    return "".join("\\" + c if c in "*?\\" else c for c in text)


def rule_for(key: str, values):
    return rule_from_dict({"title": "p", "logsource": {"category": "test"},
                           "detection": {"sel": {key: values}, "condition": "sel"}})


@pytest.fixture(scope="module")
def tokenizer():
    node = _node_or_skip()
    proc = subprocess.Popen([node, str(KUSTO / "validate.js"), "--lines"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, encoding="utf-8")

    def strings(query):
        proc.stdin.write(json.dumps({"strings": [query]}) + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())["strings"][0]
    yield strings
    proc.stdin.close()
    proc.wait(timeout=10)


def test_kql_value_is_exactly_one_string_token(tokenizer):
    converted = Counter()

    @settings(max_examples=300, deadline=None)
    @given(value=VALUES, op=st.sampled_from(OPS))
    def check(value, op):
        try:
            query = get("kql")().convert(rule_for("f" + op, sigma_escape(value)))
        except Unsupported:
            converted[False] += 1
            return
        converted[True] += 1
        tokens = tokenizer(query)
        assert tokens is not None, query                      # it parses
        assert len(tokens) == 1, (query, tokens)              # the value did not split the literal
        if "matches regex" not in query:
            assert tokens[0] == value, query                  # and reads back as itself

    check()
    assert converted[True] >= 0.9 * sum(converted.values()), converted   # not a test of refusals


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(VALUES, min_size=2, max_size=4, unique=True))
def test_kql_value_list_is_one_token_per_value(tokenizer, values):
    query = get("kql")().convert(rule_for("f", [sigma_escape(v) for v in values]))
    tokens = tokenizer(query)
    assert tokens is not None and len(tokens) == len(values), (query, tokens)
    if "matches regex" not in query:
        assert sorted(tokens) == sorted(values)
